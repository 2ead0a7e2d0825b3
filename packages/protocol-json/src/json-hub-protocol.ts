import {
  InvalidMessageError,
  NestingTooDeepError,
  OptionsError,
  type HubMessage,
  type HubMessageParser,
  type HubProtocol,
  type ParserLimits,
  type TransferFormat,
} from "@switchboard/core";
import { readJsonMessage } from "./json-message-reader.js";
import { writeJsonRecord } from "./json-message-writer.js";
import { exceedsNestingDepth } from "./nesting-depth.js";
import { TextRecordSplitter } from "./text-framing.js";

// Not fatal: `ws` already refuses invalid UTF-8 in text frames (close 1007). The BOM is kept so
// that JSON.parse refuses it instead of it being dropped silently.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

function noMessage(): void {}

/** One connection's JSON parser: framing, then depth pre-scan, then JSON.parse, then validation. */
class JsonHubMessageParser implements HubMessageParser {
  readonly #splitter: TextRecordSplitter;
  readonly #maxDepth: number;
  #onMessage: (message: HubMessage) => void = noMessage;

  constructor(limits: ParserLimits) {
    this.#splitter = new TextRecordSplitter(limits.maxMessageSize);
    this.#maxDepth = limits.maxDepth;
  }

  parse(data: Uint8Array, onMessage: (message: HubMessage) => void): void {
    this.#onMessage = onMessage;
    try {
      // A shared method called on this parser: no closure per connection.
      this.#splitter.split(data, JsonHubMessageParser.#parseRecord, this);
    } finally {
      this.#onMessage = noMessage;
    }
  }

  static #parseRecord(this: JsonHubMessageParser, record: Uint8Array): void {
    if (exceedsNestingDepth(record, this.#maxDepth)) throw new NestingTooDeepError(this.#maxDepth);
    let value: unknown;
    try {
      value = JSON.parse(decoder.decode(record));
    } catch (cause) {
      // The parser's text may quote the payload: keep it as the cause, never in the message.
      throw new InvalidMessageError("Error reading JSON.", { cause });
    }
    const message = readJsonMessage(value);
    if (message !== undefined) this.#onMessage(message);
  }
}

function isPositiveInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

/**
 * The SignalR JSON hub protocol (`"json"`, versions 1 and 2, text frames): each message is one
 * JSON object followed by the record separator `0x1E`.
 *
 * Parsing is strict (see the reliability plan, section A): framing, syntax, limit and field-type
 * errors throw, unknown message types are skipped, unknown extra properties are ignored. Error
 * messages are short and never quote the payload; the `JSON.parse` error is kept as `cause`.
 *
 * Limits, both checked before the work they guard:
 * - `maxMessageSize`: bytes of one record WITHOUT its separator; exactly `maxMessageSize` is
 *   accepted, one more byte throws `MessageTooLargeError`;
 * - `maxDepth`: nested arrays and objects, the message object itself being depth 1 (so with 64 an
 *   argument may nest 62 levels below the `arguments` array); deeper throws `NestingTooDeepError`.
 *
 * Writing mirrors ASP.NET's output byte for byte (signalr-protocol.md §10.1).
 */
export class JsonHubProtocol implements HubProtocol {
  /** The handshake name, `"json"`. */
  readonly name = "json";
  /** Highest accepted handshake version: 2 (stateful reconnect); 1 is accepted too. */
  readonly version = 2;
  /** JSON travels in text frames. */
  readonly transferFormat: TransferFormat = "text";

  /**
   * Creates the parser for one connection.
   *
   * @throws OptionsError unless both limits are positive integers.
   */
  createParser(limits: ParserLimits): HubMessageParser {
    if (!isPositiveInteger(limits.maxMessageSize)) {
      throw new OptionsError("maxMessageSize must be a positive integer.");
    }
    if (!isPositiveInteger(limits.maxDepth)) throw new OptionsError("maxDepth must be a positive integer.");
    return new JsonHubMessageParser(limits);
  }

  /**
   * Encodes one message as UTF-8 JSON followed by `0x1E`. A fresh buffer is returned on every call.
   *
   * Field order and omissions follow ASP.NET: `type` first; `headers` only when non-empty;
   * `invocationId` only when defined; Completion carries `error` if defined, else `result` if
   * `hasResult` (a `null` or `undefined` result is written as `null`), else neither; StreamItem
   * always has `item`; Close has `error` only when defined and `allowReconnect` only when true;
   * `streamIds` only when non-empty.
   *
   * @throws what `JSON.stringify` throws for a payload (BigInt, cycles); the caller decides.
   */
  write(message: HubMessage): Uint8Array {
    return Buffer.from(writeJsonRecord(message), "utf8");
  }
}
