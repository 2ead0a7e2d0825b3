import "reflect-metadata";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, type HubContext } from "@switchboard/core";
import { RedisBackplane } from "../src/index.js";
import { closeAll, connectClient, MemoryLogger, settle, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";
import { redisMissing, useTestRedis } from "./redis-server.js";

const mustRun = process.env.CI === "true";
if (redisMissing !== undefined && !mustRun) console.warn(`packages/redis: skipping the cluster tests, ${redisMissing}.`);

@Hub("/hubs/cluster")
class ClusterHub extends Hub {
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }
  /** Asks another connection, wherever it is, for a result. */
  Ask(connectionId: string, question: string): Promise<unknown> {
    return this.clients.client(connectionId).invoke("Answer", question);
  }
}

const FIXTURE = fileURLToPath(new URL("./fixtures/farm-node.mjs", import.meta.url));

describe.skipIf(redisMissing !== undefined && !mustRun)("cluster-wide groups and client results on Redis", () => {
  const redis = useTestRedis();
  const children: ChildProcess[] = [];
  afterEach(async () => {
    await closeAll();
    for (const child of children.splice(0)) child.kill("SIGKILL");
    const raw = new Redis(redis().url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await raw.connect().then(() => raw.flushall()).catch(() => undefined);
    raw.disconnect();
  });

  async function node(options: { lease?: number; logger?: MemoryLogger; maxPendingClientResults?: number } = {}): Promise<TestServer & { backplane: RedisBackplane; context: HubContext }> {
    const logger = options.logger ?? new MemoryLogger();
    const backplane = new RedisBackplane({ url: redis().url, logger, lease: options.lease, requestTimeout: 1_000 });
    const server = await startServer([ClusterHub], { backplane, logger, clientResultTimeout: 5_000, maxPendingClientResults: options.maxPendingClientResults ?? 64 });
    await server.server.ready;
    return Object.assign(server, { backplane, context: server.server.hubContext(ClusterHub) });
  }

  /** Three servers, a JSON and a MessagePack client on each. */
  async function threeServers() {
    const servers = [await node(), await node(), await node()];
    const clients = [];
    for (const server of servers) {
      for (const protocol of ["json", "messagepack"] as ClientProtocol[]) clients.push(await connectClient(server.url("/hubs/cluster"), protocol));
    }
    return { servers, clients, ids: clients.map((client) => client.connectionId!) };
  }

  const sorted = (items: readonly string[]) => [...items].sort();

  /** A server in a process of its own (test/fixtures/farm-node.mjs), which the test can kill or stall. */
  async function childServer(lease: number): Promise<{ child: ChildProcess; url: string }> {
    const child = spawn(process.execPath, [FIXTURE, redis().url, String(lease)], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on("data", (chunk: Buffer) => {
        const match = /listening (\d+)/.exec(chunk.toString());
        if (match !== null) resolve(Number(match[1]));
      });
      child.once("exit", (code) => reject(new Error(`the server process exited (${code})`)));
    });
    return { child, url: `http://127.0.0.1:${port}/hubs/cluster` };
  }

  /** Polls `read` until it returns `expected` (the directory is eventually consistent across servers). */
  async function eventually<T>(read: () => Promise<T>, expected: T, timeout = 5_000): Promise<T> {
    const deadline = Date.now() + timeout;
    let value = await read();
    while (JSON.stringify(value) !== JSON.stringify(expected) && Date.now() < deadline) {
      await settle(25);
      value = await read();
    }
    return value;
  }

  it("answers count, has, groupsOf, members (paged) and list for every server's connections, from any server", async () => {
    const { servers, clients, ids } = await threeServers();
    for (const client of clients) await client.invoke("Join", "everyone");
    await clients[0]!.invoke("Join", "pair");
    await clients[5]!.invoke("Join", "pair");
    await clients[3]!.invoke("Join", `it's "odd" 🎉:g:x`);
    for (const server of servers) {
      const cluster = server.context.groups.cluster;
      expect(await cluster.count("everyone")).toBe(6);
      expect(await cluster.count("pair")).toBe(2);
      expect(await cluster.count("nobody")).toBe(0);
      expect(await cluster.has("pair", ids[5]!)).toBe(true);
      expect(await cluster.has("pair", ids[4]!)).toBe(false);
      expect(sorted(await cluster.groupsOf(ids[0]!))).toEqual(["everyone", "pair"]);
      expect(sorted(await cluster.groupsOf(ids[3]!))).toEqual(sorted(["everyone", `it's "odd" 🎉:g:x`]));
      expect(await cluster.groupsOf("unknown")).toEqual([]);
      expect(sorted((await cluster.list()).items)).toEqual(sorted(["everyone", "pair", `it's "odd" 🎉:g:x`]));
      // Pages of 4 then 2: every member exactly once, in a stable order.
      const first = await cluster.members("everyone", { limit: 4 });
      expect(first.items).toHaveLength(4);
      expect(first.cursor).toBeDefined();
      const second = await cluster.members("everyone", { cursor: first.cursor, limit: 4 });
      expect(second.cursor).toBeUndefined();
      expect(sorted([...first.items, ...second.items])).toEqual(sorted(ids));
      // The local queries stay local.
      expect(server.context.groups.count("everyone")).toBe(2);
    }
    // Leaves and ends are seen everywhere.
    await clients[0]!.invoke("Leave", "pair");
    await clients[5]!.stop();
    await until(() => servers[2]!.context.groups.count("pair") === 0);
    const cluster = servers[1]!.context.groups.cluster;
    for (let i = 0; i < 40 && (await cluster.count("everyone")) !== 5; i++) await settle(25);
    expect(await cluster.count("everyone")).toBe(5);
    expect(await cluster.count("pair")).toBe(0);
    expect((await cluster.list()).items).not.toContain("pair");
    expect(await cluster.groupsOf(ids[5]!)).toEqual([]);
  });

  it("sees this server's own changes in its next query, and refuses bad pages and group names clearly", async () => {
    const a = await node();
    const client = await connectClient(a.url("/hubs/cluster"));
    await a.context.groups.add(client.connectionId!, "mine");
    expect(await a.context.groups.cluster.count("mine")).toBe(1); // no wait: queued changes go first
    await a.context.groups.remove(client.connectionId!, "mine");
    expect(await a.context.groups.cluster.has("mine", client.connectionId!)).toBe(false);
    await expect(a.context.groups.cluster.members("mine", { limit: 0 })).rejects.toMatchObject({ code: "SB_ERR_OPTIONS" });
    await expect(a.context.groups.cluster.list({ limit: 1001 })).rejects.toMatchObject({ code: "SB_ERR_OPTIONS" });
    await expect(a.context.groups.cluster.count("")).rejects.toMatchObject({ code: "SB_ERR_GROUP_NAME" });
  });

  it("forgets the members of a server killed without warning within its lease, and says so in the log", async () => {
    const logger = new MemoryLogger();
    const a = await node({ lease: 600, logger });
    const { child, url } = await childServer(600);
    const doomed = await connectClient(url);
    const local = await connectClient(a.url("/hubs/cluster"));
    await doomed.invoke("Join", "k");
    await local.invoke("Join", "k");
    const cluster = a.context.groups.cluster;
    for (let i = 0; i < 40 && (await cluster.count("k")) !== 2; i++) await settle(25);
    expect(await cluster.count("k")).toBe(2);
    const doomedId = doomed.connectionId!; // the client forgets it once its connection is gone
    expect(await cluster.has("k", doomedId)).toBe(true);
    child.kill("SIGKILL");
    const killed = Date.now();
    let gone = false;
    while (!gone && Date.now() - killed < 5_000) {
      await settle(50);
      gone = !(await cluster.has("k", doomedId));
    }
    expect(gone).toBe(true);
    // Within the lease plus one renewal period of the sweeping server (600 + 200 ms), with slack for a loaded machine.
    expect(Date.now() - killed).toBeLessThan(3_000);
    expect(await cluster.count("k")).toBe(1);
    expect(await cluster.groupsOf(doomedId)).toEqual([]);
    expect(logger.entries.some((entry) => entry.message.startsWith("Removed the group memberships of a server whose lease ran out"))).toBe(true);
    await doomed.stop();
  }, 20_000);

  it("a stalled server does not slow the others; swept past its lease, it writes its members back when it wakes", async () => {
    const logger = new MemoryLogger();
    const a = await node({ lease: 600, logger });
    const b = await node({ lease: 600 });
    const { url } = await childServer(600);
    const sleepy = await connectClient(url);
    const a1 = await connectClient(a.url("/hubs/cluster"));
    const b1 = await connectClient(b.url("/hubs/cluster"), "messagepack");
    const received: Record<string, number> = {};
    for (const [name, client] of [["sleepy", sleepy], ["a1", a1], ["b1", b1]] as const) {
      client.on("m", () => (received[name] = Date.now()));
      await client.invoke("Join", "nap");
    }
    const sleepyId = sleepy.connectionId!;
    const cluster = a.context.groups.cluster;
    expect(await eventually(() => cluster.count("nap"), 3)).toBe(3);
    await Promise.all([a.backplane.subscribed(), b.backplane.subscribed()]);
    const stall = sleepy.invoke("Stall", 2_000); // the child's event loop stops for 2 s
    await settle(100);
    const sent = Date.now();
    await a.context.clients.group("nap").send("m", "while one sleeps");
    await until(() => received.a1 !== undefined && received.b1 !== undefined, 1_000, "the awake servers' members");
    expect(received.b1! - sent).toBeLessThan(1_000); // not held back by the stalled server
    expect(received.sleepy).toBeUndefined();
    // Past its lease, the awake servers sweep its members …
    expect(await eventually(() => cluster.has("nap", sleepyId), false, 1_800)).toBe(false);
    await stall;
    // … it gets the message once awake, and on its next renewal finds it was swept and writes them back.
    await until(() => received.sleepy !== undefined, 3_000, "the stalled server's member");
    expect(await eventually(() => cluster.has("nap", sleepyId), true, 3_000)).toBe(true);
    expect(await cluster.count("nap")).toBe(3);
  }, 20_000);

  it("rewrites its memberships when Redis comes back, and fails queries clearly while it is away", async () => {
    const logger = new MemoryLogger();
    const a = await node({ logger, lease: 1_500 });
    const b = await node({ lease: 1_500 });
    const stays = await connectClient(a.url("/hubs/cluster"));
    const leaves = await connectClient(a.url("/hubs/cluster"), "messagepack");
    await stays.invoke("Join", "r");
    await leaves.invoke("Join", "r");
    expect(await b.context.groups.cluster.count("r")).toBe(2);
    await redis().stop();
    await until(() => logger.entries.some((entry) => entry.message.startsWith("Backplane lost its connection")));
    await expect(a.context.groups.cluster.count("r")).rejects.toMatchObject({ code: "SB_ERR_BACKPLANE" });
    // Changes while Redis is away: one joins another group, one connection ends.
    await stays.invoke("Join", "while-away");
    await leaves.stop();
    await redis().resume(); // an empty Redis: it kept nothing
    await until(() => logger.entries.some((entry) => entry.message.startsWith("Backplane reconnected")), 15_000);
    const cluster = b.context.groups.cluster;
    const deadline = Date.now() + 15_000;
    let groups: readonly string[] = [];
    while (Date.now() < deadline) {
      groups = await cluster.groupsOf(stays.connectionId!).catch(() => []);
      if (groups.length === 2) break;
      await settle(100);
    }
    expect(sorted(groups)).toEqual(["r", "while-away"]);
    expect(await cluster.count("r")).toBe(1);
  }, 60_000);

  it("asks a client on another server for a result, JSON and MessagePack, and passes its error back", async () => {
    const a = await node();
    const b = await node();
    for (const protocol of ["json", "messagepack"] as ClientProtocol[]) {
      const asker = await connectClient(a.url("/hubs/cluster"), protocol);
      const answerer = await connectClient(b.url("/hubs/cluster"), protocol === "json" ? "messagepack" : "json");
      answerer.on("Answer", (question: string) => (question === "fail" ? Promise.reject(new Error("no idea")) : { echo: question, n: [1, 2.5, null] }));
      await expect(asker.invoke("Ask", answerer.connectionId!, "hello")).resolves.toEqual({ echo: "hello", n: [1, 2.5, null] });
      await expect(a.context.clients.client(answerer.connectionId!).invoke("Answer", "fail")).rejects.toMatchObject({ code: "SB_ERR_CLIENT_RESULT", message: "Error: no idea" }); // the client's text, as for a local client
    }
  });

  it("times out and aborts a remote client result, and the other server forgets it", async () => {
    const a = await node();
    const b = await node({ maxPendingClientResults: 2 });
    const silent = await connectClient(b.url("/hubs/cluster"));
    let asked = 0;
    silent.on("Answer", () => {
      asked++;
      return new Promise(() => undefined); // never answers
    });
    const started = Date.now();
    await expect(a.context.clients.client(silent.connectionId!).withOptions({ timeout: 300 }).invoke("Answer", "?")).rejects.toMatchObject({ code: "SB_ERR_TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(2_000);
    const controller = new AbortController();
    const pending = a.context.clients.client(silent.connectionId!).withOptions({ signal: controller.signal }).invoke("Answer", "?");
    await until(() => asked === 2);
    controller.abort(new Error("changed my mind"));
    await expect(pending).rejects.toThrow("changed my mind");
    // Both were forgotten on the answering server (the abort only through the cancel: its own
    // wait is 5 s), so it takes two new ones under its cap of 2 pending results.
    const again = [1, 2].map(() => a.context.clients.client(silent.connectionId!).withOptions({ timeout: 400 }).invoke("Answer", "?"));
    for (const outcome of await Promise.allSettled(again)) expect(outcome).toMatchObject({ status: "rejected", reason: { code: "SB_ERR_TIMEOUT" } });
    expect(asked).toBe(4);
  });

  it("refuses a client result for a connection no server has, at once", async () => {
    const a = await node();
    await node();
    const started = Date.now();
    await expect(a.context.clients.client("nobody").invoke("Answer", "?")).rejects.toMatchObject({ code: "SB_ERR_BACKPLANE", message: "Connection 'nobody' is not connected to any server." });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("asks every member of a group on every server with invokeAll", async () => {
    const { servers, clients, ids } = await threeServers();
    clients.forEach((client, i) => client.on("Answer", () => i));
    for (const client of clients) await client.invoke("Join", "poll");
    await clients[2]!.invoke("Leave", "poll");
    const answers = await servers[0]!.context.clients.group("poll").invokeAll("Answer");
    const expected = new Map(ids.map((id, i) => [id, { result: i }] as const).filter(([id]) => id !== ids[2]));
    expect(new Map([...answers].sort())).toEqual(new Map([...expected].sort()));
  });
});
