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
 * encode in exactly the protocols its group needs without walking the group.
 */
export class GroupMembers<T> extends Set<T> implements ReadonlyGroupMembers<T> {
  readonly perProtocol: number[] = [];
}

/** A group's members as the registry hands them out (never mutate them). */
export interface ReadonlyGroupMembers<T> extends ReadonlySet<T> {
  /** Members per protocol index (an index no member speaks may be missing or 0). */
  readonly perProtocol: readonly number[];
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
    members.perProtocol[member.protocolIndex] = (members.perProtocol[member.protocolIndex] ?? 0) + 1;
    member.groups.add(group);
  }

  /** Removes `member` from `group`; the group disappears with its last member. */
  remove(member: T, group: string): void {
    if (!member.groups.delete(group)) return;
    const members = this.#groups.get(group);
    if (members === undefined || !members.delete(member)) return;
    members.perProtocol[member.protocolIndex]!--;
    if (members.size === 0) this.#groups.delete(group);
  }

  /** Removes `member` from every group it is in (on disconnect): O(groups of the member). */
  removeAll(member: T): void {
    for (const group of member.groups) {
      const members = this.#groups.get(group);
      if (members === undefined || !members.delete(member)) continue;
      members.perProtocol[member.protocolIndex]!--;
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
