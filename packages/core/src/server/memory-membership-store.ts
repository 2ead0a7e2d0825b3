import type { MembershipStore } from "../contracts/membership-store.js";

/**
 * The default {@link MembershipStore}: in this process's memory, so it outlives connections and
 * server instances sharing it, but not the process. Keys are kept in `Map`s (never object keys),
 * so any string works, `__proto__` included.
 */
export class MemoryMembershipStore implements MembershipStore {
  /** hub → user → groups */
  readonly #hubs = new Map<string, Map<string, Set<string>>>();

  add(hub: string, user: string, group: string): Promise<void> {
    let users = this.#hubs.get(hub);
    if (users === undefined) this.#hubs.set(hub, (users = new Map()));
    let groups = users.get(user);
    if (groups === undefined) users.set(user, (groups = new Set()));
    groups.add(group);
    return Promise.resolve();
  }

  remove(hub: string, user: string, group: string): Promise<void> {
    const users = this.#hubs.get(hub);
    const groups = users?.get(user);
    if (groups !== undefined && groups.delete(group) && groups.size === 0) {
      users!.delete(user);
      if (users!.size === 0) this.#hubs.delete(hub);
    }
    return Promise.resolve();
  }

  groupsOf(hub: string, user: string): Promise<readonly string[]> {
    const groups = this.#hubs.get(hub)?.get(user);
    return Promise.resolve(groups === undefined ? [] : [...groups]);
  }
}
