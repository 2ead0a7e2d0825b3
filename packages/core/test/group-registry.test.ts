import { describe, expect, it } from "vitest";
import { GroupNameError } from "../src/contracts/errors.js";
import { checkGroupName, GroupRegistry, type GroupMember } from "../src/fan-out/group-registry.js";

/** The smallest thing the registry can hold: an id and its own set of group names. */
class Member implements GroupMember {
  readonly groups = new Set<string>();
  constructor(
    readonly connectionId: string,
    readonly protocolIndex = 0,
  ) {}
}

function membersOf(registry: GroupRegistry<Member>, group: string): string[] {
  return [...(registry.membersOf(group) ?? [])].map((member) => member.connectionId).sort();
}

describe("GroupRegistry", () => {
  it("indexes membership both ways", () => {
    const registry = new GroupRegistry<Member>();
    const a = new Member("a");
    const b = new Member("b");
    registry.add(a, "red");
    registry.add(a, "blue");
    registry.add(b, "blue");
    expect(membersOf(registry, "red")).toEqual(["a"]);
    expect(membersOf(registry, "blue")).toEqual(["a", "b"]);
    expect([...a.groups].sort()).toEqual(["blue", "red"]);
    expect([...b.groups]).toEqual(["blue"]);
    expect(registry.count("blue")).toBe(2);
    expect([...registry.names()].sort()).toEqual(["blue", "red"]);
    expect(registry.size).toBe(2);
  });

  it("creates a group with its first member and drops it with its last", () => {
    const registry = new GroupRegistry<Member>();
    const a = new Member("a");
    const b = new Member("b");
    expect(registry.membersOf("room")).toBeUndefined();
    expect(registry.count("room")).toBe(0);
    registry.add(a, "room");
    registry.add(b, "room");
    registry.remove(a, "room");
    expect(membersOf(registry, "room")).toEqual(["b"]);
    registry.remove(b, "room");
    expect(registry.membersOf("room")).toBeUndefined();
    expect(registry.size).toBe(0);
    expect(b.groups.size).toBe(0);
  });

  it("ignores a second add and removes of absent members", () => {
    const registry = new GroupRegistry<Member>();
    const a = new Member("a");
    const stranger = new Member("stranger");
    registry.add(a, "room");
    registry.add(a, "room");
    expect(registry.count("room")).toBe(1);
    expect(a.groups.size).toBe(1);
    registry.remove(stranger, "room");
    registry.remove(stranger, "elsewhere");
    registry.remove(a, "elsewhere");
    expect(registry.count("room")).toBe(1);
    expect([...registry.names()]).toEqual(["room"]);
    expect(stranger.groups.size).toBe(0);
  });

  it("removeAll takes a member out of every group and keeps the others' groups", () => {
    const registry = new GroupRegistry<Member>();
    const a = new Member("a");
    const b = new Member("b");
    for (let i = 0; i < 50; i++) registry.add(a, `g${i}`);
    registry.add(b, "g7");
    registry.removeAll(a);
    expect(a.groups.size).toBe(0);
    expect([...registry.names()]).toEqual(["g7"]);
    expect(membersOf(registry, "g7")).toEqual(["b"]);
    registry.removeAll(a); // twice is harmless
    registry.removeAll(b);
    expect(registry.size).toBe(0);
  });

  it("keeps names like __proto__ and constructor as ordinary groups", () => {
    const registry = new GroupRegistry<Member>();
    const a = new Member("a");
    expect(registry.count("__proto__")).toBe(0);
    expect(registry.membersOf("constructor")).toBeUndefined();
    expect(registry.membersOf("toString")).toBeUndefined();
    registry.add(a, "__proto__");
    registry.add(a, "constructor");
    expect(registry.count("__proto__")).toBe(1);
    expect([...registry.names()].sort()).toEqual(["__proto__", "constructor"]);
    registry.removeAll(a);
    expect(registry.size).toBe(0);
    expect(({} as Record<string, unknown>)["a"]).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });
});

describe("checkGroupName", () => {
  it.each([["an empty string", ""], ["a number", 42], ["null", null], ["undefined", undefined], ["an array", ["room"]], ["an object", { name: "room" }]])(
    "refuses %s",
    (_name, value) => {
      expect(() => checkGroupName(value)).toThrow(GroupNameError);
      expect(() => checkGroupName(value)).toThrow(expect.objectContaining({ code: "SB_ERR_GROUP_NAME" }));
    },
  );

  it.each([["a word", "room"], ["a space", " "], ["__proto__", "__proto__"], ["constructor", "constructor"], ["emoji", "🎉"]])("accepts %s", (_name, value) => {
    expect(() => checkGroupName(value)).not.toThrow();
  });

  it("counts each group's members per protocol through joins, leaves and disconnects", () => {
    const registry = new GroupRegistry<Member>();
    const [json, json2, pack, third] = [new Member("a", 0), new Member("b", 0), new Member("c", 1), new Member("d", 2)];
    for (const member of [json, json2, pack, third]) registry.add(member, "g");
    registry.add(json, "g"); // twice: counted once
    const speaking = (): number[] => [0, 1, 2, 3].map((index) => registry.membersOf("g")!.speaking(index));
    expect(speaking()).toEqual([2, 1, 1, 0]);
    registry.remove(json, "g");
    registry.remove(json, "g"); // not a member any more: nothing changes
    expect(speaking()).toEqual([1, 1, 1, 0]);
    registry.removeAll(pack);
    registry.removeAll(third);
    expect(speaking()).toEqual([1, 0, 0, 0]);
    registry.remove(json2, "g");
    expect(registry.membersOf("g")).toBeUndefined();
    registry.add(pack, "g");
    expect(speaking()).toEqual([0, 1, 0, 0]); // a new group counts from zero
  });
});
