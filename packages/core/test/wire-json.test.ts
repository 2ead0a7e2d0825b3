/**
 * The exact bytes of signalr-protocol.md §10.1 (and §10.2 for MessagePack) over a raw WebSocket:
 * handshake, completions, framing of several records per WebSocket message and of records split
 * across messages, Close, and unknown message types.
 */
import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub } from "@switchboard/core";
import { closeAll, RawClient, RS, settle, startServer, until } from "../../../test-support/harness.js";
import { connectUrl, handshaken, handshakeRequest, hex, JSON_WIRE, received, receivedAtLeast, WIRES, type WireCodec } from "./wire.js";

afterEach(closeAll);

const nonBlocking: unknown[] = [];
const disconnects: { connectionId: string; error: Error | undefined }[] = [];

@Hub("/hub")
class WireHub extends Hub {
  Add(a: number, b: number): number {
    return a + b;
  }
  Fail(): never {
    throw new Error("secret detail that must not reach the client");
  }
  NonBlocking(value: unknown): void {
    nonBlocking.push(value);
  }
  Echo(value: unknown): unknown {
    return value;
  }
  override onDisconnected(error?: Error): void {
    disconnects.push({ connectionId: this.context.connectionId, error });
  }
}

const order: string[] = [];

@Hub("/slow")
class SlowConnectHub extends Hub {
  override async onConnected(): Promise<void> {
    order.push("onConnected:start");
    await settle(30);
    order.push("onConnected:end");
  }
  Mark(value: string): string {
    order.push(value);
    return value;
  }
}

/** Asserts that the frames from `from` on carry exactly `expected`, in frames of the protocol's kind, no record split. */
async function expectAnswers(client: RawClient, wire: WireCodec, expected: Buffer, from = 1): Promise<void> {
  const bytes = await receivedAtLeast(client, expected.length, from);
  expect(bytes.toString("hex")).toBe(expected.toString("hex"));
  for (const frame of client.frames.slice(from)) {
    expect(frame.binary).toBe(wire.binary);
    // A record is never split across WebSocket messages (§2.2): each frame holds whole records.
    expect(wire.decode(frame.data).length).toBeGreaterThan(0);
  }
}

describe("JSON over WebSockets: the bytes of §10.1", () => {
  it("answers the handshake with exactly 7b 7d 1e in a text frame", async () => {
    const server = await startServer([WireHub]);
    const client = await RawClient.open(await connectUrl(server, "/hub"));
    const request = hex("7b 22 70 72 6f 74 6f 63 6f 6c 22 3a 22 6a 73 6f 6e 22 2c 22 76 65 72 73 69 6f 6e 22 3a 31 7d 1e");
    client.sendText(request.toString("utf8"));
    const reply = await client.nextFrame();
    expect(reply.binary).toBe(false);
    expect(reply.data).toEqual(hex("7b 7d 1e"));
  });

  it("answers Add(40, 2) after a Ping with the 42-byte Completion", async () => {
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(hex("7b 22 74 79 70 65 22 3a 36 7d 1e").toString("utf8"));
    client.sendText(
      hex(
        "7b 22 74 61 72 67 65 74 22 3a 22 41 64 64 22 2c 22 61 72 67 75 6d 65 6e 74 73 22 3a 5b 34 30 2c 32 5d 2c 22 69 6e 76 6f 63 61 74 69 6f 6e 49 64 22 3a 22 30 22 2c 22 74 79 70 65 22 3a 31 7d 1e",
      ).toString("utf8"),
    );
    const frame = await client.nextFrame();
    expect(frame.binary).toBe(false);
    expect(frame.data).toEqual(
      hex("7b 22 74 79 70 65 22 3a 33 2c 22 69 6e 76 6f 63 61 74 69 6f 6e 49 64 22 3a 22 30 22 2c 22 72 65 73 75 6c 74 22 3a 34 32 7d 1e"),
    );
    expect(frame.data.toString()).toBe(`{"type":3,"invocationId":"0","result":42}${RS}`);
  });

  it("answers a throwing method with the generic error Completion and nothing of the exception", async () => {
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", JSON_WIRE);
    client.sendText(`{"target":"Fail","arguments":[],"invocationId":"1","type":1}${RS}`);
    const frame = await client.nextFrame();
    expect(frame.data.toString()).toBe(`{"type":3,"invocationId":"1","error":"An unexpected error occurred invoking 'Fail' on the server."}${RS}`);
  });
});

describe("MessagePack over WebSockets: the bytes of §10.2", () => {
  it("answers the text handshake with 7b 7d 1e and Add/Fail with the captured binary records", async () => {
    const server = await startServer([WireHub]);
    const client = await RawClient.open(await connectUrl(server, "/hub"));
    client.sendText(`{"protocol":"messagepack","version":1}${RS}`);
    expect((await client.nextFrame()).data).toEqual(hex("7b 7d 1e"));
    client.sendBinary(hex("02 91 06"));
    client.sendBinary(hex("0c 95 01 80 a1 30 a3 41 64 64 92 28 02"));
    const add = await client.nextFrame();
    expect(add.binary).toBe(true);
    expect(add.data).toEqual(hex("07 95 03 80 a1 30 03 2a"));
    client.sendBinary(hex("0b 95 01 80 a1 31 a4 46 61 69 6c 90"));
    const fail = await client.nextFrame();
    const text = "An unexpected error occurred invoking 'Fail' on the server.";
    expect(fail.data).toEqual(Buffer.concat([hex("43 95 03 80 a1 31 01 d9 3b"), Buffer.from(text)]));
  });
});

describe.each(WIRES)("framing over $protocol", (wire) => {
  it("answers nothing to a non-blocking invocation (the next answer belongs to the next call)", async () => {
    nonBlocking.length = 0;
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", wire);
    wire.send(client, wire.invocation(undefined, "NonBlocking", ["foo"]));
    wire.send(client, wire.invocation(undefined, "Fail", []));
    wire.send(client, wire.invocation(undefined, "Nope", []));
    wire.send(client, wire.invocation(undefined, "Add", [1]));
    wire.send(client, wire.invocation("2", "Add", [1, 2]));
    await expectAnswers(client, wire, wire.result("2", 3));
    await settle(30);
    expect(client.frames).toHaveLength(2);
    expect(nonBlocking).toEqual(["foo"]);
  });

  it("reads several records from one WebSocket message and answers each, in order", async () => {
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", wire);
    wire.send(
      client,
      Buffer.concat([wire.ping, wire.invocation("0", "Add", [1, 1]), wire.invocation(undefined, "NonBlocking", [1]), wire.invocation("1", "Fail", []), wire.invocation("2", "Echo", ["x"])]),
    );
    const expected = Buffer.concat([wire.result("0", 2), wire.error("1", "An unexpected error occurred invoking 'Fail' on the server."), wire.result("2", "x")]);
    await expectAnswers(client, wire, expected);
  });

  it("accepts the handshake and an invocation in the same frame", async () => {
    const server = await startServer([WireHub]);
    const client = await RawClient.open(await connectUrl(server, "/hub"));
    // One frame of the protocol's kind: JSON text, or binary when a MessagePack record follows the handshake.
    wire.send(client, Buffer.concat([Buffer.from(handshakeRequest(wire.protocol)), wire.invocation("0", "Add", [40, 2])]));
    const bytes = await receivedAtLeast(client, 3 + wire.result("0", 42).length);
    expect(bytes.toString("hex")).toBe(Buffer.concat([hex("7b 7d 1e"), wire.result("0", 42)]).toString("hex"));
  });

  it("runs an invocation sent with the handshake only after an async onConnected has finished", async () => {
    order.length = 0;
    const server = await startServer([SlowConnectHub], { maxParallelInvocations: 4 });
    const client = await RawClient.open(await connectUrl(server, "/slow"));
    wire.send(client, Buffer.concat([Buffer.from(handshakeRequest(wire.protocol)), wire.invocation("0", "Mark", ["a"]), wire.invocation(undefined, "Mark", ["b"]), wire.invocation("1", "Mark", ["c"])]));
    const expected = Buffer.concat([hex("7b 7d 1e"), wire.result("0", "a"), wire.result("1", "c")]);
    expect((await receivedAtLeast(client, expected.length)).toString("hex")).toBe(expected.toString("hex"));
    expect(order).toEqual(["onConnected:start", "onConnected:end", "a", "b", "c"]);
  });

  it("accepts a handshake split across three frames", async () => {
    const server = await startServer([WireHub]);
    const client = await RawClient.open(await connectUrl(server, "/hub"));
    const request = handshakeRequest(wire.protocol);
    client.sendText(request.slice(0, 5));
    client.sendText(request.slice(5, 17));
    await settle(20);
    expect(client.frames).toHaveLength(0);
    client.sendText(request.slice(17));
    expect((await client.nextFrame()).data).toEqual(hex("7b 7d 1e"));
    wire.send(client, wire.invocation("0", "Echo", ["after"]));
    await expectAnswers(client, wire, wire.result("0", "after"));
  });

  it("accepts an invocation split across frames, down to single bytes", async () => {
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", wire);
    const record = wire.invocation("7", "Echo", ["split é"]);
    wire.send(client, record.subarray(0, 3));
    wire.send(client, record.subarray(3, 10));
    // Single bytes go in binary frames (a lone byte of "é" is not valid UTF-8 text); the server
    // reads hub bytes the same from either frame kind, as ASP.NET does.
    for (let i = 10; i < record.length - 1; i++) client.sendBinary(record.subarray(i, i + 1));
    await settle(20);
    expect(client.frames).toHaveLength(1);
    // The last byte arrives together with the start of the next record.
    const next = wire.invocation("8", "Add", [2, 2]);
    client.sendBinary(Buffer.concat([record.subarray(record.length - 1), next.subarray(0, 4)]));
    client.sendBinary(next.subarray(4));
    await expectAnswers(client, wire, Buffer.concat([wire.result("7", "split é"), wire.result("8", 4)]));
  });

  it("ends the connection on a Close message without answering it, and runs onDisconnected once", async () => {
    disconnects.length = 0;
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", wire);
    wire.send(client, wire.invocation("0", "Add", [1, 2]));
    await expectAnswers(client, wire, wire.result("0", 3));
    wire.send(client, wire.close);
    expect(await client.closed(1_000)).toBe(1000);
    expect(client.frames).toHaveLength(2);
    await until(() => disconnects.length === 1, 1_000, "onDisconnected");
    await settle(20);
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0]!.error).toBeUndefined();
  });

  it("skips an unknown message type and answers the invocation after it in the same frame", async () => {
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", wire);
    wire.send(client, Buffer.concat([wire.unknownType, wire.invocation("1", "Add", [20, 22])]));
    await expectAnswers(client, wire, wire.result("1", 42));
  });

  it("skips an unknown message type and answers the invocation in the next frame", async () => {
    const server = await startServer([WireHub]);
    const client = await handshaken(server, "/hub", wire);
    wire.send(client, wire.unknownType);
    await settle(20);
    wire.send(client, wire.invocation("1", "Add", [20, 22]));
    await expectAnswers(client, wire, wire.result("1", 42));
    expect(received(client, 1).toString("hex")).toBe(wire.result("1", 42).toString("hex"));
  });
});
