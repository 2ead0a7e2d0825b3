/**
 * A bounded, non-recursive pre-scan of one MessagePack value, run before `@msgpack/msgpack` decodes
 * it. `@msgpack/msgpack` 3.x has no nesting limit and pre-allocates arrays of the declared length, so
 * the scan rejects, before anything is decoded or allocated:
 * - nesting deeper than `maxDepth` (containers only; the outermost container is depth 1);
 * - declared str/bin/ext lengths or array/map counts that cannot fit in the remaining bytes;
 * - truncation, the reserved byte 0xc1, and bytes after the value.
 * It also notes what the decode step must know: binary data (returned by the decoder as views into
 * the input) and str values holding invalid UTF-8.
 */
import { isUtf8 } from "node:buffer";
import { InvalidMessageError, NestingTooDeepError } from "@switchboard/core";

/** Scan flag: the value holds bin data or a non-timestamp ext, which decode to views into the input. */
export const SCAN_HAS_BINARY = 1;

/** Scan flag: some str (value or map key) holds invalid UTF-8; see {@link MessagePackScanner.invalidStrings}. */
export const SCAN_HAS_INVALID_UTF8 = 2;

/** The timestamp extension type (−1) as an unsigned byte: it decodes to a `Date`, not to a view. */
const TIMESTAMP_EXT_TYPE_BYTE = 0xff;

function malformed(): InvalidMessageError {
  return new InvalidMessageError("Invalid MessagePack data.");
}

/** Reads a big-endian unsigned length of `size` (1, 2 or 4) bytes at `position`, bounds-checked. */
function readLength(bytes: Uint8Array, position: number, size: number): number {
  if (position + size > bytes.length) throw malformed();
  let value = 0;
  for (let i = 0; i < size; i++) value = value * 0x100 + bytes[position + i]!;
  return value;
}

/**
 * Reusable scanner (one per connection parser). Its memory is bounded by `maxDepth` numbers: it keeps
 * one counter per open container and refuses to open more than `maxDepth`.
 */
export class MessagePackScanner {
  /** Offsets of the str values (their first byte) that hold invalid UTF-8, filled by the last `scan`. */
  readonly invalidStrings: number[] = [];
  readonly #maxDepth: number;
  /** Items still to read in each open container, outermost first. */
  readonly #remaining: number[] = [];

  /** @param maxDepth deepest accepted container nesting, ≥ 1. */
  constructor(maxDepth: number) {
    this.#maxDepth = maxDepth;
  }

  /**
   * Checks that `bytes` is exactly one well-formed MessagePack value within the depth limit.
   * Cost is linear in `bytes.length`; nothing is allocated per item.
   *
   * @returns a bit set of {@link SCAN_HAS_BINARY} and {@link SCAN_HAS_INVALID_UTF8}.
   * @throws NestingTooDeepError when containers nest deeper than `maxDepth`.
   * @throws InvalidMessageError for any other malformation.
   */
  scan(bytes: Uint8Array): number {
    const remaining = this.#remaining;
    const maxDepth = this.#maxDepth;
    const end = bytes.length;
    remaining.length = 0;
    this.invalidStrings.length = 0;
    let flags = 0;
    let position = 0;

    for (;;) {
      if (position >= end) throw malformed();
      const start = position;
      const head = bytes[position++]!;
      let items = -1; // ≥ 0 for a container: how many items (keys and values) follow
      let skip = 0; // payload bytes to step over
      let isString = false;

      if (head < 0x80 || head >= 0xe0) {
        // positive or negative fixint
      } else if (head < 0x90) {
        items = (head & 0x0f) * 2;
      } else if (head < 0xa0) {
        items = head & 0x0f;
      } else if (head < 0xc0) {
        skip = head & 0x1f;
        isString = true;
      } else {
        switch (head) {
          case 0xc0: // nil
          case 0xc2: // false
          case 0xc3: // true
            break;
          case 0xcc: case 0xd0: skip = 1; break;
          case 0xcd: case 0xd1: skip = 2; break;
          case 0xca: case 0xce: case 0xd2: skip = 4; break;
          case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
          case 0xd9: case 0xda: case 0xdb: { // str 8/16/32
            const size = 1 << (head - 0xd9);
            skip = readLength(bytes, position, size);
            position += size;
            isString = true;
            break;
          }
          case 0xc4: case 0xc5: case 0xc6: { // bin 8/16/32
            const size = 1 << (head - 0xc4);
            skip = readLength(bytes, position, size);
            position += size;
            flags |= SCAN_HAS_BINARY;
            break;
          }
          case 0xc7: case 0xc8: case 0xc9: { // ext 8/16/32: length, type byte, data
            const size = 1 << (head - 0xc7);
            skip = readLength(bytes, position, size) + 1;
            position += size;
            if (skip <= end - position && bytes[position] !== TIMESTAMP_EXT_TYPE_BYTE) flags |= SCAN_HAS_BINARY;
            break;
          }
          case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: // fixext 1/2/4/8/16: type byte, data
            skip = 1 + (1 << (head - 0xd4));
            if (skip <= end - position && bytes[position] !== TIMESTAMP_EXT_TYPE_BYTE) flags |= SCAN_HAS_BINARY;
            break;
          case 0xdc: case 0xdd: { // array 16/32
            const size = head === 0xdc ? 2 : 4;
            items = readLength(bytes, position, size);
            position += size;
            break;
          }
          case 0xde: case 0xdf: { // map 16/32
            const size = head === 0xde ? 2 : 4;
            items = readLength(bytes, position, size) * 2;
            position += size;
            break;
          }
          default: // 0xc1: never used
            throw malformed();
        }
      }

      if (skip > end - position) throw malformed();
      if (isString && skip > 0 && !isValidUtf8(bytes, position, position + skip)) {
        this.invalidStrings.push(start);
        flags |= SCAN_HAS_INVALID_UTF8;
      }
      position += skip;

      if (items >= 0) {
        if (remaining.length >= maxDepth) throw new NestingTooDeepError(maxDepth);
        // Every item takes at least one byte: a count beyond the remaining bytes is a lie.
        if (items > end - position) throw malformed();
        if (items > 0) {
          remaining.push(items);
          continue;
        }
      }

      // One value is complete: count it against the enclosing containers, closing the full ones.
      for (;;) {
        const top = remaining.length - 1;
        if (top < 0) {
          if (position !== end) throw malformed();
          return flags;
        }
        if (--remaining[top]! > 0) break;
        remaining.pop();
      }
    }
  }
}

/** ASCII fast path, then Node's validator from the first non-ASCII byte (UTF-8 resynchronises on ASCII). */
function isValidUtf8(bytes: Uint8Array, from: number, to: number): boolean {
  let i = from;
  while (i < to && bytes[i]! < 0x80) i++;
  return i === to || isUtf8(bytes.subarray(i, to));
}

/** Replaces invalid sequences with U+FFFD (WHATWG decoding); `ignoreBOM` keeps a leading U+FEFF. */
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Writes a str header for `length` bytes, smallest form first. */
function strHeader(length: number): Uint8Array {
  if (length < 0x20) return Uint8Array.of(0xa0 | length);
  if (length < 0x100) return Uint8Array.of(0xd9, length);
  if (length < 0x10000) return Uint8Array.of(0xda, length >>> 8, length & 0xff);
  return Uint8Array.of(0xdb, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

/**
 * Returns a new copy of a scanned value in which every str listed in `starts` (from
 * {@link MessagePackScanner.invalidStrings}) is re-encoded as valid UTF-8, each invalid sequence
 * becoming U+FFFD. MessagePack containers count items, not bytes, so a string can change length
 * in place. Used only on the rare invalid input; `bytes` must have passed `scan`.
 */
export function repairInvalidStrings(bytes: Uint8Array, starts: readonly number[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let copied = 0;
  let total = 0;
  for (const start of starts) {
    const head = bytes[start]!;
    const headerSize = head < 0xc0 ? 1 : 1 + (1 << (head - 0xd9));
    const length = headerSize === 1 ? head & 0x1f : readLength(bytes, start + 1, headerSize - 1);
    const dataStart = start + headerSize;
    const text = lenientDecoder.decode(bytes.subarray(dataStart, dataStart + length));
    const utf8 = utf8Encoder.encode(text);
    const header = strHeader(utf8.length);
    parts.push(bytes.subarray(copied, start), header, utf8);
    total += start - copied + header.length + utf8.length;
    copied = dataStart + length;
  }
  parts.push(bytes.subarray(copied));
  total += bytes.length - copied;
  const repaired = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    repaired.set(part, offset);
    offset += part.length;
  }
  return repaired;
}
