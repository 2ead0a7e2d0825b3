import type { TransferFormat } from "./hub-protocol.js";

/**
 * One encoded record, shared by every recipient of a send. A transport may cache a prepared wire
 * form (e.g. a complete WebSocket frame) with `cache`, so a group fan-out builds the frame once
 * and writes the same bytes to every socket.
 */
export class SerializedRecord {
  /** The record as the protocol wrote it (separator or length prefix included). */
  readonly bytes: Uint8Array;
  #cacheKey: symbol | undefined = undefined;
  #cacheValue: unknown = undefined;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /**
   * The wire form cached under `key` (one symbol per transport kind), or undefined. One slot:
   * records are normally written by one kind of transport, and another kind simply replaces it.
   */
  cached(key: symbol): unknown {
    return this.#cacheKey === key ? this.#cacheValue : undefined;
  }

  cache(key: symbol, value: unknown): void {
    this.#cacheKey = key;
    this.#cacheValue = value;
  }
}

/**
 * What the core needs from one transport connection (a WebSocket, later an SSE stream or a
 * long-polling channel). Implementations must never throw from these methods.
 */
export interface TransportConnection {
  /** The transfer formats this transport can carry; a protocol needing another is refused at the handshake. */
  readonly transferFormats: readonly TransferFormat[];
  /** Bytes handed to `write` that are not yet on the network (the slow-consumer cap reads it). */
  readonly bufferedAmount: number;
  /**
   * Sends records `[0, count)` of `records` as ONE transport message, in order (records are never
   * split across messages). `format` says whether the message is text or binary. A group send
   * of several records hands each member the same frozen array; a frozen array never changes, so
   * a transport may reuse what it built from one (a framed message, say) when it comes again.
   */
  write(records: readonly SerializedRecord[], count: number, format: TransferFormat): void;
  /**
   * Closes the transport. The core is told through {@link ConnectionHandle.transportClosed}. Called
   * at most once per connection, possibly after the transport itself reported closing: then it
   * must do nothing.
   */
  close(): void;
  /** Stops reading from the client (receive-side back-pressure) until `resume()`. */
  pause(): void;
  resume(): void;
}

/** What a transport needs from the core for one connection it accepted. */
export interface ConnectionHandle {
  /** The public connection id (given to clients and used for addressing). */
  readonly connectionId: string;
  /** Data received from the client; the first bytes are the handshake. */
  receive(data: Uint8Array): void;
  /** The transport has closed (by the client, the network or `close()`); `error` if abnormal. */
  transportClosed(error?: Error): void;
}

/** The SignalR transports, by the names negotiate uses (§2). */
export type TransportType = "WebSockets" | "ServerSentEvents" | "LongPolling";

/** Every transport, in the order negotiate lists them (the client's preference order). */
export const TRANSPORT_TYPES: readonly TransportType[] = Object.freeze(["WebSockets", "ServerSentEvents", "LongPolling"]);

/**
 * The request facts a transport passes to the core when a connection starts. A connection keeps
 * them for its whole life, so a transport should keep them compact (the WebSocket transport keeps
 * the query as the URL string until it is read, and leaves out the handshake-only headers).
 */
export interface ConnectionRequest {
  /** Query parameters of the connect request (the first value of each name), read-only; a `ReadonlyMap`, not necessarily a `Map`. */
  readonly query: ReadonlyMap<string, string>;
  /**
   * Lower-cased request headers. Transports may leave out the headers only the transport itself
   * uses (`connection`, `upgrade`, `sec-websocket-key`, `sec-websocket-version`, `sec-websocket-extensions`).
   */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly remoteAddress: string | undefined;
  /**
   * The transport the connection runs on, when known. `LongPolling` has inherent keep-alive (as in
   * ASP.NET): its connections get no Ping and no client timeout; the transport ends a client that
   * stops polling.
   */
  readonly transport?: TransportType;
}
