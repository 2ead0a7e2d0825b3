import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { chunk, feed, fuzzParameters, itHasTheParserProperties } from "../../../test-support/fuzz.js";

const protocol = new JsonHubProtocol();
const limits = { maxMessageSize: 32 * 1024, maxDepth: 64 };
const encoder = new TextEncoder();

/** Client frames captured from @microsoft/signalr (signalr-protocol.md §10.1), after the handshake. */
const VECTORS = [
  '{"type":6}\u001e',
  '{"target":"Add","arguments":[40,2],"invocationId":"0","type":1}\u001e',
  '{"target":"NonBlocking","arguments":["foo"],"type":1}\u001e',
  '{"target":"Counter","arguments":[3],"invocationId":"2","type":4}\u001e',
  '{"invocationId":"s1","result":42,"type":3}\u001e{"target":"Upload","arguments":[],"invocationId":"4","streamIds":["3"],"type":1}\u001e',
  '{"invocationId":"3","item":1,"type":2}\u001e',
  '{"invocationId":"3","type":3}\u001e',
  '{"invocationId":"2","type":5}\u001e',
  '{"error":"Error: boom","invocationId":"s1","type":3}\u001e',
  '{"type":7}\u001e',
].map((text) => encoder.encode(text));

const parseWith = () => {
  const parser = protocol.createParser(limits);
  return (data: Uint8Array, out: unknown[]) => parser.parse(data, (message) => out.push(message));
};

describe("JSON hub protocol parser (property-based)", () => {
  itHasTheParserProperties(protocol, VECTORS);

  it("never throws anything but the documented errors on random bytes and strings", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 200 }).map((s) => encoder.encode(`${s}\u001e`))), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
        feed(chunk(bytes, cuts), parseWith());
      }),
      fuzzParameters,
    );
  });

  it("stops at the size limit without keeping more than it allows", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(fc.nat(), { maxLength: 6 }), (size, cuts) => {
        const small = protocol.createParser({ maxMessageSize: size, maxDepth: 8 });
        const bytes = new Uint8Array(size + 1).fill(0x20); // no separator: a message over the limit
        const { error } = feed(chunk(bytes, cuts), (data, out) => small.parse(data, (m) => out.push(m)));
        expect(error?.code).toBe("SB_ERR_LIMIT_MESSAGE_TOO_LARGE");
      }),
      fuzzParameters,
    );
  });
});
