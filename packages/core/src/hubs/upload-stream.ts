/**
 * A client → server upload stream (the official client's `Subject` argument), as a hub method
 * parameter receives it: an `AsyncIterable` of the items the client sends, ending when the client
 * completes the stream and throwing when it completes it with an error or the connection ends.
 *
 * Declare the parameter as `UploadStream<T>` on a decorated method (`@HubMethod()`) so the server
 * knows its position; on an undecorated method the streams follow the ordinary arguments.
 */
export class UploadStream<T = unknown> implements AsyncIterable<T> {
  /** Items received and not read yet (at most `capacity` plus one transport message's worth). */
  readonly #items: T[] = [];
  #head = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #capacity: number;
  readonly #drained: () => void;

  /** @internal Made by the server for each stream id of an invocation. */
  constructor(capacity: number, drained: () => void) {
    this.#capacity = capacity;
    this.#drained = drained;
  }

  /** @internal True once more items are waiting than the stream buffer holds. */
  get full(): boolean {
    return this.#items.length - this.#head >= this.#capacity;
  }

  /** @internal */
  push(item: T): void {
    this.#items.push(item);
    this.#wakeReader();
  }

  /** @internal Ends the stream, with `error` when the client failed it or the connection ended. */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#wakeReader();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.#head < this.#items.length) {
        const wasFull = this.full;
        const item = this.#items[this.#head]!;
        this.#items[this.#head++] = undefined as T;
        if (this.#head === this.#items.length) this.#items.length = this.#head = 0;
        if (wasFull && !this.full) this.#drained();
        yield item;
        continue;
      }
      if (this.#ended) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
