/**
 * The SignalR hub messages (HubProtocol.md; ../shared/signalr-protocol.md §4), as a readonly
 * discriminated union on `type`. Codecs translate between these objects and the wire.
 */

/** Numeric message types of the SignalR hub protocol. */
export const MessageType = {
  Invocation: 1,
  StreamItem: 2,
  Completion: 3,
  StreamInvocation: 4,
  CancelInvocation: 5,
  Ping: 6,
  Close: 7,
  Ack: 8,
  Sequence: 9,
} as const;

/** Optional string → string map carried by message types 1–5. Always a null-prototype object when parsed. */
export type MessageHeaders = Readonly<Record<string, string>>;

/** Type 1. Without `invocationId` the receiver must not answer ("fire and forget"). */
export interface InvocationMessage {
  readonly type: 1;
  readonly headers?: MessageHeaders;
  readonly invocationId?: string;
  readonly target: string;
  readonly arguments: readonly unknown[];
  readonly streamIds?: readonly string[];
}

/** Type 2: one item of a server→client stream or a client→server upload stream. */
export interface StreamItemMessage {
  readonly type: 2;
  readonly headers?: MessageHeaders;
  readonly invocationId: string;
  readonly item: unknown;
}

/**
 * Type 3. Exactly one of three shapes:
 * - `error` set: the invocation failed (MessagePack result kind 1);
 * - `hasResult` true: `result` is the value, `null` allowed (kind 3);
 * - neither: a void completion (kind 2), also used to end streams.
 */
export interface CompletionMessage {
  readonly type: 3;
  readonly headers?: MessageHeaders;
  readonly invocationId: string;
  readonly error?: string;
  readonly hasResult?: boolean;
  readonly result?: unknown;
}

/** Type 4: a client asks for a server→client stream. */
export interface StreamInvocationMessage {
  readonly type: 4;
  readonly headers?: MessageHeaders;
  readonly invocationId: string;
  readonly target: string;
  readonly arguments: readonly unknown[];
  readonly streamIds?: readonly string[];
}

/** Type 5: the client cancels a stream it asked for. */
export interface CancelInvocationMessage {
  readonly type: 5;
  readonly headers?: MessageHeaders;
  readonly invocationId: string;
}

/** Type 6: keep-alive. Carries nothing. */
export interface PingMessage {
  readonly type: 6;
}

/** Type 7: the sender is closing. `allowReconnect` is only meaningful from server to client. */
export interface CloseMessage {
  readonly type: 7;
  readonly error?: string;
  readonly allowReconnect?: boolean;
}

/** Type 8: stateful reconnect acknowledgement (protocol version 2). */
export interface AckMessage {
  readonly type: 8;
  readonly sequenceId: number;
}

/** Type 9: stateful reconnect sequence reset (protocol version 2). */
export interface SequenceMessage {
  readonly type: 9;
  readonly sequenceId: number;
}

export type HubMessage =
  | InvocationMessage
  | StreamItemMessage
  | CompletionMessage
  | StreamInvocationMessage
  | CancelInvocationMessage
  | PingMessage
  | CloseMessage
  | AckMessage
  | SequenceMessage;

/** The Ping message; immutable, shared. */
export const PING_MESSAGE: PingMessage = Object.freeze({ type: MessageType.Ping });
