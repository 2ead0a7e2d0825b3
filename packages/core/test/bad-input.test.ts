/**
 * Bad inputs and faults of the reliability test plan, sections A (framing and parsing), C
 * (handshake and session setup) and D (hub dispatch), plus keep-alive, client timeout and
 * shutdown. Every fault test also shows that a connection opened before the fault still works
 * afterwards, that the server still accepts new clients, and that nothing was logged as an error.
 */
import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, HubMethod } from "@switchboard/core";
import {
  closeAll,
  connectClient,
  RawClient,
  RS,
  settle,
  signalR,
  startServer,
  until,
  type TestServer,
} from "../../../test-support/harness.js";
import { connectUrl, handshaken, handshakeRequest, hex, JSON_WIRE, msgpackRecord, received, receivedAtLeast, WIRES, type WireCodec } from "./wire.js";

const CONNECTION_ERROR = "Connection closed with an error.";
const HANDSHAKE_ERROR = "An unexpected error occurred during connection handshake.";
const HANDSHAKE_CANCELED = "Handshake was canceled.";

const typedCalls: unknown[][] = [];
const slowCalls: number[] = [];
const hanging: (() => void)[] = [];
const lifecycle = { connected: [] as string[], disconnected: [] as string[], disconnectDelay: 0 };

afterEach(async () => {
  for (const release of hanging.splice(0)) release();
  await closeAll();
  typedCalls.length = 0;
  slowCalls.length = 0;
  lifecycle.connected.length = 0;
  lifecycle.disconnected.length = 0;
  lifecycle.disconnectDelay = 0;
});

@Hub("/hub")
class BadInputHub extends Hub {
  Echo(value: unknown): unknown {
    return value;
  }
  Add(a: number, b: number): number {
    return a + b;
  }
  @HubMethod()
  Typed(a: number, b: number): number {
    typedCalls.push([a, b]);
    return a + b;
  }
  async Slow(n: number): Promise<void> {
    slowCalls.push(n);
    await settle(n % 10 === 0 ? 2 : 0);
  }
  Hang(): Promise<void> {
    return new Promise<void>((resolve) => hanging.push(resolve));
  }
  override onConnected(): void {
    lifecycle.connected.push(this.context.connectionId);
  }
  override async onDisconnected(): Promise<void> {
    if (lifecycle.disconnectDelay > 0) await settle(lifecycle.disconnectDelay);
    lifecycle.disconnected.push(this.context.connectionId);
  }
}

/**
 * An official client connected before the fault: it must keep working after it. It pings often,
 * so it also survives the short client timeouts some tests use.
 */
function observer(server: TestServer): Promise<signalR.HubConnection> {
  return connectClient(server.url("/hub"), "json", (builder) => builder.withKeepAliveInterval(50));
}

/** The observer still round-trips, a new client is served, and no error was logged. */
async function expectHealthy(server: TestServer, before: signalR.HubConnection): Promise<void> {
  expect(await before.invoke("Echo", "still here")).toBe("still here");
  const fresh = await connectClient(server.url("/hub"), "messagepack");
  expect(await fresh.invoke("Echo", "new client")).toBe("new client");
  expect(server.logger.entries.filter((entry) => entry.level === "error").map((entry) => entry.message)).toEqual([]);
}

/** The server answered `answers` (from frame `from` on), then a Close with the generic error, then closed the socket. */
async function expectFaultClose(client: RawClient, wire: WireCodec, answers: Buffer = Buffer.alloc(0), from = 1): Promise<void> {
  const code = await client.closed(1_000);
  const expected = Buffer.concat([answers, wire.closeMessage(CONNECTION_ERROR, true)]);
  expect(received(client, from).toString("hex")).toBe(expected.toString("hex"));
  expect(code).toBe(1000);
}

/** The handshake was refused with exactly `{"error":text}` + RS, then the socket closed. */
async function expectHandshakeRefused(client: RawClient, text: string): Promise<void> {
  await client.closed(1_000);
  expect(received(client).toString("utf8")).toBe(`${JSON.stringify({ error: text })}${RS}`);
}

async function rawSocket(server: TestServer): Promise<RawClient> {
  return RawClient.open(await connectUrl(server, "/hub"));
}

describe("A. framing and parsing", () => {
  describe.each(WIRES)("over $protocol", (wire) => {
    const broken = wire.binary ? msgpackRecord(hex("95 01 80 a1 33")) : Buffer.from(`{"type":1,"target":"Echo","arguments":[${RS}`);

    it("T01 answers the invocations before a malformed record in the same frame, then sends Close and closes", async () => {
      const server = await startServer([BadInputHub]);
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      wire.send(client, Buffer.concat([wire.invocation("0", "Add", [1, 2]), wire.invocation("1", "Echo", ["one"]), wire.invocation("2", "Echo", ["two"]), broken, wire.invocation("3", "Echo", ["never"])]));
      await expectFaultClose(client, wire, Buffer.concat([wire.result("0", 3), wire.result("1", "one"), wire.result("2", "two")]));
      await expectHealthy(server, before);
    });

    it("T01 closes on a malformed record in a later frame and never shows parser text", async () => {
      const server = await startServer([BadInputHub]);
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      wire.send(client, wire.invocation("0", "Echo", ["first"]));
      await receivedAtLeast(client, wire.result("0", "first").length, 1);
      wire.send(client, broken);
      await expectFaultClose(client, wire, wire.result("0", "first"));
      const text = received(client).toString("latin1");
      for (const leak of ["JSON", "Unexpected", "position", "    at ", "Error:", "MessagePack"]) expect(text).not.toContain(leak);
      await expectHealthy(server, before);
    });

    it("T15 accepts a record of maxMessageSize − 1 and exactly maxMessageSize bytes, closes on one more", async () => {
      const limit = 1_000;
      const server = await startServer([BadInputHub], { maxMessageSize: limit });
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      const ofSize = (size: number, id: string): { record: Buffer; value: string } => {
        const overhead = bodySize(wire, wire.invocation(id, "Echo", ["x".repeat(300)])) - 300;
        const value = "x".repeat(size - overhead);
        const record = wire.invocation(id, "Echo", [value]);
        expect(bodySize(wire, record)).toBe(size);
        return { record, value };
      };
      const below = ofSize(limit - 1, "1");
      const exact = ofSize(limit, "2");
      const above = ofSize(limit + 1, "3");
      wire.send(client, below.record);
      wire.send(client, exact.record);
      const answers = Buffer.concat([wire.result("1", below.value), wire.result("2", exact.value)]);
      await receivedAtLeast(client, answers.length, 1);
      // One good message before the oversized one in the same frame is still answered.
      wire.send(client, Buffer.concat([wire.invocation("4", "Echo", ["before"]), above.record]));
      await client.closed(1_000);
      const records = wire.decode(received(client, 1));
      expect(records).toHaveLength(4);
      expect(received(client, 1).subarray(0, answers.length + wire.result("4", "before").length).toString("hex")).toBe(
        Buffer.concat([answers, wire.result("4", "before")]).toString("hex"),
      );
      expectCloseRecord(wire, records[3]);
      await expectHealthy(server, before);
    });

    it("T15 closes when an oversized record arrives in pieces, before it is complete", async () => {
      const limit = 1_000;
      const server = await startServer([BadInputHub], { maxMessageSize: limit });
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      const record = wire.invocation("1", "Echo", ["y".repeat(limit + 200)]);
      wire.send(client, record.subarray(0, 600));
      if (!wire.binary) {
        // JSON finds out only when the bytes pass the limit; MessagePack as soon as the length prefix announces it.
        await settle(20);
        expect(client.closeCode).toBeUndefined();
        wire.send(client, record.subarray(600, 1_150));
      }
      await client.closed(1_000);
      const records = wire.decode(received(client, 1));
      expect(records).toHaveLength(1);
      expectCloseRecord(wire, records[0]);
      await expectHealthy(server, before);
    });

    it("T23 closes on an invocation id longer than maxInvocationIdLength and accepts one of that length", async () => {
      const server = await startServer([BadInputHub], { maxInvocationIdLength: 16 });
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      const longest = "i".repeat(16);
      wire.send(client, wire.invocation(longest, "Echo", [1]));
      await receivedAtLeast(client, wire.result(longest, 1).length, 1);
      wire.send(client, wire.invocation("i".repeat(17), "Echo", [2]));
      await expectFaultClose(client, wire, wire.result(longest, 1));
      await expectHealthy(server, before);
    });

    it("T05 skips an unknown message type before and after an invocation in one frame", async () => {
      const server = await startServer([BadInputHub]);
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      wire.send(client, Buffer.concat([wire.unknownType, wire.invocation("1", "Echo", ["a"]), wire.unknownType]));
      wire.send(client, wire.invocation("2", "Echo", ["b"]));
      const expected = Buffer.concat([wire.result("1", "a"), wire.result("2", "b")]);
      expect((await receivedAtLeast(client, expected.length, 1)).toString("hex")).toBe(expected.toString("hex"));
      await expectHealthy(server, before);
    });
  });

  it("T02 closes promptly on 40 KiB without a record separator (default 32 KiB limit)", async () => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    const started = Date.now();
    client.sendText(`{"type":1,"target":"Echo","arguments":["${"z".repeat(40 * 1024)}"]}`);
    await client.closed(1_000);
    expect(Date.now() - started).toBeLessThan(1_000);
    const records = JSON_WIRE.decode(received(client, 1));
    expect(records).toHaveLength(1);
    expectCloseRecord(JSON_WIRE, records[0]);
    await expectHealthy(server, before);
  });

  it("T02 closes when separator-less pieces add up past a small maxMessageSize", async () => {
    const server = await startServer([BadInputHub], { maxMessageSize: 1_024 });
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText("a".repeat(600));
    await settle(20);
    expect(client.closeCode).toBeUndefined();
    client.sendText("b".repeat(600));
    await client.closed(1_000);
    expectCloseRecord(JSON_WIRE, JSON_WIRE.decode(received(client, 1))[0]);
    await expectHealthy(server, before);
  });

  it.each([
    ["a newline", `{"type":6}\n`],
    ["0x1F", `{"type":6}\u001f`],
    ["no terminator", `{"type":6}`],
  ])("T02 T32 closes a client whose short record ends with %s by the client timeout", async (_name, text) => {
    const server = await startServer([BadInputHub], { clientTimeout: 300, keepAliveInterval: 100 });
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(text);
    expect(await client.closed(1_500)).toBe(1000);
    const records = JSON_WIRE.decode(received(client, 1));
    expect(records.at(-1)).toEqual({ type: 7, error: CONNECTION_ERROR, allowReconnect: true });
    for (const record of records.slice(0, -1)) expect(record).toEqual({ type: 6 });
    await expectHealthy(server, before);
  });

  it.each([
    ["an empty record", RS],
    ["two separators", `${RS}${RS}`],
    ["{}", `{}${RS}`],
    ['"type":"1"', `{"type":"1","target":"Echo","arguments":[1],"invocationId":"1"}${RS}`],
    ['"type":1.5', `{"type":1.5}${RS}`],
    ['"type":null', `{"type":null}${RS}`],
    ['"type":true', `{"type":true}${RS}`],
    ["an array", `[1]${RS}`],
    ["null", `null${RS}`],
    ["a string", `"x"${RS}`],
    ["a number", `1${RS}`],
    ["a byte-order mark", `\ufeff{"type":6}${RS}`],
  ])("T04 closes on a record that is %s", async (_name, text) => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(text);
    await expectFaultClose(client, JSON_WIRE);
    await expectHealthy(server, before);
  });

  const invocation = (fields: string): string => `{"type":1,"target":"Echo","arguments":[1],"invocationId":"1",${fields}}`;
  it.each([
    ["target: 123", `{"type":1,"target":123,"arguments":[],"invocationId":"1"}`],
    ['target: ["x"]', `{"type":1,"target":["x"],"arguments":[],"invocationId":"1"}`],
    ['target: {"toString":"x"}', `{"type":1,"target":{"toString":"x"},"arguments":[],"invocationId":"1"}`],
    ["target: null", `{"type":1,"target":null,"arguments":[],"invocationId":"1"}`],
    ["target: true", `{"type":1,"target":true,"arguments":[],"invocationId":"1"}`],
    ['target: ""', `{"type":1,"target":"","arguments":[],"invocationId":"1"}`],
    ["no target", `{"type":1,"arguments":[],"invocationId":"1"}`],
    ["arguments: {}", `{"type":1,"target":"Echo","arguments":{},"invocationId":"1"}`],
    ['arguments: "x"', `{"type":1,"target":"Echo","arguments":"x","invocationId":"1"}`],
    ["arguments: 1", `{"type":1,"target":"Echo","arguments":1,"invocationId":"1"}`],
    ["arguments: null", `{"type":1,"target":"Echo","arguments":null,"invocationId":"1"}`],
    ["invocationId: 5", `{"type":1,"target":"Echo","arguments":[1],"invocationId":5}`],
    ["invocationId: null", `{"type":1,"target":"Echo","arguments":[1],"invocationId":null}`],
    ["invocationId: {}", `{"type":1,"target":"Echo","arguments":[1],"invocationId":{}}`],
    ['invocationId: ["1"]', `{"type":1,"target":"Echo","arguments":[1],"invocationId":["1"]}`],
    ["invocationId: true", `{"type":1,"target":"Echo","arguments":[1],"invocationId":true}`],
    ['invocationId: ""', `{"type":1,"target":"Echo","arguments":[1],"invocationId":""}`],
    ['headers: {"a":1}', invocation(`"headers":{"a":1}`)],
    ['headers: {"a":null}', invocation(`"headers":{"a":null}`)],
    ["headers: []", invocation(`"headers":[]`)],
    ['headers: "x"', invocation(`"headers":"x"`)],
    ["headers: null", invocation(`"headers":null`)],
    ['streamIds: "x"', invocation(`"streamIds":"x"`)],
    ["streamIds: [1]", invocation(`"streamIds":[1]`)],
    ["streamIds: [null]", invocation(`"streamIds":[null]`)],
    ["streamIds: {}", invocation(`"streamIds":{}`)],
    ["streamIds: null", invocation(`"streamIds":null`)],
    ["a Completion with result and error", `{"type":3,"invocationId":"1","result":1,"error":"x"}`],
    ["a Completion without invocationId", `{"type":3,"result":1}`],
    ["a StreamItem without invocationId", `{"type":2,"item":1}`],
    ["a StreamItem without item", `{"type":2,"invocationId":"1"}`],
    ["a CancelInvocation with invocationId 1", `{"type":5,"invocationId":1}`],
    ["a StreamInvocation without invocationId", `{"type":4,"target":"Echo","arguments":[1]}`],
    ['a Close with error: 1', `{"type":7,"error":1}`],
  ])("T06 closes on %s with the generic error and logs no error", async (_name, text) => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    // A good invocation first, in the same frame: it is answered before the Close.
    client.sendText(`{"target":"Echo","arguments":["ok"],"invocationId":"0","type":1}${RS}${text}${RS}`);
    await expectFaultClose(client, JSON_WIRE, JSON_WIRE.result("0", "ok"));
    await expectHealthy(server, before);
  });

  it("T07 ignores unknown extra properties", async () => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(`{"type":1,"target":"Echo","arguments":["x"],"invocationId":"1","foo":{"bar":[1,{"baz":null}]},"Type":3}${RS}`);
    expect((await client.nextFrame()).data.toString()).toBe(`{"type":3,"invocationId":"1","result":"x"}${RS}`);
    await expectHealthy(server, before);
  });
});

describe("C. handshake and session setup", () => {
  it("T12 refuses a hub message sent before the handshake", async () => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendText(`{"type":1,"target":"Echo","arguments":["secret payload"]}${RS}`);
    await expectHandshakeRefused(client, HANDSHAKE_ERROR);
    expect(client.frames[0]!.binary).toBe(false);
    expect(lifecycle.connected).toHaveLength(1); // the observer only
    await expectHealthy(server, before);
  });

  it("T12 refuses a MessagePack record (one that holds a 0x1E byte) sent before the handshake, never echoing it", async () => {
    const server = await startServer([BadInputHub], { detailedErrors: false });
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendBinary(hex("1e 95 01 80 a1 37 a4 45 63 68 6f 93 c4 02 01 02 d6 ff 65 92 00 80 cb 3f f8 00 00 00 00 00 00"));
    await expectHandshakeRefused(client, HANDSHAKE_ERROR);
    await expectHealthy(server, before);
  });

  it("T12 cancels a connection whose first frame is a MessagePack Ping (no separator) at the handshake timeout", async () => {
    const server = await startServer([BadInputHub], { handshakeTimeout: 200 });
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendBinary(hex("02 91 06"));
    await expectHandshakeRefused(client, HANDSHAKE_CANCELED);
    await expectHealthy(server, before);
  });

  it.each([
    ['{"protocol":"xml","version":1}', "The protocol 'xml' is not supported."],
    ['{"protocol":"json","version":99}', "The server does not support version 99 of the 'json' protocol."],
    ['{"protocol":"json","version":3}', "The server does not support version 3 of the 'json' protocol."],
    ['{"protocol":"messagepack","version":3}', "The server does not support version 3 of the 'messagepack' protocol."],
    ['{"protocol":"json","version":"1"}', HANDSHAKE_ERROR],
    ['{"protocol":"json","version":1.5}', HANDSHAKE_ERROR],
    ['{"protocol":"json"}', HANDSHAKE_ERROR],
    ['{"version":1}', HANDSHAKE_ERROR],
    ['{"protocol":1,"version":1}', HANDSHAKE_ERROR],
    ['{"protocol":"__proto__","version":1}', "The protocol '__proto__' is not supported."],
    ['{"protocol":"constructor","version":1}', "The protocol 'constructor' is not supported."],
    ['{"protocol":"toString","version":1}', "The protocol 'toString' is not supported."],
    ['{"__proto__":{"protocol":"json","version":1}}', HANDSHAKE_ERROR],
    ["[]", HANDSHAKE_ERROR],
    ["null", HANDSHAKE_ERROR],
    ['"json"', HANDSHAKE_ERROR],
    ["{", HANDSHAKE_ERROR],
    ["", HANDSHAKE_ERROR],
  ])("T13 answers the handshake %s with its exact error and closes", async (request, error) => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendText(`${request}${RS}{"type":6}${RS}`);
    await expectHandshakeRefused(client, error);
    expect(lifecycle.connected).toHaveLength(1); // the observer only
    await expectHealthy(server, before);
  });

  it("T13 accepts handshake versions 1 and 2 of both protocols", async () => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    for (const wire of WIRES) {
      for (const version of [1, 2]) {
        const client = await rawSocket(server);
        client.sendText(handshakeRequest(wire.protocol, version));
        expect((await client.nextFrame()).data).toEqual(hex("7b 7d 1e"));
        await client.close();
      }
    }
    await expectHealthy(server, before);
  });

  it("T14 cancels a silent connection at the handshake timeout", async () => {
    const server = await startServer([BadInputHub], { handshakeTimeout: 200 });
    const before = await observer(server);
    const client = await rawSocket(server);
    const started = Date.now();
    await expectHandshakeRefused(client, HANDSHAKE_CANCELED);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await expectHealthy(server, before);
  });

  it("T14 cancels half a handshake at the handshake timeout", async () => {
    const server = await startServer([BadInputHub], { handshakeTimeout: 200 });
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendText(`{"protocol":"js`);
    await expectHandshakeRefused(client, HANDSHAKE_CANCELED);
    await expectHealthy(server, before);
  });

  it("T14 forgets half a handshake whose socket goes away, and runs no hub lifecycle for it", async () => {
    const server = await startServer([BadInputHub], { handshakeTimeout: 200 });
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendText(`{"protocol":"js`);
    await settle(20);
    await client.close();
    await settle(300);
    expect(server.server.endpoint("/hub")!.connections.size).toBe(1); // the observer only
    expect(lifecycle.disconnected).toEqual([]);
    await expectHealthy(server, before);
  });

  it.each([
    ["with its separator", `{"protocol":"json","version":1,"pad":"${"p".repeat(40 * 1024)}"}${RS}`],
    ["without a separator", `{"protocol":"json","version":1,"pad":"${"p".repeat(40 * 1024)}"}`],
  ])("T15 cancels a 40 KiB handshake %s", async (_name, text) => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendText(text);
    await expectHandshakeRefused(client, HANDSHAKE_CANCELED);
    await expectHealthy(server, before);
  });

  it("T15 cancels a handshake that grows past maxMessageSize across frames", async () => {
    const server = await startServer([BadInputHub], { maxMessageSize: 100 });
    const before = await observer(server);
    const client = await rawSocket(server);
    client.sendText(`{"protocol":"json","version":1,"pad":"${"p".repeat(50)}`);
    await settle(20);
    expect(client.closeCode).toBeUndefined();
    client.sendText(`${"p".repeat(50)}"}${RS}`);
    await expectHandshakeRefused(client, HANDSHAKE_CANCELED);
    await expectHealthy(server, before);
  });
});

describe("D. hub dispatch", () => {
  const PROTOTYPE_NAMES = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "__defineGetter__", "__lookupGetter__", "isPrototypeOf", "propertyIsEnumerable", "toLocaleString", "__PROTO__", "Constructor"];

  describe.each(WIRES)("over $protocol", (wire) => {
    it("T20 answers Object.prototype names as unknown hub methods and keeps the connection", async () => {
      const server = await startServer([BadInputHub]);
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      for (const name of PROTOTYPE_NAMES) wire.send(client, wire.invocation(undefined, name, ["x", "y"]));
      PROTOTYPE_NAMES.forEach((name, i) => wire.send(client, wire.invocation(String(i), name, [])));
      wire.send(client, wire.invocation("last", "Echo", ["works"]));
      const expected = Buffer.concat([...PROTOTYPE_NAMES.map((name, i) => wire.error(String(i), `Unknown hub method '${name}'`)), wire.result("last", "works")]);
      expect((await receivedAtLeast(client, expected.length, 1)).toString("hex")).toBe(expected.toString("hex"));
      await expectHealthy(server, before);
    });

    it("T18 refuses wrong argument counts and types without calling the method", async () => {
      const server = await startServer([BadInputHub]);
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      const rows: [string, unknown[]][] = [
        ["Add", [1]],
        ["Add", [1, 2, 3]],
        ["Add", []],
        ["Typed", [1]],
        ["Typed", ["a", "b"]],
        ["Typed", [null, null]],
        ["Typed", [1, "2"]],
        ["Typed", [[1], 2]],
        ["Typed", [{}, 2]],
      ];
      rows.forEach(([target, args], i) => wire.send(client, wire.invocation(String(i), target, args)));
      wire.send(client, wire.invocation("ok", "Typed", [2, 3]));
      const expected = Buffer.concat([...rows.map(([target], i) => wire.error(String(i), `Failed to invoke '${target}' due to an error on the server.`)), wire.result("ok", 5)]);
      expect((await receivedAtLeast(client, expected.length, 1)).toString("hex")).toBe(expected.toString("hex"));
      expect(typedCalls).toEqual([[2, 3]]);
      await expectHealthy(server, before);
    });

    it("T19 a hanging hub method blocks neither Ping nor Close", async () => {
      const server = await startServer([BadInputHub], { clientTimeout: 300, keepAliveInterval: 100 });
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      wire.send(client, wire.invocation("0", "Hang", []));
      wire.send(client, wire.invocation("1", "Echo", ["queued behind Hang"]));
      // Pings from the client keep it alive well past clientTimeout while the method hangs.
      for (let i = 0; i < 8; i++) {
        wire.send(client, wire.ping);
        await settle(80);
      }
      expect(client.closeCode).toBeUndefined();
      expect(lifecycle.disconnected).toEqual([]);
      wire.send(client, wire.close);
      expect(await client.closed(1_000)).toBe(1000);
      await until(() => lifecycle.disconnected.length === 1, 1_000, "onDisconnected");
      // Only pings reached the client: no Completion for the hanging call nor for the queued one.
      for (const record of wire.decode(received(client, 1))) expect(record).toEqual(wire.decode(wire.ping)[0]);
      await expectHealthy(server, before);
    });
  });

  it.each([1, 4])("T24 runs a flood of non-blocking calls in order with maxParallelInvocations %i and a small queue", async (parallel) => {
    const server = await startServer([BadInputHub], { maxParallelInvocations: parallel, maxQueuedInvocations: 4 });
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    for (let i = 0; i < 200; i++) client.sendText(JSON_WIRE.invocation(undefined, "Slow", [i]).toString());
    client.sendText(JSON_WIRE.ping.toString());
    client.sendText(JSON_WIRE.invocation("last", "Echo", ["done"]).toString());
    const expected = JSON_WIRE.result("last", "done");
    expect((await receivedAtLeast(client, expected.length, 1, 3_000)).toString()).toBe(expected.toString());
    expect(slowCalls).toEqual(Array.from({ length: 200 }, (_, i) => i));
    client.sendText(JSON_WIRE.close.toString());
    expect(await client.closed(1_000)).toBe(1000);
    await expectHealthy(server, before);
  });

  it("T24 closes a client that stopped being read (full queue behind a hanging method) at clientTimeout", async () => {
    const server = await startServer([BadInputHub], { maxQueuedInvocations: 2, clientTimeout: 300, keepAliveInterval: 100 });
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(JSON_WIRE.invocation("0", "Hang", []).toString());
    for (let i = 1; i <= 6; i++) {
      client.sendText(JSON_WIRE.invocation(String(i), "Echo", [i]).toString());
      await settle(5);
    }
    // The server stopped reading this client: its pings no longer count, and the close handshake still completes.
    client.sendText(JSON_WIRE.ping.toString());
    expect(await client.closed(1_500)).toBe(1000);
    const records = JSON_WIRE.decode(received(client, 1));
    expect(records.at(-1)).toEqual({ type: 7, error: CONNECTION_ERROR, allowReconnect: true });
    await until(() => lifecycle.disconnected.length === 1, 1_000, "onDisconnected");
    await expectHealthy(server, before);
  });

  it("a malformed record queued behind a hanging method still ends the connection, at the latest at clientTimeout", async () => {
    const server = await startServer([BadInputHub], { clientTimeout: 300, keepAliveInterval: 100 });
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(`${JSON_WIRE.invocation("0", "Hang", []).toString()}${JSON_WIRE.invocation("1", "Echo", [1]).toString()}{${RS}`);
    await settle(50);
    // Nothing more is read from the client after the fault: its pings no longer keep it alive.
    client.sendText(JSON_WIRE.ping.toString());
    expect(await client.closed(1_500)).toBe(1000);
    const records = JSON_WIRE.decode(received(client, 1));
    expect(records.at(-1)).toEqual({ type: 7, error: CONNECTION_ERROR, allowReconnect: true });
    for (const record of records.slice(0, -1)) expect(record).toEqual({ type: 6 });
    await until(() => lifecycle.disconnected.length === 1, 1_000, "onDisconnected");
    await expectHealthy(server, before);
  });

  it("T21 echoes __proto__ and constructor payloads without polluting Object.prototype (JSON)", async () => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    const payloads = [`{"__proto__":{"polluted":true}}`, `{"constructor":{"prototype":{"polluted":true}}}`, `[{"__proto__":{"polluted":true}}]`];
    client.sendText(payloads.map((payload, i) => `{"target":"Echo","arguments":[${payload}],"invocationId":"${i}","type":1}${RS}`).join(""));
    const expected = payloads.map((payload, i) => `{"type":3,"invocationId":"${i}","result":${payload}}${RS}`).join("");
    expect((await receivedAtLeast(client, expected.length, 1)).toString()).toBe(expected);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(Object.prototype, "polluted")).toBe(false);
    await expectHealthy(server, before);
  });

  it("T21 echoes a constructor payload and closes cleanly on a __proto__ map key (MessagePack)", async () => {
    const server = await startServer([BadInputHub]);
    const before = await observer(server);
    const wire = WIRES[1]!;
    const client = await handshaken(server, "/hub", wire);
    wire.send(client, wire.invocation("0", "Echo", [{ constructor: { prototype: { polluted: true } } }]));
    const first = wire.result("0", { constructor: { prototype: { polluted: true } } });
    await receivedAtLeast(client, first.length, 1);
    // [1, {}, "1", "Echo", [{"__proto__": {"polluted": true}}]]
    const protoKey = Buffer.concat([hex("95 01 80 a1 31 a4 45 63 68 6f 91 81 a9"), Buffer.from("__proto__"), hex("81 a8"), Buffer.from("polluted"), hex("c3")]);
    wire.send(client, msgpackRecord(protoKey));
    await expectFaultClose(client, wire, first);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await expectHealthy(server, before);
  });
});

describe("keep-alive and client timeout", () => {
  describe.each(WIRES)("over $protocol", (wire) => {
    it("T31 pings a silent client, then sends it Close and closes it at clientTimeout", async () => {
      const server = await startServer([BadInputHub], { clientTimeout: 300, keepAliveInterval: 100 });
      const before = await observer(server);
      const client = await handshaken(server, "/hub", wire);
      const code = await client.closed(1_500);
      expect(code).toBe(1000);
      const frames = client.frames.slice(1);
      expect(frames.length).toBeGreaterThanOrEqual(2);
      const last = frames.at(-1)!.data;
      for (const frame of frames.slice(0, -1)) expect(frame.data.toString("hex")).toBe(wire.ping.toString("hex"));
      expect(last.toString("hex")).toBe(wire.closeMessage(CONNECTION_ERROR, true).toString("hex"));
      await until(() => lifecycle.disconnected.length === 1, 1_000, "onDisconnected");
      await expectHealthy(server, before);
    });

    it("keep-alive does not close a live official client", async () => {
      const server = await startServer([BadInputHub], { clientTimeout: 250, keepAliveInterval: 50 });
      const client = await connectClient(server.url("/hub"), wire.protocol, (builder) => builder.withServerTimeout(250).withKeepAliveInterval(50));
      let closed: unknown = "open";
      client.onclose((error) => void (closed = error));
      await settle(800);
      expect(closed).toBe("open");
      expect(client.state).toBe(signalR.HubConnectionState.Connected);
      expect(await client.invoke("Echo", "alive")).toBe("alive");
      expect(lifecycle.disconnected).toEqual([]);
    });
  });
});

describe("shutdown", () => {
  it("T37 sends Close with allowReconnect to every client and resolves after every onDisconnected ran once", async () => {
    lifecycle.disconnectDelay = 30;
    const server = await startServer([BadInputHub]);
    const official = await connectClient(server.url("/hub"));
    const jsonRaw = await handshaken(server, "/hub", WIRES[0]!);
    const msgpackRaw = await handshaken(server, "/hub", WIRES[1]!);
    const handshaking = await rawSocket(server);
    let officialClosed = false;
    official.onclose(() => void (officialClosed = true));
    expect(lifecycle.connected).toHaveLength(3);
    await server.server.close();
    expect([...lifecycle.disconnected].sort()).toEqual([...lifecycle.connected].sort());
    expect(server.server.endpoint("/hub")!.connections.size).toBe(0);
    for (const [raw, wire] of [[jsonRaw, WIRES[0]!], [msgpackRaw, WIRES[1]!]] as const) {
      await raw.closed(1_000);
      expect(received(raw, 1).toString("hex")).toBe(wire.closeMessage(undefined, true).toString("hex"));
    }
    await handshaking.closed(1_000);
    expect(handshaking.frames).toEqual([]);
    await until(() => officialClosed, 1_000, "the official client to close");
    await settle(50);
    expect(lifecycle.disconnected).toHaveLength(3);
  });

  it("T37 does not wait for closeTimeout on a client the server had stopped reading", async () => {
    const server = await startServer([BadInputHub], { maxQueuedInvocations: 2 });
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(JSON_WIRE.invocation("0", "Hang", []).toString());
    for (let i = 1; i <= 6; i++) {
      client.sendText(JSON_WIRE.invocation(String(i), "Echo", [i]).toString());
      await settle(5);
    }
    const started = Date.now();
    await server.server.close(); // the transport's closeTimeout is 5 s
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await client.closed(1_000)).toBe(1000);
    expect(JSON_WIRE.decode(received(client, 1))).toEqual([{ type: 7, allowReconnect: true }]);
  });

  it("a client with automatic reconnect starts reconnecting when the server closes", async () => {
    const server = await startServer([BadInputHub]);
    const client = await connectClient(server.url("/hub"), "json", (builder) => builder.withAutomaticReconnect([0, 10_000]));
    let reconnecting: Error | undefined | "no" = "no";
    client.onreconnecting((error) => void (reconnecting = error));
    await server.server.close();
    await until(() => reconnecting !== "no", 1_000, "onreconnecting");
    expect(client.state).toBe(signalR.HubConnectionState.Reconnecting);
  });
});

/** Size of a record without its separator (JSON) or length prefix (MessagePack). */
function bodySize(wire: WireCodec, record: Buffer): number {
  if (!wire.binary) return record.length - 1;
  let prefix = 0;
  while (record[prefix]! & 0x80) prefix++;
  return record.length - prefix - 1;
}

/** A Close with allowReconnect whose error starts with the generic text (a size detail may follow). */
function expectCloseRecord(wire: WireCodec, record: unknown): void {
  if (wire.binary) {
    const [type, error, allowReconnect] = record as [number, string, boolean];
    expect([type, allowReconnect]).toEqual([7, true]);
    expect(error.startsWith(CONNECTION_ERROR)).toBe(true);
  } else {
    const close = record as { type: number; error: string; allowReconnect: boolean };
    expect([close.type, close.allowReconnect]).toEqual([7, true]);
    expect(close.error.startsWith(CONNECTION_ERROR)).toBe(true);
  }
}
