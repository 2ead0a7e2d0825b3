/**
 * Section E of the reliability test plan: WebSocket frames and upgrade requests that break the
 * rules (T26, T27), written by hand on a raw `net.Socket`. Every case must be answered or closed,
 * must not take the process down, and must leave the server serving an official client.
 */
import "reflect-metadata";
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Hub } from "@switchboard/core";
import { closeAll, connectClient, RS, settle, signalR, startServer, until, type TestServer } from "../../../test-support/harness.js";

const lifecycle = { connected: [] as string[], disconnected: [] as { id: string; error: string | undefined }[] };
const sockets: RawSocket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.socket.destroy();
  await closeAll();
  lifecycle.connected.length = 0;
  lifecycle.disconnected.length = 0;
});

@Hub("/hub")
class AbuseHub extends Hub {
  Echo(value: unknown): unknown {
    return value;
  }
  override onConnected(): void {
    lifecycle.connected.push(this.context.connectionId);
  }
  override onDisconnected(error?: Error): void {
    lifecycle.disconnected.push({ id: this.context.connectionId, error: error?.message });
  }
}

// ---- a raw client on net.Socket -----------------------------------------------------------

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const RSV1 = 0x40;
const RSV2 = 0x20;
const RSV3 = 0x10;

interface FrameOptions {
  readonly fin?: boolean;
  readonly rsv?: number;
  readonly mask?: boolean;
}

/** One client frame, masked unless told otherwise (RFC 6455 §5.2). */
function wsFrame(opcode: number, payload: Uint8Array | string, options: FrameOptions = {}): Buffer {
  const data = Buffer.from(payload as Uint8Array);
  const mask = options.mask ?? true;
  const head = [((options.fin ?? true) ? 0x80 : 0) | (options.rsv ?? 0) | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (data.length < 126) head.push(maskBit | data.length);
  else if (data.length < 65_536) head.push(maskBit | 126, data.length >> 8, data.length & 0xff);
  else head.push(maskBit | 127, 0, 0, 0, 0, (data.length >>> 24) & 0xff, (data.length >>> 16) & 0xff, (data.length >>> 8) & 0xff, data.length & 0xff);
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = randomBytes(4);
  for (let i = 0; i < data.length; i++) data[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from(head), key, data]);
}

interface ServerFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** A TCP client that writes HTTP and WebSocket bytes by hand and keeps everything it receives. */
class RawSocket {
  readonly socket: Socket;
  received = Buffer.alloc(0);
  ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("error", () => {}); // RST and EPIPE are expected here
    socket.on("data", (chunk: Buffer) => void (this.received = Buffer.concat([this.received, chunk])));
    socket.on("close", () => void (this.ended = true));
  }

  static async open(port: number): Promise<RawSocket> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const raw = new RawSocket(socket);
    sockets.push(raw);
    return raw;
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /** The status of the HTTP response, or "closed" when the server hung up without one. */
  async status(timeout = 1_000): Promise<number | "closed"> {
    await until(() => this.received.includes("\r\n\r\n") || this.ended, timeout, "an HTTP answer or a close");
    const end = this.received.indexOf("\r\n\r\n");
    if (end === -1) return "closed";
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(this.received.subarray(0, end).toString("latin1"))?.[1]);
  }

  /** Server frames received after the HTTP response. */
  frames(): ServerFrame[] {
    const frames: ServerFrame[] = [];
    let offset = this.received.indexOf("\r\n\r\n") + 4;
    while (offset + 2 <= this.received.length) {
      const opcode = this.received[offset]! & 0x0f;
      let length = this.received[offset + 1]! & 0x7f;
      let start = offset + 2;
      if (length === 126) {
        length = this.received.readUInt16BE(start);
        start += 2;
      } else if (length === 127) {
        length = Number(this.received.readBigUInt64BE(start));
        start += 8;
      }
      if (start + length > this.received.length) break;
      frames.push({ opcode, payload: this.received.subarray(start, start + length) });
      offset = start + length;
    }
    return frames;
  }

  /** Waits for the server's Close frame and returns its status code. It is NOT answered. */
  async closeCode(timeout = 1_000): Promise<number> {
    await until(() => this.frames().some((frame) => frame.opcode === OP_CLOSE) || this.ended, timeout, "a close frame");
    const close = this.frames().find((frame) => frame.opcode === OP_CLOSE);
    if (close === undefined) throw new Error("The server closed without a close frame.");
    return close.payload.readUInt16BE(0);
  }
}

function upgradeRequest(path: string, headers: Record<string, string> = {}, method = "GET"): string {
  const all: Record<string, string> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  const lines = Object.entries(all)
    .filter(([, value]) => value !== "")
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  return `${method} ${path} HTTP/1.1\r\n${lines}\r\n`;
}

/** Upgrades a raw socket on /hub (no negotiate, as with skipNegotiation) and completes the JSON handshake. */
async function handshakenSocket(server: TestServer): Promise<RawSocket> {
  const raw = await RawSocket.open(server.port);
  raw.write(upgradeRequest("/hub"));
  expect(await raw.status()).toBe(101);
  raw.write(wsFrame(OP_TEXT, `{"protocol":"json","version":1}${RS}`));
  await until(() => raw.frames().length === 1, 1_000, "the handshake reply");
  expect(raw.frames()[0]!.payload.toString()).toBe(`{}${RS}`);
  return raw;
}

/** An official client connected before the fault. */
function observer(server: TestServer): Promise<signalR.HubConnection> {
  return connectClient(server.url("/hub"));
}

/** The observer still round-trips, a new official client is served, and nothing was logged as an error. */
async function expectHealthy(server: TestServer, before: signalR.HubConnection): Promise<void> {
  expect(await before.invoke("Echo", "still here")).toBe("still here");
  const fresh = await connectClient(server.url("/hub"), "messagepack");
  expect(await fresh.invoke("Echo", "new client")).toBe("new client");
  expect(server.logger.entries.filter((entry) => entry.level === "error").map((entry) => entry.message)).toEqual([]);
}

// ---- T27: frames ---------------------------------------------------------------------------

describe("T27 frames that break RFC 6455", () => {
  const handshakeBody = Buffer.from(`{"type":1,"target":"Echo","arguments":[1],"invocationId":"1"}${RS}`);
  it.each<[string, () => Buffer, number]>([
    ["a frame with RSV1 set (no extension negotiated)", () => wsFrame(OP_TEXT, handshakeBody, { rsv: RSV1 }), 1002],
    ["a frame with RSV2 set", () => wsFrame(OP_TEXT, handshakeBody, { rsv: RSV2 }), 1002],
    ["a frame with RSV3 set", () => wsFrame(OP_TEXT, handshakeBody, { rsv: RSV3 }), 1002],
    ["an unmasked client frame", () => wsFrame(OP_TEXT, handshakeBody, { mask: false }), 1002],
    ["the reserved opcode 0x3", () => wsFrame(0x3, handshakeBody), 1002],
    ["the reserved opcode 0xB", () => wsFrame(0xb, "x"), 1002],
    ["a 126-byte ping", () => wsFrame(OP_PING, Buffer.alloc(126)), 1002],
    ["a fragmented ping", () => wsFrame(OP_PING, "x", { fin: false }), 1002],
    ["a continuation without a start", () => wsFrame(OP_CONTINUATION, handshakeBody), 1002],
    ["a new message inside a fragmented one", () => Buffer.concat([wsFrame(OP_TEXT, "{", { fin: false }), wsFrame(OP_TEXT, "}")]), 1002],
    ["close code 1005 on the wire", () => wsFrame(OP_CLOSE, Buffer.from([0x03, 0xed])), 1002],
    ["close code 999", () => wsFrame(OP_CLOSE, Buffer.from([0x03, 0xe7])), 1002],
    ["a text frame with invalid UTF-8", () => wsFrame(OP_TEXT, Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x1e])), 1007],
    ["a text message split mid-codepoint into invalid UTF-8", () => Buffer.concat([wsFrame(OP_TEXT, Buffer.from([0x22, 0xc3]), { fin: false }), wsFrame(OP_CONTINUATION, Buffer.from([0x28, 0x22]))]), 1007],
    ["a close reason that is not UTF-8", () => wsFrame(OP_CLOSE, Buffer.from([0x03, 0xe8, 0xff])), 1007],
    ["a message above maxPayload", () => wsFrame(OP_BINARY, Buffer.alloc(2_048)), 1009],
    ["fragments adding up past maxPayload", () => Buffer.concat([wsFrame(OP_BINARY, Buffer.alloc(600), { fin: false }), wsFrame(OP_CONTINUATION, Buffer.alloc(600))]), 1009],
    ["20,000 empty fragments", () => Buffer.concat([wsFrame(OP_TEXT, "", { fin: false }), ...Array.from({ length: 20_000 }, () => wsFrame(OP_CONTINUATION, "", { fin: false }))]), 1008],
  ])("T16 T27 closes on %s, survives, and runs onDisconnected", async (_name, bytes, code) => {
    const server = await startServer([AbuseHub], { maxMessageSize: 512 }, { maxPayload: 1_024 });
    const before = await observer(server);
    const raw = await handshakenSocket(server);
    const id = lifecycle.connected[1]!;
    raw.write(bytes());
    expect(await raw.closeCode()).toBe(code);
    // The peer never answers the close frame: the hub connection still ends at once.
    await until(() => lifecycle.disconnected.some((entry) => entry.id === id), 1_000, "onDisconnected");
    expect(lifecycle.disconnected.filter((entry) => entry.id === id)).toHaveLength(1);
    expect(lifecycle.disconnected.find((entry) => entry.id === id)!.error).toBeDefined();
    await expectHealthy(server, before);
    raw.socket.destroy();
    await settle(20);
    expect(lifecycle.disconnected.filter((entry) => entry.id === id)).toHaveLength(1);
  });

  it("accepts the hub handshake split over fragments and a ping between them", async () => {
    const server = await startServer([AbuseHub]);
    const raw = await RawSocket.open(server.port);
    raw.write(upgradeRequest("/hub"));
    expect(await raw.status()).toBe(101);
    const handshake = `{"protocol":"json","version":1}${RS}`;
    raw.write(Buffer.concat([wsFrame(OP_TEXT, handshake.slice(0, 10), { fin: false }), wsFrame(OP_PING, "p"), wsFrame(OP_CONTINUATION, handshake.slice(10))]));
    await until(() => raw.frames().some((frame) => frame.opcode === OP_TEXT), 1_000, "the handshake reply");
    expect(raw.frames().map((frame) => [frame.opcode, frame.payload.toString()])).toEqual([
      [0xa, "p"],
      [OP_TEXT, `{}${RS}`],
    ]);
  });
});

// ---- T26: upgrade requests ------------------------------------------------------------------

describe("T26 upgrade requests that break the rules", () => {
  const manyHeaders = "a: b\r\n".repeat(2_000);
  it.each<[string, () => string, number | "closed"]>([
    ["2000 headers before the Upgrade header", () => `GET /hub HTTP/1.1\r\nHost: x\r\n${manyHeaders}${upgradeRequest("/hub").split("\r\n").slice(1).join("\r\n")}`, 400],
    ["a missing Sec-WebSocket-Key", () => upgradeRequest("/hub", { "Sec-WebSocket-Key": "" }), 400],
    ["an invalid Sec-WebSocket-Key", () => upgradeRequest("/hub", { "Sec-WebSocket-Key": "not a key" }), 400],
    ["Sec-WebSocket-Version 12", () => upgradeRequest("/hub", { "Sec-WebSocket-Version": "12" }), 400],
    ["a POST with Upgrade", () => upgradeRequest("/hub", {}, "POST"), 405],
    ["Upgrade: h2c", () => upgradeRequest("/hub", { Upgrade: "h2c", Connection: "Upgrade, HTTP2-Settings", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA" }), 400],
    ["a Sec-WebSocket-Protocol of 'b', 10,000 spaces and 'x'", () => upgradeRequest("/hub", { "Sec-WebSocket-Protocol": `b${" ".repeat(10_000)}x` }), 400],
    ["a 100 KB query string", () => upgradeRequest(`/hub?x=${"q".repeat(100_000)}`), 431],
    ["an id of __proto__", () => upgradeRequest("/hub?id=__proto__"), 404],
    ["a path of /__proto__", () => upgradeRequest("/__proto__"), 404],
  ])("answers %s and keeps serving", async (_name, request, status) => {
    const server = await startServer([AbuseHub]);
    const before = await observer(server);
    const raw = await RawSocket.open(server.port);
    const started = Date.now();
    raw.write(request());
    expect(await raw.status()).toBe(status);
    expect(Date.now() - started).toBeLessThan(1_000);
    await expectHealthy(server, before);
  });

  it.each([
    ["an extension named constructor", "constructor"],
    ["an extension named __proto__ with a parameter", "__proto__; x=1"],
    ["permessage-deflate with a toString parameter", "permessage-deflate; toString"],
  ])("ignores Sec-WebSocket-Extensions with %s (compression is off) and serves the hub", async (_name, extensions) => {
    const server = await startServer([AbuseHub]);
    const before = await observer(server);
    const raw = await RawSocket.open(server.port);
    raw.write(upgradeRequest("/hub", { "Sec-WebSocket-Extensions": extensions }));
    expect(await raw.status()).toBe(101);
    expect(raw.received.toString("latin1").toLowerCase()).not.toContain("sec-websocket-extensions");
    raw.write(wsFrame(OP_TEXT, `{"protocol":"json","version":1}${RS}{"type":1,"target":"Echo","arguments":["x"],"invocationId":"1"}${RS}`));
    await until(() => raw.frames().length === 2, 1_000, "two frames");
    expect(raw.frames()[1]!.payload.toString()).toBe(`{"type":3,"invocationId":"1","result":"x"}${RS}`);
    await expectHealthy(server, before);
  });

  it.each([
    ["a hub upgrade", "/hub", {}],
    ["a hub upgrade with a negotiated-looking id", "/hub?id=AAAAAAAAAAAAAAAAAAAAAA", {}],
    ["an h2c upgrade", "/hub", { Upgrade: "h2c", Connection: "Upgrade, HTTP2-Settings", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA" }],
    ["an upgrade for another path", "/elsewhere", {}],
    ["an upgrade with a missing key", "/hub", { "Sec-WebSocket-Key": "" }],
  ])("survives a client that resets right after %s", async (_name, path, headers) => {
    const server = await startServer([AbuseHub]);
    const before = await observer(server);
    for (let i = 0; i < 20; i++) {
      const raw = await RawSocket.open(server.port);
      raw.write(upgradeRequest(path, headers as Record<string, string>));
      if (i % 2 === 0) await settle(1);
      raw.socket.resetAndDestroy();
    }
    await settle(50);
    expect(server.server.endpoint("/hub")!.connections.size).toBe(1); // the observer only
    await expectHealthy(server, before);
  });

  it("leaves a socket error after the upgrade to ws's own listener: that connection ends, the server keeps serving", async () => {
    const server = await startServer([AbuseHub]);
    const before = await observer(server);
    const victim = await connectClient(server.url("/hub"));
    const endpoint = server.server.endpoint("/hub")!;
    const connection = [...endpoint.connections].find((c) => c.connectionId === victim.connectionId)!;
    const socket = (connection.transport as unknown as { _socket: Socket })._socket;
    // The upgrade's own listener is gone once ws listens (it would make the listeners an array per connection).
    expect(socket.listenerCount("error")).toBe(1);
    const closed = new Promise<void>((resolve) => victim.onclose(() => resolve()));
    socket.emit("error", Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }));
    await closed;
    await until(() => lifecycle.disconnected.some((entry) => entry.id === connection.connectionId), 2_000, "the connection to end");
    // ws keeps a no-op listener after the first error: a second one must not throw either.
    expect(() => socket.emit("error", new Error("again"))).not.toThrow();
    await expectHealthy(server, before);
  });

  it("survives a client that resets right after a negotiated upgrade, and forgets its token", async () => {
    const server = await startServer([AbuseHub]);
    const before = await observer(server);
    const endpoint = server.server.endpoint("/hub")!;
    const response = await fetch(`${server.url("/hub")}/negotiate?negotiateVersion=1`, { method: "POST" });
    const { connectionToken } = (await response.json()) as { connectionToken: string };
    const raw = await RawSocket.open(server.port);
    raw.write(upgradeRequest(`/hub?id=${connectionToken}`));
    raw.socket.resetAndDestroy();
    await until(() => endpoint.store.peek(connectionToken) === undefined && endpoint.connections.size === 1, 1_000, "the reservation to be released");
    const again = await RawSocket.open(server.port);
    again.write(upgradeRequest(`/hub?id=${connectionToken}`));
    expect(await again.status()).toBe(404);
    await expectHealthy(server, before);
  });
});
