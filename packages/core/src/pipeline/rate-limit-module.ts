import { HubError, OptionsError } from "../contracts/errors.js";
import type { HubModule, InvocationContext } from "./hub-module.js";

/** Options of {@link RateLimitModule}. */
export interface RateLimitOptions {
  /** Sustained invocations per second allowed per connection. Default 20. */
  readonly perSecond?: number;
  /** Invocations allowed in a burst above the sustained rate (bucket size). Default 2 × `perSecond`. */
  readonly burst?: number;
  /** Text the caller gets when over the limit. */
  readonly message?: string;
  /**
   * What one bucket covers: `"connection"` (default), `"user"` (all connections of a
   * `userIdentifier`; anonymous connections share their remote address's bucket) or `"address"`
   * (all connections from one remote address), so opening more connections does not get around it.
   */
  readonly key?: "connection" | "user" | "address";
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Limits how fast each connection (or user, or remote address: option `key`) may invoke hub
 * methods: a token bucket per connection, kept in the connection's `items`, or per user or address
 * in a map whose full buckets are dropped, so it holds only recently active keys. A call over the limit is not run; its caller gets a `HubError`
 * ("Too many invocations; slow down.") and the connection stays open.
 *
 * ```ts
 * modules: [new RateLimitModule({ perSecond: 10, burst: 20 })]
 * ```
 */
export class RateLimitModule implements HubModule {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #message: string;
  readonly #key = Symbol("switchboard.rateLimit");
  readonly #keyBy: "connection" | "user" | "address";
  readonly #shared = new Map<string, Bucket>();
  /** Time for an empty bucket to fill: a bucket untouched this long is full and can be forgotten. */
  readonly #refillMs: number;
  #sweptAt = 0;

  constructor(options: RateLimitOptions = {}) {
    const perSecond = options.perSecond ?? 20;
    const burst = options.burst ?? perSecond * 2;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new OptionsError("RateLimitModule: 'perSecond' must be a positive number.");
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new OptionsError("RateLimitModule: 'burst' must be at least 1.");
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#message = options.message ?? "Too many invocations; slow down.";
    const keyBy = options.key ?? "connection";
    if (keyBy !== "connection" && keyBy !== "user" && keyBy !== "address") throw new OptionsError("RateLimitModule: 'key' must be \"connection\", \"user\" or \"address\".");
    this.#keyBy = keyBy;
    this.#refillMs = burst / this.#perMs;
  }

  /** The bucket of the caller: in the connection's items, or shared by user or address. */
  #bucket(ctx: InvocationContext, now: number): Bucket | undefined {
    if (this.#keyBy === "connection") return ctx.connection.items.get(this.#key) as Bucket | undefined;
    if (now - this.#sweptAt >= this.#refillMs) {
      this.#sweptAt = now;
      for (const [key, bucket] of this.#shared) if (now - bucket.updatedAt >= this.#refillMs) this.#shared.delete(key);
    }
    return this.#shared.get(this.#sharedKey(ctx));
  }

  #sharedKey(ctx: InvocationContext): string {
    const user = this.#keyBy === "user" ? ctx.connection.userIdentifier : null;
    return user !== null ? `u:${user}` : `a:${ctx.connection.request.remoteAddress ?? ""}`;
  }

  invoke(ctx: InvocationContext, next: () => Promise<unknown>): Promise<unknown> {
    const now = performance.now();
    let bucket = this.#bucket(ctx, now);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, updatedAt: now };
      if (this.#keyBy === "connection") ctx.connection.items.set(this.#key, bucket);
      else this.#shared.set(this.#sharedKey(ctx), bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.updatedAt) * this.#perMs);
      bucket.updatedAt = now;
    }
    if (bucket.tokens < 1) return Promise.reject(new HubError(this.#message));
    bucket.tokens -= 1;
    return next();
  }
}
