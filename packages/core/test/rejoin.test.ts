import "reflect-metadata";
import { Buffer } from "node:buffer";
import { afterEach, describe, expect, it } from "vitest";
import { container as rootContainer } from "tsyringe";
import {
  GroupPersistError,
  Hub,
  MemoryMembershipStore,
  RejoinKeyError,
  RejoinTokens,
  SwitchboardServer,
  type MembershipStore,
  type PipelineModule,
  type ServerOptions,
} from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { HttpTransport } from "@switchboard/transport-ws";
import { withRejoin } from "@switchboard/client";
import { buildClient, closeAll, connectClient, MemoryLogger, record, signalR, startServer, until, type ClientProtocol } from "../../../test-support/harness.js";

const KEY = "k".repeat(32);
const OTHER_KEY = "o".repeat(32);
const running: SwitchboardServer[] = [];

afterEach(async () => {
  await closeAll();
  await Promise.allSettled(running.splice(0).map((server) => server.close()));
});

@Hub("/rooms")
class RoomHub extends Hub {
  override async onConnected(): Promise<void> {
    await this.clients.caller.send("hello", this.groups.groupsOf(this.context.connectionId).sort());
  }
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  async JoinMany(groups: string[]): Promise<void> {
    for (const group of groups) await this.groups.add(this.context.connectionId, group);
  }
  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }
  async Persist(group: string): Promise<string> {
    try {
      await this.groups.add(this.context.connectionId, group, { persist: true });
      return "ok";
    } catch (error) {
      return (error as GroupPersistError).code ?? (error as Error).message;
    }
  }
  async Unpersist(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group, { persist: true });
  }
  MyGroups(): string[] {
    return this.groups.groupsOf(this.context.connectionId).sort();
  }
  async Say(group: string, text: string): Promise<void> {
    await this.clients.group(group).send("said", group, text);
  }
}

@Hub("/other")
class OtherHub extends Hub {}

/** Users come from the `access_token` query (`?access_token=alice`); `big`, `proto` and `quote` map to awkward ids. */
const AWKWARD_USERS: Record<string, string> = { big: "u".repeat(10 * 1024), proto: "__proto__", quote: `O'Brien "); DROP TABLE x; --` };
const authOptions: Partial<ServerOptions> = {
  authenticate: ({ token }) => (token === undefined ? null : { sub: token }),
  userIdProvider: ({ user }) => (user === null ? null : (AWKWARD_USERS[user.sub as string] ?? (user.sub as string))),
};

/** A server on a chosen port (0: any), closed after the test. */
async function serve(port: number, options: Partial<ServerOptions> = {}): Promise<{ server: SwitchboardServer; port: number; logger: MemoryLogger; url: (path: string) => string }> {
  const logger = new MemoryLogger();
  const server = new SwitchboardServer({
    hubs: [RoomHub, OtherHub],
    protocols: [new JsonHubProtocol(), new MessagePackHubProtocol()],
    container: rootContainer.createChildContainer(),
    logger,
    rejoin: { keys: [KEY] },
    ...options,
  });
  running.push(server);
  const address = await new HttpTransport(server).listen(port, "127.0.0.1");
  return { server, port: address.port, logger, url: (path) => `http://127.0.0.1:${address.port}${path}` };
}

/** The groups a token claims (the payload is not secret, only signed). */
function groupsIn(token: string | undefined): string[] {
  if (token === undefined) return [];
  return (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8"))[3] as string[]).sort();
}

function withToken(url: string, token: string, extra = ""): string {
  return `${url}?sb_rejoin=1&sb_rejoin_token=${encodeURIComponent(token)}${extra}`;
}

const protocols: ClientProtocol[] = ["json", "messagepack"];

describe.each(protocols)("rejoin over %s", (protocol) => {
  it("restores groups from the token after an automatic reconnect to a restarted server (same port, same key)", async () => {
    const first = await serve(0);
    const rejoin = withRejoin(buildClient(first.url("/rooms"), protocol, (b) => b.withAutomaticReconnect([0, 50, 100, 100, 100, 200, 200, 200, 500, 500, 500, 1000, 1000, 1000])));
    const restored: (readonly string[])[] = [];
    rejoin.onRejoined((groups) => restored.push(groups));
    await rejoin.connection.start();
    await until(() => restored.length === 1, 5_000, "first sb.rejoined");
    expect(restored[0]).toEqual([]);
    await rejoin.connection.invoke("Join", "a");
    await rejoin.connection.invoke("Join", "b");
    await until(() => groupsIn(rejoin.token).join() === "a,b", 5_000, "a token for a and b");
    const oldId = rejoin.connection.connectionId;

    const reconnected = new Promise<void>((resolve) => rejoin.connection.onreconnected(() => resolve()));
    await first.server.close();
    const second = await serve(first.port);
    await reconnected;
    await until(() => restored.length === 2, 5_000, "second sb.rejoined");
    expect([...restored[1]!].sort()).toEqual(["a", "b"]);
    expect(rejoin.connection.connectionId).not.toBe(oldId);
    expect(await rejoin.connection.invoke("MyGroups")).toEqual(["a", "b"]);

    // The restored membership is real: a send to the group reaches it.
    const heard = record(rejoin.connection, "said");
    const other = await connectClient(second.url("/rooms"), protocol);
    await other.invoke("Say", "b", "hi");
    await until(() => heard.length === 1, 5_000, "group send");
    expect(heard[0]).toEqual(["b", "hi"]);
  });

  it("sends sb.rejoined before any other message, and the first invocation already sees the groups", async () => {
    const { url } = await serve(0);
    const tokens = new RejoinTokens({ keys: [KEY] });
    const token = tokens.issue("RoomHub", { connectionId: "previous-1" }, ["x", "y"])!;
    const connection = buildClient(withToken(url("/rooms"), token), protocol);
    const order: string[] = [];
    connection.on("sb.rejoined", (groups: string[]) => order.push(`rejoined:${[...groups].sort().join()}`));
    connection.on("hello", (groups: string[]) => order.push(`hello:${groups.join()}`));
    await connection.start();
    expect(await connection.invoke("MyGroups")).toEqual(["x", "y"]);
    await until(() => order.length === 2, 5_000, "both messages");
    expect(order).toEqual(["rejoined:x,y", "hello:x,y"]);
  });

  it("honours a rejoiningGroups module that drops a group, and tells the client which came back", async () => {
    const seen: string[][] = [];
    const dropSecret: PipelineModule = {
      rejoiningGroups: (_ctx, groups) => {
        seen.push([...groups].sort());
        return groups.filter((group) => group !== "secret");
      },
    };
    const { url } = await serve(0, { modules: [dropSecret] });
    const token = new RejoinTokens({ keys: [KEY] }).issue("RoomHub", { connectionId: "previous-2" }, ["public", "secret"])!;
    const connection = buildClient(withToken(url("/rooms"), token), protocol);
    const rejoined = record(connection, "sb.rejoined");
    await connection.start();
    await until(() => rejoined.length === 1, 5_000, "sb.rejoined");
    expect(rejoined[0]).toEqual([["public"]]);
    expect(seen).toEqual([["public", "secret"]]);
    expect(await connection.invoke("MyGroups")).toEqual(["public"]);
  });
});

describe("rejoin over every transport", () => {
  it.each([signalR.HttpTransportType.ServerSentEvents, signalR.HttpTransportType.LongPolling])("restores from the token in the connect request (transport %s)", async (transport) => {
    const { url } = await serve(0);
    const token = new RejoinTokens({ keys: [KEY] }).issue("RoomHub", { connectionId: `t-${transport}` }, ["over-http"])!;
    const connection = buildClient(withToken(url("/rooms"), token), "json", (b) => b.withUrl(withToken(url("/rooms"), token), { transport }));
    const rejoined = record(connection, "sb.rejoined");
    await connection.start();
    expect(await connection.invoke("MyGroups")).toEqual(["over-http"]);
    await until(() => rejoined.length === 1, 5_000, "sb.rejoined");
    expect(rejoined[0]).toEqual([["over-http"]]);
  });
});

describe.each(protocols)("refused rejoin tokens over %s", (protocol) => {
  const tokens = new RejoinTokens({ keys: [KEY] });
  const cases: [string, () => string, string, string][] = [
    ["tampered", () => {
      const token = tokens.issue("RoomHub", { connectionId: "t-1" }, ["a"])!;
      const [v, payload, signature] = token.split(".");
      const forged = Buffer.from(JSON.stringify(["RoomHub", "c", "t-1", ["a", "admins"], 0, 2 ** 40]), "utf8").toString("base64url");
      void payload;
      return `${v}.${forged}.${signature}`;
    }, "", "bad signature"],
    ["signed with an unknown key", () => new RejoinTokens({ keys: [OTHER_KEY] }).issue("RoomHub", { connectionId: "t-2" }, ["a"])!, "", "bad signature"],
    ["expired", () => tokens.issue("RoomHub", { connectionId: "t-3" }, ["a"], Date.now() - 2 * tokens.ttl)!, "", "expired"],
    ["for another hub", () => tokens.issue("OtherHub", { connectionId: "t-4" }, ["a"])!, "", "other hub"],
    ["of another user", () => tokens.issue("RoomHub", { user: "alice" }, ["a"])!, "&access_token=bob", "other user"],
    ["of a user, presented anonymously", () => tokens.issue("RoomHub", { user: "alice" }, ["a"])!, "", "other user"],
    ["anonymous, presented by a user", () => tokens.issue("RoomHub", { connectionId: "t-5" }, ["a"])!, "&access_token=alice", "other user"],
    ["garbage", () => "v1.!!!.???", "", "malformed"],
  ];

  it.each(cases)("%s: no groups, a warning without the token, and the connection works", async (_name, make, extra, reason) => {
    const { url, logger } = await serve(0, authOptions);
    const token = make();
    const connection = buildClient(withToken(url("/rooms"), token, extra), protocol);
    const rejoined = record(connection, "sb.rejoined");
    await connection.start();
    expect(await connection.invoke("MyGroups")).toEqual([]);
    await until(() => rejoined.length === 1, 5_000, "sb.rejoined");
    expect(rejoined[0]).toEqual([[]]);
    await connection.invoke("Join", "works");
    expect(await connection.invoke("MyGroups")).toEqual(["works"]);
    const warning = logger.entries.find((entry) => entry.level === "warn" && entry.message.includes("rejoin token was refused"));
    expect(warning?.fields).toMatchObject({ reason });
    expect(logger.text()).not.toContain(token);
  });

  it("an anonymous token restores once; replayed, it restores nothing", async () => {
    const { url, logger } = await serve(0);
    const token = tokens.issue("RoomHub", { connectionId: "once" }, ["a"])!;
    const first = await connectClient(withToken(url("/rooms"), token), protocol);
    expect(await first.invoke("MyGroups")).toEqual(["a"]);
    const replay = await connectClient(withToken(url("/rooms"), token), protocol);
    expect(await replay.invoke("MyGroups")).toEqual([]);
    expect(logger.entries.some((entry) => entry.level === "warn" && (entry.fields as { reason?: string }).reason === "replayed")).toBe(true);
  });

  it("with rejoin.usedTokens, an anonymous token used on one server restores nothing on another", async () => {
    const used = new Set<string>();
    const usedTokens = { claim: async (hub: string, id: string) => !used.has(`${hub}/${id}`) && used.add(`${hub}/${id}`) !== undefined };
    const a = await serve(0, { rejoin: { keys: [KEY], usedTokens } });
    const b = await serve(0, { rejoin: { keys: [KEY], usedTokens } });
    const token = tokens.issue("RoomHub", { connectionId: "shared-once" }, ["a"])!;
    const first = await connectClient(withToken(a.url("/rooms"), token), protocol);
    expect(await first.invoke("MyGroups")).toEqual(["a"]);
    const elsewhere = await connectClient(withToken(b.url("/rooms"), token), protocol);
    expect(await elsewhere.invoke("MyGroups")).toEqual([]);
    expect(b.logger.entries.some((entry) => entry.level === "warn" && (entry.fields as { reason?: string }).reason === "replayed")).toBe(true);
  });

  it("with rejoin.usedTokens failing or silent, an anonymous token is refused (fail closed) and the connection works", async () => {
    for (const usedTokens of [{ claim: () => Promise.reject(new Error("store down")) }, { claim: () => new Promise<boolean>(() => undefined) }]) {
      const { url, logger } = await serve(0, { rejoin: { keys: [KEY], usedTokens }, membershipTimeout: 200 });
      const token = tokens.issue("RoomHub", { connectionId: `fail-closed-${Math.random()}` }, ["a"])!;
      const connection = await connectClient(withToken(url("/rooms"), token), protocol);
      expect(await connection.invoke("MyGroups")).toEqual([]);
      await connection.invoke("Join", "works");
      expect(await connection.invoke("MyGroups")).toEqual(["works"]);
      expect(logger.entries.some((entry) => entry.level === "warn" && (entry.fields as { reason?: string }).reason === "replay check failed")).toBe(true);
      expect(logger.text()).not.toContain(token);
    }
  });

  it("a user's token restores that user's groups (the control for the cases above)", async () => {
    const { url } = await serve(0, authOptions);
    const token = tokens.issue("RoomHub", { user: "alice" }, ["a"])!;
    const connection = await connectClient(withToken(url("/rooms"), token, "&access_token=alice"), protocol);
    expect(await connection.invoke("MyGroups")).toEqual(["a"]);
  });
});

describe("rejoin tokens on the wire", () => {
  it("go only to clients that asked, coalesced to one per turn, and null once no group is left", async () => {
    const { url } = await serve(0);
    const plain = await connectClient(url("/rooms"));
    const plainTokens = record(plain, "sb.rejoinToken");
    const plainRejoined = record(plain, "sb.rejoined");
    await plain.invoke("Join", "a");
    const asked = await connectClient(`${url("/rooms")}?sb_rejoin=1`);
    const received = record(asked, "sb.rejoinToken");
    await asked.invoke("Join", "a");
    await until(() => received.length === 1, 5_000, "a token");
    expect(groupsIn(received[0]![0] as string)).toEqual(["a"]);
    await asked.invoke("JoinMany", ["b", "c", "d"]); // three changes in one turn: one token
    await until(() => groupsIn(received.at(-1)![0] as string).join() === "a,b,c,d", 5_000, "token for a-d");
    expect(received.length).toBe(2);
    for (const group of ["a", "b", "c", "d"]) await asked.invoke("Leave", group);
    await until(() => received.at(-1)![0] === null, 5_000, "null token");
    expect(plainTokens).toEqual([]);
    expect(plainRejoined).toEqual([]);
  });

  it("a connection in more groups than a token may carry gets none (logged), and a huge token is refused unread", async () => {
    const { url, logger } = await serve(0, { rejoin: { keys: [KEY], maxGroups: 3 } });
    const connection = await connectClient(`${url("/rooms")}?sb_rejoin=1`);
    const received = record(connection, "sb.rejoinToken");
    for (const group of ["a", "b", "c", "d"]) await connection.invoke("Join", group);
    await until(() => received.length > 0 && received.at(-1)![0] === null, 5_000, "null token");
    expect(logger.text()).toContain("do not fit in a rejoin token");
    const tokens = new RejoinTokens({ keys: [KEY] });
    expect(tokens.verify(`v1.${"A".repeat(10_000_000)}.x`)).toBe("too large");
  });

  it("keys rotate: the first signs, every key verifies", () => {
    const old = new RejoinTokens({ keys: [OTHER_KEY] }).issue("RoomHub", { user: "u" }, ["a"])!;
    const rotated = new RejoinTokens({ keys: [KEY, OTHER_KEY] });
    expect(rotated.verify(old)).toMatchObject({ groups: ["a"], principal: { user: "u" } });
    expect(new RejoinTokens({ keys: [KEY] }).verify(rotated.issue("RoomHub", { user: "u" }, ["a"]))).toMatchObject({ groups: ["a"] });
    expect(new RejoinTokens({ keys: [KEY] }).verify(old)).toBe("bad signature");
  });

  it("the memory of used anonymous tokens is bounded: past it, anonymous tokens are refused", () => {
    const tokens = new RejoinTokens({ keys: [KEY], maxUsedTokens: 2 });
    const accept = (id: string) => {
      const claim = tokens.verify(tokens.issue("H", { connectionId: id }, ["g"]));
      if (typeof claim === "string") throw new Error(claim);
      return tokens.accept(claim, "H", null);
    };
    expect(accept("1")).toBeUndefined();
    expect(accept("2")).toBeUndefined();
    expect(accept("3")).toBe("replay memory full");
    expect(accept("1")).toBe("replayed");
  });

  it.each([
    ["no keys", { keys: [] }],
    ["a short key", { keys: ["x".repeat(31)] }],
    ["a short second key", { keys: [KEY, Buffer.alloc(16)] }],
    ["no option object", null],
  ])("refuses to start with %s (SB_ERR_REJOIN_KEY)", (_name, rejoin) => {
    expect(() => new SwitchboardServer({ protocols: [new JsonHubProtocol()], rejoin: rejoin as never })).toThrow(RejoinKeyError);
    try {
      new SwitchboardServer({ protocols: [new JsonHubProtocol()], rejoin: rejoin as never });
    } catch (error) {
      expect((error as RejoinKeyError).code).toBe("SB_ERR_REJOIN_KEY");
    }
  });

  it("a token with no rejoin option configured is ignored with a warning", async () => {
    const { url, logger } = await startServer([RoomHub]);
    const token = new RejoinTokens({ keys: [KEY] }).issue("RoomHub", { connectionId: "n" }, ["a"])!;
    const connection = await connectClient(withToken(url("/rooms"), token));
    expect(await connection.invoke("MyGroups")).toEqual([]);
    expect(logger.text()).toContain("no 'rejoin' option");
  });
});

describe.each(protocols)("persisted membership over %s", (protocol) => {
  it("survives a restart (a new server sharing the memory store) through the rejoiningGroups hook; other users get nothing", async () => {
    const store = new MemoryMembershipStore();
    const hooked: string[][] = [];
    const module: PipelineModule = { rejoiningGroups: (_ctx, groups) => (hooked.push([...groups].sort()), groups) };
    const first = await serve(0, { ...authOptions, membershipStore: store, modules: [module] });
    const alice = await connectClient(`${first.url("/rooms")}?access_token=alice`, protocol);
    expect(await alice.invoke("Persist", "room-1")).toBe("ok");
    expect(await alice.invoke("Persist", "room-2")).toBe("ok");
    await alice.invoke("Unpersist", "room-2");
    await first.server.close();

    const second = await serve(0, { ...authOptions, membershipStore: store, modules: [module] });
    const again = buildClient(`${second.url("/rooms")}?access_token=alice&sb_rejoin=1`, protocol);
    const rejoined = record(again, "sb.rejoined");
    await again.start();
    expect(await again.invoke("MyGroups")).toEqual(["room-1"]);
    expect(rejoined).toEqual([[["room-1"]]]);
    expect(hooked.at(-1)).toEqual(["room-1"]);
    const bob = await connectClient(`${second.url("/rooms")}?access_token=bob`, protocol);
    expect(await bob.invoke("MyGroups")).toEqual([]);
  });

  it("an anonymous connection cannot persist (SB_ERR_GROUP_PERSIST) and stays usable", async () => {
    const { url } = await serve(0);
    const anonymous = await connectClient(url("/rooms"), protocol);
    expect(await anonymous.invoke("Persist", "g")).toBe("SB_ERR_GROUP_PERSIST");
    expect(await anonymous.invoke("MyGroups")).toEqual([]);
  });

  it("stores and restores awkward group names and user ids exactly (quotes, __proto__, 10 kB)", async () => {
    const store = new MemoryMembershipStore();
    const groups = [`it's "quoted"; DROP TABLE x; --`, "__proto__", "constructor", "g".repeat(10 * 1024), "ünï 😀"];
    const first = await serve(0, { ...authOptions, membershipStore: store });
    for (const user of ["big", "proto", "quote"]) {
      const connection = await connectClient(`${first.url("/rooms")}?access_token=${user}`, protocol);
      for (const group of groups) expect(await connection.invoke("Persist", group)).toBe("ok");
      await connection.stop();
    }
    await first.server.close();
    const second = await serve(0, { ...authOptions, membershipStore: store });
    for (const user of ["big", "proto", "quote"]) {
      expect([...(await store.groupsOf("RoomHub", AWKWARD_USERS[user]!))].sort()).toEqual([...groups].sort());
      const connection = await connectClient(`${second.url("/rooms")}?access_token=${user}`, protocol);
      expect(await connection.invoke("MyGroups")).toEqual([...groups].sort());
    }
  });
});

class StuckStore implements MembershipStore {
  add(): Promise<void> {
    return Promise.reject(new Error("store down"));
  }
  remove(): Promise<void> {
    return Promise.reject(new Error("store down"));
  }
  groupsOf(): Promise<readonly string[]> {
    return new Promise(() => undefined); // never answers
  }
}

describe("a failing membership store", () => {
  it("a store that never answers: the user connects after membershipTimeout, the failure is logged, persisting reports the error", async () => {
    const { url, logger } = await serve(0, { ...authOptions, membershipStore: new StuckStore(), membershipTimeout: 200 });
    const connection = await connectClient(`${url("/rooms")}?access_token=alice&sb_rejoin=1`);
    expect(await connection.invoke("MyGroups")).toEqual([]);
    expect(logger.entries.some((entry) => entry.level === "error" && entry.message.includes("Reading persisted groups failed"))).toBe(true);
    expect(await connection.invoke("Persist", "g")).toBe("store down");
    expect(await connection.invoke("MyGroups")).toEqual([]); // the store refused: nothing half-done
    await connection.invoke("Join", "still-works");
    expect(await connection.invoke("MyGroups")).toEqual(["still-works"]);
  });
});

describe("@switchboard/client", () => {
  it("keeps the token in the given storage, so a new client (a page reload) starts back in its groups", async () => {
    const { url } = await serve(0);
    const saved = new Map<string, string>();
    const storage = { getItem: (key: string) => saved.get(key) ?? null, setItem: (key: string, value: string) => void saved.set(key, value), removeItem: (key: string) => void saved.delete(key) };
    const page1 = withRejoin(new signalR.HubConnectionBuilder().withUrl(url("/rooms")).configureLogging(signalR.LogLevel.None), { storage });
    await page1.connection.start();
    await page1.connection.invoke("Join", "lobby");
    await until(() => groupsIn(page1.token).join() === "lobby", 5_000, "token");
    expect([...saved.values()]).toEqual([page1.token]);
    await page1.connection.stop();

    const restored: (readonly string[])[] = [];
    const page2 = withRejoin(new signalR.HubConnectionBuilder().withUrl(url("/rooms")).configureLogging(signalR.LogLevel.None).build(), { storage, onRejoined: (groups) => restored.push(groups) });
    await page2.connection.start();
    await until(() => restored.length === 1, 5_000, "sb.rejoined");
    expect(restored[0]).toEqual(["lobby"]);
    expect(page2.groups).toEqual(["lobby"]);
    await page2.connection.stop();
    page2.clear();
    expect(saved.size).toBe(0);
  });
});
