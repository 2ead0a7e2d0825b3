import { InvalidMessageError, NestingTooDeepError, SwitchboardError } from "@switchboard/core";
import { describe, expect, it } from "vitest";
import { frame, MessagePackHubProtocol } from "../src/index.js";
import { collect, framed, hex, LIMITS, memoryInUse, parseAll } from "./wire.js";

/** Short, generic texts only: no library wording, no payload content. */
const GENERIC_TEXT = /^(Invalid [A-Za-z ]+|Empty message)\.$/;

const PROTO_KEY = "a9 5f 5f 70 72 6f 74 6f 5f 5f"; // "__proto__"

/** Unframed bodies (reliability-test-plan T06, T10, T20) that must close the connection with InvalidMessageError. */
const INVALID_BODIES: ReadonlyArray<readonly [string, string]> = [
  // not an array
  ["positive int", "2a"], ["map", "80"], ["nil", "c0"], ["str", "a1 61"], ["bin", "c4 01 00"],
  // malformed MessagePack (T10)
  ["truncated array", "93 01"], ["array32 claiming 2^32−1 items", "dd ff ff ff ff"],
  ["str32 claiming 4 GB", "91 db ff ff ff ff"], ["bin32 claiming 4 GB", "91 c6 ff ff ff ff"],
  ["ext32 claiming 4 GB", "91 c9 ff ff ff ff 01"], ["reserved byte c1 inside", "91 c1"], ["reserved byte c1 alone", "c1"],
  ["one trailing byte", "91 06 00"], ["two trailing values", "91 06 c0 c0"], ["cut str16 header", "91 da"],
  ["cut array16 header", "dc 00"],
  // huge declared lengths
  ["array16 of 65535 items", "dc ff ff 01"], ["arguments array32 of 65536 items", "95 01 80 c0 a1 74 dd 00 01 00 00"],
  ["map16 of 65535 entries", "95 01 80 c0 a1 74 91 de ff ff"], ["map32 of 2^32−1 entries", "95 01 80 c0 a1 74 91 df ff ff ff ff"],
  ["str16 of 65535 bytes", "95 01 80 c0 a1 74 91 da ff ff 61"], ["bin16 of 65535 bytes", "95 01 80 c0 a1 74 91 c5 ff ff 00"],
  // too few elements
  ["[]", "90"], ["[1]", "91 01"], ["Invocation of 4", "94 01 80 c0 a1 74"], ["StreamItem of 3", "93 02 80 a1 30"],
  ["Completion of 3", "93 03 80 a1 30"], ["StreamInvocation of 4", "94 04 80 a1 30 a1 74"], ["Cancel of 2", "92 05 80"],
  ["Close of 1", "91 07"], ["Ack of 1", "91 08"], ["Sequence of 1", "91 09"],
  // element 0 not an integer
  ['type ""', "91 a0"], ['type "1"', "91 a1 31"], ["type nil", "91 c0"], ["type true", "91 c3"],
  ["type 1.5", "91 cb 3f f8 00 00 00 00 00 00"], ["type [1]", "91 91 01"], ["type {}", "91 80"],
  // completion result kinds
  ["kind 0", "94 03 80 a1 30 00"], ["kind 4", "94 03 80 a1 30 04"], ["kind −1", "94 03 80 a1 30 ff"],
  ['kind "1"', "95 03 80 a1 30 a1 31 c0"], ["kind nil", "95 03 80 a1 30 c0 c0"], ["kind 2.5", "94 03 80 a1 30 cb 40 04 00 00 00 00 00 00"],
  ["kind 1 without error", "94 03 80 a1 30 01"], ["kind 1 with error 42", "95 03 80 a1 30 01 2a"],
  ["kind 1 with error nil", "95 03 80 a1 30 01 c0"], ["kind 3 without result", "94 03 80 a1 30 03"],
  // wrong element types (T06)
  ["target 123", "95 01 80 c0 7b 90"], ['target ""', "95 01 80 c0 a0 90"], ["target nil", "95 01 80 c0 c0 90"],
  ['target ["x"]', "95 01 80 c0 91 a1 78 90"], ['target {toString:"x"}', "95 01 80 c0 81 a8 74 6f 53 74 72 69 6e 67 a1 78 90"],
  ["arguments {}", "95 01 80 c0 a1 74 80"], ["arguments nil", "95 01 80 c0 a1 74 c0"], ['arguments "x"', "95 01 80 c0 a1 74 a1 78"],
  ["invocation id 5", "95 01 80 05 a1 74 90"], ["invocation id true", "95 01 80 c3 a1 74 90"],
  ['invocation id ["0"]', "95 01 80 91 a1 30 a1 74 90"],
  ['streamIds "x"', "96 01 80 c0 a1 74 90 a1 78"], ["streamIds [1]", "96 01 80 c0 a1 74 90 91 01"],
  ['streamIds [""]', "96 01 80 c0 a1 74 90 91 a0"], ["streamIds nil", "96 01 80 c0 a1 74 90 c0"],
  ["StreamItem id nil", "94 02 80 c0 01"], ["StreamItem id 5", "94 02 80 05 01"], ['StreamItem id ""', "94 02 80 a0 01"],
  ["Completion id nil", "94 03 80 c0 02"], ["Cancel id 5", "93 05 80 05"],
  ["StreamInvocation id nil", "95 04 80 c0 a1 74 90"], ['StreamInvocation id ""', "95 04 80 a0 a1 74 90"],
  ["headers []", "95 01 90 c0 a1 74 90"], ["headers nil", "95 01 c0 c0 a1 74 90"], ['headers "x"', "95 01 a1 78 c0 a1 74 90"],
  ["headers {a:1}", "95 01 81 a1 61 01 c0 a1 74 90"], ["headers {a:nil}", "95 01 81 a1 61 c0 c0 a1 74 90"],
  ['headers {a:["b"]}', "95 01 81 a1 61 91 a1 62 c0 a1 74 90"],
  ['Ack "x"', "92 08 a1 78"], ["Ack −1", "92 08 ff"], ["Ack 1.5", "92 08 cb 3f f8 00 00 00 00 00 00"], ["Ack nil", "92 08 c0"],
  ['Sequence "1"', "92 09 a1 31"],
  ["Close error 5", "92 07 05"], ['Close allowReconnect "yes"', "93 07 c0 a3 79 65 73"], ["Close allowReconnect 1", "93 07 c0 01"],
  // map keys and extensions the decoder refuses
  ["map key nil", "95 01 80 c0 a1 74 91 81 c0 01"], ["map key []", "95 01 80 c0 a1 74 91 81 90 01"],
  ["timestamp ext of 1 byte", "95 01 80 c0 a1 74 91 d4 ff 00"],
  // prototype keys (T20, T21)
  ["__proto__ header key", `95 01 81 ${PROTO_KEY} a1 78 c0 a1 74 90`],
  ["__proto__ argument key", `95 01 80 c0 a1 74 91 81 ${PROTO_KEY} 81 a8 70 6f 6c 6c 75 74 65 64 c3`],
  ["__proto__ key in a nested map", `95 01 80 c0 a1 74 91 91 81 a1 61 81 ${PROTO_KEY} c3`],
];

describe("malformed bodies close the connection with InvalidMessageError (T06, T10, T20)", () => {
  it.each(INVALID_BODIES)("%s: %s", (_name, body) => {
    const { messages, error } = collect([framed(body)]);
    expect(messages).toEqual([]);
    expect(error).toBeInstanceOf(InvalidMessageError);
    expect((error as InvalidMessageError).code).toBe("SB_ERR_INVALID_MESSAGE");
    expect((error as Error).message).toMatch(GENERIC_TEXT);
  });

  it("allocates less than 1 MB over all of them", () => {
    const before = memoryInUse();
    for (const [, body] of INVALID_BODIES) collect([framed(body)]);
    expect(memoryInUse() - before).toBeLessThan(1024 * 1024);
  });

  it("keeps the decoder's error as cause and leaves Object.prototype alone for __proto__ keys", () => {
    const { error } = collect([framed(`95 01 80 c0 a1 74 91 81 ${PROTO_KEY} 81 a8 70 6f 6c 6c 75 74 65 64 c3`)]);
    expect(error).toBeInstanceOf(InvalidMessageError);
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect((error as Error).message).not.toContain("__proto__");
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("leaves other parsers of the same protocol working", () => {
    const protocol = new MessagePackHubProtocol();
    const healthy = protocol.createParser(LIMITS);
    const broken = protocol.createParser(LIMITS);
    const delivered: unknown[] = [];
    healthy.parse(hex("02 91"), (message) => delivered.push(message));
    expect(() => broken.parse(framed("91 c1"), () => undefined)).toThrow(InvalidMessageError);
    healthy.parse(hex("06"), (message) => delivered.push(message));
    expect(delivered).toEqual([{ type: 6 }]);
  });
});

describe("nesting depth: the message array is depth 1 (T22)", () => {
  /** `[1,{},nil,"t",[…]]` whose deepest array is at `depth`. */
  const nestedArrays = (depth: number) => `95 01 80 c0 a1 74 91 ${"91 ".repeat(depth - 3)}90`;
  /** `[1,{},nil,"t",[{k:{k:…{}}}]]` whose deepest map is at `depth`. */
  const nestedMaps = (depth: number) => `95 01 80 c0 a1 74 91 ${"81 a1 6b ".repeat(depth - 3)}80`;
  /** Headers `{k:{k:…{}}}` (depth 2 and deeper) whose deepest map is at `depth`. */
  const nestedHeaders = (depth: number) => `95 01 ${"81 a1 6b ".repeat(depth - 2)}80 c0 a1 74 90`;

  it.each([63, 64])("accepts arrays nested %i deep with maxDepth 64", (depth) => {
    expect(parseAll([framed(nestedArrays(depth))])).toHaveLength(1);
  });
  it.each([63, 64])("accepts maps nested %i deep with maxDepth 64", (depth) => {
    expect(parseAll([framed(nestedMaps(depth))])).toHaveLength(1);
  });

  it.each([
    ["arrays 65 deep", nestedArrays(65)],
    ["maps 65 deep", nestedMaps(65)],
    ["headers 65 deep", nestedHeaders(65)],
    ["arrays 66 deep", nestedArrays(66)],
  ])("rejects %s with NestingTooDeepError", (_name, body) => {
    const { error } = collect([framed(body)]);
    expect(error).toBeInstanceOf(NestingTooDeepError);
    expect((error as NestingTooDeepError).code).toBe("SB_ERR_LIMIT_DEPTH");
  });

  it("checks depth before content: headers 64 deep fail only on the header value type", () => {
    const { error } = collect([framed(nestedHeaders(64))]);
    expect(error).toBeInstanceOf(InvalidMessageError);
  });

  it("counts the message array itself: maxDepth 1 accepts 91 06, rejects 92 06 90", () => {
    const limits = { maxMessageSize: 100, maxDepth: 1 };
    expect(parseAll([framed("91 06")], limits)).toEqual([{ type: 6 }]);
    expect(collect([framed("92 06 90")], limits).error).toBeInstanceOf(NestingTooDeepError);
  });

  it("rejects a 32 KB array 32,767 levels deep quickly, without decoding it", () => {
    const body = new Uint8Array(32_767).fill(0x91);
    body[body.length - 1] = 0x90;
    const record = frame(body);
    const before = memoryInUse();
    const started = performance.now();
    const { error } = collect([record]);
    expect(performance.now() - started).toBeLessThan(100);
    expect(memoryInUse() - before).toBeLessThan(1024 * 1024);
    expect(error).toBeInstanceOf(NestingTooDeepError);
    expect(error).toBeInstanceOf(SwitchboardError);
  });
});
