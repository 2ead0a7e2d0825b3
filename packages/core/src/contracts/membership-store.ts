/**
 * Persisted group membership: which groups a user belongs to on a hub, kept outside the process so
 * it outlives connections, restarts and servers. `groups.add(id, group, { persist: true })` and
 * `groups.remove(…, { persist: true })` write through it for the connection's user; when that user
 * connects again, the server reads their groups and re-adds them (through the `rejoiningGroups`
 * module hook) before the connection's first invocation is dispatched.
 *
 * For plugin authors (a database, Redis, …):
 * - Every member is async and keyed by hub name + user identifier + group name. All three are
 *   arbitrary non-empty strings (quotes, `__proto__`, kilobytes): store and return them exactly,
 *   never interpolate them into a query.
 * - `add` and `remove` are idempotent; resolve only once the change is durable. Reject on failure:
 *   the server passes the rejection to the hub code that asked to persist.
 * - `groupsOf` is called once per connecting user; the server bounds how long it waits
 *   (`membershipTimeout`), logs a failure and lets the connection proceed without those groups. A
 *   failing read must never delete anything.
 * - The server never closes a store (several servers may share one): whoever created it does.
 */
export interface MembershipStore {
  /** Records that `user` is in `group` of `hub`. */
  add(hub: string, user: string, group: string): Promise<void>;
  /** Forgets that `user` is in `group` of `hub` (no error when it was not). */
  remove(hub: string, user: string, group: string): Promise<void>;
  /** The groups `user` is in on `hub`, in any order, without duplicates. */
  groupsOf(hub: string, user: string): Promise<readonly string[]>;
}
