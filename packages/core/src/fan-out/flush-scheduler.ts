/** Something with queued output to write at the end of the event-loop turn. */
export interface Flushable {
  /** Writes what is queued. Reads no clock: a clock read per connection costs ~1 % of a fan-out. */
  flush(): void;
}

/**
 * A send whose recipients are walked at the end of the turn instead of when it was made (a group
 * send): one walk that writes to each recipient, instead of a walk that queues and a pass that
 * flushes. Anything that would see it out of order first makes it deliver (see the scheduler).
 */
export interface DeferredSend {
  /**
   * Delivers to every recipient not caught up yet. `alone`: no other deferred send is pending, so
   * a recipient with nothing queued may be written to at once (one transport message each).
   */
  deliver(alone: boolean): void;
  /** Queues this send for `recipient` now if it is one of its recipients (it then skips it later). */
  catchUp(recipient: unknown): void;
}

/**
 * Deferred sends kept at once. The next one first queues them (as {@link FlushScheduler.settle}):
 * every send queued on a connection in the turn asks each deferred send whether to catch it up, so
 * without a bound a burst to many groups, each followed by another send, costs quadratic time.
 */
const MAX_DEFERRED = 16;

/**
 * Coalesces writes: connections that queued output during this event-loop turn are flushed once,
 * together, from a single `setImmediate`. A burst of sends therefore costs one transport message
 * (one socket write) per connection instead of one per send.
 *
 * Deferred sends run first in that pass. Until then a connection about to queue anything else
 * calls {@link catchUp} (so it gets the deferred sends first, in order), and a change to who
 * would receive them calls {@link settle}.
 */
export class FlushScheduler {
  #pending: Flushable[] = [];
  #spare: Flushable[] = [];
  #deferred: DeferredSend[] = [];
  #scheduled = false;
  #catchingUp = false;
  readonly #run = (): void => {
    this.#scheduled = false;
    if (this.#deferred.length !== 0) this.#deliverDeferred(true);
    const batch = this.#pending;
    this.#pending = this.#spare;
    for (let i = 0; i < batch.length; i++) batch[i]!.flush();
    batch.length = 0;
    this.#spare = batch;
  };

  /** True while deferred sends wait for the end of the turn (read by connections before they queue). */
  get deferring(): boolean {
    return this.#deferred.length !== 0;
  }

  /** Flushes `target` at the end of this turn. The caller makes sure it is scheduled once per turn. */
  schedule(target: Flushable): void {
    this.#pending.push(target);
    this.#arm();
  }

  /**
   * Delivers `send` at the end of this turn, before the connections are flushed; past
   * {@link MAX_DEFERRED} sends the ones deferred before it are queued first.
   */
  defer(send: DeferredSend): void {
    if (this.#deferred.length >= MAX_DEFERRED) this.#deliverDeferred(false);
    this.#deferred.push(send);
    this.#arm();
  }

  /** Gives `recipient` what the deferred sends hold for it, in order, before it queues anything else. */
  catchUp(recipient: unknown): void {
    if (this.#catchingUp) return; // the catch-up's own queuing
    this.#catchingUp = true;
    try {
      const deferred = this.#deferred;
      for (let i = 0; i < deferred.length; i++) deferred[i]!.catchUp(recipient);
    } finally {
      this.#catchingUp = false;
    }
  }

  /** Queues every deferred send now (recipients or their order are about to change). */
  settle(): void {
    if (this.#deferred.length !== 0) this.#deliverDeferred(false);
  }

  /** The last deferred send, which a send to the same recipients may join (none after a catch-up or a settle). */
  get lastDeferred(): DeferredSend | undefined {
    return this.#deferred[this.#deferred.length - 1];
  }

  #deliverDeferred(atFlush: boolean): void {
    const deferred = this.#deferred;
    // Taken off first: what the deliveries queue must not catch up with them again. A new list
    // each time (one per turn that deferred anything): code run during a delivery (a slow
    // consumer's close reaching an observer) may defer and settle sends of its own, and must not
    // be handed the list being walked.
    this.#deferred = [];
    const alone = atFlush && deferred.length === 1;
    for (let i = 0; i < deferred.length; i++) deferred[i]!.deliver(alone);
  }

  #arm(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }
}
