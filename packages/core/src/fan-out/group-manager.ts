import { checkGroupName } from "./group-registry.js";
import type { DefaultHubLifetimeManager } from "./lifetime-manager.js";

/**
 * Group membership of one hub, for hubs (`this.groups`) and hub contexts. `add` and `remove`
 * return promises because a backplane needs them; in memory they settle at once, and a send on the
 * next line already reaches the new member.
 *
 * The queries (`count`, `has`, `groupsOf`, `members`, `list`) go beyond SignalR. They answer from
 * this server's view of its own connections; none of them scans all groups.
 */
export interface GroupManager {
  /** Adds a connection to a group; with `persist`, also records it for the connection's user (see {@link GroupOptions}). */
  add(connectionId: string, group: string, options?: GroupOptions): Promise<void>;
  /** Removes a connection from a group; with `persist`, also forgets it for the connection's user. */
  remove(connectionId: string, group: string, options?: GroupOptions): Promise<void>;
  /** Members of `group` on this server (0 when it does not exist). */
  count(group: string): number;
  has(group: string, connectionId: string): boolean;
  /** The groups a connection is in (empty for unknown connections). */
  groupsOf(connectionId: string): string[];
  /** Connection ids in `group`. */
  members(group: string): IterableIterator<string>;
  /** Names of the groups that have at least one member. */
  list(): IterableIterator<string>;
}

/** Options of `groups.add` and `groups.remove`. */
export interface GroupOptions {
  /**
   * Also record (add) or forget (remove) the membership for the connection's user in the server's
   * `membershipStore`, so that user's future connections start in the group. The promise settles
   * once the store has; a connection without a user (or not on this server) rejects with
   * `SB_ERR_GROUP_PERSIST`, and a store failure rejects with the store's error.
   */
  readonly persist?: boolean;
}

function* connectionIds(members: Iterable<{ readonly connectionId: string }>): IterableIterator<string> {
  for (const member of members) yield member.connectionId;
}

/** The in-memory {@link GroupManager} over a {@link DefaultHubLifetimeManager}. */
export class DefaultGroupManager implements GroupManager {
  readonly #manager: DefaultHubLifetimeManager;

  constructor(manager: DefaultHubLifetimeManager) {
    this.#manager = manager;
  }

  add(connectionId: string, group: string): Promise<void> {
    try {
      this.#manager.addToGroup(connectionId, group);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  remove(connectionId: string, group: string): Promise<void> {
    try {
      this.#manager.removeFromGroup(connectionId, group);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  count(group: string): number {
    checkGroupName(group);
    return this.#manager.groups.count(group);
  }

  has(group: string, connectionId: string): boolean {
    checkGroupName(group);
    return this.#manager.connections.get(connectionId)?.groups.has(group) ?? false;
  }

  groupsOf(connectionId: string): string[] {
    const connection = this.#manager.connections.get(connectionId);
    return connection === undefined ? [] : [...connection.groups];
  }

  members(group: string): IterableIterator<string> {
    checkGroupName(group);
    return connectionIds(this.#manager.groups.membersOf(group) ?? []);
  }

  list(): IterableIterator<string> {
    return this.#manager.groups.names();
  }
}
