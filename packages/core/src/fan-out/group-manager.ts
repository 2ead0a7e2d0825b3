import { checkGroupName } from "./group-registry.js";
import type { DefaultHubLifetimeManager } from "./lifetime-manager.js";
import type { Page, PageOptions } from "../contracts/backplane.js";
import { OptionsError } from "../contracts/errors.js";

/**
 * Group membership of one hub, for hubs (`this.groups`) and hub contexts. `add` and `remove`
 * return promises because a backplane needs them; in memory they settle at once, and a send on the
 * next line already reaches the new member.
 *
 * The queries (`count`, `has`, `groupsOf`, `members`, `list`) go beyond SignalR. They answer from
 * this server's view of its own connections; none of them scans all groups. `cluster` asks the
 * same of every server behind the backplane.
 */
export interface GroupManager {
  /** The same queries over every server (with a backplane that keeps a directory, e.g. Redis); this server's alone otherwise. */
  readonly cluster: ClusterGroups;
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

/**
 * Membership queries over every server of a cluster. With `@switchboard/redis` they answer from
 * Redis (see its README for how fresh each answer is) and reject with `SB_ERR_BACKPLANE` while Redis
 * cannot be reached; without a backplane they answer from this server. Lists come a page at a
 * time in a stable order: every name present for the whole walk is listed exactly once.
 */
export interface ClusterGroups {
  /** Members of `group` on every server. */
  count(group: string): Promise<number>;
  has(group: string, connectionId: string): Promise<boolean>;
  /** The groups of a connection on any server (empty for unknown connections). */
  groupsOf(connectionId: string): Promise<readonly string[]>;
  /** Connection ids in `group`: `{ items, cursor }`; pass `cursor` back for the next page. */
  members(group: string, page?: PageOptions): Promise<Page>;
  /** Names of the groups with at least one member, a page at a time. */
  list(page?: PageOptions): Promise<Page>;
}

const RESOLVED = Promise.resolve();
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/** The page size `page` asks for, checked: 1–1,000, default 100. */
export function pageLimit(page: PageOptions | undefined): number {
  const limit = page?.limit ?? DEFAULT_PAGE;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new OptionsError(`A page holds 1 to ${MAX_PAGE} names; got ${String(limit)}.`);
  if (page?.cursor !== undefined && typeof page.cursor !== "string") throw new OptionsError("A page cursor is the string a previous page returned.");
  return limit;
}

/** One page of `names` (sorted here) after `cursor`. */
function pageOf(names: Iterable<string>, page: PageOptions | undefined): Page {
  const limit = pageLimit(page);
  const cursor = page?.cursor;
  const sorted = [...names].filter((name) => cursor === undefined || name > cursor).sort();
  const items = sorted.slice(0, limit);
  return sorted.length > limit ? { items, cursor: items[items.length - 1]! } : { items };
}

/** {@link ClusterGroups} of a server without a directory: its own connections. */
class LocalClusterGroups implements ClusterGroups {
  readonly #local: GroupManager;
  constructor(local: GroupManager) {
    this.#local = local;
  }
  count(group: string): Promise<number> {
    return settle(() => this.#local.count(group));
  }
  has(group: string, connectionId: string): Promise<boolean> {
    return settle(() => this.#local.has(group, connectionId));
  }
  groupsOf(connectionId: string): Promise<readonly string[]> {
    return settle(() => this.#local.groupsOf(connectionId));
  }
  members(group: string, page?: PageOptions): Promise<Page> {
    return settle(() => pageOf(this.#local.members(group), page));
  }
  list(page?: PageOptions): Promise<Page> {
    return settle(() => pageOf(this.#local.list(), page));
  }
}

function settle<T>(run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (error) {
    return Promise.reject(error);
  }
}

function* connectionIds(members: Iterable<{ readonly connectionId: string }>): IterableIterator<string> {
  for (const member of members) yield member.connectionId;
}

/** The in-memory {@link GroupManager} over a {@link DefaultHubLifetimeManager}. */
export class DefaultGroupManager implements GroupManager {
  readonly #manager: DefaultHubLifetimeManager;
  readonly cluster: ClusterGroups;

  /** `cluster`: the cluster-wide queries (a directory's); this server's own by default. */
  constructor(manager: DefaultHubLifetimeManager, cluster?: ClusterGroups) {
    this.#manager = manager;
    this.cluster = cluster ?? new LocalClusterGroups(this);
  }

  add(connectionId: string, group: string): Promise<void> {
    try {
      this.#manager.addToGroup(connectionId, group);
      return RESOLVED;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  remove(connectionId: string, group: string): Promise<void> {
    try {
      this.#manager.removeFromGroup(connectionId, group);
      return RESOLVED;
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
