import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { RejoinTokens } from "@switchboard/core";
import { fuzzParameters } from "../../../test-support/fuzz.js";

const tokens = new RejoinTokens({ keys: ["f".repeat(32)], maxGroups: 20 });
const NOW = Date.now();

function verifies(input: string): boolean {
  const result = tokens.verify(input, NOW); // must not throw, whatever the input
  return typeof result !== "string";
}

const group = fc.string({ minLength: 1, maxLength: 40 });
const valid = fc
  .tuple(fc.string({ maxLength: 20 }), fc.oneof(fc.record({ user: fc.string({ minLength: 1 }) }), fc.record({ connectionId: fc.string({ minLength: 1 }) })), fc.uniqueArray(group, { maxLength: 20 }))
  .map(([hub, principal, groups]) => ({ hub, principal, groups, token: tokens.issue(hub, principal, groups, NOW)! }));

describe("rejoin token parser (fuzzed)", () => {
  it("never throws on random strings, and accepts none", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.base64String(), fc.array(fc.constantFrom("v1", ".", "A", "_", "-", "=", "é", "\u0000")).map((parts) => parts.join(""))), (input) => {
        expect(verifies(input)).toBe(false);
      }),
      { ...fuzzParameters },
    );
  });

  it("never throws on non-strings", () => {
    fc.assert(
      fc.property(fc.anything(), (input) => {
        expect(typeof tokens.verify(input, NOW)).toBe("string");
      }),
      { ...fuzzParameters },
    );
  });

  it("round-trips what it issues", () => {
    fc.assert(
      fc.property(valid, ({ hub, principal, groups, token }) => {
        expect(tokens.verify(token, NOW)).toMatchObject({ hub, principal, groups });
      }),
      { ...fuzzParameters },
    );
  });

  it("accepts no mutation of a valid token (one character changed, inserted or removed)", () => {
    fc.assert(
      fc.property(valid, fc.nat(), fc.constantFrom("replace", "insert", "delete"), fc.string({ minLength: 1, maxLength: 1, unit: "grapheme-ascii" }), ({ token }, at, how, char) => {
        const i = at % token.length;
        const mutated = how === "insert" ? token.slice(0, i) + char + token.slice(i) : how === "delete" ? token.slice(0, i) + token.slice(i + 1) : token.slice(0, i) + char + token.slice(i + 1);
        // A base64url mutation can decode to the same bytes (the last char's low bits); only a changed decoding must fail.
        if (mutated === token || decodes(mutated) === decodes(token)) return;
        expect(verifies(mutated)).toBe(false);
      }),
      { ...fuzzParameters },
    );
  });

  it("accepts no signed payload of the wrong shape (a key holder's mistakes still never throw)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const body = `v1.${Buffer.from(JSON.stringify(value) ?? "null", "utf8").toString("base64url")}`;
        const signature = signWithTestKey(body);
        const result = tokens.verify(`${body}.${signature}`, NOW);
        expect(typeof result === "string" || Array.isArray(value)).toBe(true);
      }),
      { ...fuzzParameters },
    );
  });

  it("round-trips binary group names and both kinds of principal", () => {
    const binary = fc.string({ unit: "binary", minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.oneof(fc.record({ user: fc.string({ minLength: 1, maxLength: 12 }) }), fc.record({ connectionId: fc.string({ minLength: 1, maxLength: 22 }) })), fc.uniqueArray(binary, { maxLength: 10 }), (hub, who, groups) => {
        const token = tokens.issue(hub, who, groups, NOW);
        if (token === undefined) return; // over maxTokenLength: not issued
        expect(tokens.verify(token, NOW)).toMatchObject({ hub, principal: who, groups });
      }),
      fuzzParameters,
    );
  });

  it("refuses an oversized token before any work", () => {
    expect(tokens.verify("v1." + "a".repeat(10_000), NOW)).toBe("too large");
  });
});

function decodes(token: string): string {
  return token
    .split(".")
    .map((part, index) => (index === 0 ? part : Buffer.from(part, "base64url").toString("hex")))
    .join(".");
}

function signWithTestKey(body: string): string {
  return createHmac("sha256", "f".repeat(32)).update(body).digest("base64url");
}
