import { GroupNameError } from "../contracts/errors.js";

/** What the registry needs of a connection: its id, its own set of group names and its protocol. */
export interface GroupMember {
  readonly connectionId: string;
  readonly groups: Set<string>;
  /** Index of the member's hub protocol (fixed while it is in a group). */
  readonly protocolIndex: number;
}

/**
 * The members of one group, and how many speak each protocol (by protocol index), so a send can
 * encode in exactly the protocols its group needs without walking the group. The counts of the
 * first two protocols are fields of the set itself (no second object to touch per join or leave).
 */
export class GroupMembers<T> extends Set<T> implements ReadonlyGroupMembers<T> {
  #first = 0;
  #second = 0;
  #others: number[] | undefined = undefined;

  speaking(index: number): number {
    if (index === 0) return this.#first;
    if (index === 1) return this.#second;
    return this.#others?.[index] ?? 0;
  }

  /** Adds `delta` to the members speaking the protocol at `index`. */
  count(index: number, delta: 1 | -1): void {
    if (index === 0) this.#first += delta;
    else if (index === 1) this.#second += delta;
    else {
      const others = (this.#others ??= []);
      others[index] = (others[index] ?? 0) + delta;
    }
  }
}

/** A group's members as the registry hands them out (never mutate them). */
export interface ReadonlyGroupMembers<T> extends ReadonlySet<T> {
  /** How many members speak the protocol at `index` (a protocol index). */
  speaking(index: number): number;
}

/** Throws {@link GroupNameError} unless `name` is a non-empty string. */
export function checkGroupName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0) throw new GroupNameError();
}

/**
 * In-memory groups of one hub, indexed both ways (group → members in a `Map`, member → group
 * names in the member's own `Set`), so adds, removes, membership tests and sends to a group never
 * scan all groups or all connections. A group exists from its first member to its last.
 */
export class GroupRegistry<T extends GroupMember> {
  readonly #groups = new Map<string, GroupMembers<T>>();

  /** Adds `member` to `group`; adding twice changes nothing. */
  add(member: T, group: string): void {
    if (member.groups.has(group)) return;
    let members = this.#groups.get(group);
    if (members === undefined) {
      members = new GroupMembers();
      this.#groups.set(group, members);
    }
    members.add(member);
    members.count(member.protocolIndex, 1);
    member.groups.add(group);
  }

  /** Removes `member` from `group`; the group disappears with its last member. */
  remove(member: T, group: string): void {
    if (!member.groups.delete(group)) return;
    const members = this.#groups.get(group);
    if (members === undefined || !members.delete(member)) return;
    members.count(member.protocolIndex, -1);
    if (members.size === 0) this.#groups.delete(group);
  }

  /** Removes `member` from every group it is in (on disconnect): O(groups of the member). */
  removeAll(member: T): void {
    for (const group of member.groups) {
      const members = this.#groups.get(group);
      if (members === undefined || !members.delete(member)) continue;
      members.count(member.protocolIndex, -1);
      if (members.size === 0) this.#groups.delete(group);
    }
    member.groups.clear();
  }

  /** The members of `group`, or `undefined` when it does not exist. Do not mutate. */
  membersOf(group: string): ReadonlyGroupMembers<T> | undefined {
    return this.#groups.get(group);
  }

  count(group: string): number {
    return this.#groups.get(group)?.size ?? 0;
  }

  /** Names of the groups that exist (have at least one member). */
  names(): IterableIterator<string> {
    return this.#groups.keys();
  }

  get size(): number {
    return this.#groups.size;
  }
}
