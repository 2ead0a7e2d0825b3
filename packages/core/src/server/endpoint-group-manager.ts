import { GroupPersistError } from "../contracts/errors.js";
import type { MembershipStore } from "../contracts/membership-store.js";
import { DefaultGroupManager, type GroupOptions } from "../fan-out/group-manager.js";
import { checkGroupName } from "../fan-out/group-registry.js";
import type { DefaultHubLifetimeManager } from "../fan-out/lifetime-manager.js";
import type { HubConnection } from "../connections/hub-connection.js";
import type { GroupRejoin } from "./group-rejoin.js";
import type { CommandAnswer, ConnectionCommand } from "../contracts/backplane.js";
import type { ClusterGroups } from "../fan-out/group-manager.js";

const RESOLVED = Promise.resolve();

/**
 * A hub's group manager: the in-memory one, plus `{ persist: true }` through the membership store
 * and a fresh rejoin token for clients that asked for them. Without either, an add or remove costs
 * one Set lookup more than the in-memory manager.
 */
export class EndpointGroupManager extends DefaultGroupManager {
  readonly #hub: string;
  readonly #manager: DefaultHubLifetimeManager<HubConnection>;
  readonly #store: MembershipStore;
  readonly #rejoin: GroupRejoin;
  readonly #remote: ((command: ConnectionCommand) => Promise<CommandAnswer>) | undefined;

  /**
   * `remote`: with a backplane, how a change for a connection of another server reaches it;
   * `cluster`: the cluster-wide queries, with a directory.
   */
  constructor(hub: string, manager: DefaultHubLifetimeManager<HubConnection>, store: MembershipStore, rejoin: GroupRejoin, remote?: (command: ConnectionCommand) => Promise<CommandAnswer>, cluster?: ClusterGroups) {
    super(manager, cluster);
    this.#hub = hub;
    this.#manager = manager;
    this.#store = store;
    this.#rejoin = rejoin;
    this.#remote = remote;
  }

  // Local, unpersisted changes (the common case) stay synchronous: no async frame, no new promise.
  override add(connectionId: string, group: string, options?: GroupOptions): Promise<void> {
    if (options?.persist === true || (this.#remote !== undefined && !this.#manager.connections.has(connectionId))) return this.#addElsewhere(connectionId, group, options);
    try {
      this.#manager.addToGroup(connectionId, group);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#rejoin.changed(connectionId);
    return RESOLVED;
  }

  override remove(connectionId: string, group: string, options?: GroupOptions): Promise<void> {
    if (options?.persist === true || (this.#remote !== undefined && !this.#manager.connections.has(connectionId))) return this.#removeElsewhere(connectionId, group, options);
    try {
      this.#manager.removeFromGroup(connectionId, group);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#rejoin.changed(connectionId);
    return RESOLVED;
  }

  /** An add for a connection of another server, or one to persist. */
  async #addElsewhere(connectionId: string, group: string, options?: GroupOptions): Promise<void> {
    if (this.#remote !== undefined && !this.#manager.connections.has(connectionId)) {
      checkGroupName(group);
      await this.#remote({ op: "add", connectionId, group, persist: options?.persist === true });
      return;
    }
    // Recorded first: when the store fails, nothing changed and the caller learns it.
    await this.#store.add(this.#hub, this.#userOf(connectionId, group), group);
    this.#manager.addToGroup(connectionId, group);
    this.#rejoin.changed(connectionId);
  }

  /** A remove for a connection of another server, or one to persist. */
  async #removeElsewhere(connectionId: string, group: string, options?: GroupOptions): Promise<void> {
    if (this.#remote !== undefined && !this.#manager.connections.has(connectionId)) {
      checkGroupName(group);
      await this.#remote({ op: "remove", connectionId, group, persist: options?.persist === true });
      return;
    }
    const user = this.#userOf(connectionId, group);
    this.#manager.removeFromGroup(connectionId, group);
    this.#rejoin.changed(connectionId);
    await this.#store.remove(this.#hub, user, group);
  }

  #userOf(connectionId: string, group: string): string {
    checkGroupName(group);
    const connection = this.#manager.connections.get(connectionId);
    if (connection === undefined) throw new GroupPersistError(`Cannot persist group membership of connection '${connectionId}': it is not connected to this server.`);
    const user = connection.userIdentifier;
    if (user === null) throw new GroupPersistError(`Cannot persist group membership of connection '${connectionId}': it has no user identifier (see 'authenticate' and 'userIdProvider').`);
    return user;
  }
}
