import { InvalidMessageError, MessageTooLargeError } from "@switchboard/core";

/**
 * The record separator (ASCII RS, `0x1E`) that ends every JSON record of the SignalR text
 * framing (signalr-protocol.md §5). It is a single-byte code point, so it can never occur inside a
 * multi-byte UTF-8 sequence: scanning raw bytes for it is exact.
 */
export const RECORD_SEPARATOR = 0x1e;

/** {@link RECORD_SEPARATOR} as a one-character string, for writers that build text. */
export const RECORD_SEPARATOR_CHAR = "\u001e";

/** Smallest buffer allocated for an incomplete record; grows by doubling up to the size limit. */
const MIN_TAIL_CAPACITY = 256;

/**
 * Splits one connection's incoming bytes into records ended by {@link RECORD_SEPARATOR}.
 *
 * A record may arrive in pieces and several records may arrive in one piece; an incomplete tail
 * is kept between calls.
 *
 * Size limit: `maxMessageSize` counts the bytes of a record WITHOUT its separator. A record of
 * exactly `maxMessageSize` bytes is accepted, `maxMessageSize + 1` bytes is rejected. The check
 * runs before anything is buffered, so the kept tail never exceeds `maxMessageSize` bytes and its
 * buffer grows only with bytes that actually arrived (at most doubling, never above the limit).
 *
 * After `split` throws, the splitter's state is unspecified: the connection must be closed.
 */
export class TextRecordSplitter {
  readonly #maxMessageSize: number;
  /** Bytes of the incomplete record received so far; `null` when nothing is pending. */
  #tail: Uint8Array | null = null;
  #tailLength = 0;

  /** @param maxMessageSize largest accepted record in bytes, separator excluded. */
  constructor(maxMessageSize: number) {
    this.#maxMessageSize = maxMessageSize;
  }

  /** Bytes of the incomplete record kept from earlier calls (0 when none). */
  get pendingBytes(): number {
    return this.#tailLength;
  }

  /**
   * Hands every complete record in the kept tail plus `data` to `onRecord`, in order, and keeps
   * the incomplete rest. A record view is only valid during its `onRecord` call (its memory may
   * be the caller's `data` or a reused buffer); copy it to keep it.
   *
   * @throws MessageTooLargeError when a record (complete or not) exceeds `maxMessageSize`, after
   * the records before it were handed over.
   * @throws InvalidMessageError on an empty record (two separators in a row, or a separator first).
   *
   * `onRecord` is called with `thisArg` as `this`, so a caller can pass a shared method instead of
   * a closure per connection.
   */
  split<T = undefined>(data: Uint8Array, onRecord: (this: T, record: Uint8Array) => void, thisArg?: T): void {
    const max = this.#maxMessageSize;
    let start = 0;
    let end = data.indexOf(RECORD_SEPARATOR);

    if (this.#tailLength > 0) {
      if (end === -1) {
        this.#append(data);
        return;
      }
      // Completes the pending record; #append checks its full size before copying the rest in.
      this.#append(data.subarray(0, end));
      const tail = this.#tail as Uint8Array;
      const length = this.#tailLength;
      // Release before the callback so a throwing consumer leaves no stale tail behind.
      this.#tail = null;
      this.#tailLength = 0;
      onRecord.call(thisArg as T, tail.subarray(0, length));
      start = end + 1;
      end = data.indexOf(RECORD_SEPARATOR, start);
    }

    while (end !== -1) {
      const length = end - start;
      if (length === 0) throw new InvalidMessageError("Empty message.");
      if (length > max) throw new MessageTooLargeError(max);
      onRecord.call(thisArg as T, data.subarray(start, end));
      start = end + 1;
      end = data.indexOf(RECORD_SEPARATOR, start);
    }

    if (start < data.length) this.#append(data.subarray(start));
  }

  /** Copies `bytes` onto the tail, refusing before any copy or allocation past the limit. */
  #append(bytes: Uint8Array): void {
    const needed = this.#tailLength + bytes.length;
    if (needed > this.#maxMessageSize) throw new MessageTooLargeError(this.#maxMessageSize);
    let tail = this.#tail;
    if (tail === null || tail.length < needed) {
      // Doubling keeps 1-byte chops linear; the cap keeps memory within the limit.
      const capacity = Math.min(Math.max(needed, (tail?.length ?? 0) * 2, MIN_TAIL_CAPACITY), this.#maxMessageSize);
      const grown = new Uint8Array(capacity);
      if (tail !== null) grown.set(tail.subarray(0, this.#tailLength));
      tail = grown;
      this.#tail = grown;
    }
    tail.set(bytes, this.#tailLength);
    this.#tailLength = needed;
  }
}
