import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { chunk, feed, fuzzParameters, hex, itHasTheParserProperties } from "../../../test-support/fuzz.js";

const protocol = new MessagePackHubProtocol();
const limits = { maxMessageSize: 32 * 1024, maxDepth: 64 };

/** Client frames captured from @microsoft/signalr (signalr-protocol.md §10.2), after the handshake. */
const VECTORS = [
  "02 91 06",
  "0c 95 01 80 a1 30 a3 41 64 64 92 28 02",
  "0b 95 01 80 a1 31 a4 46 61 69 6c 90",
  "15 95 01 80 c0 ab 4e 6f 6e 42 6c 6f 63 6b 69 6e 67 91 a3 66 6f 6f",
  "0f 95 04 80 a1 32 a7 43 6f 75 6e 74 65 72 91 03",
  "08 95 03 80 a2 73 31 03 2a 10 96 01 80 a1 34 a6 55 70 6c 6f 61 64 90 91 a1 33",
  "06 94 02 80 a1 33 01",
  "06 94 03 80 a1 33 02",
  "03 92 07 c0",
  "05 93 05 80 a1 32",
  "13 95 03 80 a2 73 31 01 ab 45 72 72 6f 72 3a 20 62 6f 6f 6d",
  "08 95 03 80 a2 73 31 03 c0",
  "03 92 08 02",
  "03 92 09 01",
  "1e 95 01 80 a1 37 a4 45 63 68 6f 93 c4 02 01 02 d6 ff 65 92 00 80 cb 3f f8 00 00 00 00 00 00",
].map(hex);

const parseWith = () => {
  const parser = protocol.createParser(limits);
  return (data: Uint8Array, out: unknown[]) => parser.parse(data, (message) => out.push(message));
};

describe("MessagePack hub protocol parser (property-based)", () => {
  itHasTheParserProperties(protocol, VECTORS);

  it("never throws anything but the documented errors on random bytes, with or without a valid length prefix", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 6 }), (body, prefixed, cuts) => {
        const bytes = prefixed && body.length < 128 ? Buffer.concat([Uint8Array.of(body.length), body]) : body;
        feed(chunk(bytes, cuts), parseWith());
      }),
      fuzzParameters,
    );
  });

  it("refuses a declared length over the limit before its body arrives", () => {
    fc.assert(
      fc.property(fc.integer({ min: 65, max: 2 ** 31 - 1 }), (length) => {
        const small = protocol.createParser({ maxMessageSize: 64, maxDepth: 8 });
        const prefix: number[] = [];
        for (let rest = length; ; rest = Math.floor(rest / 128)) {
          if (rest < 128) {
            prefix.push(rest);
            break;
          }
          prefix.push((rest % 128) | 0x80);
        }
        const { error } = feed([Uint8Array.from(prefix)], (data, out) => small.parse(data, (m) => out.push(m)));
        expect(error?.code).toBe("SB_ERR_LIMIT_MESSAGE_TOO_LARGE");
      }),
      fuzzParameters,
    );
  });
});
