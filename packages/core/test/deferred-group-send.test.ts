import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, type ConnectionHandle, type HubMessage, type HubMessageParser, type HubProtocol, type ParserLimits, type SerializedRecord, type TransferFormat, type TransportConnection } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { closeAll, connectClient, connectInProcess, RS, startServer, until, type TestServer } from "../../../test-support/harness.js";

/**
 * Group sends are deferred to the end of the turn and walk the group once, writing to each member
 * (see FlushScheduler and DeferredGroupSend). These tests pin what must not change with that:
 * what each member receives, in which order, in how many writes, and when arguments are read.
 */

/** A transport that keeps each write (one transport message) as the list of its records' texts. */
class RecordingTransport implements TransportConnection {
  readonly transferFormats: readonly TransferFormat[] = ["text", "binary"];
  readonly bufferedAmount = 0;
  readonly writes: string[][] = [];
  /** The arrays the writes came in (the contract lets a transport reuse what it built from a frozen one). */
  readonly arrays: (readonly SerializedRecord[])[] = [];
  closed = false;
  write(records: readonly SerializedRecord[], count: number): void {
    this.arrays.push(records);
    const texts: string[] = [];
    for (let i = 0; i < count; i++) texts.push(new TextDecoder().decode(records[i]!.bytes));
    this.writes.push(texts);
  }
  close(): void {
    this.closed = true;
  }
  pause(): void {}
  resume(): void {}

  /** The arguments of every "M" invocation received, in order. */
  get received(): unknown[] {
    return this.writes.flat().flatMap((text) => text.split(RS).filter((part) => part.length > 0)).map((part) => JSON.parse(part) as { type: number; target?: string; arguments?: unknown[] }).filter((message) => message.type === 1 && message.target === "M").map((message) => message.arguments![0]);
  }

  /** Writes that carried at least one "M" invocation. */
  get messageWrites(): number {
    return this.writes.filter((texts) => texts.some((text) => text.includes('"target":"M"'))).length;
  }
}

@Hub("/room")
class RoomHub extends Hub {
  async post(text: string): Promise<string> {
    await this.clients.group("room").send("M", text);
    return "posted";
  }

  async join(): Promise<void> {
    await this.groups.add(this.context.connectionId, "room");
  }

  async postAndLeave(text: string): Promise<void> {
    await this.clients.group("room").send("M", text);
    this.context.abort();
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterEach(async () => {
  await closeAll();
});

interface Member {
  readonly id: string;
  readonly handle: ConnectionHandle;
  readonly transport: RecordingTransport;
}

async function setUp(count: number): Promise<{ test: TestServer; members: Member[] }> {
  const test = await startServer([RoomHub]);
  const connections = await connectInProcess(test, "/room", count, () => new RecordingTransport());
  const members = connections.map(({ handle, transport }) => ({ id: handle.connectionId, handle, transport }));
  const context = test.server.hubContext(RoomHub);
  for (const member of members) await context.groups.add(member.id, "room");
  return { test, members };
}

describe("group sends deferred to the end of the turn", () => {
  it("a burst to one group reaches every member in order, in one write each", async () => {
    const { test, members } = await setUp(4);
    const context = test.server.hubContext(RoomHub);
    for (let i = 0; i < 10; i++) void context.clients.group("room").send("M", i);
    expect(members.map((member) => member.transport.messageWrites)).toEqual([0, 0, 0, 0]); // nothing before the turn ends
    await turn();
    for (const member of members) {
      expect(member.transport.received).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(member.transport.messageWrites).toBe(1);
    }
    // Every member got the burst in one and the same frozen array (TransportConnection.write).
    const arrays = members.map((member) => member.transport.arrays.at(-1)!);
    expect(new Set(arrays).size).toBe(1);
    expect(Object.isFrozen(arrays[0])).toBe(true);
  });

  it("a send to one member after a group send reaches it after the group send; the others still get one write", async () => {
    const { test, members } = await setUp(3);
    const context = test.server.hubContext(RoomHub);
    void context.clients.group("room").send("M", "g1");
    void context.clients.client(members[1]!.id).send("M", "direct");
    void context.clients.group("room").send("M", "g2");
    await turn();
    expect(members[1]!.transport.received).toEqual(["g1", "direct", "g2"]);
    expect(members[1]!.transport.messageWrites).toBe(1);
    for (const member of [members[0]!, members[2]!]) {
      expect(member.transport.received).toEqual(["g1", "g2"]);
      expect(member.transport.messageWrites).toBe(1);
    }
  });

  it("a send to a member of two groups with deferred sends gets both first, in order", async () => {
    const { test, members } = await setUp(2);
    const context = test.server.hubContext(RoomHub);
    await context.groups.add(members[0]!.id, "other");
    void context.clients.group("room").send("M", "room");
    void context.clients.group("other").send("M", "other");
    void context.clients.client(members[0]!.id).send("M", "direct");
    await turn();
    expect(members[0]!.transport.received).toEqual(["room", "other", "direct"]);
    expect(members[1]!.transport.received).toEqual(["room"]);
    for (const member of members) expect(member.transport.messageWrites).toBe(1);
  });

  it("a burst to more groups than are deferred at once, with sends to single members between, keeps each member's order", async () => {
    const { test, members } = await setUp(3);
    const context = test.server.hubContext(RoomHub);
    for (let g = 0; g < 40; g++) for (const [i, member] of members.entries()) if (g % (i + 1) === 0) await context.groups.add(member.id, `g${g}`);
    const expected: unknown[][] = [[], [], []];
    for (let g = 0; g < 40; g++) {
      void context.clients.group(`g${g}`).send("M", `g${g}`);
      for (const [i] of members.entries()) if (g % (i + 1) === 0) expected[i]!.push(`g${g}`);
      const target = g % 3;
      void context.clients.client(members[target]!.id).send("M", `d${g}`);
      expected[target]!.push(`d${g}`);
    }
    await turn();
    expect(members.map((member) => member.transport.received)).toEqual(expected);
    for (const member of members) expect(member.transport.messageWrites).toBe(1);
  });

  it("sends to several groups and to all keep each connection's order", async () => {
    const { test, members } = await setUp(3);
    const context = test.server.hubContext(RoomHub);
    await context.groups.add(members[0]!.id, "other");
    void context.clients.group("room").send("M", "room-1");
    void context.clients.group("other").send("M", "other-1");
    void context.clients.all.send("M", "all");
    void context.clients.group("room").send("M", "room-2");
    void context.clients.groups(["room", "other"]).send("M", "both");
    await turn();
    expect(members[0]!.transport.received).toEqual(["room-1", "other-1", "all", "room-2", "both"]);
    expect(members[1]!.transport.received).toEqual(["room-1", "all", "room-2", "both"]);
    for (const member of members) expect(member.transport.messageWrites).toBe(1);
  });

  it("members are those of the moment of the send: a join after it misses it, a leave after it still gets it", async () => {
    const { test, members } = await setUp(3);
    const context = test.server.hubContext(RoomHub);
    await context.groups.remove(members[2]!.id, "room");
    void context.clients.group("room").send("M", "before");
    await context.groups.add(members[2]!.id, "room");
    await context.groups.remove(members[0]!.id, "room");
    void context.clients.group("room").send("M", "after");
    await turn();
    expect(members[0]!.transport.received).toEqual(["before"]);
    expect(members[1]!.transport.received).toEqual(["before", "after"]);
    expect(members[2]!.transport.received).toEqual(["after"]);
  });

  it("an excluded connection gets nothing, and a send with other exclusions does not join", async () => {
    const { test, members } = await setUp(3);
    const context = test.server.hubContext(RoomHub);
    void context.clients.groupExcept("room", [members[0]!.id]).send("M", "not-0");
    void context.clients.groupExcept("room", [members[0]!.id]).send("M", "not-0-again");
    void context.clients.groupExcept("room", [members[1]!.id]).send("M", "not-1");
    await turn();
    expect(members[0]!.transport.received).toEqual(["not-1"]);
    expect(members[1]!.transport.received).toEqual(["not-0", "not-0-again"]);
    expect(members[2]!.transport.received).toEqual(["not-0", "not-0-again", "not-1"]);
  });

  it("exclusions are read when the send is made: changing the excluded ids afterwards in the same turn changes nothing", async () => {
    const { test, members } = await setUp(3);
    const context = test.server.hubContext(RoomHub);
    const except = [members[0]!.id];
    const others = context.clients.groupExcept("room", except); // a proxy kept and reused
    void others.send("M", "not-0");
    except[0] = members[1]!.id;
    void others.send("M", "not-1");
    except.length = 0;
    void others.send("M", "everyone");
    await turn();
    expect(members[0]!.transport.received).toEqual(["not-1", "everyone"]);
    expect(members[1]!.transport.received).toEqual(["not-0", "everyone"]);
    expect(members[2]!.transport.received).toEqual(["not-0", "not-1", "everyone"]);
  });

  it("arguments are read when the send is made: changing them afterwards in the same turn changes nothing", async () => {
    const { test, members } = await setUp(2);
    const context = test.server.hubContext(RoomHub);
    const state = { score: 1 };
    void context.clients.group("room").send("M", state);
    state.score = 2;
    void context.clients.group("room").send("M", state);
    await turn();
    for (const member of members) expect(member.transport.received).toEqual([{ score: 1 }, { score: 2 }]);
  });

  it("a connection closed by the server in the same turn gets the group send before its Close", async () => {
    const { test, members } = await setUp(2);
    const context = test.server.hubContext(RoomHub);
    void context.clients.group("room").send("M", "last words");
    members[0]!.handle.transportClosed(); // the transport ends: nothing more is written to it
    await turn();
    expect(members[0]!.transport.received).toEqual([]);
    expect(members[1]!.transport.received).toEqual(["last words"]);
  });
});

describe("group sends from hub methods, with the official client", () => {
  it("the caller gets its own group message before the method's result; a Close after it comes after it", async () => {
    const test = await startServer([RoomHub]);
    const url = test.url("/room");
    const [caller, other] = await Promise.all([connectClient(url), connectClient(url)]);
    const seen: { caller: string[]; other: string[] } = { caller: [], other: [] };
    caller.on("M", (text: string) => seen.caller.push(text));
    other.on("M", (text: string) => seen.other.push(text));
    await caller.invoke("join");
    await other.invoke("join");
    const result = caller.invoke("post", "hello").then((value: string) => {
      seen.caller.push(`result:${value}`);
    });
    await result;
    expect(seen.caller).toEqual(["hello", "result:posted"]);
    await until(() => seen.other.length === 1);
    expect(seen.other).toEqual(["hello"]);

    const closed = new Promise<void>((resolve) => caller.onclose(() => resolve()));
    void caller.send("postAndLeave", "bye");
    await closed;
    expect(seen.caller).toEqual(["hello", "result:posted", "bye"]);
    await until(() => seen.other.length === 2);
    expect(seen.other).toEqual(["hello", "bye"]);
  });
});

describe("group sends deferred to the end of the turn, several protocols", () => {
  it("are encoded once in each protocol a recipient speaks, none for a protocol whose only members are excluded", async () => {
    const written = { json: 0, messagepack: 0 };
    class CountingJson extends JsonHubProtocol {
      override write(message: HubMessage): Uint8Array {
        if (message.type === 1) written.json++;
        return super.write(message);
      }
    }
    class CountingMessagePack extends MessagePackHubProtocol {
      override write(message: HubMessage): Uint8Array {
        if (message.type === 1) written.messagepack++;
        return super.write(message);
      }
    }
    const test = await startServer([RoomHub], { protocols: [new CountingJson(), new CountingMessagePack()] });
    const [json] = await connectInProcess(test, "/room", 1, () => new RecordingTransport());
    const packs = await connectInProcess(test, "/room", 2, () => new RecordingTransport(), "messagepack");
    const context = test.server.hubContext(RoomHub);
    for (const { handle } of [json!, ...packs]) await context.groups.add(handle.connectionId, "room");
    // The only JSON member is excluded: nothing is encoded in JSON (where an encode failure
    // would be logged for a protocol that has no recipient).
    const before = packs.map(({ transport }) => transport.writes.length);
    void context.clients.groupExcept("room", [json!.handle.connectionId]).send("M", "not json");
    await turn();
    expect(written).toEqual({ json: 0, messagepack: 1 });
    expect(json!.transport.received).toEqual([]);
    expect(packs.map(({ transport }, i) => transport.writes.length - before[i]!)).toEqual([1, 1]);
    void context.clients.group("room").send("M", "all");
    await turn();
    expect(written).toEqual({ json: 1, messagepack: 2 });
    expect(json!.transport.received).toEqual(["all"]);
  });

  it("members speaking three protocols, in any order, each get a burst in their own protocol, in one write", async () => {
    /** JSON under another handshake name: a third protocol, whose records the walk takes from its cache by index. */
    class OtherJson implements HubProtocol {
      readonly #json = new JsonHubProtocol();
      readonly name = "json-other";
      readonly version = this.#json.version;
      readonly transferFormat = this.#json.transferFormat;
      writes = 0;
      createParser(limits: ParserLimits): HubMessageParser {
        return this.#json.createParser(limits);
      }
      write(message: HubMessage): Uint8Array {
        if (message.type === 1) this.writes++;
        return this.#json.write(message);
      }
    }
    const other = new OtherJson();
    const test = await startServer([RoomHub], { protocols: [new JsonHubProtocol(), new MessagePackHubProtocol(), other] });
    // Joined in an order that mixes the protocols, so the walk meets each of them first and again.
    const joined: { handle: ConnectionHandle; transport: RecordingTransport; protocol: string }[] = [];
    for (const protocol of ["json-other", "messagepack", "json", "json-other", "json", "messagepack"]) {
      const [connection] = await connectInProcess(test, "/room", 1, () => new RecordingTransport(), protocol);
      joined.push({ ...connection!, protocol });
    }
    const context = test.server.hubContext(RoomHub);
    for (const { handle } of joined) await context.groups.add(handle.connectionId, "room");
    const before = joined.map(({ transport }) => transport.writes.length);
    for (const text of ["a", "b", "c"]) void context.clients.group("room").send("M", text);
    await turn();
    expect(other.writes).toBe(3); // once per send, not per member
    for (const [i, { transport, protocol }] of joined.entries()) {
      expect(transport.writes.length - before[i]!, protocol).toBe(1);
      const burst = transport.arrays.at(-1)!;
      if (protocol === "messagepack") {
        // Binary records: after the target (the one-character string "M", 0xa1 "M") comes the argument, a one-character string too.
        const texts = burst.map((record) => Buffer.from(record.bytes).toString("latin1"));
        expect(texts.map((text) => /\xa1(.)/.exec(text.slice(text.indexOf("\xa1M") + 2))?.[1]), protocol).toEqual(["a", "b", "c"]);
      } else expect(transport.received, protocol).toEqual(["a", "b", "c"]);
    }
  });
});
