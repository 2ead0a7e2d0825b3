import { Redis, type Cluster, type RedisOptions } from "ioredis";
import { OptionsError, type MembershipStore, type UsedTokenStore } from "@switchboard/core";

/** Options of a {@link RedisMembershipStore}. */
export interface RedisMembershipStoreOptions {
  /** Where Redis is. Default `redis://127.0.0.1:6379`. Ignored when `client` is given. */
  readonly url?: string;
  /** More ioredis options, merged over the URL's. */
  readonly redis?: RedisOptions;
  /** An ioredis client to use instead, e.g. a `Cluster` for Redis Cluster (the store then never closes it). */
  readonly client?: Redis | Cluster;
  /** Prefix of every key. Default `"sb"`. */
  readonly prefix?: string;
}

/**
 * Persisted group membership in Redis: one set per hub and user (`{prefix}:m:{hub}:{user}`) holding
 * the user's group names. Names and ids are stored exactly as given (Redis keys and members are
 * binary-safe; nothing is interpolated into a command). Every server of a farm may share it.
 *
 * It is also the farm's memory of used single-use rejoin tokens (`rejoin: { keys, usedTokens:
 * store }`): one key per used token (`{prefix}:used:{hub length}:{hub}:{id}`), set only if absent
 * and expiring with the token, so a token accepted by one server is refused by all.
 */
export class RedisMembershipStore implements MembershipStore, UsedTokenStore {
  readonly #redis: Redis | Cluster;
  readonly #owned: boolean;
  readonly #prefix: string;

  constructor(options: RedisMembershipStoreOptions = {}) {
    this.#prefix = options.prefix ?? "sb";
    if (typeof this.#prefix !== "string" || this.#prefix.length === 0) throw new OptionsError("Option 'prefix' must be a non-empty string.");
    this.#owned = options.client === undefined;
    // A command waits for at most one reconnection attempt while Redis is away, then rejects: the
    // server bounds its own wait and logs, nothing queues forever.
    this.#redis = options.client ?? new Redis(options.url ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1, ...options.redis });
    this.#redis.on("error", () => undefined); // failures surface as rejected commands
  }

  #key(hub: string, user: string): string {
    // The hub's length first, so no hub/user pair can spell another's key.
    return `${this.#prefix}:m:${hub.length}:${hub}:${user}`;
  }

  async add(hub: string, user: string, group: string): Promise<void> {
    await this.#redis.sadd(this.#key(hub, user), group);
  }

  async remove(hub: string, user: string, group: string): Promise<void> {
    await this.#redis.srem(this.#key(hub, user), group);
  }

  async groupsOf(hub: string, user: string): Promise<readonly string[]> {
    return this.#redis.smembers(this.#key(hub, user));
  }

  async claim(hub: string, id: string, expiresAt: number): Promise<boolean> {
    // SET NX is atomic: of two servers claiming at once, exactly one gets "OK". Kept until the token expires.
    const seconds = Math.max(Math.floor(expiresAt), Math.floor(Date.now() / 1000) + 1);
    return (await this.#redis.set(`${this.#prefix}:used:${hub.length}:${hub}:${id}`, "1", "EXAT", seconds, "NX")) === "OK";
  }

  /** Closes the connection this store opened (not a `client` it was given). */
  async close(): Promise<void> {
    if (this.#owned) await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
