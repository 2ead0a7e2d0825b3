import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ConnectionCommand, SendTarget } from "@switchboard/core";
import { readCommand, readEnvelope, readReply, writeCommand, writeEnvelope, writeReply } from "../src/envelope.js";
import { fuzzParameters } from "../../../test-support/fuzz.js";

const node = Buffer.alloc(16, 7);
const text = fc.string({ maxLength: 20 });
const bytes = fc.uint8Array({ maxLength: 64 });
const encodings = fc.dictionary(fc.constantFrom("json", "messagepack"), bytes).map((record) => new Map(Object.entries(record)));
const target: fc.Arbitrary<SendTarget> = fc.oneof(
  fc.constant<SendTarget>({ kind: "all" }),
  text.map<SendTarget>((group) => ({ kind: "group", group: group || "g" })),
  fc.array(text, { maxLength: 3 }).map<SendTarget>((connectionIds) => ({ kind: "connections", connectionIds })),
  text.map<SendTarget>((userId) => ({ kind: "user", userId })),
);
const command: fc.Arbitrary<ConnectionCommand> = fc.oneof(
  fc.record({ op: fc.constantFrom("add" as const, "remove" as const), connectionId: text, group: text.map((g) => g || "g"), persist: fc.boolean() }),
  fc.record({ op: fc.constant("invoke" as const), connectionId: text, invocationId: text, message: encodings, timeout: fc.integer({ min: 1, max: 60_000 }) }),
  fc.record({ op: fc.constant("cancel" as const), connectionId: text, invocationId: text }),
);

/** Every reader answers a value or a reason, never throws. */
function readAll(data: Buffer): void {
  readEnvelope(data);
  readCommand(data);
  readReply(data);
}

describe("backplane envelope (property-based)", () => {
  it("never throws on random bytes, with or without a known first byte", () => {
    fc.assert(
      fc.property(fc.constantFrom(0x01, 0x11, 0x12, 0x00, 0xff), fc.uint8Array({ maxLength: 200 }), (first, rest) => readAll(Buffer.concat([Uint8Array.of(first), rest]))),
      fuzzParameters,
    );
  });

  it("round-trips sends, commands and replies, and every truncation or mutation is refused or read, never thrown", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 12 }), target, encodings, command, fc.nat(), fc.nat(), (hub, to, message, request, cut, flip) => {
        const envelope = writeEnvelope(node, hub, to, message);
        expect(readEnvelope(envelope)).toMatchObject({ hub, target: to, message });
        const written = writeCommand(node, hub, 42, request);
        const parsed = readCommand(written);
        expect(parsed).toMatchObject({ hub, id: 42, command: request.op === "add" || request.op === "remove" ? { ...request, persist: request.persist === true } : request });
        const reply = writeReply(42, { answer: { completion: { protocol: "json", bytes: Buffer.from("x") } } });
        expect(readReply(reply)).toMatchObject({ id: 42, answer: { completion: { protocol: "json" } } });
        for (const data of [envelope, written, reply]) {
          readAll(data.subarray(0, cut % data.length));
          const mutated = Buffer.from(data);
          mutated[flip % mutated.length] ^= 0x5a;
          readAll(mutated);
        }
        expect(readEnvelope(envelope.subarray(0, envelope.length - 1))).toHaveProperty("error");
      }),
      fuzzParameters,
    );
  });
});
