import { describe, expect, it } from "vitest";
import { QueryParameters } from "../src/query-parameters.js";
import { requestOf } from "../src/http-responses.js";
import type { IncomingMessage } from "node:http";

/** [url, the entries the query must read as]. */
const CASES: [string, [string, string][]][] = [
  ["/hub", []],
  ["/hub?", []],
  ["/hub?id=abc", [["id", "abc"]]],
  ["/hub?id=abc&tag=x&id=second", [["id", "abc"], ["tag", "x"]]],
  ["/hub?a=%20b&c=d+e&%C3%A9=%E2%9C%93", [["a", " b"], ["c", "d e"], ["é", "✓"]]],
  ["/hub?flag&empty=", [["flag", ""], ["empty", ""]]],
  ["/hub?__proto__=1&constructor=2", [["__proto__", "1"], ["constructor", "2"]]],
  ["/hub?a=1?b=2", [["a", "1?b=2"]]],
  ["/hub?bad=%zz", [["bad", "%zz"]]],
];

describe("QueryParameters", () => {
  it.each(CASES)("reads %s as the first value of each name", (url, entries) => {
    const query = new QueryParameters(url);
    // get/has before anything made the map (each parses the URL), then the same after.
    for (const [key, value] of entries) {
      expect(query.get(key)).toBe(value);
      expect(query.has(key)).toBe(true);
    }
    expect(query.get("missing")).toBeUndefined();
    expect(query.has("missing")).toBe(false);
    expect(query.size).toBe(entries.length);
    expect([...query]).toEqual(entries);
    expect([...query.entries()]).toEqual(entries);
    expect([...query.keys()]).toEqual(entries.map(([key]) => key));
    expect([...query.values()]).toEqual(entries.map(([, value]) => value));
    const seen: [string, string][] = [];
    query.forEach(function (this: unknown, value, key, map) {
      expect(map).toBe(query);
      expect(this).toBe(CASES);
      seen.push([key, value]);
    }, CASES);
    expect(seen).toEqual(entries);
    for (const [key, value] of entries) expect(query.get(key)).toBe(value);
    expect(query.get("missing")).toBeUndefined();
    expect(new Map(query)).toEqual(new Map(entries));
  });
});

describe("QueryParameters, reading a long query", () => {
  it("parses a query the client made long once, however often hub code reads it", () => {
    const query = new QueryParameters(`/hub?id=abc&pad=${"x".repeat(2_000)}&id=second`);
    const Original = globalThis.URLSearchParams;
    let parsed = 0;
    globalThis.URLSearchParams = class extends Original {
      constructor(...args: ConstructorParameters<typeof URLSearchParams>) {
        super(...args);
        parsed++;
      }
    };
    try {
      for (let i = 0; i < 100; i++) expect(query.get("id")).toBe("abc");
      expect(query.has("pad")).toBe(true);
    } finally {
      globalThis.URLSearchParams = Original;
    }
    expect(parsed).toBe(1);
  });
});

describe("requestOf", () => {
  const fake = (url: string, headers: Record<string, string | string[]>): IncomingMessage => ({ url, headers, socket: { remoteAddress: "10.0.0.1" } }) as unknown as IncomingMessage;

  it("keeps every header but the handshake-only ones, and the query of the URL", () => {
    const headers = {
      host: "example.com",
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      "sec-websocket-extensions": "permessage-deflate",
      "sec-websocket-protocol": "kept",
      authorization: "Bearer t",
      cookie: "a=1",
      "x-forwarded-for": ["1.1.1.1", "2.2.2.2"],
    };
    const request = requestOf(fake("/hub?id=tok&tag=x", headers), new Map(), "WebSockets");
    expect(request.headers).toEqual({ host: "example.com", "sec-websocket-protocol": "kept", authorization: "Bearer t", cookie: "a=1", "x-forwarded-for": ["1.1.1.1", "2.2.2.2"] });
    expect(Object.getPrototypeOf(request.headers)).toBe(Object.prototype);
    expect(headers.upgrade).toBe("websocket"); // the original is not changed
    expect([...request.query]).toEqual([["id", "tok"], ["tag", "x"]]);
    expect(request.remoteAddress).toBe("10.0.0.1");
    expect(request.transport).toBe("WebSockets");
  });
});
