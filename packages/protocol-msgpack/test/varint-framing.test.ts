import { InvalidMessageError, MessageTooLargeError } from "@switchboard/core";
import { describe, expect, it } from "vitest";
import { frame, MAX_FRAME_BODY_LENGTH, VarIntFrameReader, varIntSize, writeVarInt } from "../src/index.js";
import { collect, concat, hex, memoryInUse, toHex } from "./wire.js";

/** ../shared/signalr-protocol.md §6.1. */
const VARINTS = [
  [0, "00"],
  [1, "01"],
  [127, "7f"],
  [128, "80 01"],
  [300, "ac 02"],
  [16_383, "ff 7f"],
  [16_384, "80 80 01"],
  [2_097_152, "80 80 80 01"],
  [268_435_456, "80 80 80 80 01"],
  [2_147_483_647, "ff ff ff ff 07"],
] as const;

function readAll(reader: VarIntFrameReader, chunk: Uint8Array): Uint8Array[] {
  const bodies: Uint8Array[] = [];
  reader.push(chunk);
  for (let body = reader.next(); body !== undefined; body = reader.next()) bodies.push(body.slice());
  return bodies;
}

describe("VarInt prefix", () => {
  describe("writes §6.1", () => {
    it.each(VARINTS)("%i → %s", (length, prefix) => {
      const target = new Uint8Array(varIntSize(length));
      expect(writeVarInt(target, 0, length)).toBe(target.length);
      expect(toHex(target)).toBe(prefix);
    });
  });

  describe("frames bodies", () => {
    it.each(VARINTS.filter(([length]) => length > 0 && length <= 16_384))("a %i-byte body gets prefix %s", (length, prefix) => {
      const body = new Uint8Array(length).fill(7);
      const record = frame(body);
      expect(toHex(record.subarray(0, record.length - length))).toBe(prefix);
      expect(record.subarray(record.length - length)).toEqual(body);
    });
    it("refuses an empty body (no valid record)", () => {
      expect(() => frame(new Uint8Array(0))).toThrow(RangeError);
    });
  });

  describe("reads §6.1: exact length L is accepted with limit L and refused with limit L−1", () => {
    it.each(VARINTS.filter(([length]) => length > 0))("%s ← %i", (length, prefix) => {
      const accepting = new VarIntFrameReader(length);
      expect(readAll(accepting, hex(prefix))).toEqual([]);
      const refusing = new VarIntFrameReader(length - 1);
      refusing.push(hex(prefix));
      expect(() => refusing.next()).toThrow(MessageTooLargeError);
    });
    it("00 ← 0 is an empty record: InvalidMessageError", () => {
      const reader = new VarIntFrameReader(100);
      reader.push(hex("00"));
      expect(() => reader.next()).toThrow(InvalidMessageError);
    });
    it.each(VARINTS.filter(([length]) => length > 0 && length <= 300))("reads a whole %i-byte record (%s …)", (length, prefix) => {
      const body = new Uint8Array(length).fill(9);
      expect(readAll(new VarIntFrameReader(1024), concat(hex(prefix), body))).toEqual([body]);
    });
    it("reads a non-minimal prefix 81 00 as 1", () => {
      expect(readAll(new VarIntFrameReader(10), hex("81 00 2a"))).toEqual([Uint8Array.of(0x2a)]);
    });
  });

  describe("splitting", () => {
    it("keeps a prefix cut after every byte: ff ff ff ff 07 one byte at a time", () => {
      const reader = new VarIntFrameReader(MAX_FRAME_BODY_LENGTH);
      for (const [index, byte] of [0xff, 0xff, 0xff, 0xff, 0x07].entries()) {
        expect(readAll(reader, Uint8Array.of(byte))).toEqual([]);
        expect(reader.bufferedBytes).toBe(index < 4 ? index + 1 : 0);
      }
    });
    it("assembles a 10,000-byte body fed one byte at a time", () => {
      const body = Uint8Array.from({ length: 10_000 }, (_, i) => i % 251);
      const stream = concat(frame(body), frame(Uint8Array.of(1)));
      const reader = new VarIntFrameReader(10_000);
      const bodies: Uint8Array[] = [];
      for (const byte of stream) bodies.push(...readAll(reader, Uint8Array.of(byte)));
      expect(bodies).toEqual([body, Uint8Array.of(1)]);
      expect(reader.bufferedBytes).toBe(0);
    });
    it("returns a view into the chunk for a body that lies wholly inside it", () => {
      const chunk = hex("02 91 06 02 91 06");
      const reader = new VarIntFrameReader(10);
      reader.push(chunk);
      const first = reader.next()!;
      expect(first.buffer).toBe(chunk.buffer);
      expect(toHex(first)).toBe("91 06");
      expect(toHex(reader.next()!)).toBe("91 06");
      expect(reader.next()).toBeUndefined();
    });
    it("refuses a new chunk while the previous one has unread bytes", () => {
      const reader = new VarIntFrameReader(10);
      reader.push(hex("02 91 06 02 91 06"));
      reader.next();
      expect(() => reader.push(hex("02 91 06"))).toThrow(Error);
    });
  });
});

describe("bad framing through the parser (T08, T09)", () => {
  it("80 80: truncated prefix waits, delivers nothing, throws nothing; 80 more still waits", () => {
    expect(collect([hex("80 80")])).toEqual({ messages: [], error: undefined });
    expect(collect([hex("80 80"), hex("80")])).toEqual({ messages: [], error: undefined });
  });

  it.each([
    ["ff ff ff ff 0f (5th byte > 7)", "ff ff ff ff 0f"],
    ["80 80 80 80 08 (5th byte = 8)", "80 80 80 80 08"],
    ["ff ff ff ff ff 01 (6-byte prefix)", "ff ff ff ff ff 01"],
    ["00 (zero-length body)", "00"],
  ])("%s → InvalidMessageError", (_name, bytes) => {
    const { error } = collect([hex(bytes)]);
    expect(error).toBeInstanceOf(InvalidMessageError);
    expect((error as InvalidMessageError).code).toBe("SB_ERR_INVALID_MESSAGE");
  });

  it("ff ff ff ff 0f split across chunks → InvalidMessageError", () => {
    const { error } = collect([hex("ff ff"), hex("ff ff"), hex("0f")]);
    expect(error).toBeInstanceOf(InvalidMessageError);
  });

  it("ff ff ff ff 07 + 100 bytes → MessageTooLargeError at once, heap delta < 1 MB", () => {
    const before = memoryInUse();
    const { messages, error } = collect([concat(hex("ff ff ff ff 07"), new Uint8Array(100))]);
    expect(memoryInUse() - before).toBeLessThan(1024 * 1024);
    expect(messages).toEqual([]);
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect((error as MessageTooLargeError).code).toBe("SB_ERR_LIMIT_MESSAGE_TOO_LARGE");
  });

  it("ff ff ff ff 07 + 100 bytes with a 2 GiB limit keeps only the 100 received bytes", () => {
    const reader = new VarIntFrameReader(MAX_FRAME_BODY_LENGTH);
    const before = memoryInUse();
    expect(readAll(reader, concat(hex("ff ff ff ff 07"), new Uint8Array(100)))).toEqual([]);
    expect(memoryInUse() - before).toBeLessThan(1024 * 1024);
    expect(reader.bufferedBytes).toBe(100);
  });

  describe("size boundary excludes the prefix (T15)", () => {
    /** `[1,{},nil,"t",["x"…]]` with a str16 argument, `size` bytes of body. */
    function invocationOfSize(size: number): Uint8Array {
      const length = size - 10;
      const fixed = hex(`95 01 80 c0 a1 74 91 da ${(length >>> 8).toString(16)} ${(length & 0xff).toString(16)}`);
      return frame(concat(fixed, new Uint8Array(length).fill(0x78)));
    }
    const limits = { maxMessageSize: 32 * 1024, maxDepth: 64 };
    const ping = hex("02 91 06");

    it.each([32 * 1024 - 1, 32 * 1024])("a %i-byte body is accepted, after a Ping in the same chunk", (size) => {
      const record = invocationOfSize(size);
      expect(record.length).toBe(size + 3);
      const { messages, error } = collect([concat(ping, record)], limits);
      expect(error).toBeUndefined();
      expect(messages).toHaveLength(2);
    });

    it.each([
      ["one chunk", (record: Uint8Array) => [concat(ping, record)]],
      ["chunked", (record: Uint8Array) => [ping, record.subarray(0, 2), record.subarray(2, 1000), record.subarray(1000)]],
    ])("a 32 KiB + 1 body → MessageTooLargeError after the Ping was delivered (%s)", (_name, split) => {
      const { messages, error } = collect(split(invocationOfSize(32 * 1024 + 1)), limits);
      expect(messages).toEqual([{ type: 6 }]);
      expect(error).toBeInstanceOf(MessageTooLargeError);
    });
  });
});
