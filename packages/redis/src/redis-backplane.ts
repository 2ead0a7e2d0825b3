import { randomBytes } from "node:crypto";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { BackplaneError, ConnectionTimeoutError, consoleLogger, OptionsError, SwitchboardError, type Backplane, type BackplaneReceiver, type BackplaneScope, type CommandAnswer, type ConnectionCommand, type EncodedMessage, type GroupDirectory, type Logger, type Page, type PageOptions, type SendTarget } from "@switchboard/core";
import { RedisDirectory, type RedisClient } from "./redis-directory.js";
import { COMMAND, NODE_ID_LENGTH, readCommand, readEnvelope, readReply, REPLY, sentBy, writeCommand, writeEnvelope, writeReply } from "./envelope.js";

/** Options of a {@link RedisBackplane}. */
export interface RedisBackplaneOptions {
  /** Where Redis is. Default `redis://127.0.0.1:6379`. Ignored with `cluster`. */
  readonly url?: string;
  /**
   * Redis Cluster (7 or later): some of its nodes (`[{ host, port }]`), from which ioredis discovers
   * the rest. Sharded pub/sub; every channel of one hub is in one slot (so one sender's sends keep
   * their order), and hubs spread over the shards; the group directory lives in one slot. `redis`
   * then gives the options of each node's connection.
   */
  readonly cluster?: readonly { readonly host: string; readonly port: number }[];
  /** More ioredis options (TLS, password, …), merged over the URL's. */
  readonly redis?: RedisOptions;
  /** Prefix of every channel, to share one Redis between applications. Default `"sb"`. */
  readonly prefix?: string;
  /**
   * Sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+): `"auto"` uses it when the server has it, else
   * classic PUBLISH/SUBSCRIBE. Default `"auto"`. A cluster needs it (`false` is refused there): on a
   * cluster, classic PUBLISH goes to any node and reaches the others by different routes, so not
   * even the sends to one connection would keep their order.
   */
  readonly sharded?: boolean | "auto";
  /** Largest message accepted from a channel; larger ones are dropped (logged). Default 1 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * How long `groups.add/remove` of a connection on another server waits for that server's answer,
   * and how long any one publish or directory command may wait for Redis. Default 5 000 ms.
   */
  readonly requestTimeout?: number;
  /**
   * Lease of this server's entries in the cluster-wide group directory, in ms: renewed every
   * third of it; a server that stops without closing has its members removed by the others within
   * the lease plus a third. Default 15 000 (gone within 20 s).
   */
  readonly lease?: number;
  /** Where transitions (connected, lost, restored) and dropped messages are logged. Default: JSON lines on stderr at "warn". */
  readonly logger?: Logger;
}

/** At most this many commands for other servers' connections wait for an answer at once; more are refused. */
const MAX_PENDING_COMMANDS = 10_000;

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
 * dropped with a log line. Standalone Redis (`url`) or Redis Cluster (`cluster`).
 *
 * It also keeps the cluster-wide group directory behind `groups.cluster` (see redis-directory.ts
 * and the package README for how fresh its answers are).
 */
export class RedisBackplane implements Backplane, GroupDirectory {
  readonly #options: RedisBackplaneOptions;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #maxMessageBytes: number;
  readonly #node = randomBytes(NODE_ID_LENGTH);
  readonly #channels = new Set<string>();
  #pub: RedisClient | undefined;
  #sub: RedisClient | undefined;
  #sharded = false;
  #receiver: BackplaneReceiver | undefined;
  readonly #requestTimeout: number;
  #lastRequest = 0;
  readonly #pending = new Map<number, { resolve(answer: CommandAnswer): void; reject(error: Error): void; timer: NodeJS.Timeout }>();
  readonly #lease: number;
  #directory: RedisDirectory | undefined;
  #closed = false;
  #started = false;
  #lost = false;
  /** Settles when every subscription change sent so far has (on a cluster they go over one connection per shard). */
  #lastChange: Promise<unknown> = Promise.resolve();

  constructor(options: RedisBackplaneOptions = {}) {
    if (options === null || typeof options !== "object") throw new OptionsError("new RedisBackplane(options) takes an options object, e.g. { url: 'redis://127.0.0.1:6379' }.");
    this.#options = options;
    this.#logger = options.logger ?? consoleLogger("warn");
    this.#prefix = options.prefix ?? "sb";
    this.#maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
    this.#requestTimeout = options.requestTimeout ?? 5_000;
    this.#lease = options.lease ?? 15_000;
    if (!Number.isSafeInteger(this.#lease) || this.#lease < 30) throw new OptionsError("Option 'lease' must be a whole number of milliseconds, at least 30.");
    if (!Number.isFinite(this.#requestTimeout) || this.#requestTimeout <= 0) throw new OptionsError("Option 'requestTimeout' must be a positive number of milliseconds.");
    if (typeof this.#prefix !== "string" || this.#prefix.length === 0) throw new OptionsError("Option 'prefix' must be a non-empty string.");
    if (!Number.isSafeInteger(this.#maxMessageBytes) || this.#maxMessageBytes <= 0) throw new OptionsError("Option 'maxMessageBytes' must be a positive integer.");
    if (options.cluster !== undefined && /[{}]/.test(this.#prefix)) {
      throw new OptionsError("Option 'prefix' cannot contain '{' or '}' with 'cluster': the backplane puts the hub (and the directory) in braces, as the hash tag that keeps their keys in one slot.");
    }
    if (options.cluster !== undefined && options.sharded === false) {
      throw new OptionsError("Option 'sharded: false' cannot be used with 'cluster': classic pub/sub on a Redis Cluster does not keep sends in order. Leave 'sharded' out (Redis 7 or later), or use a standalone Redis ('url').");
    }
  }

  async start(receiver: BackplaneReceiver): Promise<void> {
    if (this.#receiver !== undefined) throw new OptionsError("A RedisBackplane serves one server: give each server its own.");
    this.#receiver = receiver;
    // Answers to this server's group commands come on a channel of its own.
    this.#channels.add(this.#replyChannel(this.#node));
    // Publishing fails fast while Redis is away (no offline queue); subscriptions are ours to restore.
    // A stalled Redis (CLIENT PAUSE, overload) fails a publish after requestTimeout instead of holding it.
    const cluster = this.#options.cluster;
    if (cluster !== undefined) {
      const nodes = cluster.map(({ host, port }) => ({ host, port }));
      const redisOptions: RedisOptions = { maxRetriesPerRequest: 1, ...this.#options.redis };
      this.#pub = new Cluster(nodes, { lazyConnect: true, enableOfflineQueue: false, redisOptions: { commandTimeout: this.#requestTimeout, ...redisOptions } });
      this.#sub = new Cluster(nodes, { lazyConnect: true, shardedSubscribers: true, redisOptions });
    } else {
      const url = this.#options.url ?? "redis://127.0.0.1:6379";
      const base: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: 1, ...this.#options.redis };
      this.#pub = new Redis(url, { commandTimeout: this.#requestTimeout, ...base, enableOfflineQueue: false });
      this.#sub = new Redis(url, { ...base, autoResubscribe: false });
    }
    for (const [name, client] of [["publisher", this.#pub], ["subscriber", this.#sub]] as const) {
      client.on("error", (error: Error) => this.#logger.debug({ connection: name, err: error }, "Redis connection error."));
    }
    const directory = (this.#directory = new RedisDirectory(this.#prefix, this.#node.toString("hex"), this.#lease, this.#logger, () => receiver.memberships()));
    this.#pub.on("close", () => directory.lost());
    this.#pub.on("ready", () => {
      if (this.#started) directory.restored().catch((error: unknown) => this.#logger.warn({ err: error }, "Could not rewrite this server's group memberships after Redis came back; retried at the next renewal."));
    });
    this.#sub.on("close", () => this.#started && this.#transition(true));
    this.#sub.on("ready", () => {
      if (this.#started && this.#lost) this.#transition(false);
      this.#resubscribe();
    });
    this.#sub.on("messageBuffer", (channel: Buffer, data: Buffer) => this.#onMessage(channel, data));
    this.#sub.on("smessageBuffer", (channel: Buffer, data: Buffer) => this.#onMessage(channel, data));
    // Redis down at startup: the server boots and serves its own connections, cross-server calls
    // fail with SB_ERR_BACKPLANE, and ioredis keeps retrying; start() settles once it got through.
    const pub = this.#pub;
    const sub = this.#sub;
    const connected = Promise.all([pub.connect(), sub.connect()]).then(
      () => undefined,
      () => {
        this.#logger.warn({}, "Backplane cannot reach Redis yet; retrying. This server serves its own connections; cross-server calls fail until then.");
        this.#lost = true;
        return Promise.all([whenReady(pub), whenReady(sub)]).then(() => undefined);
      },
    );
    await connected;
    if (this.#closed) return;
    const supported = await this.#supportsSharded();
    if (this.#closed) return;
    if (cluster !== undefined && supported === false) {
      await this.close();
      throw new BackplaneError("This Redis Cluster has no sharded pub/sub (SPUBLISH, Redis 7 or later): the backplane did not start. Upgrade the cluster, or use a standalone Redis ('url').");
    }
    // A cluster that cannot be asked is taken to have it (a failed SSUBSCRIBE is logged); a standalone Redis falls back.
    const sharded = this.#options.sharded ?? "auto";
    this.#sharded = sharded === "auto" ? (supported ?? cluster !== undefined) : sharded;
    this.#lost = false;
    this.#logger.info({ sharded: this.#sharded }, "Backplane connected to Redis.");
    this.#started = true;
    this.#resubscribe();
    await directory.start(pub);
  }

  async publish(hub: string, target: SendTarget, message: EncodedMessage): Promise<void> {
    const pub = this.#pub;
    if (!this.#started || pub === undefined || pub.status !== "ready") throw new BackplaneError("The backplane is not connected to Redis; the send reached this server's connections only.");
    const channel = this.#channel(hub, ...publishScope(target));
    const envelope = writeEnvelope(this.#node, hub, target, message);
    try {
      if (this.#sharded) await pub.spublish(channel, envelope);
      else await pub.publish(channel, envelope);
    } catch (error) {
      throw new BackplaneError("Redis refused the send; it reached this server's connections only.", { cause: error });
    }
  }

  async command(hub: string, command: ConnectionCommand): Promise<CommandAnswer> {
    const pub = this.#pub;
    if (!this.#started || pub === undefined || pub.status !== "ready") throw new BackplaneError("The backplane is not connected to Redis: a connection of another server cannot be reached now.");
    if (this.#pending.size >= MAX_PENDING_COMMANDS) throw new BackplaneError("Too many requests to other servers' connections are waiting for an answer.");
    const id = ++this.#lastRequest;
    // An invoke waits for the client as long as its caller does; everything else for requestTimeout.
    const timeout = command.op === "invoke" ? command.timeout + this.#requestTimeout : this.#requestTimeout;
    const answered = new Promise<CommandAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ConnectionTimeoutError(`No server answered for connection '${command.connectionId}' within ${timeout} ms: its server is unreachable or stalled.`));
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer });
    });
    answered.catch(() => undefined); // may settle while the publish below is still under way; the caller gets it below
    const envelope = writeCommand(this.#node, hub, id, command);
    const channel = this.#channel(hub, "connection", command.connectionId);
    let receivers: number;
    try {
      receivers = Number(this.#sharded ? await pub.spublish(channel, envelope) : await pub.publish(channel, envelope));
    } catch (error) {
      this.#forget(id);
      throw new BackplaneError("Redis refused the request for another server's connection.", { cause: error });
    }
    // Only the server holding a connection subscribes to its channel.
    if (receivers === 0) {
      this.#forget(id);
      throw new BackplaneError(`Connection '${command.connectionId}' is not connected to any server.`);
    }
    return answered;
  }

  #forget(id: number): void {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    if (pending !== undefined) clearTimeout(pending.timer);
  }

  // ---- group directory (see redis-directory.ts) ------------------------------------------------

  track(hub: string, group: string, connectionId: string, joined: boolean): void {
    this.#directory?.track(hub, group, connectionId, joined);
  }

  count(hub: string, group: string): Promise<number> {
    return this.#directoryQuery((directory) => directory.count(hub, group));
  }

  has(hub: string, group: string, connectionId: string): Promise<boolean> {
    return this.#directoryQuery((directory) => directory.has(hub, group, connectionId));
  }

  groupsOf(hub: string, connectionId: string): Promise<readonly string[]> {
    return this.#directoryQuery((directory) => directory.groupsOf(hub, connectionId));
  }

  members(hub: string, group: string, page: PageOptions): Promise<Page> {
    return this.#directoryQuery((directory) => directory.members(hub, group, page));
  }

  groups(hub: string, page: PageOptions): Promise<Page> {
    return this.#directoryQuery((directory) => directory.groups(hub, page));
  }

  #directoryQuery<T>(query: (directory: RedisDirectory) => Promise<T>): Promise<T> {
    try {
      if (this.#directory === undefined || this.#closed) throw new BackplaneError("Cluster-wide group membership is not available: the backplane has not started or has closed.");
      return query(this.#directory);
    } catch (error) {
      return Promise.reject(error);
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
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new BackplaneError("The backplane closed before the other server answered."));
    }
    this.#pending.clear();
    this.#channels.clear();
    await this.#directory?.close();
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

  #replyChannel(node: Buffer): string {
    return `${this.#prefix}:reply:${node.toString("hex")}`;
  }

  /**
   * On a cluster the hub is the channel's hash tag: its channels share one slot, so they travel over
   * one connection to one shard and one sender's sends keep their order (channels on several shards
   * arrive over several connections, in any order); different hubs spread over the shards.
   */
  #channel(hub: string, scope: BackplaneScope, key: string): string {
    return this.#options.cluster === undefined ? `${this.#prefix}:${hub}:${scope}:${key}` : `${this.#prefix}:{${hub}}:${scope}:${key}`;
  }

  #command(action: "subscribe" | "unsubscribe", channel: string): void {
    const sub = this.#sub;
    if (!this.#started || sub === undefined || sub.status !== "ready") return; // subscribed on (re)connect
    const run = this.#sharded ? (action === "subscribe" ? sub.ssubscribe(channel) : sub.sunsubscribe(channel)) : action === "subscribe" ? sub.subscribe(channel) : sub.unsubscribe(channel);
    const done = run.catch((error: unknown) => this.#logger.warn({ action, err: error }, "A backplane subscription change failed; it is retried when the connection to Redis is restored."));
    this.#lastChange = Promise.all([this.#lastChange, done]);
  }

  #resubscribe(): void {
    const sub = this.#sub;
    if (!this.#started || sub === undefined || sub.status !== "ready" || this.#receiver === undefined || this.#channels.size === 0) return;
    const channels = [...this.#channels];
    // On a cluster, sharded channels live on different shards: one SSUBSCRIBE each (pipelined).
    const run = !this.#sharded ? sub.subscribe(...channels) : sub instanceof Cluster ? Promise.all(channels.map((channel) => sub.ssubscribe(channel))) : sub.ssubscribe(...channels);
    const done = run.catch((error: unknown) => this.#logger.warn({ err: error }, "Restoring the backplane's subscriptions failed."));
    this.#lastChange = Promise.all([this.#lastChange, done]);
  }

  #transition(lost: boolean): void {
    if (this.#closed || lost === this.#lost) return;
    this.#lost = lost;
    if (lost) this.#logger.warn({}, "Backplane lost its connection to Redis: cross-server sends fail until it is back.");
    else this.#logger.warn({ channels: this.#channels.size }, "Backplane reconnected to Redis; subscriptions restored.");
  }

  /** Whether the server knows SPUBLISH (Redis 7 and later, unless renamed away), or undefined when it cannot be asked. */
  async #supportsSharded(): Promise<boolean | undefined> {
    try {
      const [spublish] = (await this.#pub!.call("COMMAND", "INFO", "SPUBLISH")) as unknown[];
      return Array.isArray(spublish);
    } catch {
      return undefined;
    }
  }

  #onMessage(_channel: Buffer, data: Buffer): void {
    if (data.length > this.#maxMessageBytes) {
      this.#logger.warn({ bytes: data.length, maxMessageBytes: this.#maxMessageBytes }, "Dropped an oversized backplane message.");
      return;
    }
    if (data[0] === COMMAND) return this.#onCommand(data);
    if (data[0] === REPLY) return this.#onReply(data);
    if (sentBy(data, this.#node)) return; // this server delivered it already
    const envelope = readEnvelope(data);
    if ("error" in envelope) {
      this.#logger.warn({ reason: envelope.error }, "Dropped a backplane message that is not Switchboard's (or another version's).");
      return;
    }
    this.#receiver?.deliver(envelope.hub, envelope.target, envelope.message);
  }

  #onCommand(data: Buffer): void {
    const request = readCommand(data);
    if ("error" in request) {
      this.#logger.warn({ reason: request.error }, "Dropped a malformed request from the backplane.");
      return;
    }
    const reply = (answer: { readonly error?: string; readonly answer?: CommandAnswer }): void => {
      const pub = this.#pub;
      if (pub === undefined || pub.status !== "ready") return; // the asker times out
      const channel = this.#replyChannel(request.node);
      const bytes = writeReply(request.id, answer);
      (this.#sharded ? pub.spublish(channel, bytes) : pub.publish(channel, bytes)).catch(() => undefined);
    };
    this.#receiver?.command(request.hub, request.command).then(
      (answer) => answer !== undefined && reply({ answer }),
      (error: unknown) => reply({ error: error instanceof SwitchboardError ? error.message : "The request failed on the connection's server." }),
    );
  }

  #onReply(data: Buffer): void {
    const reply = readReply(data);
    if ("error" in reply && reply.id === undefined) {
      this.#logger.warn({ reason: reply.error }, "Dropped a malformed reply from the backplane.");
      return;
    }
    const pending = this.#pending.get(reply.id!);
    if (pending === undefined) return; // late, after a timeout
    this.#pending.delete(reply.id!);
    clearTimeout(pending.timer);
    if (reply.failure !== undefined) pending.reject(new BackplaneError(reply.failure));
    else pending.resolve(reply.answer ?? {});
  }
}

/** Settles when `client` is ready (ioredis keeps reconnecting by itself). */
function whenReady(client: RedisClient): Promise<void> {
  return client.status === "ready" ? Promise.resolve() : new Promise((resolve) => client.once("ready", () => resolve()));
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
