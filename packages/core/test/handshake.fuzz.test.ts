import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HandshakeReader } from "../src/connections/handshake.js";
import { chunk, fuzzParameters, mutate, mutations } from "../../../test-support/fuzz.js";
import { SwitchboardError } from "../src/contracts/errors.js"; // the reader's own copy of the error classes

const encoder = new TextEncoder();
/** Handshakes captured from @microsoft/signalr (signalr-protocol.md §10.1, §10.2). */
const VECTORS = ['{"protocol":"json","version":1}\u001e', '{"protocol":"messagepack","version":1}\u001e', '{"protocol":"json","version":2}\u001e{"type":6}\u001e'].map((text) => encoder.encode(text));

/** Feeds the pieces to a fresh reader: the request and what followed it, undefined while incomplete, or the documented error. */
function read(pieces: readonly Uint8Array[], maxSize = 32 * 1024) {
  const reader = new HandshakeReader(maxSize);
  try {
    for (let i = 0; i < pieces.length; i++) {
      const done = reader.read(pieces[i]!);
      if (done !== undefined) return { request: done.request, rest: Buffer.concat([done.rest, ...pieces.slice(i + 1)]) };
    }
    return undefined;
  } catch (error) {
    if (!(error instanceof SwitchboardError)) throw new Error(`The handshake reader threw an undocumented error: ${String(error)}`, { cause: error });
    return { error };
  }
}

describe("handshake reader (property-based)", () => {
  it("reads back any protocol name and version, and keeps the bytes after it, however it is cut", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.integer(), fc.uint8Array({ maxLength: 20 }), fc.array(fc.nat(), { maxLength: 8 }), (protocol, version, after, cuts) => {
        const bytes = Buffer.concat([encoder.encode(`${JSON.stringify({ protocol, version })}\u001e`), after]);
        const result = read(chunk(bytes, cuts));
        expect(result).toEqual({ request: { protocol, version }, rest: Buffer.from(after) });
      }),
      fuzzParameters,
    );
  });

  it("never throws anything but the documented errors on mutated handshakes and random bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...VECTORS).chain((v) => mutations.map((m) => mutate(v, m))), fc.uint8Array({ maxLength: 200 })), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
        read(chunk(bytes, cuts));
      }),
      fuzzParameters,
    );
  });

  it("refuses more than maxSize bytes without a separator, whatever the pieces", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.array(fc.nat(), { maxLength: 6 }), (size, cuts) => {
        const result = read(chunk(new Uint8Array(size + 1).fill(0x7b), cuts), size);
        expect(result && "error" in result ? result.error?.code : undefined).toBe("SB_ERR_LIMIT_MESSAGE_TOO_LARGE");
      }),
      fuzzParameters,
    );
  });
});
