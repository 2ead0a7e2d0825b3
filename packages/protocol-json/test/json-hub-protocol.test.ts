import { describe, it, expect } from "vitest";
import { OptionsError, PING_MESSAGE, type HubMessage } from "@switchboard/core";
import { JsonHubProtocol } from "../src/index.js";
import { RS, LIMITS, bytes, fromHex, hex, nullProto, parseAll, protocol, randomSplit, seededRandom } from "./support.js";

// §10.1: records the v10 client sends, and the message each must become.
const CLIENT_RECORDS: ReadonlyArray<readonly [string, HubMessage]> = [
  ['{"type":6}', PING_MESSAGE],
  [
    '{"target":"Add","arguments":[40,2],"invocationId":"0","type":1}',
    { type: 1, target: "Add", arguments: [40, 2], invocationId: "0" },
  ],
  [
    '{"target":"Fail","arguments":[],"invocationId":"1","type":1}',
    { type: 1, target: "Fail", arguments: [], invocationId: "1" },
  ],
  ['{"target":"NonBlocking","arguments":["foo"],"type":1}', { type: 1, target: "NonBlocking", arguments: ["foo"] }],
  [
    '{"target":"Counter","arguments":[3],"invocationId":"2","type":4}',
    { type: 4, target: "Counter", arguments: [3], invocationId: "2" },
  ],
  ['{"invocationId":"s1","result":42,"type":3}', { type: 3, invocationId: "s1", hasResult: true, result: 42 }],
  [
    '{"target":"Upload","arguments":[],"invocationId":"4","streamIds":["3"],"type":1}',
    { type: 1, target: "Upload", arguments: [], invocationId: "4", streamIds: ["3"] },
  ],
  ['{"invocationId":"3","item":1,"type":2}', { type: 2, invocationId: "3", item: 1 }],
  ['{"invocationId":"3","type":3}', { type: 3, invocationId: "3" }],
  ['{"invocationId":"2","type":5}', { type: 5, invocationId: "2" }],
  ['{"error":"Error: boom","invocationId":"s1","type":3}', { type: 3, invocationId: "s1", error: "Error: boom" }],
  ['{"invocationId":"s1","result":null,"type":3}', { type: 3, invocationId: "s1", hasResult: true, result: null }],
  ['{"target":"Echo","arguments":[1],"type":1}', { type: 1, target: "Echo", arguments: [1] }],
  ['{"type":8,"sequenceId":2}', { type: 8, sequenceId: 2 }],
  ['{"type":9,"sequenceId":1}', { type: 9, sequenceId: 1 }],
  ['{"type":7}', { type: 7 }],
  // Not captured, but legal: headers, Close fields, missing arguments, non-ASCII text.
  [
    '{"type":1,"target":"Send","headers":{"traceparent":"00-ab"},"arguments":["héllo 😀"]}',
    { type: 1, target: "Send", arguments: ["héllo 😀"], headers: nullProto({ traceparent: "00-ab" }) },
  ],
  ['{"type":1,"target":"NoArgs"}', { type: 1, target: "NoArgs", arguments: [] }],
  ['{"type":7,"error":"bye","allowReconnect":true}', { type: 7, error: "bye", allowReconnect: true }],
  ['{"type":2,"invocationId":"3","item":null}', { type: 2, invocationId: "3", item: null }],
  ['{"type":3,"invocationId":"3","error":""}', { type: 3, invocationId: "3", error: "" }],
];

// §10.1: messages the server sends, and ASP.NET's bytes for each.
const SERVER_RECORDS: ReadonlyArray<readonly [HubMessage, string]> = [
  [{ type: 3, invocationId: "0", hasResult: true, result: 42 }, '{"type":3,"invocationId":"0","result":42}'],
  [
    { type: 3, invocationId: "1", error: "An unexpected error occurred invoking 'Fail' on the server." },
    '{"type":3,"invocationId":"1","error":"An unexpected error occurred invoking \'Fail\' on the server."}',
  ],
  [
    { type: 1, target: "ReceiveMessage", arguments: ["alice", "hi"] },
    '{"type":1,"target":"ReceiveMessage","arguments":["alice","hi"]}',
  ],
  [
    { type: 1, invocationId: "s1", target: "GetValue", arguments: [7] },
    '{"type":1,"invocationId":"s1","target":"GetValue","arguments":[7]}',
  ],
  [{ type: 2, invocationId: "2", item: 0 }, '{"type":2,"invocationId":"2","item":0}'],
  [{ type: 3, invocationId: "2" }, '{"type":3,"invocationId":"2"}'],
  [{ type: 3, invocationId: "4", hasResult: true, result: 6 }, '{"type":3,"invocationId":"4","result":6}'],
  [{ type: 3, invocationId: "5", hasResult: true, result: null }, '{"type":3,"invocationId":"5","result":null}'],
  [{ type: 9, sequenceId: 2 }, '{"type":9,"sequenceId":2}'],
  [{ type: 8, sequenceId: 3 }, '{"type":8,"sequenceId":3}'],
  [{ type: 1, target: "msg", arguments: ["b"] }, '{"type":1,"target":"msg","arguments":["b"]}'],
  [PING_MESSAGE, '{"type":6}'],
  [{ type: 7 }, '{"type":7}'],
  [
    { type: 7, error: "Connection closed with an error.", allowReconnect: true },
    '{"type":7,"error":"Connection closed with an error.","allowReconnect":true}',
  ],
];

// §10.1 "Exact bytes for the first frames".
const HEX_VECTORS: ReadonlyArray<readonly [string, string, HubMessage]> = [
  ["→ ping (11 B)", "7b 22 74 79 70 65 22 3a 36 7d 1e", PING_MESSAGE],
  [
    "→ invoke Add (64 B)",
    "7b 22 74 61 72 67 65 74 22 3a 22 41 64 64 22 2c 22 61 72 67 75 6d 65 6e 74 73 22 3a 5b 34 30 2c 32 5d 2c 22 69 6e 76 6f 63 61 74 69 6f 6e 49 64 22 3a 22 30 22 2c 22 74 79 70 65 22 3a 31 7d 1e",
    { type: 1, target: "Add", arguments: [40, 2], invocationId: "0" },
  ],
  ["→ close (11 B)", "7b 22 74 79 70 65 22 3a 37 7d 1e", { type: 7 }],
];
const COMPLETION_42_HEX =
  "7b 22 74 79 70 65 22 3a 33 2c 22 69 6e 76 6f 63 61 74 69 6f 6e 49 64 22 3a 22 30 22 2c 22 72 65 73 75 6c 74 22 3a 34 32 7d 1e";

const CLIENT_STREAM = bytes(CLIENT_RECORDS.map(([record]) => record + RS).join(""));
const CLIENT_MESSAGES = CLIENT_RECORDS.map(([, message]) => message);

describe("JsonHubProtocol", () => {
  it("is named json, version 2, text", () => {
    expect([protocol.name, protocol.version, protocol.transferFormat]).toEqual(["json", 2, "text"]);
  });

  it.each([
    { maxMessageSize: 0, maxDepth: 64 },
    { maxMessageSize: 1.5, maxDepth: 64 },
    { maxMessageSize: Number.NaN, maxDepth: 64 },
    { maxMessageSize: 1024, maxDepth: 0 },
    { maxMessageSize: 1024, maxDepth: -1 },
  ])("createParser refuses limits %o with OptionsError", (limits) => {
    let error: unknown;
    try {
      new JsonHubProtocol().createParser(limits);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(OptionsError);
    expect((error as OptionsError).code).toBe("SB_ERR_OPTIONS");
  });
});

describe("parse: §10.1 client records", () => {
  it.each(CLIENT_RECORDS)("%s", (record, message) => {
    expect(parseAll([record + RS])).toStrictEqual([message]);
  });

  it.each(HEX_VECTORS)("%s: %s", (_name, spaced, message) => {
    expect(parseAll([fromHex(spaced)])).toStrictEqual([message]);
  });

  it("parses several records in one chunk, in order", () => {
    expect(parseAll([CLIENT_STREAM])).toStrictEqual(CLIENT_MESSAGES);
  });

  it("parses the captured batched frame (completion + Upload invocation)", () => {
    const frame =
      '{"invocationId":"s1","result":42,"type":3}' +
      RS +
      '{"target":"Upload","arguments":[],"invocationId":"4","streamIds":["3"],"type":1}' +
      RS;
    expect(parseAll([frame])).toStrictEqual([CLIENT_MESSAGES[5], CLIENT_MESSAGES[6]]);
  });

  it("ignores whitespace around the JSON of a record", () => {
    expect(parseAll([' \n{"type":6}\r\n' + RS])).toStrictEqual([PING_MESSAGE]);
  });

  it("returns headers as a null-prototype object and drops empty headers", () => {
    const [withHeaders, empty] = parseAll([
      '{"type":5,"invocationId":"1","headers":{"a":"b"}}' + RS + '{"type":5,"invocationId":"1","headers":{}}' + RS,
    ]) as [HubMessage & { headers?: object }, HubMessage & { headers?: object }];
    expect(Object.getPrototypeOf(withHeaders.headers)).toBeNull();
    expect({ ...withHeaders.headers }).toEqual({ a: "b" });
    expect(empty.headers).toBeUndefined();
  });

  it("decodes invalid UTF-8 leniently (ws validates text frames)", () => {
    const record = Uint8Array.from([...bytes('{"type":1,"target":"x","arguments":["'), 0xff, ...bytes('"]}' + RS)]);
    expect(parseAll([record])).toStrictEqual([{ type: 1, target: "x", arguments: ["\ufffd"] }]);
  });
});

describe("parse: chunking (T03)", () => {
  it("gives the same messages for every two-piece split of the stream", () => {
    for (let cut = 0; cut <= CLIENT_STREAM.length; cut++) {
      const chunks = [CLIENT_STREAM.subarray(0, cut), CLIENT_STREAM.subarray(cut)];
      expect(parseAll(chunks)).toStrictEqual(CLIENT_MESSAGES);
    }
  });

  it("gives the same messages for 1-byte chops of the stream", () => {
    const chunks = Array.from(CLIENT_STREAM, (byte) => Uint8Array.of(byte));
    expect(parseAll(chunks)).toStrictEqual(CLIENT_MESSAGES);
  });

  it("gives the same messages for random splits (1000 seeds)", () => {
    for (let seed = 1; seed <= 1000; seed++) {
      const chunks = randomSplit(CLIENT_STREAM, seededRandom(seed), 24);
      expect(parseAll(chunks), `seed ${seed}`).toStrictEqual(CLIENT_MESSAGES);
    }
  });

  it("does not depend on the caller keeping its chunk after parse returns", () => {
    const parser = protocol.createParser(LIMITS);
    const messages: HubMessage[] = [];
    const chunk = bytes('{"type":1,"target":"Echo",');
    parser.parse(chunk, (message) => messages.push(message));
    chunk.fill(0x20);
    parser.parse(bytes('"arguments":["x"]}' + RS), (message) => messages.push(message));
    expect(messages).toStrictEqual([{ type: 1, target: "Echo", arguments: ["x"] }]);
  });
});

describe("write: §10.1 server records", () => {
  it.each(SERVER_RECORDS)("%o → %s", (message, json) => {
    expect(Buffer.from(protocol.write(message)).toString("utf8")).toBe(json + RS);
  });

  it("writes completion 42 as the captured 42 bytes", () => {
    const written = protocol.write({ type: 3, invocationId: "0", hasResult: true, result: 42 });
    expect(hex(written)).toBe(COMPLETION_42_HEX.replace(/ /g, ""));
    expect(written.length).toBe(42);
  });

  it.each(SERVER_RECORDS)("round-trips %o", (message) => {
    expect(parseAll([protocol.write(message)])).toStrictEqual([message]);
  });

  it.each(CLIENT_MESSAGES.map((message) => [message] as const))("writes then parses %o unchanged", (message) => {
    expect(parseAll([protocol.write(message)])).toStrictEqual([message]);
  });
});

describe("write: field rules", () => {
  const cases: ReadonlyArray<readonly [string, HubMessage, string]> = [
    ["undefined item → null", { type: 2, invocationId: "1", item: undefined }, '{"type":2,"invocationId":"1","item":null}'],
    [
      "hasResult with undefined result → null",
      { type: 3, invocationId: "1", hasResult: true },
      '{"type":3,"invocationId":"1","result":null}',
    ],
    [
      "error wins over result, never both",
      { type: 3, invocationId: "1", error: "e", hasResult: true, result: 1 },
      '{"type":3,"invocationId":"1","error":"e"}',
    ],
    ["result without hasResult → void", { type: 3, invocationId: "1", result: 1 }, '{"type":3,"invocationId":"1"}'],
    ["empty headers omitted", { type: 5, invocationId: "1", headers: {} }, '{"type":5,"invocationId":"1"}'],
    [
      "headers right after type",
      { type: 3, invocationId: "1", headers: nullProto({ a: "b" }) },
      '{"type":3,"headers":{"a":"b"},"invocationId":"1"}',
    ],
    ["empty streamIds omitted", { type: 1, target: "t", arguments: [], streamIds: [] }, '{"type":1,"target":"t","arguments":[]}'],
    [
      "streamIds after arguments",
      { type: 4, invocationId: "2", target: "t", arguments: [1], streamIds: ["1"] },
      '{"type":4,"invocationId":"2","target":"t","arguments":[1],"streamIds":["1"]}',
    ],
    ["allowReconnect false omitted", { type: 7, error: "", allowReconnect: false }, '{"type":7,"error":""}'],
    [
      "undefined and NaN arguments → null",
      { type: 1, target: "t", arguments: [undefined, Number.NaN] },
      '{"type":1,"target":"t","arguments":[null,null]}',
    ],
    [
      "strings are escaped",
      { type: 1, target: 'a"b\u001e', arguments: ["\n"] },
      '{"type":1,"target":"a\\"b\\u001e","arguments":["\\n"]}',
    ],
  ];
  it.each(cases)("%s", (_name, message, json) => {
    expect(Buffer.from(protocol.write(message)).toString("utf8")).toBe(json + RS);
  });

  it("encodes non-ASCII text as UTF-8", () => {
    const written = protocol.write({ type: 1, target: "é", arguments: ["😀"] });
    expect(hex(written)).toBe(hex(bytes('{"type":1,"target":"é","arguments":["😀"]}' + RS)));
    expect(hex(written)).toContain("c3a9");
  });

  it("delivers and re-writes an own __proto__ argument key unchanged, without pollution (T21)", () => {
    const record = '{"type":1,"target":"Echo","arguments":[{"__proto__":{"polluted":true}}]}' + RS;
    const [message] = parseAll([record]) as [HubMessage & { arguments: unknown[] }];
    const argument = message.arguments[0] as object;
    expect(Object.hasOwn(argument, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(argument)).toBe(Object.prototype);
    expect((({}) as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Buffer.from(protocol.write(message)).toString("utf8")).toBe(
      '{"type":1,"target":"Echo","arguments":[{"__proto__":{"polluted":true}}]}' + RS,
    );
  });

  it.each([
    ["a BigInt", [1n]],
    ["a cycle", (() => { const cycle: unknown[] = []; cycle.push(cycle); return [cycle]; })()],
  ])("lets JSON.stringify's TypeError through for %s", (_name, args) => {
    expect(() => protocol.write({ type: 1, target: "t", arguments: args as unknown[] })).toThrow(TypeError);
  });

  it("throws a TypeError for an unknown message type", () => {
    expect(() => protocol.write({ type: 99 } as unknown as HubMessage)).toThrow(TypeError);
  });
});
