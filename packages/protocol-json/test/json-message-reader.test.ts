import { describe, it, expect } from "vitest";
import { InvalidMessageError, PING_MESSAGE, type HubMessage } from "@switchboard/core";
import { RS, parseAll, parseFailing } from "./support.js";

const INVALID = "SB_ERR_INVALID_MESSAGE";
const HUGE = "x".repeat(20_000);
const ECHO = '{"type":1,"target":"Echo","arguments":["x"],"invocationId":"7"}';
const ECHO_MESSAGE: HubMessage = { type: 1, target: "Echo", arguments: ["x"], invocationId: "7" };

describe("T01 malformed JSON", () => {
  const truncated = '{"type":1,"target":"Echo","arguments":[' + RS;

  it("throws InvalidMessageError('Error reading JSON.') with the SyntaxError as cause", () => {
    const { error } = parseFailing([truncated], InvalidMessageError, INVALID);
    expect(error.message).toBe("Error reading JSON.");
    expect(error.cause).toBeInstanceOf(SyntaxError);
    expect(error.message).not.toContain("Echo");
  });

  it("hands over the records before the bad one in the same chunk first", () => {
    const { messages } = parseFailing([ECHO + RS + '{"type":6}' + RS + truncated], InvalidMessageError, INVALID);
    expect(messages).toStrictEqual([ECHO_MESSAGE, PING_MESSAGE]);
  });

  it.each(["{", "[", "nul", "{'type':6}", '{"type":6,}', "\ufeff{\"type\":6}", " "])("%j", (record) => {
    parseFailing([record + RS], InvalidMessageError, INVALID);
  });
});

describe("T04 empty, missing or ill-typed type", () => {
  it.each([
    ["RS RS", RS + RS],
    ["a leading RS", RS + '{"type":6}' + RS],
    ["{}", "{}" + RS],
    ['{"type":"1"}', '{"type":"1"}' + RS],
    ['{"type":1.5}', '{"type":1.5}' + RS],
    ['{"type":null}', '{"type":null}' + RS],
    ['{"type":true}', '{"type":true}' + RS],
    ['{"type":[1]}', '{"type":[1]}' + RS],
    ["[1]", "[1]" + RS],
    ["1", "1" + RS],
    ['"x"', '"x"' + RS],
    ["null", "null" + RS],
  ])("%s is an InvalidMessageError", (_name, input) => {
    parseFailing([input], InvalidMessageError, INVALID);
  });

  it("RS RS after a valid record hands the record over first", () => {
    const { messages } = parseFailing([ECHO + RS + RS], InvalidMessageError, INVALID);
    expect(messages).toStrictEqual([ECHO_MESSAGE]);
  });
});

describe("T05 unknown message types are skipped", () => {
  it.each(['{"type":99}', '{"type":0}', '{"type":-1}', '{"type":10,"target":5}', '{"type":1e300}'])(
    "%s then an invocation in the same chunk",
    (unknown) => {
      expect(parseAll([unknown + RS + ECHO + RS])).toStrictEqual([ECHO_MESSAGE]);
    },
  );

  it("type 99 then an invocation in the next chunk", () => {
    expect(parseAll(['{"type":99}' + RS, ECHO + RS])).toStrictEqual([ECHO_MESSAGE]);
  });

  it("an invocation then type 99 in the same chunk", () => {
    expect(parseAll([ECHO + RS + '{"type":99}' + RS])).toStrictEqual([ECHO_MESSAGE]);
  });
});

describe("T06 wrong field types", () => {
  const invocation = (fields: string): string => `{"type":1,"target":"Echo","arguments":[]${fields}}`;
  const cases: ReadonlyArray<readonly [string, string]> = [
    ...["123", "true", "null", '["x"]', '{"toString":"x"}', '""'].map(
      (value) => [`target ${value}`, `{"type":1,"target":${value},"arguments":[]}`] as const,
    ),
    ['missing target', '{"type":1,"arguments":[]}'],
    ...["{}", "1", '"x"', "null", "true"].map(
      (value) => [`arguments ${value}`, `{"type":1,"target":"Echo","arguments":${value}}`] as const,
    ),
    ...["5", "true", "null", '["1"]', "{}", '""'].map(
      (value) => [`invocationId ${value}`, invocation(`,"invocationId":${value}`)] as const,
    ),
    ...['{"a":1}', '{"a":null}', '{"a":{}}', '{"a":["b"]}', '"x"', '["a"]', "1", "null"].map(
      (value) => [`headers ${value}`, invocation(`,"headers":${value}`)] as const,
    ),
    ...['"x"', "[1]", "[null]", '{"0":"a"}', "1", "null"].map(
      (value) => [`streamIds ${value}`, invocation(`,"streamIds":${value}`)] as const,
    ),
    ["StreamInvocation without invocationId", '{"type":4,"target":"Counter","arguments":[3]}'],
    ["StreamItem without item", '{"type":2,"invocationId":"1"}'],
    ["StreamItem without invocationId", '{"type":2,"item":1}'],
    ["StreamItem invocationId 1", '{"type":2,"invocationId":1,"item":1}'],
    ["Completion with result and error", '{"type":3,"invocationId":"1","result":1,"error":"e"}'],
    ["Completion with null result and null error", '{"type":3,"invocationId":"1","result":null,"error":null}'],
    ["Completion error 1", '{"type":3,"invocationId":"1","error":1}'],
    ["Completion error null", '{"type":3,"invocationId":"1","error":null}'],
    ["Completion without invocationId", '{"type":3,"result":1}'],
    ["Completion invocationId \"\"", '{"type":3,"invocationId":""}'],
    ["CancelInvocation without invocationId", '{"type":5}'],
    ["Close error 1", '{"type":7,"error":1}'],
    ["Close allowReconnect \"true\"", '{"type":7,"allowReconnect":"true"}'],
    ["Ack without sequenceId", '{"type":8}'],
    ["Ack sequenceId \"1\"", '{"type":8,"sequenceId":"1"}'],
    ["Sequence sequenceId 1.5", '{"type":9,"sequenceId":1.5}'],
    ["Sequence sequenceId -1", '{"type":9,"sequenceId":-1}'],
  ];

  it.each(cases)("%s → InvalidMessageError", (_name, record) => {
    const { error } = parseFailing([record + RS], InvalidMessageError, INVALID);
    expect(error.message.length).toBeLessThan(80);
  });

  it.each(cases)("%s after a valid record: the record is handed over first", (_name, record) => {
    const { messages } = parseFailing([ECHO + RS + record + RS], InvalidMessageError, INVALID);
    expect(messages).toStrictEqual([ECHO_MESSAGE]);
  });

  it("never quotes the payload in the error message", () => {
    const { error } = parseFailing(['{"type":1,"target":["secret-value"],"arguments":[]}' + RS], InvalidMessageError, INVALID);
    expect(error.message).not.toContain("secret-value");
  });

  it.each([
    ["target", `{"type":1,"target":"${HUGE}","arguments":[]}`, { type: 1, target: HUGE, arguments: [] }],
    [
      "invocationId",
      `{"type":1,"target":"t","arguments":[],"invocationId":"${HUGE}"}`,
      { type: 1, target: "t", arguments: [], invocationId: HUGE },
    ],
  ])("accepts a huge string %s (length limits are the dispatcher's)", (_name, record, message) => {
    expect(parseAll([record + RS])).toStrictEqual([message]);
  });
});

describe("T07 unknown extra properties are ignored", () => {
  it.each([
    ['{"type":1,"target":"Echo","arguments":["x"],"foo":{"a":[1,{"b":2}]}}', { type: 1, target: "Echo", arguments: ["x"] }],
    ['{"type":6,"headers":{"a":"b"},"extra":1}', PING_MESSAGE],
    ['{"type":7,"invocationId":"1","headers":5}', { type: 7 }],
    ['{"type":7,"allowReconnect":false,"foo":1}', { type: 7, allowReconnect: false }],
    ['{"type":2,"invocationId":"1","item":"x","result":1}', { type: 2, invocationId: "1", item: "x" }],
    ['{"Type":5,"type":5,"InvocationId":"9","invocationId":"1"}', { type: 5, invocationId: "1" }],
  ])("%s", (record, message) => {
    expect(parseAll([record + RS])).toStrictEqual([message]);
  });
});

describe("T20 prototype-key names", () => {
  it.each(["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "__defineGetter__"])(
    "target %s is parsed as a plain string",
    (target) => {
      expect(parseAll([`{"type":1,"target":"${target}","arguments":[]}` + RS])).toStrictEqual([
        { type: 1, target, arguments: [] },
      ]);
    },
  );

  it.each(["__proto__", "constructor", "toString"])("header key %s is an own key of a null-prototype object", (key) => {
    const [message] = parseAll([`{"type":5,"invocationId":"1","headers":{"${key}":"x"}}` + RS]) as [
      HubMessage & { headers: Record<string, string> },
    ];
    expect(Object.getPrototypeOf(message.headers)).toBeNull();
    expect(Object.keys(message.headers)).toEqual([key]);
    expect(Object.getOwnPropertyDescriptor(message.headers, key)?.value).toBe("x");
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it("does not read fields from a polluted Object.prototype", () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.target = "Injected";
    proto.invocationId = "9";
    try {
      const { error } = parseFailing(['{"type":1,"arguments":[]}' + RS], InvalidMessageError, INVALID);
      expect(error).toBeDefined();
      expect(parseAll(['{"type":1,"target":"t","arguments":[]}' + RS])).toStrictEqual([
        { type: 1, target: "t", arguments: [] },
      ]);
    } finally {
      delete proto.target;
      delete proto.invocationId;
    }
  });
});
