import { describe, expect, it } from "vitest";
import type { HubMessage } from "@switchboard/core";
import { JsonHubProtocol } from "../src/index.js";

const RS = "\u001e";
const protocol = new JsonHubProtocol();
const text = (message: HubMessage) => new TextDecoder().decode(protocol.write(message));

// What System.Text.Json writes for byte[] and DateTime (UTC), so .NET and JS clients read the same.
const VALUES: ReadonlyArray<readonly [string, unknown, string]> = [
  ["bytes", new Uint8Array([1, 2, 3, 250]), '"AQID+g=="'],
  ["empty bytes", new Uint8Array(0), '""'],
  ["a Buffer", Buffer.from("hello"), '"aGVsbG8="'],
  ["a view into a larger buffer", new Uint8Array(Buffer.from("xxhixx").buffer, Buffer.from("xxhixx").byteOffset + 2, 2), '"aGk="'],
  ["a date on the second", new Date(Date.UTC(2000, 0, 1)), '"2000-01-01T00:00:00Z"'],
  ["a date with milliseconds", new Date(Date.UTC(2000, 0, 1, 12, 30, 5, 120)), '"2000-01-01T12:30:05.12Z"'],
  ["a date with one millisecond", new Date(Date.UTC(2024, 1, 29, 23, 59, 59, 1)), '"2024-02-29T23:59:59.001Z"'],
  ["a date at 10 seconds", new Date(Date.UTC(2000, 0, 1, 0, 0, 10)), '"2000-01-01T00:00:10Z"'],
  ["an invalid date", new Date(Number.NaN), "null"],
  ["nested values", { at: new Date(Date.UTC(2001, 1, 2)), data: [Buffer.from([0xff])] }, '{"at":"2001-02-02T00:00:00Z","data":["/w=="]}'],
  ["plain values, untouched", { a: [1, "x", null, true] }, '{"a":[1,"x",null,true]}'],
];

describe("JSON values as .NET writes them", () => {
  it.each(VALUES)("a result holding %s", (_name, value, json) => {
    expect(text({ type: 3, invocationId: "1", hasResult: true, result: value })).toBe(`{"type":3,"invocationId":"1","result":${json}}${RS}`);
  });

  it.each(VALUES)("an argument holding %s", (_name, value, json) => {
    expect(text({ type: 1, target: "m", arguments: [value, 1] })).toBe(`{"type":1,"target":"m","arguments":[${json},1]}${RS}`);
  });

  it.each(VALUES)("a stream item holding %s", (_name, value, json) => {
    expect(text({ type: 2, invocationId: "7", item: value })).toBe(`{"type":2,"invocationId":"7","item":${json}}${RS}`);
  });

  it("still refuses values JSON cannot hold (BigInt), with the error JSON.stringify gives", () => {
    expect(() => text({ type: 1, target: "m", arguments: [new Date(0), 1n] })).toThrow(TypeError);
  });
});
