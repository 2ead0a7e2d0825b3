import {
  InvalidMessageError,
  MessageType,
  PING_MESSAGE,
  type AckMessage,
  type CancelInvocationMessage,
  type CloseMessage,
  type CompletionMessage,
  type HubMessage,
  type InvocationMessage,
  type MessageHeaders,
  type SequenceMessage,
  type StreamInvocationMessage,
  type StreamItemMessage,
} from "@switchboard/core";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type JsonObject = Record<string, unknown>;

/*
 * Strict validation of one parsed JSON record (reliability plan T04–T07). Rules:
 * - unknown extra properties are ignored; unknown integer `type` values are skipped;
 * - every field is read as an own property, so nothing on a (possibly polluted) prototype is seen;
 * - `invocationId`, where present, must be a non-empty string; `null` is refused (the JS client
 *   itself throws on it, and an empty id could never be answered);
 * - messages handed out are fresh objects holding only known fields; argument, item and result
 *   values are passed through exactly as `JSON.parse` built them, never merged into anything.
 */

function invalid(message: string): InvalidMessageError {
  return new InvalidMessageError(message);
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function own(object: JsonObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function readInvocationId(object: JsonObject, required: true): string;
function readInvocationId(object: JsonObject, required: false): string | undefined;
function readInvocationId(object: JsonObject, required: boolean): string | undefined {
  const id = own(object, "invocationId");
  if (id === undefined && !required) return undefined;
  if (typeof id !== "string" || id.length === 0) {
    throw invalid("Expected 'invocationId' to be a non-empty string.");
  }
  return id;
}

/** Copies headers key by key into a null-prototype object; `undefined` when absent or empty. */
function readHeaders(object: JsonObject): MessageHeaders | undefined {
  const raw = own(object, "headers");
  if (raw === undefined) return undefined;
  if (!isJsonObject(raw)) throw invalid("Expected 'headers' to be an object.");
  let headers: Record<string, string> | undefined;
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (typeof value !== "string") throw invalid("Expected header values to be strings.");
    // Own data property even for "__proto__": a null-prototype object has no such accessor.
    headers ??= Object.create(null) as Record<string, string>;
    headers[key] = value;
  }
  return headers;
}

function readStreamIds(object: JsonObject): readonly string[] | undefined {
  const raw = own(object, "streamIds");
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) throw invalid("Expected 'streamIds' to be an array of strings.");
  for (const id of raw) {
    if (typeof id !== "string") throw invalid("Expected 'streamIds' to be an array of strings.");
  }
  return raw as string[];
}

function readInvocation(object: JsonObject, type: 1 | 4): InvocationMessage | StreamInvocationMessage {
  const target = own(object, "target");
  if (typeof target !== "string" || target.length === 0) {
    throw invalid("Expected 'target' to be a non-empty string.");
  }
  const rawArguments = own(object, "arguments");
  // Missing arguments mean none, as in the official client.
  if (rawArguments !== undefined && !Array.isArray(rawArguments)) {
    throw invalid("Expected 'arguments' to be an array.");
  }
  const args = (rawArguments as unknown[] | undefined) ?? [];
  const streamIds = readStreamIds(object);
  const headers = readHeaders(object);
  let message: Mutable<InvocationMessage> | Mutable<StreamInvocationMessage>;
  if (type === MessageType.StreamInvocation) {
    message = { type, invocationId: readInvocationId(object, true), target, arguments: args };
  } else {
    message = { type, target, arguments: args };
    const invocationId = readInvocationId(object, false);
    if (invocationId !== undefined) message.invocationId = invocationId;
  }
  if (headers !== undefined) message.headers = headers;
  if (streamIds !== undefined) message.streamIds = streamIds;
  return message;
}

function readStreamItem(object: JsonObject): StreamItemMessage {
  const invocationId = readInvocationId(object, true);
  // The `item` key must be present; `null` is a valid item.
  if (!Object.hasOwn(object, "item")) throw invalid("Expected an 'item' property.");
  const headers = readHeaders(object);
  const message: Mutable<StreamItemMessage> = { type: 2, invocationId, item: object.item };
  if (headers !== undefined) message.headers = headers;
  return message;
}

function readCompletion(object: JsonObject): CompletionMessage {
  const invocationId = readInvocationId(object, true);
  const hasError = Object.hasOwn(object, "error");
  const hasResult = Object.hasOwn(object, "result");
  if (hasError && hasResult) throw invalid("The 'error' and 'result' properties are mutually exclusive.");
  const headers = readHeaders(object);
  const message: Mutable<CompletionMessage> = { type: 3, invocationId };
  if (headers !== undefined) message.headers = headers;
  if (hasError) {
    const error = object.error;
    if (typeof error !== "string") throw invalid("Expected 'error' to be a string.");
    message.error = error;
  } else if (hasResult) {
    message.hasResult = true;
    message.result = object.result;
  }
  return message;
}

function readCancelInvocation(object: JsonObject): CancelInvocationMessage {
  const invocationId = readInvocationId(object, true);
  const headers = readHeaders(object);
  const message: Mutable<CancelInvocationMessage> = { type: 5, invocationId };
  if (headers !== undefined) message.headers = headers;
  return message;
}

function readClose(object: JsonObject): CloseMessage {
  const message: Mutable<CloseMessage> = { type: 7 };
  if (Object.hasOwn(object, "error")) {
    if (typeof object.error !== "string") throw invalid("Expected 'error' to be a string.");
    message.error = object.error;
  }
  if (Object.hasOwn(object, "allowReconnect")) {
    if (typeof object.allowReconnect !== "boolean") throw invalid("Expected 'allowReconnect' to be a boolean.");
    message.allowReconnect = object.allowReconnect;
  }
  return message;
}

function readSequenceId(object: JsonObject): number {
  const sequenceId = own(object, "sequenceId");
  if (typeof sequenceId !== "number" || !Number.isSafeInteger(sequenceId) || sequenceId < 0) {
    throw invalid("Expected 'sequenceId' to be a non-negative integer.");
  }
  return sequenceId;
}

/**
 * Turns one parsed JSON record into a hub message.
 *
 * @returns the message, or `undefined` for an unknown (future) message type, which is skipped.
 * @throws InvalidMessageError when the record is not a valid hub message.
 */
export function readJsonMessage(value: unknown): HubMessage | undefined {
  if (!isJsonObject(value)) throw invalid("Expected a JSON object.");
  const type = own(value, "type");
  if (typeof type !== "number" || !Number.isInteger(type)) {
    throw invalid("Expected 'type' to be an integer.");
  }
  switch (type) {
    case MessageType.Invocation:
    case MessageType.StreamInvocation:
      return readInvocation(value, type);
    case MessageType.StreamItem:
      return readStreamItem(value);
    case MessageType.Completion:
      return readCompletion(value);
    case MessageType.CancelInvocation:
      return readCancelInvocation(value);
    case MessageType.Ping:
      return PING_MESSAGE;
    case MessageType.Close:
      return readClose(value);
    case MessageType.Ack:
    case MessageType.Sequence: {
      const message: AckMessage | SequenceMessage = { type, sequenceId: readSequenceId(value) };
      return message;
    }
    default:
      return undefined;
  }
}
