/**
 * CORS on negotiate and the Server-Sent Events / long-polling endpoints, and the `Origin` check on
 * WebSocket upgrades (cross-site WebSocket hijacking), from raw requests that set `Origin` as a
 * browser would. The browser itself is in cross-origin-browser.test.ts.
 */
import "reflect-metadata";
import { request as httpRequest } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, OptionsError, SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { HttpTransport } from "../src/index.js";
import { closeAll, connectClient, MemoryLogger, negotiate, RawClient, startServer, type TestServer } from "../../../test-support/harness.js";

afterEach(closeAll);

@Hub("/hub")
class OriginHub extends Hub {
  Echo(value: unknown): unknown {
    return value;
  }
}

const APP = "https://app.example.com";
const EVIL = "https://evil.example.net";

/** A raw HTTP request (fetch would not send `Origin` as given); resolves with status and headers. */
function send(server: TestServer, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(server.url(path), { method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("CORS", () => {
  it("answers the preflight of a listed origin with that origin, credentials, methods and the client's headers", async () => {
    const server = await startServer([OriginHub], {}, { cors: { origins: [APP] }, closeTimeout: 300 });
    const answer = await send(server, "OPTIONS", "/hub/negotiate?negotiateVersion=1", {
      Origin: APP,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "x-requested-with,x-signalr-user-agent,authorization",
    });
    expect(answer.status).toBe(204);
    expect(answer.headers["access-control-allow-origin"]).toBe(APP);
    expect(answer.headers["access-control-allow-credentials"]).toBe("true");
    expect(answer.headers["access-control-allow-methods"]).toBe("GET, POST, DELETE");
    expect(answer.headers["access-control-allow-headers"]).toBe("x-requested-with,x-signalr-user-agent,authorization");
    expect(answer.headers["vary"]).toContain("Origin");
    const negotiated = await send(server, "POST", "/hub/negotiate?negotiateVersion=1", { Origin: APP });
    expect(negotiated.status).toBe(200);
    expect(negotiated.headers["access-control-allow-origin"]).toBe(APP);
    expect(negotiated.headers["access-control-allow-credentials"]).toBe("true");
    // The long-polling endpoints carry the headers too.
    const { connectionToken } = JSON.parse(negotiated.body) as { connectionToken: string };
    const poll = await send(server, "GET", `/hub?id=${connectionToken}`, { Origin: APP });
    expect([poll.status, poll.headers["access-control-allow-origin"]]).toEqual([200, APP]);
  });

  it("refuses an unlisted origin with 403 and no CORS headers, on the preflight, negotiate, polls and sends", async () => {
    const server = await startServer([OriginHub], {}, { cors: { origins: [APP] } });
    const { connectionToken } = await negotiate(server, "/hub");
    for (const [method, path] of [
      ["OPTIONS", "/hub/negotiate"],
      ["POST", "/hub/negotiate?negotiateVersion=1"],
      ["GET", `/hub?id=${connectionToken}`],
      ["POST", `/hub?id=${connectionToken}`],
    ] as const) {
      const answer = await send(server, method, path, { Origin: EVIL, "Access-Control-Request-Method": "POST" });
      expect([method, path, answer.status, answer.headers["access-control-allow-origin"]]).toEqual([method, path, 403, undefined]);
    }
    // The refused poll did not take the token: the real client still can.
    const client = await connectClient(server.url("/hub"));
    expect(await client.invoke("Echo", 1)).toBe(1);
  });

  it("is same-origin only by default, and always lets non-browser requests (no Origin) through", async () => {
    const server = await startServer([OriginHub]);
    expect((await send(server, "POST", "/hub/negotiate?negotiateVersion=1", { Origin: APP })).status).toBe(403);
    expect((await send(server, "POST", "/hub/negotiate?negotiateVersion=1", { Origin: `http://127.0.0.1:${server.port}` })).status).toBe(200);
    expect((await send(server, "POST", "/hub/negotiate?negotiateVersion=1")).status).toBe(200);
  });

  it('answers "*" without credentials, and refuses "*" with credentials at construction', async () => {
    const server = await startServer([OriginHub], {}, { cors: { origins: "*" } });
    const answer = await send(server, "POST", "/hub/negotiate?negotiateVersion=1", { Origin: EVIL });
    expect([answer.status, answer.headers["access-control-allow-origin"], answer.headers["access-control-allow-credentials"]]).toEqual([200, "*", undefined]);
    const other = new SwitchboardServer({ hubs: [OriginHub], protocols: [new JsonHubProtocol()], logger: new MemoryLogger() });
    expect(() => new HttpTransport(other, { cors: { origins: "*", credentials: true } })).toThrow(OptionsError);
    expect(() => new HttpTransport(other, { cors: { origins: ["app.example.com"] } })).toThrow(OptionsError);
    expect(() => new HttpTransport(other, { cors: { origins: [`${APP}/path`] } })).toThrow(OptionsError);
    await other.close();
  });

  it("asks a predicate, and treats a throwing predicate as a refusal", async () => {
    const server = await startServer([OriginHub], {}, { cors: { origins: (origin) => (origin.endsWith(".example.com") ? true : origin === EVIL ? (null as never as boolean) : false) } });
    expect((await send(server, "POST", "/hub/negotiate?negotiateVersion=1", { Origin: APP })).status).toBe(200);
    expect((await send(server, "POST", "/hub/negotiate?negotiateVersion=1", { Origin: EVIL })).status).toBe(403);
    const throwing = await startServer([OriginHub], {}, { cors: { origins: () => { throw new Error("boom"); } } });
    expect((await send(throwing, "POST", "/hub/negotiate?negotiateVersion=1", { Origin: APP })).status).toBe(403);
  });
});

describe("WebSocket upgrades and Origin", () => {
  const ws = (server: TestServer) => `ws://127.0.0.1:${server.port}/hub`;

  it("T25c refuses an upgrade from another origin with 403 by default (cross-site WebSocket hijacking)", async () => {
    const server = await startServer([OriginHub]);
    await expect(RawClient.open(ws(server), { Origin: EVIL })).rejects.toMatchObject({ status: 403 });
    await expect(RawClient.open(ws(server), { Origin: "null" })).rejects.toMatchObject({ status: 403 });
    // Same origin and no Origin (non-browser clients) pass.
    await RawClient.open(ws(server), { Origin: `http://127.0.0.1:${server.port}` });
    await RawClient.open(ws(server));
    const client = await connectClient(server.url("/hub"));
    expect(await client.invoke("Echo", "unharmed")).toBe("unharmed");
  });

  it("accepts the cors origins on upgrades unless they are \"*\", and allowedOrigins overrides", async () => {
    const listed = await startServer([OriginHub], {}, { cors: { origins: [APP] } });
    await RawClient.open(ws(listed), { Origin: APP });
    await expect(RawClient.open(ws(listed), { Origin: EVIL })).rejects.toMatchObject({ status: 403 });
    const any = await startServer([OriginHub], {}, { cors: { origins: "*" } });
    await expect(RawClient.open(ws(any), { Origin: EVIL })).rejects.toMatchObject({ status: 403 });
    const open = await startServer([OriginHub], {}, { allowedOrigins: "*" });
    await RawClient.open(ws(open), { Origin: EVIL });
    const narrow = await startServer([OriginHub], {}, { cors: { origins: [APP, EVIL] }, allowedOrigins: [APP] });
    await expect(RawClient.open(ws(narrow), { Origin: EVIL })).rejects.toMatchObject({ status: 403 });
  });
});
