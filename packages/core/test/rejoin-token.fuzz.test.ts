import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RejoinTokens } from "../src/server/rejoin-token.js";
import { fuzzParameters } from "../../../test-support/fuzz.js";

const tokens = new RejoinTokens({ keys: ["k".repeat(32)] });
const REFUSALS = new Set(["malformed", "too large", "bad signature", "expired", "other hub", "other user", "replayed", "replay memory full"]);
const group = fc.string({ unit: "binary", minLength: 1, maxLength: 20 });
const principal = fc.oneof(fc.record({ user: fc.string({ minLength: 1, maxLength: 12 }) }), fc.record({ connectionId: fc.string({ minLength: 1, maxLength: 22 }) }));

describe("rejoin token parser (property-based)", () => {
  it("verifies what it issued, with the same hub, principal and groups", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), principal, fc.uniqueArray(group, { maxLength: 10 }), (hub, who, groups) => {
        const token = tokens.issue(hub, who, groups);
        if (token === undefined) return; // over maxTokenLength: not issued
        const claim = tokens.verify(token);
        expect(claim).toMatchObject({ hub, principal: who, groups });
      }),
      fuzzParameters,
    );
  });

  it("never throws on mutated tokens and random input: a claim or a named refusal", () => {
    const issued = tokens.issue("Chat", { user: "alice" }, ["room-1", "room-2"])!;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.nat(), fc.string({ unit: "binary", maxLength: 4 }), fc.nat({ max: 4 })).map(([at, insert, drop]) => {
            const i = at % (issued.length + 1);
            return issued.slice(0, i) + insert + issued.slice(i + drop);
          }),
          fc.string({ unit: "binary", maxLength: 200 }),
          fc.anything(),
        ),
        (input) => {
          const result = tokens.verify(input);
          if (typeof result === "string") expect(REFUSALS.has(result)).toBe(true);
          else expect(result.hub).toBe("Chat");
        },
      ),
      fuzzParameters,
    );
  });

  it("refuses an oversized token before any work", () => {
    expect(tokens.verify("v1." + "a".repeat(10_000))).toBe("too large");
  });
});
