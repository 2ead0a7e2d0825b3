import "reflect-metadata";
import { createServer } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { HttpTransport, WebSocketTransport } from "../src/index.js";
import { closeAll, MemoryLogger, connectClient, negotiate, RawClient, RS, settle, signalR, startServer, buildClient } from "../../../test-support/harness.js";

afterEach(closeAll);

@Hub("/hub")
class PingHub extends Hub {
  Echo(value: unknown): unknown {
    return value;
  }
}

const BASE64URL_22 = /^[A-Za-z0-9_-]{22}$/;

describe("negotiate", () => {
  it("answers 200 with version 1, a public id, a separate secret token and WebSockets", async () => {
    const server = await startServer([PingHub]);
    const response = await fetch(`${server.url("/hub")}/negotiate?negotiateVersion=1`, { method: "POST" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    const text = await response.text();
    const body = JSON.parse(text);
    expect(Object.keys(body)).toEqual(["negotiateVersion", "connectionId", "connectionToken", "availableTransports"]);
    expect(body.negotiateVersion).toBe(1);
    expect(body.connectionId).toMatch(BASE64URL_22);
    expect(body.connectionToken).toMatch(BASE64URL_22);
    expect(body.connectionToken).not.toBe(body.connectionId);
    expect(body.availableTransports).toEqual([
      { transport: "WebSockets", transferFormats: ["Text", "Binary"] },
      { transport: "ServerSentEvents", transferFormats: ["Text"] },
      { transport: "LongPolling", transferFormats: ["Text", "Binary"] },
    ]);
  });

  it("offers WebSockets only from a WebSocketTransport, as before HttpTransport existed", async () => {
    const server = new SwitchboardServer({ hubs: [PingHub], protocols: [new JsonHubProtocol()], logger: new MemoryLogger() });
    const transport = new WebSocketTransport(server);
    const { port } = await transport.listen(0, "127.0.0.1");
    try {
      const body = (await (await fetch(`http://127.0.0.1:${port}/hub/negotiate?negotiateVersion=1`, { method: "POST" })).json()) as { availableTransports: unknown; connectionToken: string };
      expect(body.availableTransports).toEqual([{ transport: "WebSockets", transferFormats: ["Text", "Binary"] }]);
      const poll = await fetch(`http://127.0.0.1:${port}/hub?id=${body.connectionToken}`);
      expect([poll.status, await poll.text()]).toEqual([404, "LongPolling transport not supported by this end point type"]);
    } finally {
      await server.close();
    }
  });

  it("T29 makes 10,000 distinct ids and tokens of the right alphabet", async () => {
    const server = await startServer([PingHub]);
    const endpoint = server.server.endpoint("/hub")!;
    const seen = new Set<string>();
    const request = { query: new Map([["negotiateVersion", "1"]]), headers: {}, remoteAddress: undefined };
    for (let i = 0; i < 10_000; i++) {
      const body = (await endpoint.negotiate(request, [])) as { connectionId: string; connectionToken: string };
      expect(body.connectionToken).toMatch(BASE64URL_22);
      seen.add(body.connectionId).add(body.connectionToken);
    }
    expect(seen.size).toBe(20_000);
    endpoint.store.clear();
  });

  it.each([
    ["negotiateVersion=abc", "The client requested a non-integer protocol version."],
    ["negotiateVersion=__proto__", "The client requested a non-integer protocol version."],
    ["negotiateVersion=0", "The client requested version '0', but the server does not support this version."],
    ["", "The client requested version '0', but the server does not support this version."],
  ])("answers %j with an error body (HTTP 200, like ASP.NET)", async (query, error) => {
    const server = await startServer([PingHub]);
    expect(await negotiate(server, "/hub", query)).toEqual({ error });
  });

  it("treats a negotiateVersion above 1 as 1", async () => {
    const server = await startServer([PingHub]);
    expect((await negotiate(server, "/hub", "negotiateVersion=7")).negotiateVersion).toBe(1);
  });

  it("refuses GET with 405 and unknown hubs with 404", async () => {
    const server = await startServer([PingHub]);
    expect((await fetch(`${server.url("/hub")}/negotiate`)).status).toBe(405);
    expect((await fetch(`${server.url("/nohub")}/negotiate`, { method: "POST" })).status).toBe(404);
    expect((await fetch(`${server.url("/__proto__")}/negotiate`, { method: "POST" })).status).toBe(404);
  });
});

describe("WebSocket upgrade", () => {
  const ws = (port: number, query: string) => `ws://127.0.0.1:${port}/hub${query}`;

  it("T28 T29 answers 404 for an unknown token and for the public connection id", async () => {
    const server = await startServer([PingHub]);
    const { connectionId } = await negotiate(server, "/hub");
    await expect(RawClient.open(ws(server.port, "?id=garbage"))).rejects.toMatchObject({ status: 404 });
    await expect(RawClient.open(ws(server.port, `?id=${connectionId}`))).rejects.toMatchObject({ status: 404 });
    await expect(RawClient.open(ws(server.port, "?id=__proto__"))).rejects.toMatchObject({ status: 404 });
    await expect(RawClient.open(ws(server.port, "?id=constructor"))).rejects.toMatchObject({ status: 404 });
  });

  it("T28 answers 409 to a second socket for a live token, and 404 once its connection ended", async () => {
    const server = await startServer([PingHub]);
    const { connectionToken } = await negotiate(server, "/hub");
    const first = await RawClient.open(ws(server.port, `?id=${connectionToken}`));
    await expect(RawClient.open(ws(server.port, `?id=${connectionToken}`))).rejects.toMatchObject({ status: 409 });
    first.sendText(`{"protocol":"json","version":1}${RS}`);
    expect((await first.nextFrame()).data.toString()).toBe(`{}${RS}`);
    await first.close();
    await settle(30);
    await expect(RawClient.open(ws(server.port, `?id=${connectionToken}`))).rejects.toMatchObject({ status: 404 });
  });

  it("T28 expires negotiated tokens that are never used", async () => {
    const server = await startServer([PingHub], { unusedTokenTimeout: 100 });
    const { connectionToken } = await negotiate(server, "/hub");
    await settle(200);
    await expect(RawClient.open(ws(server.port, `?id=${connectionToken}`))).rejects.toMatchObject({ status: 404 });
  });

  it("creates a connection for an upgrade without id (the client's skipNegotiation)", async () => {
    const server = await startServer([PingHub]);
    const client = buildClient(server.url("/hub"), "json", (builder) =>
      builder.withUrl(server.url("/hub"), { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets }),
    );
    await client.start();
    expect(client.connectionId).toBeNull();
    expect(await client.invoke("Echo", "skip")).toBe("skip");
  });

  it("answers 404 to upgrades for other paths and keeps working", async () => {
    const server = await startServer([PingHub]);
    await expect(RawClient.open(`ws://127.0.0.1:${server.port}/elsewhere`)).rejects.toMatchObject({ status: 404 });
    const client = await connectClient(server.url("/hub"));
    expect(await client.invoke("Echo", 1)).toBe(1);
  });
});

describe("attaching to an existing http.Server", () => {
  it("serves hubs next to the app's own routes", async () => {
    const http = createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain" }).end(`app:${req.url}`);
    });
    const server = new SwitchboardServer({ hubs: [PingHub], protocols: [new JsonHubProtocol()] });
    const ownConnectionListeners = http.listenerCount("connection");
    new WebSocketTransport(server).attach(http);
    // One more: it reads each new socket's peer address as the server accepts it (see readPeerAddress).
    expect(http.listenerCount("connection")).toBe(ownConnectionListeners + 1);
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const port = (http.address() as { port: number }).port;
    try {
      expect(await (await fetch(`http://127.0.0.1:${port}/hello`)).text()).toBe("app:/hello");
      const client = await connectClient(`http://127.0.0.1:${port}/hub`);
      expect(await client.invoke("Echo", "attached")).toBe("attached");
      await client.stop();
    } finally {
      await server.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
    // After close the app's own handler is back in place, and nothing of the transport's is left.
    expect(http.listenerCount("request")).toBe(1);
    expect(http.listenerCount("upgrade")).toBe(0);
    expect(http.listenerCount("connection")).toBe(ownConnectionListeners);
  });
});

describe("middleware mode", () => {
  it("serves every transport from the app's own request and upgrade listeners, and leaves other paths to the app", async () => {
    const server = new SwitchboardServer({ hubs: [PingHub], protocols: [new JsonHubProtocol()], logger: new MemoryLogger() });
    const transport = new HttpTransport(server);
    // What Express's `app.use((req, res, next) => transport.handleRequest(req, res) || next())` does.
    const http = createServer((req, res) => {
      if (transport.handleRequest(req, res)) return;
      res.writeHead(200, { "Content-Type": "text/plain" }).end(`app:${req.url}`);
    });
    http.on("upgrade", (req, socket, head) => {
      if (!transport.handleUpgrade(req, socket, head)) socket.destroy();
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
    try {
      expect(await (await fetch(`${base}/hello`)).text()).toBe("app:/hello");
      for (const type of [signalR.HttpTransportType.WebSockets, signalR.HttpTransportType.ServerSentEvents, signalR.HttpTransportType.LongPolling]) {
        const client = buildClient(`${base}/hub`, "json", (builder) => builder.withUrl(`${base}/hub`, { transport: type }));
        await client.start();
        expect(await client.invoke("Echo", type)).toBe(type);
      }
    } finally {
      await server.close(); // closes the hub's connections; the app's server stays up
      expect(await (await fetch(`${base}/hello`)).text()).toBe("app:/hello");
      expect((await fetch(`${base}/hub/negotiate?negotiateVersion=1`, { method: "POST" })).status).toBe(503);
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    }
  });
});
