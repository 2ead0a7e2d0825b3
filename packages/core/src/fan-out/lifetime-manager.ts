import { HubError } from "../contracts/errors.js";
import { GroupRegistry, checkGroupName } from "./group-registry.js";
import type { HubProtocol } from "../contracts/hub-protocol.js";
import type { Logger } from "../contracts/logger.js";
import type { HubLifetimeManager, Recipient } from "../contracts/hub-lifetime-manager.js";
import type { InvocationMessage } from "../contracts/hub-messages.js";
import type { SendTarget } from "../contracts/send-target.js";
import type { BackplaneScope } from "../contracts/backplane.js";
import type { SerializedRecord } from "../contracts/transport.js";
import { CountedSerializedMessage, SerializedMessage } from "./serialized-message.js";

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

  constructor(protocols: readonly HubProtocol[], logger: Logger, hooks: LifetimeHooks = {}) {
    this.#protocols = protocols;
    this.#logger = logger;
    this.#onSent = hooks.onSent;
    this.#maxGroups = hooks.maxGroupsPerConnection ?? Infinity;
    this.#interest = hooks.interest;
    this.#membership = hooks.membership;
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
        if (members !== undefined) this.#deliverAll(members.values(), serialized, target.excluded);
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
