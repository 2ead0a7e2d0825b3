/** Something with queued output to write at the end of the event-loop turn. */
export interface Flushable {
  /** Writes what is queued. Reads no clock: a clock read per connection costs ~1 % of a fan-out. */
  flush(): void;
}

/**
 * Coalesces writes: connections that queued output during this event-loop turn are flushed once,
 * together, from a single `setImmediate`. A burst of sends therefore costs one transport message
 * (one socket write) per connection instead of one per send.
 */
export class FlushScheduler {
  #pending: Flushable[] = [];
  #spare: Flushable[] = [];
  #scheduled = false;
  readonly #run = (): void => {
    this.#scheduled = false;
    const batch = this.#pending;
    this.#pending = this.#spare;
    for (let i = 0; i < batch.length; i++) batch[i]!.flush();
    batch.length = 0;
    this.#spare = batch;
  };

  /** Flushes `target` at the end of this turn. The caller makes sure it is scheduled once per turn. */
  schedule(target: Flushable): void {
    this.#pending.push(target);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }
}
