/**
 * VarInt length-prefix framing of the MessagePack hub protocol (../shared/signalr-protocol.md §6.1):
 * every record is `VarInt(bodyLength)` followed by the body. The VarInt stores 7-bit groups, least
 * significant first, with the high bit set on every byte but the last; it takes 1–5 bytes.
 */
import { InvalidMessageError, MessageTooLargeError } from "@switchboard/core";

/** Largest body length a prefix can announce: 2^31 − 1 bytes (five prefix bytes, the fifth ≤ 0x07). */
export const MAX_FRAME_BODY_LENGTH = 0x7fff_ffff;

/** Most bytes a length prefix can take. */
export const MAX_PREFIX_LENGTH = 5;

/** Weight of the 7-bit group at each prefix position; multiplication keeps the sum exact above 2^31. */
const GROUP_WEIGHTS = [1, 0x80, 0x4000, 0x20_0000, 0x1000_0000] as const;

/** Smallest first allocation for a partial body, so byte-by-byte arrival does not reallocate per byte. */
const MIN_PARTIAL_CAPACITY = 64;

const EMPTY = new Uint8Array(0);

/**
 * Number of prefix bytes `varIntSize(length)` needed to announce `length` (1–5).
 * `length` must be an integer in 0..{@link MAX_FRAME_BODY_LENGTH}.
 */
export function varIntSize(length: number): number {
  if (length < 0x80) return 1;
  if (length < 0x4000) return 2;
  if (length < 0x20_0000) return 3;
  if (length < 0x1000_0000) return 4;
  return 5;
}

/**
 * Writes the VarInt for `length` into `target` at `offset` and returns the offset after it.
 * `target` must have {@link varIntSize} bytes of room.
 */
export function writeVarInt(target: Uint8Array, offset: number, length: number): number {
  let value = length;
  let position = offset;
  while (value >= 0x80) {
    target[position++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  target[position++] = value;
  return position;
}

/**
 * Frames one body: returns a new array holding the prefix then a copy of `body`, allocated once.
 * The caller owns the result; `body` may be reused afterwards.
 *
 * @throws RangeError if `body` is empty or longer than {@link MAX_FRAME_BODY_LENGTH} (no valid record).
 */
export function frame(body: Uint8Array): Uint8Array {
  const length = body.byteLength;
  if (length === 0 || length > MAX_FRAME_BODY_LENGTH) {
    throw new RangeError("A framed body must hold 1 to 2^31-1 bytes.");
  }
  const record = new Uint8Array(varIntSize(length) + length);
  record.set(body, writeVarInt(record, 0, length));
  return record;
}

/**
 * Per-connection splitter of a VarInt-framed byte stream. Usage: `push(chunk)`, then call `next()`
 * until it returns `undefined`; then push the next chunk.
 *
 * Guarantees:
 * - An incomplete prefix or body is kept for the next chunk ("wait for more data"); nothing else is.
 * - A prefix announcing more than `maxBodyLength` throws at once, before any of that body is kept.
 * - Memory held for a partial body grows with the bytes actually received (at most about twice as
 *   many), never with the announced length.
 * - A body that lies wholly inside the pushed chunk is returned as a view into that chunk (no copy);
 *   a body assembled from several chunks is returned in a buffer the reader never touches again.
 *
 * After `next()` has thrown, the stream is corrupt: discard the reader (close the connection).
 */
export class VarIntFrameReader {
  readonly #maxBodyLength: number;
  #chunk: Uint8Array = EMPTY;
  #offset = 0;
  /** Prefix decoded so far, when a prefix was cut between chunks. */
  #prefixValue = 0;
  #prefixBytes = 0;
  /** Length of the body being read, or −1 while reading a prefix. */
  #bodyLength = -1;
  /** Received part of a body cut between chunks. */
  #partial: Uint8Array | null = null;
  #filled = 0;

  /**
   * @param maxBodyLength largest accepted body in bytes, not counting the prefix; clamped to
   * {@link MAX_FRAME_BODY_LENGTH}.
   */
  constructor(maxBodyLength: number) {
    this.#maxBodyLength = Math.min(maxBodyLength, MAX_FRAME_BODY_LENGTH);
  }

  /** Bytes currently kept for an incomplete record (prefix bytes count as kept). */
  get bufferedBytes(): number {
    return this.#prefixBytes + this.#filled;
  }

  /**
   * Hands the next chunk to the reader. The previous chunk must have been read to the end
   * (`next()` returned `undefined`).
   *
   * @throws Error on misuse (the previous chunk still has unread bytes).
   */
  push(data: Uint8Array): void {
    if (this.#offset < this.#chunk.length) {
      throw new Error("The previous chunk has not been read to the end.");
    }
    this.#chunk = data;
    this.#offset = 0;
  }

  /**
   * Returns the next complete body, or `undefined` when the pushed data is used up.
   *
   * @throws InvalidMessageError for a malformed prefix (fifth byte above 0x07, hence also a sixth
   * prefix byte) or a zero-length body.
   * @throws MessageTooLargeError when a prefix announces more than `maxBodyLength` bytes.
   */
  next(): Uint8Array | undefined {
    const chunk = this.#chunk;
    const end = chunk.length;
    let offset = this.#offset;

    if (this.#bodyLength < 0) {
      let value = this.#prefixValue;
      let count = this.#prefixBytes;
      for (;;) {
        if (offset === end) {
          this.#prefixValue = value;
          this.#prefixBytes = count;
          this.#release();
          return undefined;
        }
        const byte = chunk[offset++]!;
        // §6.1: at most 5 bytes and at most 2^31 − 1, so the fifth byte is 0x00–0x07 (no continuation bit).
        if (count === MAX_PREFIX_LENGTH - 1 && byte > 0x07) {
          throw new InvalidMessageError("Invalid message length prefix.");
        }
        value += (byte & 0x7f) * GROUP_WEIGHTS[count]!;
        count++;
        if (byte < 0x80) break;
      }
      this.#prefixValue = 0;
      this.#prefixBytes = 0;
      this.#offset = offset;
      if (value === 0) throw new InvalidMessageError("Empty message.");
      if (value > this.#maxBodyLength) throw new MessageTooLargeError(this.#maxBodyLength);
      this.#bodyLength = value;
    }

    const bodyLength = this.#bodyLength;
    const available = end - offset;
    if (this.#partial === null && available >= bodyLength) {
      // Whole body inside this chunk: hand out a view, no copy.
      this.#offset = offset + bodyLength;
      this.#bodyLength = -1;
      return chunk.subarray(offset, offset + bodyLength);
    }

    if (available === 0) {
      this.#release();
      return undefined;
    }
    const filled = this.#filled;
    const take = Math.min(available, bodyLength - filled);
    let partial = this.#partial;
    if (partial === null || partial.length < filled + take) {
      // Grow with what arrived (doubling), capped by the announced length: never allocate for bytes not yet received.
      const doubled = partial === null ? MIN_PARTIAL_CAPACITY : partial.length * 2;
      const grown = new Uint8Array(Math.min(bodyLength, Math.max(filled + take, doubled)));
      if (partial !== null) grown.set(partial.subarray(0, filled));
      partial = grown;
      this.#partial = grown;
    }
    partial.set(chunk.subarray(offset, offset + take), filled);
    this.#offset = offset + take;
    this.#filled = filled + take;
    if (this.#filled < bodyLength) {
      this.#release();
      return undefined;
    }
    // Complete: drop our reference so the buffer is never written again (decoded values may view it).
    this.#partial = null;
    this.#filled = 0;
    this.#bodyLength = -1;
    return partial.length === bodyLength ? partial : partial.subarray(0, bodyLength);
  }

  /** Forgets a used-up chunk so the reader does not keep the transport's buffer alive. */
  #release(): void {
    this.#chunk = EMPTY;
    this.#offset = 0;
  }
}
