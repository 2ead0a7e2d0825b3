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
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Limits how fast each connection may invoke hub methods (a token bucket per connection, kept in
 * the connection's `items`). A call over the limit is not run; its caller gets a `HubError`
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

  constructor(options: RateLimitOptions = {}) {
    const perSecond = options.perSecond ?? 20;
    const burst = options.burst ?? perSecond * 2;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new OptionsError("RateLimitModule: 'perSecond' must be a positive number.");
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new OptionsError("RateLimitModule: 'burst' must be at least 1.");
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
    this.#message = options.message ?? "Too many invocations; slow down.";
  }

  invoke(ctx: InvocationContext, next: () => Promise<unknown>): Promise<unknown> {
    const items = ctx.connection.items;
    const now = performance.now();
    let bucket = items.get(this.#key) as Bucket | undefined;
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, updatedAt: now };
      items.set(this.#key, bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.updatedAt) * this.#perMs);
      bucket.updatedAt = now;
    }
    if (bucket.tokens < 1) return Promise.reject(new HubError(this.#message));
    bucket.tokens -= 1;
    return next();
  }
}
