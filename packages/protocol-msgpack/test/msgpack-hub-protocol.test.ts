import { ExtData } from "@msgpack/msgpack";
import { OptionsError, type HubMessage, type InvocationMessage } from "@switchboard/core";
import { describe, expect, it } from "vitest";
import { MessagePackHubProtocol } from "../src/index.js";
import { collect, concat, framed, hex, LIMITS, parseAll, toHex } from "./wire.js";

const FAIL_TEXT = "An unexpected error occurred invoking 'Fail' on the server.";
const FAIL_HEX = `43 95 03 80 a1 31 01 d9 3b ${toHex(new TextEncoder().encode(FAIL_TEXT))}`;

interface Vector {
  /** Framed bytes as in ../shared/signalr-protocol.md §10.2. */
  readonly bytes: string;
  readonly message: HubMessage;
  /** What `write(message)` produces when it differs (ASP.NET shapes: 6-element invocations, 3-element Close). */
  readonly writes?: string;
}

/** Every MessagePack vector of §10.2, in capture order, then the extra table. */
const VECTORS: readonly Vector[] = [
  { bytes: "02 91 06", message: { type: 6 } },
  {
    bytes: "0c 95 01 80 a1 30 a3 41 64 64 92 28 02",
    message: { type: 1, invocationId: "0", target: "Add", arguments: [40, 2] },
    writes: "0d 96 01 80 a1 30 a3 41 64 64 92 28 02 90",
  },
  { bytes: "07 95 03 80 a1 30 03 2a", message: { type: 3, invocationId: "0", hasResult: true, result: 42 } },
  {
    bytes: "0b 95 01 80 a1 31 a4 46 61 69 6c 90",
    message: { type: 1, invocationId: "1", target: "Fail", arguments: [] },
    writes: "0c 96 01 80 a1 31 a4 46 61 69 6c 90 90",
  },
  { bytes: FAIL_HEX, message: { type: 3, invocationId: "1", error: FAIL_TEXT } },
  {
    bytes: "15 95 01 80 c0 ab 4e 6f 6e 42 6c 6f 63 6b 69 6e 67 91 a3 66 6f 6f",
    message: { type: 1, target: "NonBlocking", arguments: ["foo"] },
    writes: "16 96 01 80 c0 ab 4e 6f 6e 42 6c 6f 63 6b 69 6e 67 91 a3 66 6f 6f 90",
  },
  {
    bytes: "1e 96 01 80 c0 ae 52 65 63 65 69 76 65 4d 65 73 73 61 67 65 92 a5 61 6c 69 63 65 a2 68 69 90",
    message: { type: 1, target: "ReceiveMessage", arguments: ["alice", "hi"] },
  },
  {
    bytes: "12 96 01 80 a2 73 31 a8 47 65 74 56 61 6c 75 65 91 07 90",
    message: { type: 1, invocationId: "s1", target: "GetValue", arguments: [7] },
  },
  {
    bytes: "0f 95 04 80 a1 32 a7 43 6f 75 6e 74 65 72 91 03",
    message: { type: 4, invocationId: "2", target: "Counter", arguments: [3] },
    writes: "10 96 04 80 a1 32 a7 43 6f 75 6e 74 65 72 91 03 90",
  },
  { bytes: "06 94 02 80 a1 32 00", message: { type: 2, invocationId: "2", item: 0 } },
  { bytes: "06 94 02 80 a1 32 01", message: { type: 2, invocationId: "2", item: 1 } },
  { bytes: "06 94 02 80 a1 32 02", message: { type: 2, invocationId: "2", item: 2 } },
  { bytes: "06 94 03 80 a1 32 02", message: { type: 3, invocationId: "2" } },
  { bytes: "08 95 03 80 a2 73 31 03 2a", message: { type: 3, invocationId: "s1", hasResult: true, result: 42 } },
  {
    bytes: "10 96 01 80 a1 34 a6 55 70 6c 6f 61 64 90 91 a1 33",
    message: { type: 1, invocationId: "4", target: "Upload", arguments: [], streamIds: ["3"] },
  },
  { bytes: "06 94 02 80 a1 33 01", message: { type: 2, invocationId: "3", item: 1 } },
  { bytes: "06 94 02 80 a1 33 02", message: { type: 2, invocationId: "3", item: 2 } },
  { bytes: "06 94 02 80 a1 33 03", message: { type: 2, invocationId: "3", item: 3 } },
  { bytes: "06 94 03 80 a1 33 02", message: { type: 3, invocationId: "3" } },
  { bytes: "07 95 03 80 a1 34 03 06", message: { type: 3, invocationId: "4", hasResult: true, result: 6 } },
  { bytes: "03 92 07 c0", message: { type: 7 }, writes: "04 93 07 c0 c2" },
  // The "more vectors" table.
  { bytes: "05 93 05 80 a1 32", message: { type: 5, invocationId: "2" } },
  {
    bytes: "13 95 03 80 a2 73 31 01 ab 45 72 72 6f 72 3a 20 62 6f 6f 6d",
    message: { type: 3, invocationId: "s1", error: "Error: boom" },
  },
  { bytes: "08 95 03 80 a2 73 31 03 c0", message: { type: 3, invocationId: "s1", hasResult: true, result: null } },
  { bytes: "07 95 03 80 a1 30 03 c0", message: { type: 3, invocationId: "0", hasResult: true, result: null } },
  { bytes: "06 94 03 80 a1 30 02", message: { type: 3, invocationId: "0" } },
  { bytes: "07 93 07 a3 62 79 65 c3", message: { type: 7, error: "bye", allowReconnect: true } },
  { bytes: "04 93 07 c0 c2", message: { type: 7 } },
  { bytes: "03 92 08 02", message: { type: 8, sequenceId: 2 } },
  { bytes: "03 92 09 01", message: { type: 9, sequenceId: 1 } },
  {
    bytes: "1e 95 01 80 a1 37 a4 45 63 68 6f 93 c4 02 01 02 d6 ff 65 92 00 80 cb 3f f8 00 00 00 00 00 00",
    message: {
      type: 1, invocationId: "7", target: "Echo",
      arguments: [Uint8Array.of(1, 2), new Date("2024-01-01T00:00:00Z"), 1.5],
    },
    writes: "1f 96 01 80 a1 37 a4 45 63 68 6f 93 c4 02 01 02 d6 ff 65 92 00 80 cb 3f f8 00 00 00 00 00 00 90",
  },
  {
    bytes: "19 96 01 82 a1 78 a1 79 a1 7a a1 7a a3 78 79 7a a6 6d 65 74 68 6f 64 91 2a 90",
    message: {
      type: 1, headers: Object.assign(Object.create(null) as Record<string, string>, { x: "y", z: "z" }),
      invocationId: "xyz", target: "method", arguments: [42],
    },
  },
];

const protocol = new MessagePackHubProtocol();

describe("MessagePackHubProtocol", () => {
  it("is 'messagepack' version 2 over binary", () => {
    expect([protocol.name, protocol.version, protocol.transferFormat]).toEqual(["messagepack", 2, "binary"]);
  });

  describe("parses each §10.2 vector", () => {
    it.each(VECTORS.map((vector) => [vector.bytes, vector] as const))("%s", (_name, vector) => {
      expect(parseAll([hex(vector.bytes)])).toEqual([vector.message]);
    });
  });

  describe("writes each §10.2 vector", () => {
    it.each(VECTORS.map((vector) => [vector.writes ?? vector.bytes, vector] as const))("%s", (expected, vector) => {
      expect(toHex(protocol.write(vector.message))).toBe(expected);
    });
  });

  it("parses the captured two-message frame 08 95 03 80 a2 73 31 03 2a 10 96 01 80 a1 34 …", () => {
    const chunk = hex("08 95 03 80 a2 73 31 03 2a 10 96 01 80 a1 34 a6 55 70 6c 6f 61 64 90 91 a1 33");
    expect(parseAll([chunk])).toEqual([
      { type: 3, invocationId: "s1", hasResult: true, result: 42 },
      { type: 1, invocationId: "4", target: "Upload", arguments: [], streamIds: ["3"] },
    ]);
  });

  describe("chunking", () => {
    const stream = concat(...VECTORS.map((vector) => hex(vector.bytes)));
    const expected = VECTORS.map((vector) => vector.message);

    it("parses all vectors sent in one chunk", () => {
      expect(parseAll([stream])).toEqual(expected);
    });

    it("parses the same messages for every cut point of the stream", () => {
      for (let cut = 1; cut < stream.length; cut++) {
        expect(parseAll([stream.subarray(0, cut), stream.subarray(cut)]), `cut at ${cut}`).toEqual(expected);
      }
    });

    it("parses the stream fed one byte at a time", () => {
      const chunks = Array.from(stream, (byte) => Uint8Array.of(byte));
      expect(parseAll(chunks)).toEqual(expected);
    });

    it("hands over earlier messages of a chunk before throwing for a bad record", () => {
      const { messages, error } = collect([concat(hex("02 91 06"), hex("03 92 08 02"), hex("02 91 c1"), hex("02 91 06"))]);
      expect(messages).toEqual([{ type: 6 }, { type: 8, sequenceId: 2 }]);
      expect(error).toMatchObject({ code: "SB_ERR_INVALID_MESSAGE" });
    });
  });

  describe("unknown message types are skipped and parsing continues", () => {
    it.each([
      ["[99] 02 91 63", "02 91 63"],
      ["[0] 02 91 00", "02 91 00"],
      ["[-1] 02 91 ff", "02 91 ff"],
      ["[10,{a:[1,2]}] 08 92 0a 81 a1 61 92 01 02", "08 92 0a 81 a1 61 92 01 02"],
      ["[2^32] 06 91 ce ff ff ff ff", "06 91 ce ff ff ff ff"],
    ])("%s", (_name, unknown) => {
      expect(parseAll([concat(hex(unknown), hex("02 91 06"))])).toEqual([{ type: 6 }]);
      expect(parseAll([hex(unknown), hex("02 91 06")])).toEqual([{ type: 6 }]);
    });
  });

  it("accepts extra elements: a 10-element Invocation 13 9a 01 80 a1 30 a1 74 90 90 c0 c0 c0 c0", () => {
    expect(parseAll([framed("9a 01 80 a1 30 a1 74 90 90 c0 c0 c0 c0")])).toEqual([
      { type: 1, invocationId: "0", target: "t", arguments: [] },
    ]);
  });

  it("treats an empty-string invocation id as none: 95 01 80 a0 a1 74 90", () => {
    expect(parseAll([framed("95 01 80 a0 a1 74 90")])).toEqual([{ type: 1, target: "t", arguments: [] }]);
  });

  it("reads headers into a null-prototype object of strings", () => {
    const [message] = parseAll([framed("94 02 82 a1 61 a1 62 ab 63 6f 6e 73 74 72 75 63 74 6f 72 a1 63 a1 30 c0")]);
    const headers = (message as { headers: Record<string, string> }).headers;
    expect(Object.getPrototypeOf(headers)).toBeNull();
    expect({ ...headers }).toEqual({ a: "b", constructor: "c" });
  });

  describe("64-bit integers", () => {
    const cases = [
      ["cf 00 00 00 00 00 00 00 05", 5, 5n],
      ["d3 ff ff ff ff ff ff ff fb", -5, -5n],
      ["cf ff ff ff ff ff ff ff ff", 18446744073709551615, 18446744073709551615n],
      ["d3 80 00 00 00 00 00 00 00", -9223372036854775808, -9223372036854775808n],
    ] as const;
    it.each(cases)("argument %s decodes to a number by default", (bytes, asNumber) => {
      const [message] = parseAll([framed(`95 01 80 c0 a1 74 91 ${bytes}`)]);
      expect(message).toEqual({ type: 1, target: "t", arguments: [asNumber] });
    });
    it.each(cases)("argument %s decodes to a bigint with useBigInt64", (bytes, _asNumber, asBigInt) => {
      const [message] = parseAll([framed(`95 01 80 c0 a1 74 91 ${bytes}`)], LIMITS, new MessagePackHubProtocol({ useBigInt64: true }));
      expect(message).toEqual({ type: 1, target: "t", arguments: [asBigInt] });
    });
    it.each([false, true])("fields in 64-bit form stay numbers (useBigInt64 %s): 13 92 cf …08 cf …07", (useBigInt64) => {
      const body = framed("92 cf 00 00 00 00 00 00 00 08 cf 00 00 00 00 00 00 00 07");
      expect(parseAll([body], LIMITS, new MessagePackHubProtocol({ useBigInt64 }))).toEqual([{ type: 8, sequenceId: 7 }]);
    });
    it("writes a bigint as int64 only with useBigInt64", () => {
      const message: HubMessage = { type: 2, invocationId: "1", item: -2n };
      expect(toHex(new MessagePackHubProtocol({ useBigInt64: true }).write(message))).toBe("0e 94 02 80 a1 31 d3 ff ff ff ff ff ff ff fe");
      expect(() => protocol.write(message)).toThrow(Error);
    });
  });

  describe("values", () => {
    it("keeps a 'constructor' key as an own property without touching prototypes: 81 ab constructor 81 a9 prototype 81 a1 70 c3", () => {
      const [message] = parseAll([framed("95 01 80 c0 a1 74 91 81 ab 63 6f 6e 73 74 72 75 63 74 6f 72 81 a9 70 72 6f 74 6f 74 79 70 65 81 a1 70 c3")]);
      expect(message).toEqual({ type: 1, target: "t", arguments: [{ constructor: { prototype: { p: true } } }] });
      expect(({} as Record<string, unknown>)["p"]).toBeUndefined();
    });
    it("decodes an unknown extension to ExtData: d4 05 2a", () => {
      const [message] = parseAll([framed("95 01 80 c0 a1 74 91 d4 05 2a")]);
      expect(message).toEqual({ type: 1, target: "t", arguments: [new ExtData(5, Uint8Array.of(0x2a))] });
    });
    it("gives bin values their own memory, not a view into the received chunk", () => {
      const chunk = framed("95 01 80 c0 a1 74 91 c4 02 01 02");
      const [message] = parseAll([chunk]);
      const bin = (message as InvocationMessage).arguments[0] as Uint8Array;
      chunk.fill(0);
      expect(bin).toEqual(Uint8Array.of(1, 2));
      expect(bin.buffer).not.toBe(chunk.buffer);
    });
  });

  describe("invalid UTF-8 in str decodes lossily to U+FFFD (T11)", () => {
    const long = "61 ".repeat(250);
    it.each([
      ["a2 ff fe", "a2 ff fe", "\uFFFD\uFFFD"],
      ["a3 ed a0 80 (encoded surrogate)", "a3 ed a0 80", "\uFFFD\uFFFD\uFFFD"],
      ["a2 c0 80 (overlong)", "a2 c0 80", "\uFFFD\uFFFD"],
      ["a1 e3 (cut sequence before the next value)", "a1 e3", "\uFFFD"],
      ["a4 61 ff e2 82 (mixed)", "a4 61 ff e2 82", "a\uFFFD\uFFFD"],
      ["da 00 fb + 250×61 + ff (long string)", `da 00 fb ${long} ff`, `${"a".repeat(250)}\uFFFD`],
    ])("%s", (_name, str, expected) => {
      const [message] = parseAll([framed(`95 01 80 c0 a1 74 92 ${str} 2a`)]);
      expect(message).toEqual({ type: 1, target: "t", arguments: [expected, 42] });
    });
    it("repairs map keys too: 81 a2 ff fe 01", () => {
      const [message] = parseAll([framed("95 01 80 c0 a1 74 91 81 a2 ff fe 01")]);
      expect(message).toEqual({ type: 1, target: "t", arguments: [{ "\uFFFD\uFFFD": 1 }] });
    });
    it("yields strings whose JSON is valid UTF-8", () => {
      const [message] = parseAll([framed("95 01 80 c0 a1 74 91 a3 ed a0 80")]);
      const json = Buffer.from(JSON.stringify(message));
      expect(new TextDecoder("utf-8", { fatal: true }).decode(json)).toContain("\uFFFD");
    });
  });

  describe("write", () => {
    it("returns memory the caller owns: a second write leaves the first intact", () => {
      const first = protocol.write({ type: 2, invocationId: "1", item: "a" });
      const before = toHex(first);
      protocol.write({ type: 2, invocationId: "2", item: "b".repeat(100) });
      expect(toHex(first)).toBe(before);
      const ping = protocol.write({ type: 6 });
      ping.fill(0);
      expect(toHex(protocol.write({ type: 6 }))).toBe("02 91 06");
    });
    it.each([
      ["an empty error as kind 1: 07 95 03 80 a1 30 01 a0", { type: 3, invocationId: "0", error: "" }, "07 95 03 80 a1 30 01 a0"],
      ["hasResult without result as kind 3 + nil", { type: 3, invocationId: "0", hasResult: true }, "07 95 03 80 a1 30 03 c0"],
      ["a StreamItem with an undefined item as nil", { type: 2, invocationId: "0", item: undefined }, "06 94 02 80 a1 30 c0"],
      ["Close with an error only", { type: 7, error: "x" }, "05 93 07 a1 78 c2"],
      ["a large sequence id", { type: 9, sequenceId: 70000 }, "07 92 09 ce 00 01 11 70"],
    ] as const)("writes %s", (_name, message, expected) => {
      expect(toHex(protocol.write(message as HubMessage))).toBe(expected);
    });
    it("writes a 200-byte message with a 2-byte prefix", () => {
      const record = protocol.write({ type: 2, invocationId: "0", item: "x".repeat(193) });
      expect(toHex(record.subarray(0, 3))).toBe("c8 01 94");
      expect(record.length).toBe(202);
    });
  });

  describe("options", () => {
    it("rejects a non-boolean useBigInt64 with OptionsError", () => {
      const make = () => new MessagePackHubProtocol({ useBigInt64: "yes" as unknown as boolean });
      expect(make).toThrow(OptionsError);
      expect(make).toThrow(expect.objectContaining({ code: "SB_ERR_OPTIONS" }));
    });
    it.each([
      ["maxMessageSize 0", { maxMessageSize: 0, maxDepth: 64 }],
      ["maxMessageSize NaN", { maxMessageSize: Number.NaN, maxDepth: 64 }],
      ["maxDepth 0", { maxMessageSize: 1024, maxDepth: 0 }],
      ["maxDepth 1.5", { maxMessageSize: 1024, maxDepth: 1.5 }],
    ])("createParser rejects %s with OptionsError", (_name, limits) => {
      expect(() => protocol.createParser(limits)).toThrow(OptionsError);
    });
  });
});
