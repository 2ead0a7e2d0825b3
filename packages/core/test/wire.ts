/**
 * Byte plumbing shared by the raw wire tests of this package: building client records for both
 * hub protocols, the records the server is expected to answer with, and reading what a
 * {@link RawClient} received.
 */
import { decode, encode } from "@msgpack/msgpack";
import { expect } from "vitest";
import { negotiate, RawClient, RS, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";

/** `"7b 7d 1e"` → bytes. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

/** SignalR's VarInt length prefix (§6). */
function varint(length: number): number[] {
  const out: number[] = [];
  do {
    let byte = length & 0x7f;
    length >>>= 7;
    if (length > 0) byte |= 0x80;
    out.push(byte);
  } while (length > 0);
  return out;
}

/** One MessagePack record: VarInt prefix + body. */
export function msgpackRecord(body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(varint(body.length)), body]);
}

/** Splits MessagePack records and decodes each body. */
function decodeMsgpackRecords(bytes: Buffer): unknown[] {
  const out: unknown[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    let length = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[offset++]!;
      length |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    out.push(decode(bytes.subarray(offset, offset + length)));
    offset += length;
  }
  return out;
}

/** What a wire test needs to speak one hub protocol by hand. */
export interface WireCodec {
  readonly protocol: ClientProtocol;
  /** Frames the server must use for hub messages after the handshake. */
  readonly binary: boolean;
  /** An Invocation as the official client writes it (`id` undefined = non-blocking). */
  invocation(id: string | undefined, target: string, args: unknown[]): Buffer;
  readonly ping: Buffer;
  readonly close: Buffer;
  /** A message of the unknown type 99. */
  readonly unknownType: Buffer;
  /** The Completion with a result the server must write. */
  result(id: string, value: unknown): Buffer;
  /** The error Completion the server must write. */
  error(id: string, text: string): Buffer;
  /** The Close message the server must write. */
  closeMessage(error: string | undefined, allowReconnect: boolean): Buffer;
  /** Records in `bytes`, decoded (JSON objects, or MessagePack arrays). */
  decode(bytes: Buffer): unknown[];
  /** Sends hub-message bytes the way the official client does (text for JSON, binary for MessagePack). */
  send(client: RawClient, bytes: Uint8Array): void;
}

const json = (text: string): Buffer => Buffer.from(text + RS, "utf8");

export const JSON_WIRE: WireCodec = {
  protocol: "json",
  binary: false,
  invocation: (id, target, args) =>
    json(`{"target":${JSON.stringify(target)},"arguments":${JSON.stringify(args)}${id === undefined ? "" : `,"invocationId":${JSON.stringify(id)}`},"type":1}`),
  ping: json(`{"type":6}`),
  close: json(`{"type":7}`),
  unknownType: json(`{"type":99,"target":"Add","arguments":[1,2],"invocationId":"99"}`),
  result: (id, value) => json(`{"type":3,"invocationId":${JSON.stringify(id)},"result":${JSON.stringify(value)}}`),
  error: (id, text) => json(`{"type":3,"invocationId":${JSON.stringify(id)},"error":${JSON.stringify(text)}}`),
  closeMessage: (error, allowReconnect) =>
    json(`{"type":7${error === undefined ? "" : `,"error":${JSON.stringify(error)}`}${allowReconnect ? `,"allowReconnect":true` : ""}}`),
  decode: (bytes) =>
    bytes
      .toString("utf8")
      .split(RS)
      .slice(0, -1)
      .map((text) => JSON.parse(text) as unknown),
  send: (client, bytes) => client.sendText(Buffer.from(bytes).toString("utf8")),
};

const pack = (value: unknown): Buffer => msgpackRecord(encode(value));

export const MSGPACK_WIRE: WireCodec = {
  protocol: "messagepack",
  binary: true,
  invocation: (id, target, args) => pack([1, {}, id ?? null, target, args]),
  ping: hex("02 91 06"),
  close: hex("03 92 07 c0"),
  unknownType: pack([99, {}, "99", "Add", [1, 2]]),
  result: (id, value) => pack([3, {}, id, 3, value]),
  error: (id, text) => pack([3, {}, id, 1, text]),
  closeMessage: (error, allowReconnect) => pack([7, error ?? null, allowReconnect]),
  decode: decodeMsgpackRecords,
  send: (client, bytes) => client.sendBinary(bytes),
};

export const WIRES: readonly WireCodec[] = [JSON_WIRE, MSGPACK_WIRE];

/** Every byte the client received so far, frames concatenated. */
export function received(client: RawClient, fromFrame = 0): Buffer {
  return Buffer.concat(client.frames.slice(fromFrame).map((frame) => frame.data));
}

/**
 * Waits until the frames from `fromFrame` on hold at least `expected.length` bytes (or the socket
 * closed) and returns them.
 */
export async function receivedAtLeast(client: RawClient, expected: number, fromFrame = 0, timeout = 2_000): Promise<Buffer> {
  await until(() => received(client, fromFrame).length >= expected || client.closeCode !== undefined, timeout, `${expected} bytes`).catch(() => {});
  return received(client, fromFrame);
}

/** The ws:// URL of a freshly negotiated connection. */
export async function connectUrl(server: TestServer, path: string): Promise<string> {
  const { connectionToken } = await negotiate(server, path);
  return `ws://127.0.0.1:${server.port}${path}?id=${connectionToken}`;
}

/** The handshake request the official client sends for `protocol` (§3). */
export function handshakeRequest(protocol: ClientProtocol, version = 1): string {
  return `{"protocol":"${protocol}","version":${version}}${RS}`;
}

/** Opens a raw socket on a negotiated connection and completes the handshake (its reply is read). */
export async function handshaken(server: TestServer, path: string, wire: WireCodec): Promise<RawClient> {
  const client = await RawClient.open(await connectUrl(server, path));
  client.sendText(handshakeRequest(wire.protocol));
  const reply = await client.nextFrame();
  expect(reply.data).toEqual(hex("7b 7d 1e"));
  return client;
}
