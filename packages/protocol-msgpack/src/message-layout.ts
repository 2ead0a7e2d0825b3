/**
 * The MessagePack body layouts of hub messages (../shared/signalr-protocol.md §6.2): each body is an
 * array whose element 0 is the message type. Reading checks element types strictly and element
 * counts as a minimum (extra elements are ignored); unknown types are skipped.
 */
import {
  InvalidMessageError,
  MessageType,
  PING_MESSAGE,
  type CancelInvocationMessage,
  type CloseMessage,
  type CompletionMessage,
  type HubMessage,
  type InvocationMessage,
  type MessageHeaders,
  type StreamInvocationMessage,
  type StreamItemMessage,
} from "@switchboard/core";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Completion result kinds (§6.2). */
const RESULT_ERROR = 1;
const RESULT_VOID = 2;
const RESULT_VALUE = 3;

/** Shared, never mutated: the encoder only reads them. */
const EMPTY_HEADERS: MessageHeaders = Object.freeze(Object.create(null) as Record<string, string>);
const EMPTY_IDS: readonly string[] = Object.freeze([]);

const MESSAGE_NAMES: Readonly<Record<number, string>> = {
  1: "Invocation", 2: "StreamItem", 3: "Completion", 4: "StreamInvocation", 5: "CancelInvocation",
  6: "Ping", 7: "Close", 8: "Ack", 9: "Sequence",
};

function invalid(type: number): InvalidMessageError {
  return new InvalidMessageError(`Invalid payload for ${MESSAGE_NAMES[type] ?? "a"} message.`);
}

const MIN_SAFE_BIGINT = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/** An integer in any MessagePack integer encoding; 64-bit ones may arrive as bigint (`useBigInt64`). */
function toInteger(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) ? value : undefined;
  if (typeof value === "bigint") {
    return value >= MIN_SAFE_BIGINT && value <= MAX_SAFE_BIGINT ? Number(value) : undefined;
  }
  return undefined;
}

/** A decoded map is a plain object; arrays, `Date`, `Uint8Array` and ext data have other prototypes. */
function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** Headers: a map of string values, copied into a null-prototype object; an empty map gives `undefined`. */
function readHeaders(value: unknown, type: number): MessageHeaders | undefined {
  if (!isMap(value)) throw invalid(type);
  let headers: Record<string, string> | undefined;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const headerValue = value[key];
    if (typeof headerValue !== "string") throw invalid(type);
    headers ??= Object.create(null) as Record<string, string>;
    headers[key] = headerValue;
  }
  return headers;
}

function readId(value: unknown, type: number): string {
  if (typeof value !== "string" || value === "") throw invalid(type);
  return value;
}

/** streamIds (element 5): read only when present, like ASP.NET; an empty array gives `undefined`. */
function readStreamIds(fields: readonly unknown[], type: number): readonly string[] | undefined {
  if (fields.length <= 5) return undefined;
  const value = fields[5];
  if (!Array.isArray(value)) throw invalid(type);
  for (const id of value) readId(id, type);
  return value.length === 0 ? undefined : (value as string[]);
}

function readInvocation(fields: readonly unknown[], type: 1 | 4): InvocationMessage | StreamInvocationMessage {
  if (fields.length < 5) throw invalid(type);
  const headers = readHeaders(fields[1], type);
  const rawId = fields[2];
  const target = fields[3];
  const args = fields[4];
  if (typeof target !== "string" || target === "" || !Array.isArray(args)) throw invalid(type);
  const streamIds = readStreamIds(fields, type);
  let message: Mutable<InvocationMessage> | Mutable<StreamInvocationMessage>;
  if (type === MessageType.StreamInvocation) {
    message = { type, invocationId: readId(rawId, type), target, arguments: args };
  } else {
    message = { type, target, arguments: args };
    // nil or "" = no response expected (§6.2, what the JS client accepts).
    if (rawId !== null && rawId !== "") message.invocationId = readId(rawId, type);
  }
  if (headers !== undefined) message.headers = headers;
  if (streamIds !== undefined) message.streamIds = streamIds;
  return message;
}

function readCompletion(fields: readonly unknown[]): CompletionMessage {
  const type = MessageType.Completion;
  if (fields.length < 4) throw invalid(type);
  const headers = readHeaders(fields[1], type);
  const message: Mutable<CompletionMessage> = { type, invocationId: readId(fields[2], type) };
  if (headers !== undefined) message.headers = headers;
  switch (toInteger(fields[3])) {
    case RESULT_ERROR: {
      const error = fields[4];
      if (fields.length < 5 || typeof error !== "string") throw invalid(type);
      message.error = error;
      break;
    }
    case RESULT_VOID:
      break;
    case RESULT_VALUE:
      if (fields.length < 5) throw invalid(type);
      message.hasResult = true;
      message.result = fields[4];
      break;
    default:
      throw invalid(type);
  }
  return message;
}

function readStreamItemOrCancel(fields: readonly unknown[], type: 2 | 5): StreamItemMessage | CancelInvocationMessage {
  if (fields.length < (type === MessageType.StreamItem ? 4 : 3)) throw invalid(type);
  const headers = readHeaders(fields[1], type);
  const invocationId = readId(fields[2], type);
  const message: Mutable<StreamItemMessage> | Mutable<CancelInvocationMessage> =
    type === MessageType.StreamItem ? { type, invocationId, item: fields[3] } : { type, invocationId };
  if (headers !== undefined) message.headers = headers;
  return message;
}

function readClose(fields: readonly unknown[]): CloseMessage {
  const type = MessageType.Close;
  if (fields.length < 2) throw invalid(type);
  const error = fields[1];
  const allowReconnect = fields.length > 2 ? fields[2] : null;
  if ((error !== null && typeof error !== "string") || (allowReconnect !== null && typeof allowReconnect !== "boolean")) {
    throw invalid(type);
  }
  const message: Mutable<CloseMessage> = { type };
  if (error !== null) message.error = error;
  if (allowReconnect === true) message.allowReconnect = true;
  return message;
}

function readSequenceId(fields: readonly unknown[], type: 8 | 9): number {
  const sequenceId = fields.length < 2 ? undefined : toInteger(fields[1]);
  if (sequenceId === undefined || sequenceId < 0 || !Number.isSafeInteger(sequenceId)) throw invalid(type);
  return sequenceId;
}

/**
 * Turns one decoded body into a hub message. Returns `undefined` for an unknown message type (the
 * caller skips it). Returned objects are fresh; headers are null-prototype objects.
 *
 * @throws InvalidMessageError when the body is not an array, element 0 is not an integer, or a known
 * message has too few elements or an element of the wrong type.
 */
export function readHubMessage(body: unknown): HubMessage | undefined {
  if (!Array.isArray(body) || body.length === 0) throw new InvalidMessageError("Invalid message payload.");
  const type = toInteger(body[0]);
  if (type === undefined) throw new InvalidMessageError("Invalid message payload.");
  switch (type) {
    case MessageType.Invocation:
    case MessageType.StreamInvocation:
      return readInvocation(body, type);
    case MessageType.StreamItem:
    case MessageType.CancelInvocation:
      return readStreamItemOrCancel(body, type);
    case MessageType.Completion:
      return readCompletion(body);
    case MessageType.Ping:
      return PING_MESSAGE;
    case MessageType.Close:
      return readClose(body);
    case MessageType.Ack:
    case MessageType.Sequence:
      return { type, sequenceId: readSequenceId(body, type) };
    default:
      return undefined;
  }
}

/**
 * The body array for one hub message, in ASP.NET's shapes: Invocation and StreamInvocation always
 * carry 6 elements (empty streamIds), headers default to an empty map, Completion picks result kind
 * 1 (error set), 3 (`hasResult`) or 2, and Close always carries 3 elements.
 *
 * @throws TypeError for an object that is not a hub message.
 */
export function hubMessageFields(message: HubMessage): unknown[] {
  switch (message.type) {
    case MessageType.Invocation:
    case MessageType.StreamInvocation:
      return [message.type, message.headers ?? EMPTY_HEADERS, message.invocationId ?? null, message.target,
        message.arguments, message.streamIds ?? EMPTY_IDS];
    case MessageType.StreamItem:
      return [message.type, message.headers ?? EMPTY_HEADERS, message.invocationId, message.item];
    case MessageType.Completion: {
      const headers = message.headers ?? EMPTY_HEADERS;
      if (message.error !== undefined) return [message.type, headers, message.invocationId, RESULT_ERROR, message.error];
      if (message.hasResult === true) return [message.type, headers, message.invocationId, RESULT_VALUE, message.result];
      return [message.type, headers, message.invocationId, RESULT_VOID];
    }
    case MessageType.CancelInvocation:
      return [message.type, message.headers ?? EMPTY_HEADERS, message.invocationId];
    case MessageType.Ping:
      return [message.type];
    case MessageType.Close:
      return [message.type, message.error ?? null, message.allowReconnect === true];
    case MessageType.Ack:
    case MessageType.Sequence:
      return [message.type, message.sequenceId];
    default:
      throw new TypeError("Not a hub message.");
  }
}
