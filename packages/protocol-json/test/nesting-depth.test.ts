import { describe, it, expect } from "vitest";
import { NestingTooDeepError, PING_MESSAGE, type HubMessage } from "@switchboard/core";
import { exceedsNestingDepth } from "../src/nesting-depth.js";
import { RS, LIMITS, bytes, parseAll, parseFailing } from "./support.js";

const TOO_DEEP = "SB_ERR_LIMIT_DEPTH";

/** `levels` nested arrays around 1, e.g. 2 → [[1]]. */
function nested(levels: number): string {
  return "[".repeat(levels) + "1" + "]".repeat(levels);
}

/**
 * An invocation whose total depth is `depth`: the message object is 1, `arguments` is 2, so its
 * single argument holds depth − 2 nested arrays.
 */
function invocationOfDepth(depth: number): string {
  return `{"type":1,"target":"Deep","arguments":[${nested(depth - 2)}]}`;
}

describe("exceedsNestingDepth", () => {
  it.each([
    ["{}", 1, false],
    ["{}", 0, true],
    ['{"a":[{}]}', 3, false],
    ['{"a":[{}]}', 2, true],
    ['{"a":"[[[[{{{{"}', 1, false],
    ['{"a":"\\"[[[["}', 1, false],
    ['{"a":"\\\\",[[1]]}', 2, true],
    ['[[],[],[]]', 2, false],
  ] as const)("%s with max %i → %s", (json, max, expected) => {
    expect(exceedsNestingDepth(bytes(json), max)).toBe(expected);
  });
});

describe("T22 nesting depth (message object = depth 1)", () => {
  it.each([63, 64])("accepts total depth %i", (depth) => {
    const [message] = parseAll([invocationOfDepth(depth) + RS]) as [HubMessage & { arguments: unknown[] }];
    expect(message).toStrictEqual(JSON.parse(invocationOfDepth(depth)));
  });

  it("refuses total depth 65 with NestingTooDeepError", () => {
    const { error } = parseFailing([invocationOfDepth(65) + RS], NestingTooDeepError, TOO_DEEP);
    expect(error.message).toContain("64");
  });

  it("refuses depth 65 after handing over the earlier record in the same chunk", () => {
    const { messages } = parseFailing(['{"type":6}' + RS + invocationOfDepth(65) + RS], NestingTooDeepError, TOO_DEEP);
    expect(messages).toStrictEqual([PING_MESSAGE]);
  });

  it.each([
    ["a 32 KB JSON array 16,383 levels deep", nested(16_383)],
    ["a deep invocation", invocationOfDepth(16_000)],
    ["deep headers", `{"type":1,"target":"t","arguments":[],"headers":{"a":${nested(100)}}}`],
    ["a deep unknown extra property", `{"type":1,"target":"t","arguments":[],"foo":${nested(100)}}`],
    ["a deep unknown message type", `{"type":99,"x":${nested(100)}}`],
    ["deep objects", '{"a":'.repeat(70) + "1" + "}".repeat(70)],
  ])("refuses %s", (_name, record) => {
    parseFailing([record + RS], NestingTooDeepError, TOO_DEEP);
  });

  it("does not count brackets inside strings", () => {
    const text = "[{".repeat(200);
    expect(parseAll([`{"type":1,"target":"t","arguments":["${text}"]}` + RS])).toStrictEqual([
      { type: 1, target: "t", arguments: [text] },
    ]);
  });

  it("follows a smaller configured limit", () => {
    const limits = { ...LIMITS, maxDepth: 3 };
    expect(parseAll([invocationOfDepth(3) + RS], limits)).toHaveLength(1);
    parseFailing([invocationOfDepth(4) + RS], NestingTooDeepError, TOO_DEEP, limits);
  });
});
