import type { HubMessage } from "./hub-messages.js";

/** How a protocol's bytes travel: text frames (JSON) or binary frames (MessagePack). */
export type TransferFormat = "text" | "binary";

/** Limits a parser enforces on untrusted input. Every size is in bytes. */
export interface ParserLimits {
  /** Largest accepted hub message (one record, without its separator or length prefix). */
  readonly maxMessageSize: number;
  /** Deepest accepted nesting of arrays and objects/maps inside a message. */
  readonly maxDepth: number;
}

/**
 * One connection's parser: it keeps an incomplete record between transport messages, so a record
 * may arrive in pieces, and several records may arrive in one piece.
 */
export interface HubMessageParser {
  /**
   * Parses every complete record in `data` (plus what was kept from earlier calls) and hands each
   * message to `onMessage`, in order. Unknown message types are skipped. An incomplete tail is
   * kept for the next call, bounded by `maxMessageSize`.
   *
   * @throws InvalidMessageError on framing or syntax errors and broken limits, after the messages
   * before the bad record were handed over. The connection must then be closed.
   */
  parse(data: Uint8Array, onMessage: (message: HubMessage) => void): void;
}

/**
 * A hub protocol (codec): the core knows nothing else about JSON or MessagePack.
 * Register instances with the server's `protocols` option; clients pick one by `name` in the handshake.
 */
export interface HubProtocol {
  /** The name clients send in the handshake, e.g. `"json"` or `"messagepack"`. */
  readonly name: string;
  /** Highest protocol version accepted in the handshake (1 or 2 for SignalR clients). */
  readonly version: number;
  readonly transferFormat: TransferFormat;
  /** Creates the per-connection parser. */
  createParser(limits: ParserLimits): HubMessageParser;
  /** Encodes one message as one complete record (with its separator or length prefix). */
  write(message: HubMessage): Uint8Array;
}
