import type { CommandAnswer, ConnectionCommand, EncodedMessage, SendTarget } from "@switchboard/core";

/*
 * One send on a Redis channel:
 *   u8 version (1) | 16 bytes sending node id | u32 header length | header JSON {h: hub, t: target} |
 *   u8 protocol count | per protocol: u8 name length | name | u32 payload length | payload
 * The payloads are the sending server's encoded records, passed on untouched.
 */
const VERSION = 1;
export const NODE_ID_LENGTH = 16;
const KINDS = new Set(["all", "connection", "connections", "group", "groups", "user", "users"]);

export function writeEnvelope(node: Buffer, hub: string, target: SendTarget, message: EncodedMessage): Buffer {
  const header = Buffer.from(JSON.stringify({ h: hub, t: target }));
  const out = Buffer.allocUnsafe(1 + NODE_ID_LENGTH + 4 + header.length + sectionSize(message));
  let at = out.writeUInt8(VERSION, 0);
  at += node.copy(out, at);
  at = out.writeUInt32BE(header.length, at);
  at += header.copy(out, at);
  writeSection(out, at, message);
  return out;
}

/** Size of the encodings section: u8 count | per protocol: u8 name length | name | u32 length | bytes. */
function sectionSize(message: EncodedMessage): number {
  let size = 1;
  for (const [name, bytes] of message) size += 1 + Buffer.byteLength(name) + 4 + bytes.length;
  return size;
}

function writeSection(out: Buffer, at: number, message: EncodedMessage): number {
  at = out.writeUInt8(message.size, at);
  for (const [name, bytes] of message) {
    const nameLength = out.write(name, at + 1);
    at = out.writeUInt8(nameLength, at) + nameLength;
    at = out.writeUInt32BE(bytes.length, at);
    out.set(bytes, at);
    at += bytes.length;
  }
  return at;
}

/** Reads an encodings section that must end exactly at the end of `data`; a reason when it does not. */
function readSection(data: Buffer, at: number): EncodedMessage | string {
  const count = data.readUInt8(at++);
  const message = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const nameLength = data.readUInt8(at++);
    const name = data.toString("utf8", at, (at += nameLength));
    const length = data.readUInt32BE(at);
    at += 4;
    if (at + length > data.length) return "truncated payload";
    message.set(name, data.subarray(at, (at += length)));
  }
  return at === data.length ? message : "trailing bytes";
}

/** Whether `data` is a send published by `node` (checked before any parsing: a server drops its own sends, which Redis echoes back). */
export function sentBy(data: Buffer, node: Buffer): boolean {
  return data.length > NODE_ID_LENGTH && data[0] === VERSION && node.compare(data, 1, 1 + NODE_ID_LENGTH) === 0;
}

/** A parsed envelope, or a reason it was dropped (another version, garbage, a bad target). */
export type Envelope = { readonly node: Buffer; readonly hub: string; readonly target: SendTarget; readonly message: EncodedMessage } | { readonly error: string };

function strings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function validTarget(value: unknown): value is SendTarget {
  if (value === null || typeof value !== "object") return false;
  const target = value as Record<string, unknown>;
  if (!KINDS.has(target.kind as string)) return false;
  if (target.excluded !== undefined && !strings(target.excluded)) return false;
  switch (target.kind) {
    case "connection":
      return typeof target.connectionId === "string";
    case "connections":
      return strings(target.connectionIds);
    case "group":
      return typeof target.group === "string";
    case "groups":
      return strings(target.groups);
    case "user":
      return typeof target.userId === "string";
    case "users":
      return strings(target.userIds);
    default:
      return true;
  }
}

export function readEnvelope(data: Buffer): Envelope {
  try {
    if (data.length < 1 + NODE_ID_LENGTH + 4 || data[0] !== VERSION) return { error: `unknown envelope version ${data[0]}` };
    let at = 1;
    const node = data.subarray(at, (at += NODE_ID_LENGTH));
    const targetLength = data.readUInt32BE(at);
    at += 4;
    if (at + targetLength > data.length) return { error: "truncated target" };
    const header: unknown = JSON.parse(data.toString("utf8", at, (at += targetLength)));
    if (header === null || typeof header !== "object") return { error: "malformed header" };
    const { h: hub, t: target } = header as { h?: unknown; t?: unknown };
    if (typeof hub !== "string" || !validTarget(target)) return { error: "malformed target" };
    const message = readSection(data, at);
    if (typeof message === "string") return { error: message };
    return { node, hub, target, message };
  } catch {
    return { error: "garbage" };
  }
}

/*
 * Commands for a connection of another server (group changes, client-results invocations and
 * their cancels) and their replies:
 *   u8 COMMAND | 16 bytes asking node id | u32 header length | header JSON {h: hub, i: request id, c: command}
 *     | for an invoke: the Invocation's encodings section (as in a send)
 *   u8 REPLY | u32 header length | header JSON {i: request id, e?: error text, p?: protocol name} | for p: the Completion's bytes
 */
export const COMMAND = 0x11;
export const REPLY = 0x12;

export function writeCommand(node: Buffer, hub: string, id: number, command: ConnectionCommand): Buffer {
  const { message, ...rest } = command as ConnectionCommand & { message?: EncodedMessage };
  const header = Buffer.from(JSON.stringify({ h: hub, i: id, c: rest }));
  const out = Buffer.allocUnsafe(1 + NODE_ID_LENGTH + 4 + header.length + (message === undefined ? 0 : sectionSize(message)));
  let at = out.writeUInt8(COMMAND, 0);
  at += node.copy(out, at);
  at = out.writeUInt32BE(header.length, at);
  at += header.copy(out, at);
  if (message !== undefined) writeSection(out, at, message);
  return out;
}

export type ParsedCommand = { readonly node: Buffer; readonly hub: string; readonly id: number; readonly command: ConnectionCommand } | { readonly error: string };

export function readCommand(data: Buffer): ParsedCommand {
  try {
    if (data.length < 1 + NODE_ID_LENGTH + 4) return { error: "truncated" };
    const node = data.subarray(1, 1 + NODE_ID_LENGTH);
    let at = 1 + NODE_ID_LENGTH;
    const headerLength = data.readUInt32BE(at);
    at += 4;
    if (at + headerLength > data.length) return { error: "truncated header" };
    const body: unknown = JSON.parse(data.toString("utf8", at, (at += headerLength)));
    const { h: hub, i: id, c } = (body ?? {}) as { h?: unknown; i?: unknown; c?: Record<string, unknown> | null };
    if (typeof hub !== "string" || !Number.isSafeInteger(id) || c === null || typeof c !== "object" || typeof c.connectionId !== "string") return { error: "malformed" };
    const connectionId = c.connectionId;
    const rest = at === data.length;
    switch (c.op) {
      case "add":
      case "remove":
        if (typeof c.group !== "string" || c.group.length === 0 || !rest) return { error: "malformed group command" };
        return { node, hub, id: id as number, command: { op: c.op, connectionId, group: c.group, persist: c.persist === true } };
      case "cancel":
        if (typeof c.invocationId !== "string" || !rest) return { error: "malformed cancel" };
        return { node, hub, id: id as number, command: { op: "cancel", connectionId, invocationId: c.invocationId } };
      case "invoke": {
        if (typeof c.invocationId !== "string" || typeof c.timeout !== "number" || !(c.timeout > 0) || rest) return { error: "malformed invoke" };
        const message = readSection(data, at);
        if (typeof message === "string") return { error: message };
        return { node, hub, id: id as number, command: { op: "invoke", connectionId, invocationId: c.invocationId, timeout: c.timeout, message } };
      }
      default:
        return { error: "unknown command" };
    }
  } catch {
    return { error: "garbage" };
  }
}

export function writeReply(id: number, answer: { readonly error?: string; readonly answer?: CommandAnswer }): Buffer {
  const completion = answer.answer?.completion;
  const header = Buffer.from(JSON.stringify(answer.error !== undefined ? { i: id, e: answer.error } : completion !== undefined ? { i: id, p: completion.protocol } : { i: id }));
  const out = Buffer.allocUnsafe(1 + 4 + header.length + (completion?.bytes.length ?? 0));
  let at = out.writeUInt8(REPLY, 0);
  at = out.writeUInt32BE(header.length, at);
  at += header.copy(out, at);
  if (completion !== undefined) out.set(completion.bytes, at);
  return out;
}

export function readReply(data: Buffer): { readonly id: number; readonly failure?: string; readonly answer?: CommandAnswer } | { readonly id?: undefined; readonly error: string } {
  try {
    const headerLength = data.readUInt32BE(1);
    if (5 + headerLength > data.length) return { error: "truncated" };
    const body = JSON.parse(data.toString("utf8", 5, 5 + headerLength)) as { i?: unknown; e?: unknown; p?: unknown };
    if (!Number.isSafeInteger(body?.i)) return { error: "malformed" };
    const id = body.i as number;
    if (typeof body.e === "string") return { id, failure: body.e };
    if (typeof body.p === "string") return { id, answer: { completion: { protocol: body.p, bytes: data.subarray(5 + headerLength) } } };
    return { id, answer: {} };
  } catch {
    return { error: "garbage" };
  }
}
