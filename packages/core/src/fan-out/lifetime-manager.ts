import { HubError } from "../contracts/errors.js";
import { GroupRegistry, checkGroupName, type ReadonlyGroupMembers } from "./group-registry.js";
import type { HubProtocol } from "../contracts/hub-protocol.js";
import type { Logger } from "../contracts/logger.js";
import type { HubLifetimeManager, Recipient } from "../contracts/hub-lifetime-manager.js";
import type { InvocationMessage } from "../contracts/hub-messages.js";
import type { SendTarget } from "../contracts/send-target.js";
import type { BackplaneScope } from "../contracts/backplane.js";
import type { SerializedRecord } from "../contracts/transport.js";
import { CountedSerializedMessage, SerializedMessage } from "./serialized-message.js";
import type { DeferredSend, FlushScheduler } from "./flush-scheduler.js";

/** Where a delivery takes its record for a recipient's protocol: a send's own encodings, or a backplane's. */
export interface RecordSource {
  /** The record for the protocol at `index`, or null when there is none for it. */
  recordFor(index: number): SerializedRecord | null;
}

/** Told when this server gains its first or loses its last local connection in a scope (for a backplane's subscriptions). */
export type InterestListener = (scope: BackplaneScope, key: string, present: boolean) => void;

/** Told of every join (`true`) and leave (`false`) of a local connection, for a cluster-wide directory. */
export type MembershipListener = (group: string, connectionId: string, joined: boolean) => void;

/** Optional behaviour of a {@link DefaultHubLifetimeManager}; each costs nothing when absent. */
export interface LifetimeHooks {
  /** For metrics: each send's recipient count per protocol index, after it went out. */
  readonly onSent?: (deliveries: readonly number[]) => void;
  /** Joins past this many groups per connection fail with a {@link HubError}. Default: no cap. */
  readonly maxGroupsPerConnection?: number;
  /** For a backplane: the first or last local connection of a group, user or connection. */
  readonly interest?: InterestListener;
  /** For a directory: every local join and leave, including the leaves of a connection that ends. */
  readonly membership?: MembershipListener;
  /**
   * The connections' flush scheduler. With it, a group send is deferred to the end of the turn and
   * walks the group once, writing to each member (sends to the same group in one turn join it);
   * without it (or with `onSent`, which counts at the send) a send queues on every member at once.
   */
  readonly scheduler?: FlushScheduler;
}

/** Sets above this size are checked through a `Set` built once per send, smaller ones by scanning. */
const EXCLUDED_SCAN_LIMIT = 8;

let stamp = 0;

/**
 * The in-memory lifetime manager: connections by id, users by id, groups both ways. A send walks
 * only its recipients, encodes once per protocol present among them, and queues the same record
 * on every recipient (no per-recipient allocation).
 */
export class DefaultHubLifetimeManager<C extends Recipient = Recipient> implements HubLifetimeManager<C> {
  readonly connections = new Map<string, C>();
  readonly groups = new GroupRegistry<C>();
  readonly #users = new Map<string, Set<C>>();
  readonly #protocols: readonly HubProtocol[];
  readonly #logger: Logger;
  readonly #onSent: ((deliveries: readonly number[]) => void) | undefined;

  readonly #maxGroups: number;
  readonly #interest: InterestListener | undefined;
  readonly #membership: MembershipListener | undefined;
  readonly #scheduler: FlushScheduler | undefined;

  constructor(protocols: readonly HubProtocol[], logger: Logger, hooks: LifetimeHooks = {}) {
    this.#protocols = protocols;
    this.#logger = logger;
    this.#onSent = hooks.onSent;
    this.#maxGroups = hooks.maxGroupsPerConnection ?? Infinity;
    this.#interest = hooks.interest;
    this.#membership = hooks.membership;
    // Metrics count recipients while a send is routed, so a counted send is never deferred.
    this.#scheduler = hooks.onSent === undefined ? hooks.scheduler : undefined;
  }

  onConnected(connection: C): void {
    this.connections.set(connection.connectionId, connection);
    const interest = this.#interest;
    interest?.("connection", connection.connectionId, true);
    const user = connection.userIdentifier;
    if (user !== null) {
      let set = this.#users.get(user);
      if (set === undefined) {
        this.#users.set(user, (set = new Set()));
        interest?.("user", user, true);
      }
      set.add(connection);
    }
  }

  onDisconnected(connection: C): void {
    if (this.connections.get(connection.connectionId) !== connection) return;
    this.#scheduler?.settle(); // deferred group sends reach the members they had when sent
    this.connections.delete(connection.connectionId);
    const interest = this.#interest;
    if (interest !== undefined) {
      interest("connection", connection.connectionId, false);
      for (const group of connection.groups) if (this.groups.count(group) === 1) interest("group", group, false);
    }
    const membership = this.#membership;
    if (membership !== undefined) for (const group of connection.groups) membership(group, connection.connectionId, false);
    this.groups.removeAll(connection);
    const user = connection.userIdentifier;
    if (user !== null) {
      const set = this.#users.get(user);
      if (set !== undefined && set.delete(connection) && set.size === 0) {
        this.#users.delete(user);
        interest?.("user", user, false);
      }
    }
  }

  addToGroup(connectionId: string, group: string): void {
    checkGroupName(group);
    const connection = this.connections.get(connectionId);
    if (connection === undefined || !connection.connected) return;
    this.#scheduler?.settle(); // a deferred send to the group must not reach a member that joined after it
    if (connection.groups.size >= this.#maxGroups && !connection.groups.has(group)) {
      throw new HubError(`A connection can be in at most ${this.#maxGroups} groups.`);
    }
    const first = this.#interest !== undefined && this.groups.count(group) === 0;
    const joining = this.#membership !== undefined && !connection.groups.has(group);
    this.groups.add(connection, group);
    if (first) this.#interest!("group", group, true);
    if (joining) this.#membership!(group, connectionId, true);
  }

  removeFromGroup(connectionId: string, group: string): void {
    checkGroupName(group);
    const connection = this.connections.get(connectionId);
    if (connection === undefined) return;
    this.#scheduler?.settle(); // ...nor miss a member that left after it
    const had = (this.#interest !== undefined || this.#membership !== undefined) && connection.groups.has(group);
    this.groups.remove(connection, group);
    if (had) {
      if (this.#interest !== undefined && this.groups.count(group) === 0) this.#interest("group", group, false);
      this.#membership?.(group, connectionId, false);
    }
  }

  /** The connections of `userId` (empty when none). */
  userConnections(userId: string): ReadonlySet<C> | undefined {
    return this.#users.get(userId);
  }

  send(target: SendTarget, message: InvocationMessage): void {
    this.sendLocal(target, message);
  }

  /** Delivers to this server's recipients of `target`; returns the encodings, which a backplane publishes. */
  sendLocal(target: SendTarget, message: InvocationMessage): SerializedMessage {
    // Without metrics the only cost is this check, once per send (never per recipient).
    const onSent = this.#onSent;
    if (onSent === undefined) {
      const serialized = new SerializedMessage(message, this.#protocols, this.#logger);
      this.#route(target, serialized);
      return serialized;
    }
    const counted = new CountedSerializedMessage(message, this.#protocols, this.#logger);
    this.#route(target, counted);
    onSent(counted.deliveries);
    return counted;
  }

  /** Delivers a send another server encoded (it came through the backplane) to this server's recipients. */
  deliver(target: SendTarget, source: RecordSource): void {
    this.#route(target, source);
  }

  #route(target: SendTarget, serialized: RecordSource): void {
    const scheduler = this.#scheduler;
    // Sends that mark recipients (`sendStamp`) or walk many connections first queue what was
    // deferred; a send to one connection needs nothing here (the connection catches up itself).
    if (scheduler !== undefined && target.kind !== "group" && target.kind !== "connection") scheduler.settle();
    switch (target.kind) {
      case "all":
        this.#deliverAll(this.connections.values(), serialized, target.excluded);
        return;
      case "connection": {
        const connection = this.connections.get(target.connectionId);
        if (connection !== undefined) deliver(connection, serialized);
        return;
      }
      case "connections": {
        const current = ++stamp;
        for (const id of target.connectionIds) {
          const connection = this.connections.get(id);
          if (connection === undefined || connection.sendStamp === current) continue;
          connection.sendStamp = current;
          deliver(connection, serialized);
        }
        return;
      }
      case "group": {
        checkGroupName(target.group);
        const members = this.groups.membersOf(target.group);
        if (members === undefined) return;
        if (scheduler === undefined) {
          this.#deliverAll(members.values(), serialized, target.excluded);
          return;
        }
        const excluded = target.excluded !== undefined && target.excluded.length > 0 ? target.excluded : undefined;
        // Encoded now, in the protocols the recipients speak (counted by the registry, less the
        // excluded members: no walk): later changes to the arguments must not show in what is sent.
        for (let i = 0; i < this.#protocols.length; i++) {
          const speaking = members.speaking(i);
          if (speaking > 0 && (excluded === undefined || speaking > this.#excludedSpeaking(members, excluded, i))) serialized.recordFor(i);
        }
        const last = scheduler.lastDeferred;
        if (last instanceof DeferredGroupSend && last.joins(members, excluded)) last.add(serialized);
        // The exclusions are copied, as the arguments are encoded: the caller may change its
        // array before the walk (one small array per deferred send that excludes, none per member).
        else scheduler.defer(new DeferredGroupSend<C>(members, excluded?.slice(), serialized, ++stamp));
        return;
      }
      case "groups": {
        // Every name is checked before anyone is sent anything: a bad name never leaves a partial send.
        for (const group of target.groups) checkGroupName(group);
        // A connection in several of the groups receives the message once.
        const current = ++stamp;
        const excluded = target.excluded !== undefined && target.excluded.length > 0 ? target.excluded : undefined;
        for (const group of target.groups) {
          const members = this.groups.membersOf(group);
          if (members === undefined) continue;
          for (const connection of members) {
            if (connection.sendStamp === current) continue;
            connection.sendStamp = current;
            if (excluded === undefined || !excluded.includes(connection.connectionId)) deliver(connection, serialized);
          }
        }
        return;
      }
      case "user": {
        const set = this.#users.get(target.userId);
        if (set !== undefined) for (const connection of set) deliver(connection, serialized);
        return;
      }
      case "users": {
        const current = ++stamp;
        for (const user of target.userIds) {
          const set = this.#users.get(user);
          if (set === undefined) continue;
          for (const connection of set) {
            if (connection.sendStamp === current) continue;
            connection.sendStamp = current;
            deliver(connection, serialized);
          }
        }
        return;
      }
    }
  }

  /**
   * How many of `excluded` are members of `members` speaking the protocol at `index` (each id once).
   * Long lists count as none: at worst the send is encoded in a protocol no recipient speaks.
   */
  #excludedSpeaking(members: ReadonlyGroupMembers<C>, excluded: readonly string[], index: number): number {
    if (excluded.length > EXCLUDED_SCAN_LIMIT) return 0;
    let count = 0;
    for (let i = 0; i < excluded.length; i++) {
      const connection = this.connections.get(excluded[i]!);
      if (connection !== undefined && connection.protocolIndex === index && members.has(connection) && excluded.indexOf(excluded[i]!) === i) count++;
    }
    return count;
  }

  #deliverAll(connections: IterableIterator<Recipient>, serialized: RecordSource, excluded: readonly string[] | undefined): void {
    if (excluded === undefined || excluded.length === 0) {
      for (const connection of connections) deliver(connection, serialized);
    } else if (excluded.length <= EXCLUDED_SCAN_LIMIT) {
      for (const connection of connections) if (!excluded.includes(connection.connectionId)) deliver(connection, serialized);
    } else {
      const skip = new Set(excluded);
      for (const connection of connections) if (!skip.has(connection.connectionId)) deliver(connection, serialized);
    }
  }
}

function deliver(connection: Recipient, serialized: RecordSource): void {
  const record = serialized.recordFor(connection.protocolIndex);
  if (record !== null) connection.enqueue(record);
}

/**
 * A send to one group, deferred to the end of the turn (see {@link LifetimeHooks.scheduler}); the
 * group's later sends in the same turn join it. At the flush it walks the members once: a member
 * with nothing else queued gets every record in one transport message at once, the others queue
 * them. Its records are taken once per protocol, never per member.
 */
class DeferredGroupSend<C extends Recipient> implements DeferredSend {
  readonly #members: ReadonlyGroupMembers<C>;
  readonly #excluded: readonly string[] | undefined;
  readonly #sources: RecordSource[];
  /** Members caught up before the flush carry this stamp (or a later one) and are skipped then. */
  readonly #stamp: number;
  /** A member was caught up: a later send may not join (that member would miss it). */
  #closed = false;
  /** Records per protocol index, taken at first need. */
  #records: (readonly SerializedRecord[] | undefined)[] | undefined;
  /** Their total length per protocol index, counted with them. */
  #bytes: number[] | undefined;

  constructor(members: ReadonlyGroupMembers<C>, excluded: readonly string[] | undefined, source: RecordSource, sendStamp: number) {
    this.#members = members;
    this.#excluded = excluded;
    this.#sources = [source];
    this.#stamp = sendStamp;
  }

  /** Whether a send to `members` excluding `excluded` may join this one. */
  joins(members: ReadonlyGroupMembers<C>, excluded: readonly string[] | undefined): boolean {
    if (this.#closed || members !== this.#members) return false;
    const mine = this.#excluded;
    if (mine === undefined || excluded === undefined) return mine === excluded;
    if (mine.length !== excluded.length || mine.length > EXCLUDED_SCAN_LIMIT) return false;
    for (let i = 0; i < mine.length; i++) if (mine[i] !== excluded[i]) return false;
    return true;
  }

  add(source: RecordSource): void {
    this.#sources.push(source);
  }

  catchUp(recipient: unknown): void {
    const member = recipient as C;
    if (member.sendStamp >= this.#stamp || !this.#members.has(member)) return;
    if (this.#excluded !== undefined && this.#excluded.includes(member.connectionId)) return;
    member.sendStamp = this.#stamp;
    this.#closed = true;
    const records = this.#recordsFor(member.protocolIndex);
    for (let i = 0; i < records.length; i++) member.enqueue(records[i]!);
  }

  deliver(alone: boolean): void {
    const stamp = this.#stamp;
    const excluded = this.#excluded;
    const skip = excluded !== undefined && excluded.length > EXCLUDED_SCAN_LIMIT ? new Set(excluded) : undefined;
    // A comparison's result: V8 then knows it is a boolean and tests it in one instruction per
    // member instead of converting a parameter of unknown type each time.
    const now = alone === true;
    // The first two protocols' records are kept in locals: most groups speak one or two protocols,
    // and a member then costs no lookup in the cache.
    let first: readonly SerializedRecord[] | undefined;
    let second: readonly SerializedRecord[] | undefined;
    for (const member of this.#members) {
      if (member.sendStamp >= stamp) continue;
      if (excluded !== undefined && (skip !== undefined ? skip.has(member.connectionId) : excluded.includes(member.connectionId))) continue;
      const index = member.protocolIndex;
      const records = index === 0 ? (first ??= this.#recordsFor(0)) : index === 1 ? (second ??= this.#recordsFor(1)) : this.#recordsFor(index);
      const count = records.length;
      if (count === 0) continue;
      if (now) member.deliverNow(records, count, this.#bytes![index]!);
      else for (let i = 0; i < count; i++) member.enqueue(records[i]!);
    }
  }

  /** The records for protocol `index` (and, in `#bytes`, their total length). */
  #recordsFor(index: number): readonly SerializedRecord[] {
    const cache = (this.#records ??= []);
    let records = cache[index];
    if (records === undefined) {
      const taken: SerializedRecord[] = [];
      let bytes = 0;
      for (const source of this.#sources) {
        const record = source.recordFor(index);
        if (record === null) continue;
        taken.push(record);
        bytes += record.bytes.length;
      }
      (this.#bytes ??= [])[index] = bytes;
      // Several records are frozen: every member gets this very array, and a transport may reuse
      // the message it built from it (TransportConnection.write). A single record is left as it is:
      // a transport sends it on its one-record path, which has nothing to reuse, and that path
      // keeps seeing only the plain arrays the connections' own queues hand it.
      records = cache[index] = taken.length > 1 ? Object.freeze(taken) : taken;
    }
    return records;
  }
}
