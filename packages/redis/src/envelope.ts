import type { EncodedMessage, GroupCommand, SendTarget } from "@switchboard/core";

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
  const targetJson = Buffer.from(JSON.stringify({ h: hub, t: target }));
  let size = 1 + NODE_ID_LENGTH + 4 + targetJson.length + 1;
  const names: Buffer[] = [];
  for (const [name, bytes] of message) {
    const encodedName = Buffer.from(name);
    names.push(encodedName);
    size += 1 + encodedName.length + 4 + bytes.length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt8(VERSION, 0);
  at += node.copy(out, at);
  at = out.writeUInt32BE(targetJson.length, at);
  at += targetJson.copy(out, at);
  at = out.writeUInt8(message.size, at);
  let i = 0;
  for (const bytes of message.values()) {
    const name = names[i++]!;
    at = out.writeUInt8(name.length, at);
    at += name.copy(out, at);
    at = out.writeUInt32BE(bytes.length, at);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
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
    const count = data.readUInt8(at++);
    const message = new Map<string, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const nameLength = data.readUInt8(at++);
      const name = data.toString("utf8", at, (at += nameLength));
      const length = data.readUInt32BE(at);
      at += 4;
      if (at + length > data.length) return { error: "truncated payload" };
      message.set(name, data.subarray(at, (at += length)));
    }
    if (at !== data.length) return { error: "trailing bytes" };
    return { node, hub, target, message };
  } catch {
    return { error: "garbage" };
  }
}

/*
 * Group commands (a group change for a connection on another server) and their replies:
 *   u8 COMMAND | 16 bytes asking node id | JSON {h: hub, i: request id, c: command}
 *   u8 REPLY | JSON {i: request id, e?: error text}
 */
export const COMMAND = 0x11;
export const REPLY = 0x12;

export function writeCommand(node: Buffer, hub: string, id: number, command: GroupCommand): Buffer {
  return Buffer.concat([Uint8Array.of(COMMAND), node, Buffer.from(JSON.stringify({ h: hub, i: id, c: command }))]);
}

export function readCommand(data: Buffer): { readonly node: Buffer; readonly hub: string; readonly id: number; readonly command: GroupCommand } | { readonly error: string } {
  try {
    if (data.length < 1 + NODE_ID_LENGTH) return { error: "truncated" };
    const node = data.subarray(1, 1 + NODE_ID_LENGTH);
    const body: unknown = JSON.parse(data.toString("utf8", 1 + NODE_ID_LENGTH));
    const { h: hub, i: id, c: command } = (body ?? {}) as { h?: unknown; i?: unknown; c?: Record<string, unknown> };
    if (typeof hub !== "string" || !Number.isSafeInteger(id) || command === null || typeof command !== "object") return { error: "malformed" };
    if ((command.op !== "add" && command.op !== "remove") || typeof command.connectionId !== "string" || typeof command.group !== "string" || command.group.length === 0) return { error: "malformed command" };
    return { node, hub, id: id as number, command: { op: command.op, connectionId: command.connectionId, group: command.group, persist: command.persist === true } };
  } catch {
    return { error: "garbage" };
  }
}

export function writeReply(id: number, error?: string): Buffer {
  return Buffer.concat([Uint8Array.of(REPLY), Buffer.from(JSON.stringify(error === undefined ? { i: id } : { i: id, e: error }))]);
}

export function readReply(data: Buffer): { readonly id: number; readonly failure?: string } | { readonly id?: undefined; readonly error: string } {
  try {
    const body = JSON.parse(data.toString("utf8", 1)) as { i?: unknown; e?: unknown };
    if (!Number.isSafeInteger(body?.i)) return { error: "malformed" };
    return typeof body.e === "string" ? { id: body.i as number, failure: body.e } : { id: body.i as number };
  } catch {
    return { error: "garbage" };
  }
}
