import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { inject, injectable } from "tsyringe";
import { MessagePackHubProtocol as ClientMessagePackProtocol } from "@microsoft/signalr-protocol-msgpack";
import { GroupNameError, Hub, hubContextToken, type HubContext, type UserIdContext } from "@switchboard/core";
import { closeAll, connectClient, RawClient, record, settle, signalR, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";

afterEach(closeAll);

interface GroupClient {
  Message(tag: string, from: string, payload?: unknown): void;
}

@Hub("/hubs/groups")
class GroupHub extends Hub<GroupClient> {
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }
  async JoinAndSend(group: string, tag: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
    await this.clients.group(group).send("Message", tag, this.context.connectionId);
  }
  async LeaveAndSend(group: string, tag: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
    await this.clients.group(group).send("Message", tag, this.context.connectionId);
  }
  WhoAmI(): string {
    return this.context.connectionId;
  }
  UserId(): string | null {
    return this.context.userIdentifier;
  }
  Count(group: string): number {
    return this.groups.count(group);
  }
  Has(group: string, connectionId: string): boolean {
    return this.groups.has(group, connectionId);
  }
  GroupsOf(connectionId: string): string[] {
    return this.groups.groupsOf(connectionId).sort();
  }
  Members(group: string): string[] {
    return [...this.groups.members(group)].sort();
  }
  List(): string[] {
    return [...this.groups.list()].sort();
  }

  ToAll(tag: string): Promise<void> {
    return this.clients.all.send("Message", tag, this.context.connectionId);
  }
  ToAllExcept(ids: string[], tag: string): Promise<void> {
    return this.clients.allExcept(ids).send("Message", tag, this.context.connectionId);
  }
  ToCaller(tag: string): Promise<void> {
    return this.clients.caller.send("Message", tag, this.context.connectionId);
  }
  ToOthers(tag: string): Promise<void> {
    return this.clients.others.send("Message", tag, this.context.connectionId);
  }
  ToClient(id: string, tag: string): Promise<void> {
    return this.clients.client(id).send("Message", tag, this.context.connectionId);
  }
  ToClients(ids: string[], tag: string): Promise<void> {
    return this.clients.clients(ids).send("Message", tag, this.context.connectionId);
  }
  ToGroup(name: string, tag: string): Promise<void> {
    return this.clients.group(name).send("Message", tag, this.context.connectionId);
  }
  ToGroups(names: string[], tag: string): Promise<void> {
    return this.clients.groups(names).send("Message", tag, this.context.connectionId);
  }
  ToGroupExcept(name: string, ids: string[], tag: string): Promise<void> {
    return this.clients.groupExcept(name, ids).send("Message", tag, this.context.connectionId);
  }
  ToOthersInGroup(name: string, tag: string): Promise<void> {
    return this.clients.othersInGroup(name).send("Message", tag, this.context.connectionId);
  }
  ToOthersInGroups(names: string[], tag: string): Promise<void> {
    return this.clients.othersInGroups(names).send("Message", tag, this.context.connectionId);
  }
  ToUser(id: string, tag: string): Promise<void> {
    return this.clients.user(id).send("Message", tag, this.context.connectionId);
  }
  ToUsers(ids: string[], tag: string): Promise<void> {
    return this.clients.users(ids).send("Message", tag, this.context.connectionId);
  }
}

/** A second hub with the same group names, to show groups belong to one hub. */
@Hub("/hubs/other")
class OtherHub extends Hub<GroupClient> {
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
}

/** A service that reaches the hub from outside, through DI. */
@injectable()
class Announcer {
  constructor(@inject(hubContextToken(GroupHub)) readonly hub: HubContext<GroupClient>) {}

  enlist(connectionId: string, group: string): Promise<void> {
    return this.hub.groups.add(connectionId, group);
  }

  announce(group: string, tag: string): Promise<void> {
    return this.hub.clients.group(group).send("Message", tag, "announcer");
  }
}

const userFromQuery = ({ request }: UserIdContext): string | null => request.query.get("user") ?? null;

interface Member {
  readonly name: string;
  readonly connection: signalR.HubConnection;
  readonly id: string;
  readonly calls: unknown[][];
}

async function member(server: TestServer, name: string, protocol: ClientProtocol, user?: string): Promise<Member> {
  const url = server.url("/hubs/groups") + (user === undefined ? "" : `?user=${user}`);
  const connection = await connectClient(url, protocol);
  const calls = record(connection, "Message");
  return { name, connection, id: connection.connectionId!, calls };
}

function received(m: Member, tag: string): number {
  return m.calls.filter((call) => call[0] === tag).length;
}

/** Waits until every expected member got `tag`, lets stragglers arrive, then checks exact counts. */
async function expectDelivery(everyone: readonly Member[], tag: string, expected: readonly Member[]): Promise<void> {
  await until(() => expected.every((m) => received(m, tag) > 0), 5_000, `'${tag}' at ${expected.map((m) => m.name).join(",")}`);
  await settle(60);
  const counts = Object.fromEntries(everyone.map((m) => [m.name, received(m, tag)]));
  const wanted = Object.fromEntries(everyone.map((m) => [m.name, expected.includes(m) ? 1 : 0]));
  expect(counts).toEqual(wanted);
}

const NAME_ERROR = "A group name must be a non-empty string.";

describe.each<ClientProtocol>(["json", "messagepack"])("groups and addressing over %s with the official client", (protocol) => {
  /**
   * a, b: user alice; c: bob; d: carol; e: no user.
   * red: a, b · blue: b, c · green: d.
   */
  async function room(): Promise<{ server: TestServer; a: Member; b: Member; c: Member; d: Member; e: Member; all: Member[] }> {
    const server = await startServer([GroupHub, OtherHub], { userIdProvider: userFromQuery });
    const a = await member(server, "a", protocol, "alice");
    const b = await member(server, "b", protocol, "alice");
    const c = await member(server, "c", protocol, "bob");
    const d = await member(server, "d", protocol, "carol");
    const e = await member(server, "e", protocol);
    await a.connection.invoke("Join", "red");
    await b.connection.invoke("Join", "red");
    await b.connection.invoke("Join", "blue");
    await c.connection.invoke("Join", "blue");
    await d.connection.invoke("Join", "green");
    return { server, a, b, c, d, e, all: [a, b, c, d, e] };
  }

  it("takes the user id from the userIdProvider (a query parameter of the hub URL)", async () => {
    const { a, c, e } = await room();
    expect(await a.connection.invoke("UserId")).toBe("alice");
    expect(await c.connection.invoke("UserId")).toBe("bob");
    expect(await e.connection.invoke("UserId")).toBeNull();
  });

  it("reaches exactly the addressed connections, each once, for every address form from a hub", async () => {
    const { a, b, c, d, e, all } = await room();
    const cases: [tag: string, send: () => Promise<unknown>, expected: Member[]][] = [
      ["all", () => a.connection.invoke("ToAll", "all"), [a, b, c, d, e]],
      ["allExcept", () => a.connection.invoke("ToAllExcept", [b.id, d.id, "unknown"], "allExcept"), [a, c, e]],
      ["caller", () => c.connection.invoke("ToCaller", "caller"), [c]],
      ["others", () => a.connection.invoke("ToOthers", "others"), [b, c, d, e]],
      ["client", () => a.connection.invoke("ToClient", d.id, "client"), [d]],
      ["client unknown", () => a.connection.invoke("ToClient", "nobody", "client unknown"), []],
      ["clients", () => a.connection.invoke("ToClients", [b.id, d.id, b.id, "nobody"], "clients"), [b, d]],
      ["group", () => e.connection.invoke("ToGroup", "red", "group"), [a, b]],
      ["group missing", () => a.connection.invoke("ToGroup", "nope", "group missing"), []],
      ["groups", () => e.connection.invoke("ToGroups", ["red", "blue"], "groups"), [a, b, c]],
      ["groups repeated", () => e.connection.invoke("ToGroups", ["red", "red", "nope"], "groups repeated"), [a, b]],
      ["groupExcept", () => a.connection.invoke("ToGroupExcept", "blue", [c.id], "groupExcept"), [b]],
      ["othersInGroup", () => a.connection.invoke("ToOthersInGroup", "red", "othersInGroup"), [b]],
      ["othersInGroup outsider", () => e.connection.invoke("ToOthersInGroup", "green", "othersInGroup outsider"), [d]],
      ["othersInGroups", () => b.connection.invoke("ToOthersInGroups", ["red", "blue"], "othersInGroups"), [a, c]],
      ["user", () => e.connection.invoke("ToUser", "alice", "user"), [a, b]],
      ["user unknown", () => e.connection.invoke("ToUser", "mallory", "user unknown"), []],
      ["users", () => e.connection.invoke("ToUsers", ["alice", "bob", "alice", "mallory"], "users"), [a, b, c]],
    ];
    for (const [tag, send, expected] of cases) {
      await send();
      await expectDelivery(all, tag, expected);
    }
    expect(a.calls.find((call) => call[0] === "all")).toEqual(["all", a.id]);
  });

  it("reaches a member added on the line before the send, and not one removed on the line before", async () => {
    const { a, b, all } = await room();
    await a.connection.invoke("JoinAndSend", "fresh", "joined");
    await expectDelivery(all, "joined", [a]);
    await b.connection.invoke("LeaveAndSend", "red", "left");
    await expectDelivery(all, "left", [a]);
  });

  it("creates a group with its first member, ignores a second add and drops the group with its last member", async () => {
    const server = await startServer([GroupHub]);
    const groups = server.server.hubContext(GroupHub).groups;
    const a = await member(server, "a", protocol);
    const b = await member(server, "b", protocol);
    expect([...groups.list()]).toEqual([]);
    expect(groups.count("room")).toBe(0);
    expect(groups.has("room", a.id)).toBe(false);
    expect([...groups.members("room")]).toEqual([]);

    await a.connection.invoke("Join", "room");
    expect([...groups.list()]).toEqual(["room"]);
    expect(groups.count("room")).toBe(1);
    expect(groups.has("room", a.id)).toBe(true);
    expect(groups.has("room", b.id)).toBe(false);
    expect(groups.groupsOf(a.id)).toEqual(["room"]);
    expect([...groups.members("room")]).toEqual([a.id]);

    await a.connection.invoke("Join", "room");
    expect(groups.count("room")).toBe(1);
    expect(groups.groupsOf(a.id)).toEqual(["room"]);

    await b.connection.invoke("Join", "room");
    await b.connection.invoke("Join", "side");
    expect(await a.connection.invoke("Count", "room")).toBe(2);
    expect(await a.connection.invoke("Has", "side", b.id)).toBe(true);
    expect(await a.connection.invoke("GroupsOf", b.id)).toEqual(["room", "side"]);
    expect(await a.connection.invoke("Members", "room")).toEqual([a.id, b.id].sort());
    expect(await a.connection.invoke("List")).toEqual(["room", "side"]);

    await a.connection.invoke("Leave", "room");
    await a.connection.invoke("Leave", "room");
    await a.connection.invoke("Leave", "never-joined");
    expect(groups.count("room")).toBe(1);
    expect(groups.groupsOf(a.id)).toEqual([]);
    expect([...groups.list()].sort()).toEqual(["room", "side"]);

    await b.connection.invoke("Leave", "room");
    expect([...groups.list()]).toEqual(["side"]);
    expect(groups.count("room")).toBe(0);
    expect([...groups.members("room")]).toEqual([]);
    expect(await b.connection.invoke("List")).toEqual(["side"]);
  });

  it("takes a connection out of all of its groups when it disconnects, leaving nothing behind", async () => {
    const server = await startServer([GroupHub]);
    const groups = server.server.hubContext(GroupHub).groups;
    const manager = server.server.endpoint("/hubs/groups")!.lifetimeManager;
    const stayer = await member(server, "stayer", protocol);
    const leaver = await member(server, "leaver", protocol);
    const names = Array.from({ length: 20 }, (_, i) => `room-${i}`);
    for (const name of names) await leaver.connection.invoke("Join", name);
    await stayer.connection.invoke("Join", "room-3");
    expect(groups.groupsOf(leaver.id).sort()).toEqual([...names].sort());
    expect(groups.count("room-3")).toBe(2);

    await leaver.connection.stop();
    await until(() => groups.count("room-3") === 1, 5_000, "the leaver to leave room-3");
    expect([...groups.list()]).toEqual(["room-3"]);
    expect(groups.groupsOf(leaver.id)).toEqual([]);
    expect(groups.has("room-0", leaver.id)).toBe(false);
    expect([...groups.members("room-3")]).toEqual([stayer.id]);

    // Adding a connection that is gone creates nothing.
    await groups.add(leaver.id, "ghost");
    expect([...groups.list()]).toEqual(["room-3"]);

    await stayer.connection.stop();
    await until(() => manager.connections.size === 0, 5_000, "every connection to end");
    expect([...groups.list()]).toEqual([]);
    expect(manager.groups.size).toBe(0);
  });

  it("keeps groups of different hubs apart", async () => {
    const server = await startServer([GroupHub, OtherHub]);
    const a = await member(server, "a", protocol);
    const other = await connectClient(server.url("/hubs/other"), protocol);
    const otherCalls = record(other, "Message");
    await a.connection.invoke("Join", "shared");
    await other.invoke("Join", "shared");
    expect(server.server.hubContext(GroupHub).groups.count("shared")).toBe(1);
    expect(server.server.hubContext(OtherHub).groups.count("shared")).toBe(1);
    await a.connection.invoke("ToGroup", "shared", "one hub");
    await expectDelivery([a], "one hub", [a]);
    expect(otherCalls).toEqual([]);
  });

  it("sends and manages groups from a hub context outside any hub", async () => {
    const { server, a, b, c, d, e, all } = await room();
    const context = server.server.hubContext(GroupHub);
    expect("caller" in context.clients).toBe(false);
    expect("others" in context.clients).toBe(false);

    await context.groups.add(e.id, "outside");
    await context.clients.group("outside").send("Message", "ctx added", "server");
    await expectDelivery(all, "ctx added", [e]);
    expect(await e.connection.invoke("GroupsOf", e.id)).toEqual(["outside"]);

    const cases: [tag: string, send: () => Promise<void>, expected: Member[]][] = [
      ["ctx all", () => context.clients.all.send("Message", "ctx all", "server"), [a, b, c, d, e]],
      ["ctx allExcept", () => context.clients.allExcept([a.id, e.id]).send("Message", "ctx allExcept", "server"), [b, c, d]],
      ["ctx client", () => context.clients.client(c.id).send("Message", "ctx client", "server"), [c]],
      ["ctx clients", () => context.clients.clients([c.id, d.id, c.id]).send("Message", "ctx clients", "server"), [c, d]],
      ["ctx group", () => context.clients.group("blue").send("Message", "ctx group", "server"), [b, c]],
      ["ctx groups", () => context.clients.groups(["blue", "red", "green"]).send("Message", "ctx groups", "server"), [a, b, c, d]],
      ["ctx groupExcept", () => context.clients.groupExcept("red", [a.id]).send("Message", "ctx groupExcept", "server"), [b]],
      ["ctx user", () => context.clients.user("bob").send("Message", "ctx user", "server"), [c]],
      ["ctx users", () => context.clients.users(["carol", "alice"]).send("Message", "ctx users", "server"), [a, b, d]],
    ];
    for (const [tag, send, expected] of cases) {
      await send();
      await expectDelivery(all, tag, expected);
    }

    await context.groups.remove(e.id, "outside");
    expect([...context.groups.list()]).not.toContain("outside");
    await context.clients.group("outside").send("Message", "ctx removed", "server");
    await expectDelivery(all, "ctx removed", []);
  });

  it("resolves the hub context through DI in a service", async () => {
    const { server, a, d, all } = await room();
    const announcer = server.server.container.resolve(Announcer);
    expect(announcer.hub).toBe(server.server.hubContext(GroupHub));
    await announcer.enlist(d.id, "news");
    await announcer.enlist(a.id, "news");
    await announcer.announce("news", "announced");
    await expectDelivery(all, "announced", [a, d]);
    expect(a.calls.find((call) => call[0] === "announced")).toEqual(["announced", "announcer"]);
  });

  it("answers invalid group names with a clear error and keeps the connection working", async () => {
    const { server, a, b, c, all } = await room();
    const invalid: [method: string, args: unknown[]][] = [
      ["Join", [""]],
      ["Join", [42]],
      ["Join", [null]],
      ["Join", [["red"]]],
      ["Leave", [""]],
      ["Count", [""]],
      ["Has", [7, a.id]],
      ["Members", [""]],
      ["ToGroup", ["", "bad group"]],
      ["ToGroupExcept", [false, [], "bad group"]],
      ["ToOthersInGroup", ["", "bad group"]],
      ["ToGroups", [["red", ""], "bad group"]],
      ["ToOthersInGroups", [["blue", 3], "bad group"]],
    ];
    for (const [method, args] of invalid) {
      await expect(a.connection.invoke(method, ...args), `${method}(${JSON.stringify(args)})`).rejects.toThrow(NAME_ERROR);
    }
    // No send was partly delivered before the bad name was found.
    await expectDelivery(all, "bad group", []);
    expect(server.server.hubContext(GroupHub).groups.count("red")).toBe(2);
    expect(await a.connection.invoke("GroupsOf", a.id)).toEqual(["red"]);
    // The caller and the others keep working.
    await a.connection.invoke("ToGroup", "blue", "still works");
    await expectDelivery(all, "still works", [b, c]);
    expect(a.connection.state).toBe(signalR.HubConnectionState.Connected);
  });

  it("refuses invalid group names from a hub context with GroupNameError", async () => {
    const { server, a } = await room();
    const context = server.server.hubContext(GroupHub);
    // Membership changes answer with a rejected promise (a backplane makes them asynchronous)…
    const bad = [() => context.groups.add(a.id, ""), () => context.groups.add(a.id, 1 as never), () => context.groups.remove(a.id, undefined as never)];
    for (const call of bad) {
      const promise = call();
      expect(promise).toBeInstanceOf(Promise);
      await expect(promise).rejects.toBeInstanceOf(GroupNameError);
      await expect(promise).rejects.toMatchObject({ code: "SB_ERR_GROUP_NAME" });
    }
    // …while addressing a bad group is API misuse and throws at the call site, before any send.
    expect(() => context.clients.group("")).toThrow(GroupNameError);
    expect(() => context.clients.groups(["red", ""])).toThrow(expect.objectContaining({ code: "SB_ERR_GROUP_NAME" }));
    expect(() => context.clients.groupExcept(null as never, [])).toThrow(GroupNameError);
    expect(() => context.groups.count("")).toThrow(GroupNameError);
    expect(() => context.groups.has("", a.id)).toThrow(GroupNameError);
    expect(() => context.groups.members({} as never)).toThrow(GroupNameError);
    expect(a.calls.filter((call) => call[0] === "x")).toEqual([]);
  });

  it("T34 treats __proto__, constructor and friends as ordinary group names, without prototype side effects", async () => {
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    const server = await startServer([GroupHub]);
    const groups = server.server.hubContext(GroupHub).groups;
    const a = await member(server, "a", protocol);
    const b = await member(server, "b", protocol);
    const names = ["__proto__", "constructor", "toString", "hasOwnProperty", "prototype"];
    for (const name of names) {
      expect(groups.count(name)).toBe(0);
      expect(groups.has(name, a.id)).toBe(false);
      expect([...groups.members(name)]).toEqual([]);
    }
    expect([...groups.list()]).toEqual([]);

    await a.connection.invoke("Join", "__proto__");
    await a.connection.invoke("Join", "constructor");
    await b.connection.invoke("Join", "constructor");
    expect(groups.count("__proto__")).toBe(1);
    expect(groups.count("constructor")).toBe(2);
    expect(groups.count("toString")).toBe(0);
    expect([...groups.list()].sort()).toEqual(["__proto__", "constructor"]);
    expect(await b.connection.invoke("GroupsOf", a.id)).toEqual(["__proto__", "constructor"]);

    await b.connection.invoke("ToGroup", "__proto__", "proto");
    await expectDelivery([a, b], "proto", [a]);
    await a.connection.invoke("ToGroups", ["constructor", "__proto__", "toString"], "ctor");
    await expectDelivery([a, b], "ctor", [a, b]);

    await a.connection.invoke("Leave", "__proto__");
    await b.connection.invoke("Leave", "constructor");
    expect(groups.count("__proto__")).toBe(0);
    expect([...groups.list()]).toEqual(["constructor"]);
    await a.connection.stop();
    await until(() => groups.count("constructor") === 0, 5_000, "the group to empty");
    expect([...groups.list()]).toEqual([]);

    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect(typeof ({} as { constructor: unknown }).constructor).toBe("function");
  });
});

describe("a group with JSON and MessagePack members", () => {
  const jsonCodec = new signalR.JsonHubProtocol();
  const msgpackCodec = new ClientMessagePackProtocol();
  const payload = { n: 1.5, text: "héllo ✓", list: [1, 2, 3], nested: { ok: true } };

  async function rawJoin(raw: RawClient, protocol: ClientProtocol, group: string): Promise<void> {
    const invocation = { type: signalR.MessageType.Invocation, invocationId: "1", target: "Join", arguments: [group] } as signalR.InvocationMessage;
    if (protocol === "json") raw.sendText(jsonCodec.writeMessage(invocation));
    else raw.sendBinary(new Uint8Array(msgpackCodec.writeMessage(invocation)));
    await raw.frame(1); // the Completion
  }

  function decode(raw: RawClient, index: number, protocol: ClientProtocol): signalR.HubMessage[] {
    const frame = raw.frames[index]!;
    if (protocol === "json") return jsonCodec.parseMessages(frame.data.toString("utf8"), signalR.NullLogger.instance);
    const bytes = frame.data.buffer.slice(frame.data.byteOffset, frame.data.byteOffset + frame.data.byteLength) as ArrayBuffer;
    return msgpackCodec.parseMessages(bytes, signalR.NullLogger.instance);
  }

  it("gives each member the message in its own encoding", async () => {
    const server = await startServer([GroupHub]);
    const context = server.server.hubContext(GroupHub);
    const officialJson = await member(server, "json", "json");
    const officialMsgpack = await member(server, "messagepack", "messagepack");
    const rawJson = await RawClient.connect(server, "/hubs/groups", "json");
    const rawMsgpack = await RawClient.connect(server, "/hubs/groups", "messagepack");
    await officialJson.connection.invoke("Join", "mix");
    await officialMsgpack.connection.invoke("Join", "mix");
    await rawJoin(rawJson, "json", "mix");
    await rawJoin(rawMsgpack, "messagepack", "mix");
    expect(context.groups.count("mix")).toBe(4);

    await context.clients.group("mix").send("Message", "mixed", "server", payload);
    await expectDelivery([officialJson, officialMsgpack], "mixed", [officialJson, officialMsgpack]);
    expect(officialJson.calls[0]).toEqual(["mixed", "server", payload]);
    expect(officialMsgpack.calls[0]).toEqual(["mixed", "server", payload]);

    await rawJson.frame(2);
    await rawMsgpack.frame(2);
    const expected = { type: signalR.MessageType.Invocation, target: "Message", arguments: ["mixed", "server", payload] };
    expect(decode(rawJson, 2, "json")).toEqual([expect.objectContaining(expected)]);
    expect(decode(rawMsgpack, 2, "messagepack")).toEqual([expect.objectContaining(expected)]);
    expect(rawJson.frames[2]!.data.toString("utf8")).toBe(`{"type":1,"target":"Message","arguments":["mixed","server",${JSON.stringify(payload)}]}\u001e`);
    // Every frame a member gets is in its protocol's transfer format, the handshake response included.
    expect(rawJson.frames.map((frame) => frame.binary)).toEqual([false, false, false]);
    expect(rawMsgpack.frames.map((frame) => frame.binary)).toEqual([true, true, true]);
  });
});
