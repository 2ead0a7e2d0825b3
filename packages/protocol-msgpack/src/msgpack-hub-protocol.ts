/**
 * The SignalR MessagePack hub protocol ("messagepack", ../shared/signalr-protocol.md §6) on top of
 * `@msgpack/msgpack` 3.x.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import {
  InvalidMessageError,
  MessageType,
  OptionsError,
  type HubMessage,
  type HubMessageParser,
  type HubProtocol,
  type ParserLimits,
} from "@switchboard/core";
import { hubMessageFields, readHubMessage } from "./message-layout.js";
import { MessagePackScanner, repairInvalidStrings, SCAN_HAS_BINARY, SCAN_HAS_INVALID_UTF8 } from "./msgpack-scanner.js";
import { frame, VarIntFrameReader } from "./varint-framing.js";

/** Options of {@link MessagePackHubProtocol}. Every option is optional; the defaults are safe. */
export interface MessagePackHubProtocolOptions {
  /**
   * How 64-bit integers (`cf` uint64 / `d3` int64, as .NET clients write `long` values) are handled.
   *
   * - `false` (default, like the JS client): they decode to JS numbers. Values beyond ±2^53 lose
   *   precision but never throw. Writing a `bigint` throws (as in the JS client).
   * - `true`: every `cf`/`d3` value decodes to a `bigint`, even a small one, and `bigint` values are
   *   written as int64/uint64. Per `@msgpack/msgpack`, JS numbers outside the 32-bit integer range
   *   are then written as float64. Message fields (type, result kind, sequence id) are converted
   *   back to numbers either way.
   */
  readonly useBigInt64?: boolean;
}

/** Upper bound of every `@msgpack/msgpack` length limit. */
const UINT32_MAX = 0xffff_ffff;

/** The Ping record (`02 91 06`), built once; `write` hands out copies. */
const PING_RECORD = frame(Uint8Array.of(0x91, 0x06));

/**
 * The MessagePack hub protocol: name `"messagepack"`, version 2, binary transfer format. One
 * instance serves every connection; it holds one reused encoder, and each parser holds its own
 * decoder (`@msgpack/msgpack` decoders are not reentrant).
 *
 * Reading (see {@link MessagePackHubProtocol.createParser}):
 * - `limits.maxMessageSize` bounds the body of one record; the VarInt prefix does not count. A
 *   larger announced length throws `MessageTooLargeError` as soon as the prefix is read.
 * - Nesting depth counts arrays and maps; the message's own array is depth 1 (so the arguments
 *   array is depth 2 and an argument that is an array is depth 3). Deeper than `limits.maxDepth`
 *   throws `NestingTooDeepError`, checked by a pre-scan before anything is decoded.
 * - Values: nil → `null`, bin → `Uint8Array` (its own copy, never a view into transport
 *   buffers), timestamp ext −1 → `Date`, other ext → `ExtData`, maps → plain objects. A map key
 *   `__proto__` or a key that is not a string or number is rejected (`InvalidMessageError`), so
 *   decoded values cannot touch any prototype.
 * - Invalid UTF-8 in a str (values and map keys) is accepted lossily: each invalid sequence becomes
 *   U+FFFD, as `TextDecoder` and .NET's `Encoding.UTF8` do. It never throws.
 * - Every other fault throws `InvalidMessageError` with a short generic text; the library's error,
 *   if any, is its `cause`.
 *
 * Writing: Date → timestamp ext −1, `Uint8Array` → bin, `null`/`undefined` → nil; nesting deeper
 * than 100 or values such as functions and symbols make `write` throw the encoder's `Error`.
 */
export class MessagePackHubProtocol implements HubProtocol {
  /** The handshake name. */
  readonly name = "messagepack";
  /** Highest accepted handshake version (2 enables stateful reconnect). */
  readonly version = 2;
  /** MessagePack records travel in binary frames. */
  readonly transferFormat = "binary";
  readonly #useBigInt64: boolean;
  readonly #encoder: Encoder;

  /** @throws OptionsError for an option of the wrong type. */
  constructor(options: MessagePackHubProtocolOptions = {}) {
    const useBigInt64 = options.useBigInt64 ?? false;
    if (typeof useBigInt64 !== "boolean") throw new OptionsError("useBigInt64 must be a boolean.");
    this.#useBigInt64 = useBigInt64;
    this.#encoder = new Encoder({ useBigInt64 });
  }

  /**
   * Creates one connection's parser.
   *
   * @throws OptionsError unless `maxMessageSize` is a number ≥ 1 and `maxDepth` an integer ≥ 1.
   */
  createParser(limits: ParserLimits): HubMessageParser {
    const { maxMessageSize, maxDepth } = limits;
    if (!(maxMessageSize >= 1)) throw new OptionsError("maxMessageSize must be at least 1.");
    if (!Number.isInteger(maxDepth) || maxDepth < 1) throw new OptionsError("maxDepth must be an integer of at least 1.");
    return new MessagePackHubMessageParser(maxMessageSize, maxDepth, this.#useBigInt64);
  }

  /**
   * Encodes one message as one framed record in a new `Uint8Array` the caller owns. Costs one
   * encode into the reused encoder buffer and one copy into the record.
   *
   * @throws Error from the encoder for values it cannot write (see the class notes).
   */
  write(message: HubMessage): Uint8Array {
    if (message.type === MessageType.Ping) return PING_RECORD.slice();
    return frame(this.#encoder.encodeSharedRef(hubMessageFields(message)));
  }
}

/** One connection's parser: framing, then pre-scan, then decode, then the body layout. */
class MessagePackHubMessageParser implements HubMessageParser {
  readonly #frames: VarIntFrameReader;
  readonly #scanner: MessagePackScanner;
  readonly #decoder: Decoder;

  constructor(maxMessageSize: number, maxDepth: number, useBigInt64: boolean) {
    const maxLength = Math.min(maxMessageSize, UINT32_MAX);
    this.#frames = new VarIntFrameReader(maxMessageSize);
    this.#scanner = new MessagePackScanner(maxDepth);
    this.#decoder = new Decoder({
      useBigInt64,
      // The pre-scan already bounds every length by the body size; these are a second line.
      maxArrayLength: maxLength,
      maxMapLength: maxLength,
      maxBinLength: maxLength,
      maxExtLength: maxLength,
      // A repaired string (invalid UTF-8 → U+FFFD) can be up to 3 times its original length.
      maxStrLength: Math.min(maxLength * 3, UINT32_MAX),
    });
  }

  parse(data: Uint8Array, onMessage: (message: HubMessage) => void): void {
    const frames = this.#frames;
    frames.push(data);
    // Decode and hand over each record before reading the next, so a bad record later in the
    // chunk throws only after the good ones before it were delivered.
    for (let body = frames.next(); body !== undefined; body = frames.next()) {
      const message = readHubMessage(this.#decode(body));
      if (message !== undefined) onMessage(message);
    }
  }

  #decode(body: Uint8Array): unknown {
    const head = body[0]!;
    // Only an array (fixarray, array 16, array 32) can be a hub message: refuse anything else unread.
    if (head < 0x90 || (head > 0x9f && head !== 0xdc && head !== 0xdd)) {
      throw new InvalidMessageError("Invalid message payload.");
    }
    const scanner = this.#scanner;
    const flags = scanner.scan(body);
    let bytes = body;
    if ((flags & SCAN_HAS_INVALID_UTF8) !== 0) {
      bytes = repairInvalidStrings(body, scanner.invalidStrings);
    } else if ((flags & SCAN_HAS_BINARY) !== 0) {
      // The decoder returns bin data as views into its input: give it a private copy so decoded
      // values neither alias nor keep alive the transport's buffers.
      bytes = body.slice();
    }
    try {
      return this.#decoder.decode(bytes);
    } catch (cause) {
      throw new InvalidMessageError("Invalid MessagePack data.", { cause });
    }
  }
}
