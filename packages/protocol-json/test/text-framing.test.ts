import { describe, it, expect } from "vitest";
import { InvalidMessageError, MessageTooLargeError, PING_MESSAGE, type HubMessage } from "@switchboard/core";
import { RECORD_SEPARATOR, RECORD_SEPARATOR_CHAR, TextRecordSplitter } from "../src/index.js";
import { RS, LIMITS, bytes, feed, parseAll, parseFailing } from "./support.js";

const TOO_LARGE = "SB_ERR_LIMIT_MESSAGE_TOO_LARGE";
const LIMIT = LIMITS.maxMessageSize;
const PING = '{"type":6}' + RS;

/** An Echo invocation whose JSON is exactly `size` bytes (separator not included). */
function recordOfSize(size: number): string {
  const prefix = '{"type":1,"target":"Echo","arguments":["';
  const suffix = '"]}';
  return prefix + "a".repeat(size - prefix.length - suffix.length) + suffix;
}

function echoOfSize(size: number): HubMessage {
  return JSON.parse(recordOfSize(size)) as HubMessage;
}

function splitAll(splitter: TextRecordSplitter, chunks: string[]): string[] {
  const records: string[] = [];
  for (const chunk of chunks) {
    splitter.split(bytes(chunk), (record) => records.push(Buffer.from(record).toString("utf8")));
  }
  return records;
}

describe("TextRecordSplitter", () => {
  it("uses 0x1e as the separator", () => {
    expect([RECORD_SEPARATOR, RECORD_SEPARATOR_CHAR]).toEqual([0x1e, "\u001e"]);
  });

  it.each([
    [["a" + RS + "bc" + RS], ["a", "bc"]],
    [["a", "b", "c" + RS], ["abc"]],
    [["ab", RS], ["ab"]],
    [["ab", RS + "c", "d" + RS + "e"], ["ab", "cd"]],
    [["", "a" + RS, ""], ["a"]],
    [["é", "😀" + RS], ["é😀"]],
  ])("%j → %j", (chunks, records) => {
    expect(splitAll(new TextRecordSplitter(16), chunks)).toEqual(records);
  });

  it("keeps the incomplete tail and reports its size", () => {
    const splitter = new TextRecordSplitter(16);
    expect(splitAll(splitter, ["a" + RS + "bcd"])).toEqual(["a"]);
    expect(splitter.pendingBytes).toBe(3);
    expect(splitAll(splitter, [RS])).toEqual(["bcd"]);
    expect(splitter.pendingBytes).toBe(0);
  });

  it.each([[[RS]], [[RS + RS]], [["a" + RS + RS]], [["a" + RS, RS]]])("empty record in %j is an InvalidMessageError", (chunks) => {
    expect(() => splitAll(new TextRecordSplitter(16), chunks)).toThrow(InvalidMessageError);
  });

  it.each([
    ["exactly the limit in one chunk", ["abcd" + RS], ["abcd"]],
    ["exactly the limit in pieces", ["ab", "cd", RS], ["abcd"]],
  ])("accepts %s", (_name, chunks, records) => {
    expect(splitAll(new TextRecordSplitter(4), chunks)).toEqual(records);
  });

  it.each([
    ["limit + 1 in one chunk", ["abcde" + RS]],
    ["limit + 1 without separator", ["abcde"]],
    ["limit + 1 in pieces", ["abc", "de"]],
    ["limit + 1 completed by the separator chunk", ["abcd", "e" + RS]],
  ])("refuses %s", (_name, chunks) => {
    const splitter = new TextRecordSplitter(4);
    let error: unknown;
    try {
      splitAll(splitter, chunks);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect((error as MessageTooLargeError).code).toBe(TOO_LARGE);
    expect((error as MessageTooLargeError).limit).toBe(4);
    // Refused before buffering: never more than the limit is kept.
    expect(splitter.pendingBytes).toBeLessThanOrEqual(4);
  });

  it("assembles a limit-sized record from 1-byte chunks", () => {
    const splitter = new TextRecordSplitter(LIMIT);
    const records: number[] = [];
    const single = new Uint8Array(1);
    for (let i = 0; i < LIMIT; i++) {
      single[0] = 0x61;
      splitter.split(single, (record) => records.push(record.length));
    }
    single[0] = RECORD_SEPARATOR;
    splitter.split(single, (record) => records.push(record.length));
    expect(records).toEqual([LIMIT]);
  });
});

describe("T02 missing or wrong record separator", () => {
  it.each([
    ["\\n", '{"type":6}\n'],
    ["0x1f", '{"type":6}\u001f'],
    ["nothing", '{"type":6}'],
  ])("JSON terminated by %s parses nothing and waits", (_name, input) => {
    expect(feed([input])).toEqual({ messages: [], error: undefined });
  });

  it("40 KiB without a separator is refused with MessageTooLargeError", () => {
    const { messages } = parseFailing(["x".repeat(40 * 1024)], MessageTooLargeError, TOO_LARGE);
    expect(messages).toEqual([]);
  });

  it("1 KiB pieces without a separator: 32 are kept, the 33rd is refused", () => {
    const pieces = (count: number): string[] => Array.from({ length: count }, () => "x".repeat(1024));
    expect(feed(pieces(32))).toEqual({ messages: [], error: undefined });
    parseFailing(pieces(33), MessageTooLargeError, TOO_LARGE);
  });
});

describe("T15 message size boundary (limit counts the record without its separator)", () => {
  it.each([
    ["limit − 1", LIMIT - 1],
    ["exactly the limit", LIMIT],
  ])("accepts %s bytes, alone, after a ping, and chunked", (_name, size) => {
    const record = recordOfSize(size) + RS;
    expect(bytes(recordOfSize(size)).length).toBe(size);
    expect(parseAll([record])).toStrictEqual([echoOfSize(size)]);
    expect(parseAll([PING + record])).toStrictEqual([PING_MESSAGE, echoOfSize(size)]);
    const third = Math.floor(record.length / 3);
    const chunks = [PING + record.slice(0, third), record.slice(third, 2 * third), record.slice(2 * third)];
    expect(parseAll(chunks)).toStrictEqual([PING_MESSAGE, echoOfSize(size)]);
  });

  it.each([
    ["alone", [recordOfSize(LIMIT + 1) + RS], []],
    ["after a ping in the same chunk", [PING + recordOfSize(LIMIT + 1) + RS], [PING_MESSAGE]],
    ["after two records in the same chunk", [PING + PING + recordOfSize(LIMIT + 1) + RS + PING], [PING_MESSAGE, PING_MESSAGE]],
    ["chunked, after a ping", [PING + recordOfSize(LIMIT + 1).slice(0, 100), recordOfSize(LIMIT + 1).slice(100) + RS], [PING_MESSAGE]],
    ["chunked, separator in its own chunk", [recordOfSize(LIMIT + 1), RS], []],
    ["chunked, limit then 1 byte", [recordOfSize(LIMIT + 1).slice(0, LIMIT), recordOfSize(LIMIT + 1).slice(LIMIT) + RS], []],
  ])("refuses limit + 1 bytes %s, after handing over the earlier records", (_name, chunks, before) => {
    const { messages, error } = parseFailing(chunks, MessageTooLargeError, TOO_LARGE);
    expect(messages).toStrictEqual(before);
    expect((error as MessageTooLargeError).limit).toBe(LIMIT);
  });
});
