import { Cluster, type Redis } from "ioredis";
import { BackplaneError, type Logger, type Page, type PageOptions } from "@switchboard/core";

/*
 * Cluster-wide group membership in Redis, kept by every server for its own connections.
 *
 * Keys (h: hub path, its length in bytes first so no hub, group or id can collide with another;
 * every key starts with the hash tag "{p:dir}", so on Redis Cluster they all live in one slot and
 * the scripts may touch any of them):
 *   {p:dir}:{#h}:{h}:g:{group}   sorted set (all scores 0, so ordered by bytes): connection ids in the group
 *   {p:dir}:{#h}:{h}:c:{id}      sorted set: the groups of a connection
 *   {p:dir}:{#h}:{h}:groups      sorted set: groups with at least one member
 *   {p:dir}:node:{node}          set: every entry a server wrote ("{#h}:{h}{#g}:{g}{id}"), to undo them
 *   {p:dir}:nodes                sorted set: server (node) id -> end of its lease, in Redis time (ms)
 *   {p:dir}:swept:{node}         present when live servers removed a server's entries: it writes them again
 *
 * A server renews its lease every `lease / 3` and, in the same script, removes a batch of entries of
 * one server whose lease ran out, so a crashed server's members are gone within `lease` plus at most
 * one renewal period. Every change runs in a Lua script (atomic, Redis time, no clock skew); the
 * changes of one event-loop turn travel in one script call.
 */

const LUA_HELPERS = `
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function base(p, h) return p .. ":" .. #h .. ":" .. h .. ":" end
local function entry(h, g, c) return #h .. ":" .. h .. #g .. ":" .. g .. c end
local function parse(e)
  local i = string.find(e, ":", 1, true)
  local hl = tonumber(string.sub(e, 1, i - 1))
  local h = string.sub(e, i + 1, i + hl)
  local j = string.find(e, ":", i + hl + 1, true)
  local gl = tonumber(string.sub(e, i + hl + 1, j - 1))
  return h, string.sub(e, j + 1, j + gl), string.sub(e, j + gl + 1)
end
local function join(p, h, g, c)
  local b = base(p, h)
  redis.call("ZADD", b .. "g:" .. g, 0, c)
  redis.call("ZADD", b .. "c:" .. c, 0, g)
  redis.call("ZADD", b .. "groups", 0, g)
end
local function leave(p, h, g, c)
  local b = base(p, h)
  redis.call("ZREM", b .. "g:" .. g, c)
  redis.call("ZREM", b .. "c:" .. c, g)
  if redis.call("EXISTS", b .. "g:" .. g) == 0 then redis.call("ZREM", b .. "groups", g) end
end
`;

/* Every script gets KEYS[1] = "{p:dir}:nodes" (so Redis Cluster routes it to the directory's slot) and ARGV[1] = "{p:dir}". */

/** ARGV: key root, node, lease, then (op "1" join / "0" leave, hub, group, connection id) per change. */
const TRACK = `${LUA_HELPERS}
local p, n = ARGV[1], ARGV[2]
local set = p .. ":node:" .. n
redis.call("ZADD", p .. ":nodes", "NX", now_ms() + tonumber(ARGV[3]), n)
for i = 4, #ARGV, 4 do
  local h, g, c = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if ARGV[i] == "1" then
    join(p, h, g, c)
    redis.call("SADD", set, entry(h, g, c))
  else
    leave(p, h, g, c)
    redis.call("SREM", set, entry(h, g, c))
  end
end
return 1
`;

/**
 * ARGV: key root, node, lease, batch. Renews this server's lease, then removes up to `batch` entries
 * of one expired server. Returns { this server was swept since its last renewal (1/0), entries removed }.
 */
const RENEW = `${LUA_HELPERS}
local p, n, batch = ARGV[1], ARGV[2], tonumber(ARGV[4])
local nodes = p .. ":nodes"
local now = now_ms()
redis.call("ZADD", nodes, now + tonumber(ARGV[3]), n)
local swept = redis.call("DEL", p .. ":swept:" .. n)
local removed = 0
local dead = redis.call("ZRANGEBYSCORE", nodes, "-inf", now, "LIMIT", 0, 1)
if #dead == 1 then
  local d = dead[1]
  local set = p .. ":node:" .. d
  local entries = redis.call("SPOP", set, batch)
  if #entries > 0 then redis.call("SET", p .. ":swept:" .. d, "1", "PX", 86400000) end
  for _, e in ipairs(entries) do
    local h, g, c = parse(e)
    leave(p, h, g, c)
  end
  removed = #entries
  if redis.call("SCARD", set) == 0 then redis.call("ZREM", nodes, d) end
end
return { swept, removed }
`;

/** ARGV: key root, node, batch. Removes up to `batch` of this server's own entries (a clean stop); returns how many. */
const CLEAR = `${LUA_HELPERS}
local p, n = ARGV[1], ARGV[2]
local set = p .. ":node:" .. n
local entries = redis.call("SPOP", set, tonumber(ARGV[3]))
for _, e in ipairs(entries) do
  local h, g, c = parse(e)
  leave(p, h, g, c)
end
if redis.call("SCARD", set) == 0 then redis.call("ZREM", p .. ":nodes", n) end
return #entries
`;

/** A standalone client or a Redis Cluster client: the directory uses only commands both have. */
export type RedisClient = Redis | Cluster;

type Scripted = RedisClient & {
  sbTrack(...args: (string | number)[]): Promise<unknown>;
  sbRenew(...args: (string | number)[]): Promise<[number, number]>;
  sbClear(...args: (string | number)[]): Promise<number>;
};

/** Changes sent in one script call at most (the rest go in the next). */
const MAX_CHANGES_PER_CALL = 1000;
/** Entries of a dead server removed per script call (each call holds Redis briefly). */
const SWEEP_BATCH = 1000;

function entryKey(hub: string, group: string, connectionId: string): string {
  return `${Buffer.byteLength(hub)}:${hub}${Buffer.byteLength(group)}:${group}${connectionId}`;
}

/** Parses an entry as the scripts write it (lengths in bytes). */
function parseEntry(entry: Buffer): [hub: string, group: string, connectionId: string] | undefined {
  const colon = entry.indexOf(0x3a);
  const hubLength = Number(entry.toString("latin1", 0, colon));
  const hubEnd = colon + 1 + hubLength;
  const colon2 = entry.indexOf(0x3a, hubEnd);
  if (colon < 0 || colon2 < 0 || !Number.isSafeInteger(hubLength)) return undefined;
  const groupLength = Number(entry.toString("latin1", hubEnd, colon2));
  const groupEnd = colon2 + 1 + groupLength;
  if (!Number.isSafeInteger(groupLength) || groupEnd > entry.length) return undefined;
  return [entry.toString("utf8", colon + 1, hubEnd), entry.toString("utf8", colon2 + 1, groupEnd), entry.toString("utf8", groupEnd)];
}

/** The part of {@link RedisBackplane} that keeps the cluster-wide directory (see the key layout above). */
export class RedisDirectory {
  /** "{prefix:dir}": the hash tag every directory key starts with. */
  readonly #root: string;
  readonly #nodesKey: string;
  readonly #node: string;
  readonly #lease: number;
  readonly #logger: Logger;
  readonly #memberships: () => Iterable<readonly [hub: string, group: string, connectionId: string]>;
  #redis: Scripted | undefined;
  /** Changes of this turn, flushed in one script call: op, hub, group, id, … */
  #queue: string[] = [];
  #flushScheduled = false;
  /** A change could not be written (Redis away): this server's entries are rewritten when it is back. */
  #dirty = false;
  #renewal: NodeJS.Timeout | undefined;
  #resyncing: Promise<void> | undefined;
  /** The scripts are loaded on the current Redis connection (a restarted Redis has forgotten them). */
  #loaded = false;
  #closed = false;

  constructor(prefix: string, node: string, lease: number, logger: Logger, memberships: () => Iterable<readonly [hub: string, group: string, connectionId: string]>) {
    this.#root = `{${prefix}:dir}`;
    this.#nodesKey = `${this.#root}:nodes`;
    this.#node = node;
    this.#lease = lease;
    this.#logger = logger;
    this.#memberships = memberships;
  }

  /** Starts on `redis` (the publishing connection, so this server's queries follow its own changes). */
  async start(redis: RedisClient): Promise<void> {
    redis.defineCommand("sbTrack", { numberOfKeys: 1, lua: TRACK });
    redis.defineCommand("sbRenew", { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand("sbClear", { numberOfKeys: 1, lua: CLEAR });
    this.#redis = redis as Scripted;
    this.#dirty = true; // connections may have joined groups before Redis was reached
    await this.restored().catch((error: unknown) => this.#logger.warn({ err: error }, "Could not write this server's group memberships to Redis yet; retried at the next renewal."));
    this.#renewal = setInterval(() => void this.#renew(), Math.max(1, Math.floor(this.#lease / 3)));
    this.#renewal.unref();
  }

  /** Redis is reachable again (or for the first time): loads the scripts, renews the lease and rewrites this server's entries. */
  async restored(): Promise<void> {
    const redis = this.#redis;
    if (redis === undefined || this.#closed) return;
    this.#loaded = false;
    this.#dirty = true; // changes made while it was away were not written
    // On a cluster every master gets them: the directory's slot may move to another one.
    const targets: Redis[] = redis instanceof Cluster ? redis.nodes("master") : [redis];
    await Promise.all(targets.flatMap((target) => [TRACK, RENEW, CLEAR].map((lua) => target.script("LOAD", lua))));
    this.#loaded = true;
    await this.#renew();
  }

  /** Redis went away: changes are not written until it is back, then rewritten in full. */
  lost(): void {
    this.#loaded = false;
    this.#dirty = true;
  }

  track(hub: string, group: string, connectionId: string, joined: boolean): void {
    if (this.#closed) return;
    if (!this.#loaded || this.#redis === undefined || this.#redis.status !== "ready") {
      this.#dirty = true; // written in full when Redis is back
      return;
    }
    this.#queue.push(joined ? "1" : "0", hub, group, connectionId);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    const redis = this.#redis;
    if (!this.#loaded || redis === undefined || redis.status !== "ready") {
      this.#dirty = true;
      return;
    }
    for (let at = 0; at < queue.length; at += MAX_CHANGES_PER_CALL * 4) {
      redis.sbTrack(this.#nodesKey, this.#root, this.#node, this.#lease, ...queue.slice(at, at + MAX_CHANGES_PER_CALL * 4)).catch((error: unknown) => {
        this.#dirty = true;
        this.#logger.debug({ err: error }, "A directory change could not be written; it is rewritten when Redis is back.");
      });
    }
  }

  async #renew(): Promise<void> {
    const redis = this.#redis;
    if (!this.#loaded || redis === undefined || redis.status !== "ready" || this.#closed) return;
    try {
      const [swept, removed] = await redis.sbRenew(this.#nodesKey, this.#root, this.#node, this.#lease, SWEEP_BATCH);
      if (removed > 0) this.#logger.info({ removed }, "Removed the group memberships of a server whose lease ran out.");
      if (swept === 1) {
        this.#logger.warn({}, "This server's lease had run out (Redis was away or the process stalled); rewriting its group memberships.");
        this.#dirty = true;
      }
      if (this.#dirty) await this.#resync();
      if (removed === SWEEP_BATCH) setImmediate(() => void this.#renew());
    } catch (error) {
      this.#logger.debug({ err: error }, "Renewing the directory lease failed; retried at the next renewal.");
    }
  }

  /** Makes Redis hold exactly this server's current memberships: what is missing is added, what is gone is removed. */
  #resync(): Promise<void> {
    return (this.#resyncing ??= this.#rewrite().finally(() => (this.#resyncing = undefined)));
  }

  async #rewrite(): Promise<void> {
    const redis = this.#redis!;
    this.#dirty = false;
    this.#flush(); // what is queued goes first, so it is not undone below
    try {
      const written = await redis.smembersBuffer(`${this.#root}:node:${this.#node}`);
      const stored = new Map<string, Buffer>();
      for (const entry of written) stored.set(entry.toString("latin1"), entry);
      const changes: string[] = [];
      for (const [hub, group, connectionId] of this.#memberships()) {
        const key = Buffer.from(entryKey(hub, group, connectionId)).toString("latin1");
        if (!stored.delete(key)) changes.push("1", hub, group, connectionId);
      }
      for (const entry of stored.values()) {
        const parsed = parseEntry(entry);
        if (parsed !== undefined) changes.push("0", ...parsed);
      }
      for (let at = 0; at < changes.length; at += MAX_CHANGES_PER_CALL * 4) {
        await redis.sbTrack(this.#nodesKey, this.#root, this.#node, this.#lease, ...changes.slice(at, at + MAX_CHANGES_PER_CALL * 4));
      }
    } catch (error) {
      this.#dirty = true;
      throw new BackplaneError("Could not rewrite this server's group memberships in Redis.", { cause: error });
    }
  }

  // ---- queries -------------------------------------------------------------------------------

  #base(hub: string): string {
    return `${this.#root}:${Buffer.byteLength(hub)}:${hub}:`;
  }

  /** The connection queries go on; this server's queued changes go first. */
  #ready(): RedisClient {
    const redis = this.#redis;
    if (redis === undefined || redis.status !== "ready") throw new BackplaneError("Cluster-wide group membership is not available: Redis cannot be reached.");
    if (this.#queue.length > 0) this.#flush();
    return redis;
  }

  async #query<T>(run: (redis: RedisClient) => Promise<T>): Promise<T> {
    const redis = this.#ready();
    try {
      return await run(redis);
    } catch (error) {
      throw new BackplaneError("Cluster-wide group membership is not available: Redis did not answer.", { cause: error });
    }
  }

  count(hub: string, group: string): Promise<number> {
    return this.#query((redis) => redis.zcard(`${this.#base(hub)}g:${group}`));
  }

  has(hub: string, group: string, connectionId: string): Promise<boolean> {
    return this.#query(async (redis) => (await redis.zscore(`${this.#base(hub)}g:${group}`, connectionId)) !== null);
  }

  groupsOf(hub: string, connectionId: string): Promise<readonly string[]> {
    return this.#query((redis) => redis.zrange(`${this.#base(hub)}c:${connectionId}`, 0, -1));
  }

  members(hub: string, group: string, page: PageOptions): Promise<Page> {
    return this.#page(`${this.#base(hub)}g:${group}`, page);
  }

  groups(hub: string, page: PageOptions): Promise<Page> {
    return this.#page(`${this.#base(hub)}groups`, page);
  }

  /** One page of a lexically ordered set: after `cursor` (exclusive), `limit` long; a cursor only when more may follow. */
  #page(key: string, page: PageOptions): Promise<Page> {
    const limit = page.limit ?? 100;
    const from = page.cursor === undefined ? "-" : `(${page.cursor}`;
    return this.#query(async (redis) => {
      const items = await redis.zrangebylex(key, from, "+", "LIMIT", 0, limit + 1);
      if (items.length <= limit) return { items };
      items.length = limit;
      return { items, cursor: items[limit - 1]! };
    });
  }

  /** Stops renewing and removes this server's entries (a clean stop: other servers need not wait for the lease). */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#renewal);
    this.#flush();
    this.#closed = true;
    const redis = this.#redis;
    if (redis === undefined || redis.status !== "ready") return;
    try {
      while ((await redis.sbClear(this.#nodesKey, this.#root, this.#node, SWEEP_BATCH)) === SWEEP_BATCH);
    } catch (error) {
      this.#logger.warn({ err: error }, "Could not remove this server's group memberships from Redis; they expire with its lease.");
    }
  }
}
