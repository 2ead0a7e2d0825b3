import { randomBytes } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { BackplaneError, consoleLogger, OptionsError, type Backplane, type BackplaneScope, type EncodedMessage, type Logger, type SendTarget } from "@switchboard/core";
import { NODE_ID_LENGTH, readEnvelope, writeEnvelope } from "./envelope.js";

/** Options of a {@link RedisBackplane}. */
export interface RedisBackplaneOptions {
  /** Where Redis is. Default `redis://127.0.0.1:6379`. */
  readonly url?: string;
  /** More ioredis options (TLS, password, …), merged over the URL's. */
  readonly redis?: RedisOptions;
  /** Prefix of every channel, to share one Redis between applications. Default `"sb"`. */
  readonly prefix?: string;
  /**
   * Sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+): `"auto"` uses it when the server has it, else
   * classic PUBLISH/SUBSCRIBE. Default `"auto"`.
   */
  readonly sharded?: boolean | "auto";
  /** Largest message accepted from a channel; larger ones are dropped (logged). Default 1 MiB. */
  readonly maxMessageBytes?: number;
  /** Where transitions (connected, lost, restored) and dropped messages are logged. Default: JSON lines on stderr at "warn". */
  readonly logger?: Logger;
}

type Receive = (hub: string, target: SendTarget, message: EncodedMessage) => void;

/**
 * A {@link Backplane} on Redis pub/sub (ioredis): one channel per hub for sends to everyone, one
 * per group, per user and per connection; a server subscribes to a channel while it has a local
 * connection in it, so a group send reaches only the servers with members. A send is published
 * once, with the records every protocol of the sending server encoded, and delivered by each
 * receiving server as it is. Sends to several connections, users or groups go on the hub's
 * channel and each server picks its own recipients (one publish, each connection once).
 *
 * Faults: publishing while Redis is unreachable rejects at once with `SB_ERR_BACKPLANE` (nothing
 * is buffered); the subscriber reconnects by itself and subscribes to every channel again, with a
 * log line for each transition. Messages from another version or garbage on a channel are
 * dropped with a log line. Standalone Redis (or a replica set behind one address); not Redis Cluster.
 */
export class RedisBackplane implements Backplane {
  readonly #options: RedisBackplaneOptions;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #maxMessageBytes: number;
  readonly #node = randomBytes(NODE_ID_LENGTH);
  readonly #channels = new Set<string>();
  #pub: Redis | undefined;
  #sub: Redis | undefined;
  #sharded = false;
  #receive: Receive | undefined;
  #closed = false;
  #lost = false;
  /** The last subscription change sent to Redis (they run in order on one connection). */
  #lastChange: Promise<unknown> = Promise.resolve();

  constructor(options: RedisBackplaneOptions = {}) {
    if (options === null || typeof options !== "object") throw new OptionsError("new RedisBackplane(options) takes an options object, e.g. { url: 'redis://127.0.0.1:6379' }.");
    this.#options = options;
    this.#logger = options.logger ?? consoleLogger("warn");
    this.#prefix = options.prefix ?? "sb";
    this.#maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
    if (typeof this.#prefix !== "string" || this.#prefix.length === 0) throw new OptionsError("Option 'prefix' must be a non-empty string.");
    if (!Number.isSafeInteger(this.#maxMessageBytes) || this.#maxMessageBytes <= 0) throw new OptionsError("Option 'maxMessageBytes' must be a positive integer.");
  }

  async start(receive: Receive): Promise<void> {
    if (this.#receive !== undefined) throw new OptionsError("A RedisBackplane serves one server: give each server its own.");
    this.#receive = receive;
    const url = this.#options.url ?? "redis://127.0.0.1:6379";
    const base: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: 1, ...this.#options.redis };
    // Publishing fails fast while Redis is away (no offline queue); subscriptions are ours to restore.
    this.#pub = new Redis(url, { ...base, enableOfflineQueue: false });
    this.#sub = new Redis(url, { ...base, autoResubscribe: false });
    for (const [name, client] of [["publisher", this.#pub], ["subscriber", this.#sub]] as const) {
      client.on("error", (error: Error) => this.#logger.debug({ connection: name, err: error }, "Redis connection error."));
    }
    this.#sub.on("close", () => this.#transition(true));
    this.#sub.on("ready", () => {
      if (this.#lost) this.#transition(false);
      this.#resubscribe();
    });
    this.#sub.on("messageBuffer", (channel: Buffer, data: Buffer) => this.#onMessage(channel, data));
    this.#sub.on("smessageBuffer", (channel: Buffer, data: Buffer) => this.#onMessage(channel, data));
    await Promise.all([this.#pub.connect(), this.#sub.connect()]);
    const sharded = this.#options.sharded ?? "auto";
    this.#sharded = sharded === "auto" ? await this.#supportsSharded() : sharded;
    this.#logger.info({ sharded: this.#sharded }, "Backplane connected to Redis.");
    this.#resubscribe();
  }

  async publish(hub: string, target: SendTarget, message: EncodedMessage): Promise<void> {
    const pub = this.#pub;
    if (pub === undefined || pub.status !== "ready") throw new BackplaneError("The backplane is not connected to Redis; the send reached this server's connections only.");
    const channel = this.#channel(hub, ...publishScope(target));
    const envelope = writeEnvelope(this.#node, hub, target, message);
    try {
      if (this.#sharded) await pub.spublish(channel, envelope);
      else await pub.publish(channel, envelope);
    } catch (error) {
      throw new BackplaneError("Redis refused the send; it reached this server's connections only.", { cause: error });
    }
  }

  subscribe(hub: string, scope: BackplaneScope, key: string): void {
    const channel = this.#channel(hub, scope, key);
    if (this.#channels.has(channel)) return;
    this.#channels.add(channel);
    this.#command("subscribe", channel);
  }

  unsubscribe(hub: string, scope: BackplaneScope, key: string): void {
    const channel = this.#channel(hub, scope, key);
    if (!this.#channels.delete(channel)) return;
    this.#command("unsubscribe", channel);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#channels.clear();
    await Promise.allSettled([this.#pub?.quit(), this.#sub?.quit()]);
    this.#pub?.disconnect();
    this.#sub?.disconnect();
  }

  /**
   * Settles once Redis has confirmed every subscription change made so far. Pub/sub delivers only
   * to subscribers: a send published before another server's subscription is confirmed does not
   * reach that server (as with any Redis pub/sub adapter). Tests await this after joins.
   */
  subscribed(): Promise<void> {
    return this.#lastChange.then(() => undefined);
  }

  /** Channels this backplane is subscribed to (for tests and diagnostics). */
  get channels(): ReadonlySet<string> {
    return this.#channels;
  }

  #channel(hub: string, scope: BackplaneScope, key: string): string {
    return `${this.#prefix}:${hub}:${scope}:${key}`;
  }

  #command(action: "subscribe" | "unsubscribe", channel: string): void {
    const sub = this.#sub;
    if (sub === undefined || sub.status !== "ready") return; // subscribed on (re)connect
    const run = this.#sharded ? (action === "subscribe" ? sub.ssubscribe(channel) : sub.sunsubscribe(channel)) : action === "subscribe" ? sub.subscribe(channel) : sub.unsubscribe(channel);
    this.#lastChange = run.catch((error: unknown) => this.#logger.warn({ action, err: error }, "A backplane subscription change failed; it is retried when the connection to Redis is restored."));
  }

  #resubscribe(): void {
    const sub = this.#sub;
    if (sub === undefined || sub.status !== "ready" || this.#receive === undefined || this.#channels.size === 0) return;
    const channels = [...this.#channels];
    const run = this.#sharded ? sub.ssubscribe(...channels) : sub.subscribe(...channels);
    this.#lastChange = run.catch((error: unknown) => this.#logger.warn({ err: error }, "Restoring the backplane's subscriptions failed."));
  }

  #transition(lost: boolean): void {
    if (this.#closed || lost === this.#lost) return;
    this.#lost = lost;
    if (lost) this.#logger.warn({}, "Backplane lost its connection to Redis: cross-server sends fail until it is back.");
    else this.#logger.warn({ channels: this.#channels.size }, "Backplane reconnected to Redis; subscriptions restored.");
  }

  async #supportsSharded(): Promise<boolean> {
    try {
      const info = await this.#pub!.info("server");
      const major = Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0);
      return major >= 7;
    } catch {
      return false;
    }
  }

  #onMessage(_channel: Buffer, data: Buffer): void {
    if (data.length > this.#maxMessageBytes) {
      this.#logger.warn({ bytes: data.length, maxMessageBytes: this.#maxMessageBytes }, "Dropped an oversized backplane message.");
      return;
    }
    const envelope = readEnvelope(data);
    if ("error" in envelope) {
      this.#logger.warn({ reason: envelope.error }, "Dropped a backplane message that is not Switchboard's (or another version's).");
      return;
    }
    if (envelope.node.equals(this.#node)) return; // this server delivered it already
    this.#receive?.(envelope.hub, envelope.target, envelope.message);
  }
}

/** The channel a send goes to: one publish per send, always. */
function publishScope(target: SendTarget): [BackplaneScope, string] {
  switch (target.kind) {
    case "connection":
      return ["connection", target.connectionId];
    case "group":
      return ["group", target.group];
    case "user":
      return ["user", target.userId];
    default:
      // all, and sends to several connections, users or groups: every server picks its own recipients.
      return ["all", ""];
  }
}
