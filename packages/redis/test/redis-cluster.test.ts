import "reflect-metadata";
import { spawnSync } from "node:child_process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Hub, OptionsError, type SendTarget } from "@switchboard/core";
import { RedisBackplane } from "../src/index.js";
import { closeAll, connectClient, MemoryLogger, record, settle, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";
import { redisBefore7, redisMissing, sendAcrossTargets, TestRedisCluster } from "./redis-server.js";

const mustRun = process.env.CI === "true";
const cliMissing = redisMissing ?? (spawnSync("redis-cli", ["--version"]).error !== undefined ? "redis-cli is not installed" : undefined) ?? redisBefore7;
if (cliMissing !== undefined && !mustRun) console.warn(`packages/redis: skipping the Redis Cluster tests, ${cliMissing}.`);

@Hub("/hubs/sharded")
class ShardedHub extends Hub {
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  Send(target: SendTarget, text: string): Promise<void> {
    switch (target.kind) {
      case "group":
        return this.clients.group(target.group).send("m", text);
      case "user":
        return this.clients.user(target.userId).send("m", text);
      case "connection":
        return this.clients.client(target.connectionId).send("m", text);
      default:
        return this.clients.all.send("m", text);
    }
  }
  Ask(connectionId: string): Promise<unknown> {
    return this.clients.client(connectionId).invoke("Answer");
  }
}

// Hubs whose hash tags fall in three different thirds of the slots (one shard each in the test cluster).
@Hub("/hubs/sharded-2")
class SecondHub extends ShardedHub {}
@Hub("/hubs/sharded-3")
class ThirdHub extends ShardedHub {}

describe.skipIf(cliMissing !== undefined && !mustRun)("scale-out on Redis Cluster", () => {
  let cluster: TestRedisCluster;
  const backplanes: RedisBackplane[] = [];

  beforeAll(async () => {
    if (cliMissing !== undefined) throw new Error(`CI=true but ${cliMissing}`);
    cluster = await TestRedisCluster.start();
  }, 60_000);
  afterAll(() => cluster?.stop());
  afterEach(async () => {
    await closeAll();
    backplanes.length = 0;
  });

  async function node(): Promise<TestServer> {
    const logger = new MemoryLogger();
    const backplane = new RedisBackplane({ cluster: cluster.nodes, logger, requestTimeout: 2_000 });
    backplanes.push(backplane);
    const server = await startServer([ShardedHub, SecondHub, ThirdHub], { backplane, logger, userIdProvider: ({ request }) => request.query.get("user") ?? null });
    await server.server.ready;
    return server;
  }

  it("keeps one sender's sends to a hub in order, whatever their targets, as on standalone Redis", async () => {
    const a = await node();
    const b = await node();
    const b2 = await connectClient(b.url("/hubs/sharded?user=bo"), "messagepack");
    const inbox = record(b2, "m");
    await b2.invoke("Join", "room");
    await Promise.all(backplanes.map((backplane) => backplane.subscribed()));
    const sent = await sendAcrossTargets(a.server.hubContext(ShardedHub), { userId: "bo", connectionId: b2.connectionId!, group: "room" });
    await until(() => inbox.length >= sent.length, 10_000, "every send on the other server");
    await settle(100);
    expect(inbox.map((m) => m[0])).toEqual(sent);
  }, 60_000);

  it("carries every kind of send, group changes, client results and directory queries across servers", async () => {
    const a = await node();
    const b = await node();
    const clients: [string, ClientProtocol, TestServer][] = [
      ["a1", "json", a],
      ["b1", "messagepack", b],
      ["b2", "json", b],
    ];
    const connections = new Map<string, Awaited<ReturnType<typeof connectClient>>>();
    const inbox = new Map<string, unknown[][]>();
    for (const [name, protocol, server] of clients) {
      const connection = await connectClient(server.url(`/hubs/sharded?user=${name === "a1" ? "ann" : "bo"}`), protocol);
      connections.set(name, connection);
      inbox.set(name, record(connection, "m"));
    }
    const a1 = connections.get("a1")!;
    const b1 = connections.get("b1")!;
    const b2 = connections.get("b2")!;
    // Many groups, which would land on every shard if channels were spread by their own names.
    const groups = Array.from({ length: 24 }, (_, i) => `room-${i}`);
    for (const group of groups) {
      await a1.invoke("Join", group);
      await b1.invoke("Join", group);
    }
    await Promise.all(backplanes.map((backplane) => backplane.subscribed()));
    for (const group of groups) await a1.invoke("Send", { kind: "group", group }, group);
    await until(() => groups.every((group) => inbox.get("b1")!.some((m) => m[0] === group)), 5_000, "every group's message on the other server");
    expect(inbox.get("b2")!.filter((m) => String(m[0]).startsWith("room-"))).toEqual([]);
    await a1.invoke("Send", { kind: "user", userId: "bo" }, "to bo");
    await a1.invoke("Send", { kind: "connection", connectionId: b2.connectionId! }, "to b2");
    await a1.invoke("Send", { kind: "all" }, "to all");
    await until(() => ["to bo", "to b2", "to all"].every((text) => inbox.get("b2")!.some((m) => m[0] === text)));
    await settle(100);
    expect(inbox.get("b2")!.map((m) => m[0])).toEqual(["to bo", "to b2", "to all"]);
    // Sharded pub/sub: each hub's channels sit on one shard, and the hubs spread over the shards.
    for (const path of ["/hubs/sharded-2", "/hubs/sharded-3"]) await connectClient(b.url(path), "json");
    await Promise.all(backplanes.map((backplane) => backplane.subscribed()));
    const shardChannels = cluster.ports.map((port) => spawnSync("redis-cli", ["-p", String(port), "pubsub", "shardchannels"], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean));
    const shardsOf = (path: string) => shardChannels.flatMap((channels, shard) => (channels.some((channel) => channel.startsWith(`sb:{${path}}:`)) ? [shard] : []));
    expect(shardChannels.flat().filter((channel) => channel.startsWith("sb:{/hubs/sharded}:group:"))).toHaveLength(24);
    expect([shardsOf("/hubs/sharded"), shardsOf("/hubs/sharded-2"), shardsOf("/hubs/sharded-3")].map((shards) => shards.length)).toEqual([1, 1, 1]);
    expect(new Set([...shardsOf("/hubs/sharded"), ...shardsOf("/hubs/sharded-2"), ...shardsOf("/hubs/sharded-3")]).size).toBe(3);
    // A group change and a client result for a connection of the other server.
    const context = a.server.hubContext(ShardedHub);
    await context.groups.add(b2.connectionId!, "late");
    await Promise.all(backplanes.map((backplane) => backplane.subscribed()));
    await context.clients.group("late").send("m", "late news");
    await until(() => inbox.get("b2")!.some((m) => m[0] === "late news"));
    b2.on("Answer", () => "from b2");
    await expect(a1.invoke("Ask", b2.connectionId!)).resolves.toBe("from b2");
    // The directory, from either server.
    for (const server of [a, b]) {
      const queries = server.server.hubContext(ShardedHub).groups.cluster;
      expect(await queries.count("room-3")).toBe(2);
      expect(await queries.has("late", b2.connectionId!)).toBe(true);
      expect((await queries.groupsOf(a1.connectionId!)).length).toBe(24);
      expect((await queries.list({ limit: 1000 })).items).toHaveLength(25);
    }
  }, 60_000);
  it("refuses classic pub/sub on a cluster: it would not keep even one connection's sends in order", () => {
    expect(() => new RedisBackplane({ cluster: cluster.nodes, sharded: false })).toThrow(OptionsError);
    expect(() => new RedisBackplane({ cluster: cluster.nodes, sharded: false })).toThrow(/'sharded: false' cannot be used with 'cluster'/);
    // Braces in the prefix would change the hash tag that keeps a hub's channels in one slot.
    for (const prefix of ["app{}", "{app}", "a}b"]) expect(() => new RedisBackplane({ cluster: cluster.nodes, prefix })).toThrow(/'prefix' cannot contain '\{' or '\}' with 'cluster'/);
    expect(() => new RedisBackplane({ url: "redis://127.0.0.1:1", prefix: "{app}" })).not.toThrow();
  });

  it("does not start on a cluster that has no sharded pub/sub, says why, and still serves its own connections", async () => {
    // SPUBLISH taken away: the server has no sharded pub/sub, as with a Redis older than 7.
    const old = await TestRedisCluster.start({ masters: 1, args: ["--rename-command", "SPUBLISH", ""] });
    try {
      const logger = new MemoryLogger();
      const backplane = new RedisBackplane({ cluster: old.nodes, logger, requestTimeout: 2_000 });
      const server = await startServer([ShardedHub], { backplane, logger });
      const refused = { code: "SB_ERR_BACKPLANE", message: expect.stringMatching(/no sharded pub\/sub \(SPUBLISH, Redis 7 or later\)/) };
      await expect(server.server.ready).rejects.toMatchObject(refused);
      // Asking for sharded pub/sub does not make the cluster have it.
      const insisting = new RedisBackplane({ cluster: old.nodes, sharded: true, logger: new MemoryLogger(), requestTimeout: 2_000 });
      const started = insisting.start({ deliver: () => undefined, command: () => Promise.resolve(undefined), memberships: () => [] });
      await expect(started.finally(() => insisting.close())).rejects.toMatchObject(refused);
      expect(logger.entries.some((entry) => entry.level === "error" && entry.message.includes("The backplane could not start"))).toBe(true);
      const client = await connectClient(server.url("/hubs/sharded"), "json");
      const inbox = record(client, "m");
      await expect(client.invoke("Send", { kind: "connection", connectionId: client.connectionId! }, "to me")).resolves.toBeNull();
      await until(() => inbox.some((m) => m[0] === "to me"));
      // A send that must cross servers reaches this server's connections and says the rest were not reached.
      await expect(server.server.hubContext(ShardedHub).clients.all.send("m", "to all")).rejects.toMatchObject({ code: "SB_ERR_BACKPLANE" });
      await until(() => inbox.some((m) => m[0] === "to all"));
    } finally {
      await closeAll();
      await old.stop();
    }
  }, 60_000);
});
