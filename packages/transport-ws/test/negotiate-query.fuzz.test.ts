import "reflect-metadata";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { Hub, SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { splitUrl } from "../src/http-responses.js";
import { QueryParameters } from "../src/query-parameters.js";
import { fuzzParameters } from "../../../test-support/fuzz.js";

@Hub("/hubs/fuzz")
class FuzzHub extends Hub {}

const server = new SwitchboardServer({ protocols: [new JsonHubProtocol()], hubs: [FuzzHub], maxPendingNegotiations: 1_000_000 });
afterAll(() => server.close());

/** Query parts a client may send, including the names the server reads and prototype keys. */
const name = fc.oneof(fc.constantFrom("negotiateVersion", "id", "useStatefulReconnect", "access_token", "__proto__", "constructor", "toString"), fc.string({ unit: "binary", maxLength: 12 }));
const part = fc.tuple(name, fc.oneof(fc.constantFrom("1", "0", "-1", "1.5", "1e3", "99999999999999999999", "true", "__proto__", ""), fc.string({ unit: "binary", maxLength: 16 })));
const rawSuffix = fc.string({ unit: "binary", maxLength: 40 });

function urlOf(parts: readonly (readonly [string, string])[], suffix: string): string {
  return `/hubs/fuzz/negotiate?${parts.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&")}${suffix}`;
}

describe("negotiate query parsing (property-based)", () => {
  it("splits any request URL into a path and a first-value query map, never throwing", () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 6 }), rawSuffix, (parts, suffix) => {
        const url = splitUrl(urlOf(parts, suffix));
        expect(url?.path).toBe("/hubs/fuzz/negotiate");
        expect(url!.query).toBeInstanceOf(Map);
        for (const [key, value] of url!.query) {
          expect(typeof key).toBe("string");
          expect(typeof value).toBe("string");
        }
        if (suffix === "" && parts.length > 0) expect(url!.query.get(parts[0]![0])).toBe(parts[0]![1]);
      }),
      fuzzParameters,
    );
  });

  it("reads a kept query (QueryParameters) exactly as splitUrl's map, through get, has and iteration", () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 6 }), rawSuffix, name, (parts, suffix, probe) => {
        const url = urlOf(parts, suffix);
        const parsed = splitUrl(url)!.query;
        const kept = new QueryParameters(url);
        for (const key of [probe, ...parsed.keys()]) {
          expect(kept.get(key)).toBe(parsed.get(key));
          expect(kept.has(key)).toBe(parsed.has(key));
        }
        expect([...kept]).toEqual([...parsed]);
        expect(kept.size).toBe(parsed.size);
        expect(kept.get(probe)).toBe(parsed.get(probe));
      }),
      fuzzParameters,
    );
  });

  it("answers every query with a negotiate body (version 1) or a clear error, never throwing", async () => {
    const endpoint = server.route("/hubs/fuzz")!;
    await fc.assert(
      fc.asyncProperty(fc.array(part, { maxLength: 6 }), rawSuffix, async (parts, suffix) => {
        const query = splitUrl(urlOf(parts, suffix))!.query;
        const answer = (await endpoint.negotiate({ query, headers: {}, remoteAddress: "127.0.0.1" }, [])) as { negotiateVersion?: number; error?: string };
        const version = query.get("negotiateVersion");
        if (version !== undefined && /^\d+$/.test(version) && Number(version) >= 1) expect(answer.negotiateVersion).toBe(1);
        else expect(answer.error).toMatch(/^The client requested /);
      }),
      fuzzParameters,
    );
  });
});
