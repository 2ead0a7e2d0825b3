import "reflect-metadata";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, type HubMessage, type SendTarget } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { RedisBackplane, RedisMembershipStore } from "../src/index.js";
import { closeAll, connectClient, MemoryLogger, record, settle, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";
import { hasShardedPubSub, redisBefore7, redisMissing, sendAcrossTargets, useTestRedis } from "./redis-server.js";

const mustRun = process.env.CI === "true";
if (redisMissing !== undefined && !mustRun) console.warn(`packages/redis: skipping the Redis tests, ${redisMissing}.`);

/** Encodes of the measured message ("m"), per protocol name, across every server of the test. */
const encodes = { json: 0, messagepack: 0 };
class CountingJson extends JsonHubProtocol {
  override write(message: HubMessage): Uint8Array {
    if (message.type === 1 && message.target === "m") encodes.json++;
    return super.write(message);
  }
}
class CountingMessagePack extends MessagePackHubProtocol {
  override write(message: HubMessage): Uint8Array {
    if (message.type === 1 && message.target === "m") encodes.messagepack++;
    return super.write(message);
  }
}

@Hub("/hubs/farm")
class FarmHub extends Hub {
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }
  async JoinPersisted(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group, { persist: true });
  }
  Send(target: SendTarget, text: string): Promise<void> {
    switch (target.kind) {
      case "all":
        return target.excluded === undefined ? this.clients.all.send("m", text) : this.clients.allExcept(target.excluded).send("m", text);
      case "connection":
        return this.clients.client(target.connectionId).send("m", text);
      case "connections":
        return this.clients.clients(target.connectionIds).send("m", text);
      case "group":
        return target.excluded === undefined ? this.clients.group(target.group).send("m", text) : this.clients.groupExcept(target.group, target.excluded).send("m", text);
      case "groups":
        return this.clients.groups(target.groups).send("m", text);
      case "user":
        return this.clients.user(target.userId).send("m", text);
      case "users":
        return this.clients.users(target.userIds).send("m", text);
    }
  }
  Caller(text: string): Promise<void> {
    return this.clients.caller.send("m", text);
  }
  Others(text: string): Promise<void> {
    return this.clients.others.send("m", text);
  }
  OthersInGroup(group: string, text: string): Promise<void> {
    return this.clients.othersInGroup(group).send("m", text);
  }
}

describe.skipIf(redisMissing !== undefined && !mustRun)("scale-out on Redis", () => {
  const redis = useTestRedis();
  const backplanes: RedisBackplane[] = [];
  afterEach(async () => {
    await closeAll();
    backplanes.length = 0;
  });

  async function node(logger = new MemoryLogger()): Promise<TestServer> {
    const backplane = new RedisBackplane({ url: redis().url, logger, requestTimeout: 500 });
    backplanes.push(backplane);
    const server = await startServer([FarmHub], {
      protocols: [new CountingJson(), new CountingMessagePack()],
      backplane,
      logger,
      userIdProvider: ({ request }) => request.query.get("user") ?? null,
    });
    await server.server.ready;
    return server;
  }

  const subscribed = () => Promise.all(backplanes.map((backplane) => backplane.subscribed()));

  async function farm(protocols: [ClientProtocol, ClientProtocol, ClientProtocol] = ["json", "messagepack", "json"]) {
    const a = await node();
    const b = await node();
    const a1 = await connectClient(a.url("/hubs/farm?user=alice"), protocols[0]);
    const b1 = await connectClient(b.url("/hubs/farm?user=bob"), protocols[1]);
    const b2 = await connectClient(b.url("/hubs/farm?user=alice"), protocols[2]);
    const inbox = { a1: record(a1, "m"), b1: record(b1, "m"), b2: record(b2, "m") };
    await subscribed();
    return { a, b, a1, b1, b2, inbox };
  }

  it.each([2, 3])("delivers every address form across %i servers, JSON and MessagePack mixed, exactly once", async (servers) => {
    const { a1, b1, b2, inbox: twoServers } = await farm();
    // The third server's client (MessagePack, user carl) is in "room" only.
    const inbox: Record<string, unknown[][]> = { ...twoServers };
    const clients = [a1, b1, b2];
    if (servers === 3) {
      const c = await node();
      const c1 = await connectClient(c.url("/hubs/farm?user=carl"), "messagepack");
      inbox.c1 = record(c1, "m");
      await c1.invoke("Join", "room");
    }
    for (const client of clients) await client.invoke("Join", "room");
    await b1.invoke("Join", "side");
    await a1.invoke("Join", "side");
    await subscribed();
    const names = Object.keys(inbox);
    const texts = (): Record<string, string[]> => Object.fromEntries(names.map((name) => [name, inbox[name]!.map((m) => m[0] as string)]));
    const c1 = servers === 3 ? ["c1"] : [];
    const cases: [string, SendTarget | "caller" | "others" | "othersInGroup", string[]][] = [
      ["othersInGroup", "othersInGroup", ["b1", "b2", ...c1]],
      ["all", { kind: "all" }, ["a1", "b1", "b2", ...c1]],
      ["allExcept", { kind: "all", excluded: [b1.connectionId!] }, ["a1", "b2", ...c1]],
      ["client", { kind: "connection", connectionId: b2.connectionId! }, ["b2"]],
      ["clients", { kind: "connections", connectionIds: [a1.connectionId!, b1.connectionId!, b1.connectionId!] }, ["a1", "b1"]],
      ["group", { kind: "group", group: "room" }, ["a1", "b1", "b2", ...c1]],
      ["groups", { kind: "groups", groups: ["room", "side"] }, ["a1", "b1", "b2", ...c1]],
      ["groupExcept", { kind: "group", group: "room", excluded: [a1.connectionId!] }, ["b1", "b2", ...c1]],
      ["user", { kind: "user", userId: "alice" }, ["a1", "b2"]],
      ["users", { kind: "users", userIds: ["alice", "bob", "carl"] }, ["a1", "b1", "b2", ...c1]],
      ["caller", "caller", ["a1"]],
      ["others", "others", ["b1", "b2", ...c1]],
    ];
    for (const [name, target, expected] of cases) {
      for (const list of Object.values(inbox)) list.length = 0;
      if (target === "caller") await a1.invoke("Caller", name);
      else if (target === "others") await a1.invoke("Others", name);
      else if (target === "othersInGroup") await a1.invoke("OthersInGroup", "room", name);
      else await a1.invoke("Send", target, name);
      await until(() => expected.every((who) => texts()[who]!.includes(name)), 5_000, name);
      await settle(80); // nothing more may arrive
      expect({ name, got: texts() }).toEqual({ name, got: Object.fromEntries(names.map((who) => [who, expected.includes(who) ? [name] : []])) });
    }
  });

  it("adds and removes a connection of another server to and from a group, acknowledged", async () => {
    const { a, b1, inbox } = await farm();
    const context = a.server.hubContext(FarmHub);
    await context.groups.add(b1.connectionId!, "remote");
    await subscribed();
    await context.clients.group("remote").send("m", "joined from afar");
    await until(() => inbox.b1.some((m) => m[0] === "joined from afar"));
    await context.groups.remove(b1.connectionId!, "remote");
    await subscribed();
    await context.clients.group("remote").send("m", "after removal");
    await settle(150);
    expect(inbox.b1.map((m) => m[0])).toEqual(["joined from afar"]);
  });

  it("refuses a group change for a connection no server has, at once and clearly, and a bad group name too", async () => {
    const { a } = await farm();
    const context = a.server.hubContext(FarmHub);
    const started = Date.now();
    await expect(context.groups.add("nobody-anywhere", "room")).rejects.toMatchObject({ code: "SB_ERR_BACKPLANE", message: "Connection 'nobody-anywhere' is not connected to any server." });
    expect(Date.now() - started).toBeLessThan(400); // no server subscribes to its channel: no wait for requestTimeout (500 ms)
    await expect(context.groups.add("nobody-anywhere", "")).rejects.toMatchObject({ code: "SB_ERR_GROUP_NAME" });
  });

  it("persists a remote add through the connection's own server and its membership store", async () => {
    const { a, b, b2 } = await farm();
    await a.server.hubContext(FarmHub).groups.add(b2.connectionId!, "kept", { persist: true });
    expect(b.server.hubContext(FarmHub).groups.has("kept", b2.connectionId!)).toBe(true);
    // b2 is alice's connection on b: b's store has the membership, a's has nothing.
    expect(await b.server.options.membershipStore.groupsOf("FarmHub", "alice")).toEqual(["kept"]);
    expect(await a.server.options.membershipStore.groupsOf("FarmHub", "alice")).toEqual([]);
  });

  it("encodes a send once per protocol cluster-wide, and the receiving server re-encodes nothing", async () => {
    const { a1, b1, b2, inbox } = await farm(["json", "messagepack", "json"]);
    for (const client of [a1, b1, b2]) await client.invoke("Join", "room");
    await subscribed();
    encodes.json = encodes.messagepack = 0;
    await a1.invoke("Send", { kind: "group", group: "room" }, "once");
    await until(() => inbox.a1.length === 1 && inbox.b1.length === 1 && inbox.b2.length === 1);
    expect(encodes).toEqual({ json: 1, messagepack: 1 });
  });

  it("keeps one sender's order on the other server", async () => {
    const { a, a1, b1, b2, inbox } = await farm(["json", "messagepack", "messagepack"]);
    for (const client of [a1, b1, b2]) await client.invoke("Join", "room");
    await subscribed();
    const sends = [];
    for (let i = 0; i < 300; i++) sends.push(a1.send("Send", { kind: "group", group: "room" }, String(i)));
    await Promise.all(sends);
    await until(() => inbox.b1.length === 300 && inbox.b2.length === 300);
    const expected = Array.from({ length: 300 }, (_, i) => String(i));
    expect(inbox.b1.map((m) => m[0])).toEqual(expected);
    expect(inbox.b2.map((m) => m[0])).toEqual(expected);
    // Across targets too: a user, a connection, a group and everyone are four channels.
    inbox.b2.length = 0;
    const sent = await sendAcrossTargets(a.server.hubContext(FarmHub), { userId: "alice", connectionId: b2.connectionId!, group: "room" });
    await until(() => inbox.b2.length >= sent.length);
    await settle(100);
    expect(inbox.b2.map((m) => m[0])).toEqual(sent);
  });

  it("subscribes to a group's channel only while the server has a local member", async () => {
    const { a, b, b1 } = await farm();
    const [bpA, bpB] = backplanes as [RedisBackplane, RedisBackplane];
    const channel = (name: string) => [...bpB.channels].some((c) => c.endsWith(`:group:${name}`));
    expect(channel("lonely")).toBe(false);
    await b1.invoke("Join", "lonely");
    expect(channel("lonely")).toBe(true);
    expect([...bpA.channels].some((c) => c.endsWith(":group:lonely"))).toBe(false);
    await b1.invoke("Leave", "lonely");
    expect(channel("lonely")).toBe(false);
    await b1.invoke("Join", "lonely");
    await b1.stop();
    await until(() => !channel("lonely"));
    expect(a.server).toBeDefined();
    expect(b.server).toBeDefined();
  });

  it("keeps local delivery when Redis is down, fails cross-server sends fast and clearly, and recovers when it is back", async () => {
    const logger = new MemoryLogger();
    const a = await node(logger);
    const b = await node();
    const a1 = await connectClient(a.url("/hubs/farm"));
    const a2 = await connectClient(a.url("/hubs/farm"));
    const b1 = await connectClient(b.url("/hubs/farm"));
    const inbox = { a2: record(a2, "m"), b1: record(b1, "m") };
    for (const client of [a1, a2, b1]) await client.invoke("Join", "room");
    await subscribed();
    await redis().stop();
    await until(() => logger.entries.some((entry) => entry.message.startsWith("Backplane lost its connection")));
    const context = a.server.hubContext(FarmHub);
    const started = Date.now();
    await expect(context.clients.group("room").send("m", "while down")).rejects.toMatchObject({ code: "SB_ERR_BACKPLANE" });
    expect(Date.now() - started).toBeLessThan(1_000);
    await until(() => inbox.a2.some((m) => m[0] === "while down"));
    await redis().resume();
    await until(() => logger.entries.some((entry) => entry.message.startsWith("Backplane reconnected")), 15_000);
    // Both servers reconnect on their own; a send goes through once both have.
    const deadline = Date.now() + 15_000;
    for (;;) {
      await subscribed();
      await context.clients.group("room").send("m", "after").catch(() => undefined);
      await settle(100);
      if (inbox.b1.some((m) => m[0] === "after") || Date.now() > deadline) break;
    }
    expect(inbox.b1.some((m) => m[0] === "after")).toBe(true);
  }, 60_000);

  it("T36 drops garbage and other versions on a channel with a log line, and keeps working", async () => {
    const logger = new MemoryLogger();
    const a = await node(logger);
    const b = await node();
    const a1 = await connectClient(a.url("/hubs/farm"));
    const b1 = await connectClient(b.url("/hubs/farm"));
    const inbox = record(a1, "m");
    await a1.invoke("Join", "room");
    await b1.invoke("Join", "room");
    await subscribed();
    const raw = new Redis(redis().url);
    try {
      const channel = [...backplanes[0]!.channels].find((c) => c.endsWith(":group:room"))!;
      const sharded = await hasShardedPubSub(raw);
      const publish = (data: Buffer) => (sharded ? raw.spublish(channel, data) : raw.publish(channel, data));
      await publish(Buffer.from("not switchboard"));
      await publish(Buffer.from([2, 1, 2, 3]));
      await publish(Buffer.alloc(2 * 1024 * 1024, 1));
      // Malformed requests (0x11) and replies (0x12) on this server's connection and reply channels.
      const own = [...backplanes[0]!.channels];
      const connectionChannel = own.find((c) => c.endsWith(`:connection:${a1.connectionId}`))!;
      const replyChannel = own.find((c) => c.includes(":reply:"))!;
      const to = (target: string, data: Buffer) => (sharded ? raw.spublish(target, data) : raw.publish(target, data));
      await to(connectionChannel, Buffer.from([0x11, 1, 2, 3]));
      await to(connectionChannel, Buffer.concat([Buffer.from([0x11]), Buffer.alloc(16), Buffer.from([0, 0, 0, 5]), Buffer.from("{bad}")]));
      await to(replyChannel, Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff]));
      await to(replyChannel, Buffer.from([0x12]));
      await until(() => logger.entries.filter((entry) => entry.message.startsWith("Dropped")).length >= 7);
    } finally {
      raw.disconnect();
    }
    await b1.invoke("Send", { kind: "group", group: "room" }, "still fine");
    await until(() => inbox.some((m) => m[0] === "still fine"));
  });

  it("T35 Redis killed mid-traffic and restarted: local delivery goes on, remote calls fail fast, every channel is resubscribed, nothing sent after is lost", async () => {
    const logger = new MemoryLogger();
    const a = await node(logger);
    const b = await node();
    const a1 = await connectClient(a.url("/hubs/farm?user=ann"), "json");
    const b1 = await connectClient(b.url("/hubs/farm?user=ben"), "messagepack");
    const inbox = { a1: record(a1, "m"), b1: record(b1, "m") };
    for (const client of [a1, b1]) await client.invoke("Join", "traffic");
    await subscribed();
    const context = a.server.hubContext(FarmHub);
    // About 200 messages a second from server a, alternating group and all.
    let sent = 0;
    const failures: string[] = [];
    let phase = "before";
    const sentIn: Record<string, string[]> = { before: [], draining: [], down: [], after: [] };
    const traffic = setInterval(() => {
      const text = `${phase}-${sent++}`;
      sentIn[phase]!.push(text);
      const proxy = sent % 2 === 0 ? context.clients.group("traffic") : context.clients.all;
      proxy.send("m", text).catch((error: { code?: string }) => failures.push(`${phase}:${error.code}`));
    }, 5);
    try {
      await settle(300);
      // Sends still in flight when Redis dies are lost (pub/sub is at most once): "before" are the
      // ones the other server had received when Redis was stopped.
      phase = "draining";
      await until(() => sentIn.before!.every((text) => inbox.b1.some((m) => m[0] === text)));
      phase = "down";
      await redis().stop();
      await until(() => logger.entries.some((entry) => entry.message.startsWith("Backplane lost its connection")));
      const started = Date.now();
      await expect(context.groups.add(b1.connectionId!, "remote")).rejects.toMatchObject({ code: "SB_ERR_BACKPLANE" });
      expect(Date.now() - started).toBeLessThan(1_000);
      await settle(5_000);
      await redis().resume();
      await until(() => logger.entries.some((entry) => entry.message.startsWith("Backplane reconnected")), 15_000);
      // Both servers are back once a probe crosses; from then on nothing may be lost.
      const deadline = Date.now() + 15_000;
      for (let probe = 0; !inbox.b1.some((m) => String(m[0]).startsWith("probe")) && Date.now() < deadline; probe++) {
        await subscribed();
        await context.clients.group("traffic").send("m", `probe-${probe}`).catch(() => undefined);
        await settle(100);
      }
      phase = "after";
      await settle(500);
    } finally {
      clearInterval(traffic);
    }
    await settle(300);
    const got = (inbox: unknown[][]) => new Set(inbox.map((m) => String(m[0])));
    const a1Got = got(inbox.a1);
    const b1Got = got(inbox.b1);
    // Local delivery never stopped; the remote server got everything before and after, none twice.
    for (const text of [...sentIn.before!, ...sentIn.draining!, ...sentIn.down!, ...sentIn.after!]) expect(a1Got.has(text), text).toBe(true);
    for (const text of [...sentIn.before!, ...sentIn.after!]) expect(b1Got.has(text), text).toBe(true);
    expect(sentIn.after!.length).toBeGreaterThan(20);
    expect(inbox.b1.length).toBe(b1Got.size);
    expect(failures.some((failure) => failure === "down:SB_ERR_BACKPLANE")).toBe(true);
    expect(failures.filter((failure) => !failure.startsWith("down:"))).toEqual([]);
    // Every channel of both servers is subscribed again (all, group, user, connection, replies).
    const raw = new Redis(redis().url);
    try {
      const sharded = await hasShardedPubSub(raw);
      const live = new Set((await raw.call("PUBSUB", sharded ? "SHARDCHANNELS" : "CHANNELS")) as string[]);
      for (const backplane of backplanes) for (const channel of backplane.channels) expect(live.has(channel), channel).toBe(true);
      expect([...live].some((channel) => channel.endsWith(`:connection:${b1.connectionId}`))).toBe(true);
      expect([...live].some((channel) => channel.endsWith(":user:ben"))).toBe(true);
      expect([...live].some((channel) => channel.endsWith(":group:traffic"))).toBe(true);
    } finally {
      raw.disconnect();
    }
  }, 60_000);

  it("subscribes every channel in one mode: on Redis 7 nothing is left on classic pub/sub", async () => {
    await node();
    await node();
    await subscribed();
    const raw = new Redis(redis().url);
    try {
      const sharded = await hasShardedPubSub(raw);
      const classic = (await raw.call("PUBSUB", "CHANNELS")) as string[];
      const shard = (await raw.call("PUBSUB", sharded ? "SHARDCHANNELS" : "CHANNELS")) as string[];
      // The reply channels used to be subscribed classically too, before the mode was known.
      if (sharded) expect(classic).toEqual([]);
      expect(shard.filter((channel) => channel.includes(":reply:"))).toHaveLength(2);
    } finally {
      raw.disconnect();
    }
  });

  it("T36 boots with Redis down, serves its own connections, and joins the farm when Redis comes up", async () => {
    await redis().stop();
    const logger = new MemoryLogger();
    const backplane = new RedisBackplane({ url: redis().url, logger, requestTimeout: 500 });
    backplanes.push(backplane);
    const a = await startServer([FarmHub], { backplane, logger });
    let ready = false;
    void a.server.ready.then(() => (ready = true));
    await until(() => logger.entries.some((entry) => entry.message.startsWith("Backplane cannot reach Redis yet")));
    const a1 = await connectClient(a.url("/hubs/farm"));
    const inbox = record(a1, "m");
    await a1.invoke("Join", "early");
    await expect(a.server.hubContext(FarmHub).clients.group("early").send("m", "local only")).rejects.toMatchObject({ code: "SB_ERR_BACKPLANE" });
    await until(() => inbox.some((m) => m[0] === "local only"));
    expect(ready).toBe(false);
    await redis().resume();
    await a.server.ready;
    const b = await node();
    const b1 = await connectClient(b.url("/hubs/farm"));
    await b1.invoke("Join", "early");
    await subscribed();
    await b1.invoke("Send", { kind: "group", group: "early" }, "across");
    await until(() => inbox.some((m) => m[0] === "across"));
    // Its group joined before Redis was reachable is in the cluster directory too.
    expect(await b.server.hubContext(FarmHub).groups.cluster.has("early", a1.connectionId!)).toBe(true);
  }, 30_000);

  it("T36 a paused Redis (CLIENT PAUSE) fails publishes after requestTimeout without blocking the event loop", async () => {
    const a = await node();
    await node();
    const a1 = await connectClient(a.url("/hubs/farm"));
    const inbox = record(a1, "m");
    await a1.invoke("Join", "paused");
    await subscribed();
    const raw = new Redis(redis().url);
    try {
      await raw.call("CLIENT", "PAUSE", "2000", "ALL");
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 20);
      const started = Date.now();
      const outcome = await a.server.hubContext(FarmHub).clients.group("paused").send("m", "stalled").then(() => "sent", (error: { code?: string }) => error.code);
      const waited = Date.now() - started;
      clearInterval(ticker);
      expect(outcome).toBe("SB_ERR_BACKPLANE");
      expect(waited).toBeLessThan(1_900); // requestTimeout is 500 ms; the pause lasts 2 s
      expect(ticks).toBeGreaterThan(5); // the event loop kept running meanwhile
      expect(inbox.some((m) => m[0] === "stalled")).toBe(true); // local delivery did not wait
    } finally {
      await raw.call("CLIENT", "UNPAUSE").catch(() => undefined);
      raw.disconnect();
    }
  }, 30_000);

  it("a rejoin token issued by one server restores the groups on another, where sends from the first reach them", async () => {
    const rejoin = { keys: ["k".repeat(32)] };
    const onB = new RedisBackplane({ url: redis().url, logger: new MemoryLogger() });
    const a = await startServer([FarmHub], { backplane: new RedisBackplane({ url: redis().url, logger: new MemoryLogger() }), rejoin });
    const b = await startServer([FarmHub], { backplane: onB, rejoin });
    await Promise.all([a.server.ready, b.server.ready]);
    const first = await connectClient(a.url("/hubs/farm?sb_rejoin=1"), "json");
    const tokens = record(first, "sb.rejoinToken");
    await first.invoke("Join", "travellers");
    await until(() => tokens.some((t) => typeof t[0] === "string"));
    const token = tokens.at(-1)![0] as string;
    await first.stop();
    const again = await connectClient(b.url(`/hubs/farm?sb_rejoin=1&sb_rejoin_token=${encodeURIComponent(token)}`), "messagepack");
    const inbox = record(again, "m");
    await again.invoke("Caller", "x"); // restored before its first invocation
    expect(b.server.hubContext(FarmHub).groups.has("travellers", again.connectionId!)).toBe(true);
    await onB.subscribed(); // b listens on the group's channel
    await a.server.hubContext(FarmHub).clients.group("travellers").send("m", "welcome back");
    await until(() => inbox.some((m) => m[0] === "welcome back"));
  });

  it("restores persisted groups on another server from a shared Redis membership store", async () => {
    const store = new RedisMembershipStore({ url: redis().url, prefix: `t${Date.now()}` });
    try {
      const a = await startServer([FarmHub], { membershipStore: store, userIdProvider: ({ request }) => request.query.get("user") ?? null });
      const b = await startServer([FarmHub], { membershipStore: store, userIdProvider: ({ request }) => request.query.get("user") ?? null });
      const first = await connectClient(a.url("/hubs/farm?user=carol"));
      await first.invoke("JoinPersisted", "book club");
      await first.stop();
      const again = await connectClient(b.url("/hubs/farm?user=carol"));
      // Restored before its first invocation is dispatched: an invocation's answer proves it is done.
      await again.invoke("Caller", "x");
      expect(b.server.hubContext(FarmHub).groups.has("book club", again.connectionId!)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("is the farm's memory of used rejoin tokens: one claim wins, even at once, and it expires with the token", async () => {
    const prefix = `r${Date.now()}`;
    const store = new RedisMembershipStore({ url: redis().url, prefix });
    try {
      const expiresAt = Math.floor(Date.now() / 1000) + 2;
      const claims = await Promise.all(Array.from({ length: 10 }, () => store.claim("/hubs/farm", "conn-1", expiresAt)));
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.claim("/hubs/farm", "conn-1", expiresAt)).toBe(false);
      expect(await store.claim("/hubs/other", "conn-1", expiresAt)).toBe(true); // per hub
      const raw = new Redis(redis().url);
      try {
        const keys = await raw.keys(`${prefix}:used:*`);
        expect(keys.length).toBe(2);
        for (const key of keys) expect(await raw.ttl(key)).toBeGreaterThan(0);
      } finally {
        raw.disconnect();
      }
    } finally {
      await store.close();
    }
  });

  it("stores awkward group names and user ids exactly", async () => {
    const store = new RedisMembershipStore({ url: redis().url, prefix: `u${Date.now()}` });
    try {
      const names = [`it's "quoted"`, "__proto__", "x".repeat(10_000), "a:b:c", "emoji 🎉"];
      for (const user of ["__proto__", `o'brien`, "u".repeat(10_000)]) {
        for (const name of names) await store.add("/hubs/farm", user, name);
        await store.add("/hubs/farm", user, names[0]!); // idempotent
        expect([...(await store.groupsOf("/hubs/farm", user))].sort()).toEqual([...names].sort());
        await store.remove("/hubs/farm", user, "__proto__");
        expect(await store.groupsOf("/hubs/farm", user)).not.toContain("__proto__");
      }
      expect(await store.groupsOf("/hubs/other", "__proto__")).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe.skipIf(redisMissing !== undefined && !mustRun)("scale-out on a Redis without sharded pub/sub (older than 7)", () => {
  // SPUBLISH renamed away (a Redis 6 has none, and would refuse to rename it): the backplane must
  // find out and use classic PUBLISH/SUBSCRIBE.
  const redis = useTestRedis(redisBefore7 === undefined ? ["--rename-command", "SPUBLISH", ""] : []);
  afterEach(() => closeAll());

  it("falls back to classic pub/sub: every target in one sender's order, and a group change on the other server", async () => {
    const backplanes: RedisBackplane[] = [];
    const logger = new MemoryLogger();
    const servers: TestServer[] = [];
    for (let i = 0; i < 2; i++) {
      const backplane = new RedisBackplane({ url: redis().url, logger, requestTimeout: 1_000 });
      backplanes.push(backplane);
      servers.push(await startServer([FarmHub], { backplane, logger, userIdProvider: ({ request }) => request.query.get("user") ?? null }));
    }
    await Promise.all(servers.map((server) => server.server.ready));
    expect(logger.entries.filter((entry) => entry.message === "Backplane connected to Redis.").map((entry) => entry.fields)).toEqual([{ sharded: false }, { sharded: false }]);
    const [a, b] = servers as [TestServer, TestServer];
    const b1 = await connectClient(b.url("/hubs/farm?user=bob"), "messagepack");
    const inbox = record(b1, "m");
    const context = a.server.hubContext(FarmHub);
    await context.groups.add(b1.connectionId!, "room");
    await Promise.all(backplanes.map((backplane) => backplane.subscribed()));
    const sent = await sendAcrossTargets(context, { userId: "bob", connectionId: b1.connectionId!, group: "room" });
    await until(() => inbox.length >= sent.length, 10_000, "every send on the other server");
    await settle(100);
    expect(inbox.map((m) => m[0])).toEqual(sent);
    const raw = new Redis(redis().url, { maxRetriesPerRequest: 1 });
    try {
      expect(((await raw.call("PUBSUB", "CHANNELS")) as string[]).filter((channel) => channel.includes(":group:room"))).toHaveLength(1);
      expect(await raw.call("PUBSUB", "SHARDCHANNELS")).toEqual([]);
    } finally {
      raw.disconnect();
    }
  }, 60_000);
});
