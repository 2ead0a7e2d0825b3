/**
 * Server-Sent Events and long polling next to WebSockets: the official client forced to each
 * transport (JSON and MessagePack where the transport carries it), raw HTTP for the exact status
 * codes, bad input on the new endpoints, per-hub transports and the request context.
 */
import "reflect-metadata";
import { request as httpRequest } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, OptionsError, SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { HttpTransport, sseEvent } from "../src/index.js";
import { buildClient, closeAll, MemoryLogger, negotiate, record, RS, settle, signalR, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";

afterEach(closeAll);

/** Raw pollers below stop polling; a short closeTimeout keeps each test's shutdown quick. */
const QUICK = { closeTimeout: 300 } as const;

const disconnects: { id: string; error: string | undefined }[] = [];
/** What `Hang` waits for; tests replace it. */
let hung = gate();
function gate(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

@Hub("/hubs/transports")
class TransportHub extends Hub {
  Echo(value: unknown): unknown {
    return value;
  }
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }
  async ToGroup(group: string, text: string): Promise<void> {
    await this.clients.group(group).send("Message", text);
  }
  async Burst(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.clients.caller.send("Item", i);
  }
  async Hang(): Promise<void> {
    await hung.promise;
  }
  Request(): unknown {
    const request = this.context.request;
    return {
      transport: request.transport,
      header: request.headers["x-test"],
      tag: request.query.get("tag"),
      session: request.cookies.get("session"),
      remote: request.remoteAddress,
      frozen: Object.isFrozen(request.headers),
      query: Object.fromEntries(request.query),
      querySize: request.query.size,
      hasTag: request.query.has("tag"),
      host: typeof request.headers.host,
      handshakeHeaders: ["connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"].filter((name) => name in request.headers),
    };
  }
  override onDisconnected(error?: Error): void {
    disconnects.push({ id: this.context.connectionId, error: error?.message });
  }
}

type TransportName = "WebSockets" | "ServerSentEvents" | "LongPolling";
const TYPES: Record<TransportName, signalR.HttpTransportType> = {
  WebSockets: signalR.HttpTransportType.WebSockets,
  ServerSentEvents: signalR.HttpTransportType.ServerSentEvents,
  LongPolling: signalR.HttpTransportType.LongPolling,
};
const CASES: [TransportName, ClientProtocol][] = [
  ["WebSockets", "json"],
  ["ServerSentEvents", "json"],
  ["LongPolling", "json"],
  ["WebSockets", "messagepack"],
  ["LongPolling", "messagepack"],
];
const PATH = "/hubs/transports";

function clientOn(server: TestServer, transport: TransportName, protocol: ClientProtocol = "json", options: signalR.IHttpConnectionOptions = {}, path = PATH): signalR.HubConnection {
  return buildClient(server.url(path), protocol, (builder) => builder.withUrl(server.url(path), { transport: TYPES[transport], ...options }));
}

async function connectOn(server: TestServer, transport: TransportName, protocol: ClientProtocol = "json"): Promise<signalR.HubConnection> {
  const client = clientOn(server, transport, protocol);
  await client.start();
  return client;
}

/** A long-polling client made of plain HTTP requests, for exact status codes. */
class RawPoller {
  constructor(
    readonly server: TestServer,
    readonly token: string,
    readonly path = PATH,
  ) {}
  static async connect(server: TestServer, path = PATH, handshake = `{"protocol":"json","version":1}${RS}`): Promise<RawPoller> {
    const { connectionToken } = await negotiate(server, path);
    const poller = new RawPoller(server, connectionToken, path);
    const first = await poller.poll();
    expect([first.status, first.body]).toEqual([200, ""]);
    if (handshake !== "") {
      expect((await poller.post(handshake)).status).toBe(200);
      expect((await poller.poll()).body).toBe(`{}${RS}`);
    }
    return poller;
  }
  url(): string {
    return `${this.server.url(this.path)}?id=${this.token}`;
  }
  async poll(): Promise<{ status: number; body: string }> {
    const response = await fetch(`${this.url()}&_=${Date.now()}`);
    return { status: response.status, body: await response.text() };
  }
  async post(body: string | Uint8Array): Promise<{ status: number; body: string }> {
    const response = await fetch(this.url(), { method: "POST", body });
    return { status: response.status, body: await response.text() };
  }
  async delete(): Promise<number> {
    return (await fetch(this.url(), { method: "DELETE" })).status;
  }
}

describe("the official client on every transport", () => {
  it.each(CASES)("invokes, streams a burst in order and joins groups over %s with %s", async (transport, protocol) => {
    const server = await startServer([TransportHub], {}, QUICK);
    const client = await connectOn(server, transport, protocol);
    expect(await client.invoke("Echo", { text: "hé ✓", list: [1, 2, 3] })).toEqual({ text: "hé ✓", list: [1, 2, 3] });
    const items = record(client, "Item");
    await client.invoke("Burst", 200);
    await until(() => items.length === 200, 5_000, "the burst");
    expect(items.map(([value]) => value)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    const messages = record(client, "Message");
    await client.invoke("Join", "room");
    await client.invoke("ToGroup", "room", "to the room");
    await until(() => messages.length === 1);
    expect(messages).toEqual([["to the room"]]);
  });

  it("fans one group send out to clients on all three transports and both protocols", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    const clients = await Promise.all(CASES.map(([transport, protocol]) => connectOn(server, transport, protocol)));
    const inboxes = clients.map((client) => record(client, "Message"));
    for (const client of clients) await client.invoke("Join", "all");
    const sender = clients[2]!;
    for (let i = 0; i < 20; i++) void sender.invoke("ToGroup", "all", `m${i}`);
    await until(() => inboxes.every((inbox) => inbox.length === 20), 5_000, "every member");
    for (const inbox of inboxes) expect(inbox.map(([text]) => text)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  });

  it("does not offer MessagePack over Server-Sent Events", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    const client = clientOn(server, "ServerSentEvents", "messagepack");
    await expect(client.start()).rejects.toThrow(/transport/i);
  });

  it.each(["WebSockets", "ServerSentEvents", "LongPolling"] as const)("ends %s clients on server.close() with a Close, and runs onDisconnected once each", async (transport) => {
    disconnects.length = 0;
    const server = await startServer([TransportHub], {}, QUICK);
    const clients = [await connectOn(server, transport), await connectOn(server, transport)];
    const ids = clients.map((client) => client.connectionId!);
    const closed = clients.map((client) => new Promise<Error | undefined>((resolve) => client.onclose(resolve)));
    await server.close();
    expect(await Promise.all(closed)).toEqual([undefined, undefined]);
    expect(disconnects.map((entry) => entry.id).sort()).toEqual(ids.sort());
  });

  it("keeps a long-polling client past clientTimeout: polling is its keep-alive (no Ping, no timeout)", async () => {
    const server = await startServer([TransportHub], { clientTimeout: 200, keepAliveInterval: 50 }, { pollTimeout: 100 });
    const client = await connectOn(server, "LongPolling");
    await settle(600);
    expect(client.state).toBe(signalR.HubConnectionState.Connected);
    expect(await client.invoke("Echo", "still here")).toBe("still here");
  });

  it("gives hubs the request: headers, query, cookies, remote address and transport, read-only", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"] as const) {
      const client = buildClient(server.url(`${PATH}?tag=t-${transport}`), "json", (builder) =>
        builder.withUrl(server.url(`${PATH}?tag=t-${transport}`), { transport: TYPES[transport], headers: { "X-Test": "yes", Cookie: "session=a%20b; other=1" } }),
      );
      await client.start();
      const seen = (await client.invoke("Request")) as { query: Record<string, string>; querySize: number };
      expect(seen).toMatchObject({ transport, header: "yes", tag: `t-${transport}`, session: "a b", remote: "127.0.0.1", frozen: true, hasTag: true, host: "string" });
      // The whole query, as a map (long polling adds the client's `_` cache buster); the
      // handshake-only headers are left out on every transport, the others are all there.
      expect(seen.query).toMatchObject({ tag: `t-${transport}`, id: expect.any(String) });
      expect(seen.querySize).toBe(Object.keys(seen.query).length);
      expect(seen).toMatchObject({ handshakeHeaders: [] });
      await client.stop();
    }
  });

  it("matches hub paths case-insensitively, as ASP.NET routing does", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"] as const) {
      const client = clientOn(server, transport, "json", {}, "/HUBS/Transports");
      await client.start();
      expect(await client.invoke("Echo", transport)).toBe(transport);
      await client.stop();
    }
  });
});

describe("authentication over Server-Sent Events and long polling", () => {
  @Hub("/hubs/secure")
  class SecureHub extends Hub {
    Who(): unknown {
      return this.context.user?.sub;
    }
  }
  const authenticate = ({ token }: { token: string | undefined }) => {
    if (token === undefined) return null;
    if (!token.startsWith("user-")) throw new Error("bad token");
    return { sub: token.slice(5) };
  };

  it.each(["ServerSentEvents", "LongPolling"] as const)("authenticates the %s connect request with the client's token", async (transport) => {
    const server = await startServer([SecureHub], { authenticate }, QUICK);
    const client = buildClient(server.url("/hubs/secure"), "json", (builder) => builder.withUrl(server.url("/hubs/secure"), { transport: TYPES[transport], accessTokenFactory: () => "user-ada" }));
    await client.start();
    expect(await client.invoke("Who")).toBe("ada");
  });

  it("refuses a bad token with 401 and a token negotiated by someone else with 403", async () => {
    const server = await startServer([SecureHub], { authenticate }, QUICK);
    const negotiated = await fetch(`${server.url("/hubs/secure")}/negotiate?negotiateVersion=1`, { method: "POST", headers: { Authorization: "Bearer user-ada" } });
    const { connectionToken } = (await negotiated.json()) as { connectionToken: string };
    const url = `${server.url("/hubs/secure")}?id=${connectionToken}`;
    expect((await fetch(url, { headers: { Accept: "text/event-stream", Authorization: "Bearer nope" } })).status).toBe(401);
    expect((await fetch(`${url}&access_token=user-eve`, { headers: { Accept: "text/event-stream" } })).status).toBe(403);
    expect((await fetch(url, { headers: { Authorization: "Bearer user-eve" } })).status).toBe(403);
    // The refusals did not use the token up: its owner still connects.
    const poll = await fetch(url, { headers: { Authorization: "Bearer user-ada" } });
    expect([poll.status, await poll.text()]).toEqual([200, ""]);
  });
});

describe("per-hub transports", () => {
  @Hub("/hubs/polling-only")
  class PollingOnlyHub extends Hub {
    Echo(value: unknown): unknown {
      return value;
    }
  }

  it("negotiate lists only the hub's transports, the others are refused, and the client falls back", async () => {
    const server = await startServer([]);
    server.server.addHub(PollingOnlyHub, undefined, { transports: ["LongPolling"] });
    const body = await negotiate(server, "/hubs/polling-only");
    expect(body.availableTransports).toEqual([{ transport: "LongPolling", transferFormats: ["Text", "Binary"] }]);
    const upgrade = await new Promise<number>((resolve) => {
      const req = httpRequest(`${server.url("/hubs/polling-only")}?id=${body.connectionToken}`, { headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" } });
      req.on("response", (res) => resolve(res.statusCode!));
      req.on("upgrade", () => resolve(101));
      req.end();
    });
    expect(upgrade).toBe(404);
    const sse = await fetch(`${server.url("/hubs/polling-only")}?id=${body.connectionToken}`, { headers: { Accept: "text/event-stream" } });
    expect([sse.status, await sse.text()]).toEqual([404, "ServerSentEvents transport not supported by this end point type"]);
    const client = buildClient(server.url("/hubs/polling-only"), "json", (builder) => builder.withUrl(server.url("/hubs/polling-only")));
    await client.start();
    expect(await client.invoke("Echo", "fell back")).toBe("fell back");
  });

  it("rejects an unknown transport name at registration", () => {
    const server = new SwitchboardServer({ protocols: [new JsonHubProtocol()], logger: new MemoryLogger() });
    expect(() => server.addHub(PollingOnlyHub, undefined, { transports: ["Carrier pigeon" as never] })).toThrow(OptionsError);
    expect(() => new HttpTransport(server, { transports: [] })).toThrow(OptionsError);
    expect(() => new HttpTransport(server, { pollTimeout: 100_000 })).toThrow(OptionsError);
    void server.close();
  });
});

describe("long polling on the wire", () => {
  it("answers the first poll at once, holds the next, and completes a pending poll with 204 when a new one comes", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    const poller = await RawPoller.connect(server);
    const first = poller.poll();
    await settle(50);
    const second = poller.poll();
    expect(await first).toEqual({ status: 204, body: "" });
    expect((await poller.post(`{"type":1,"invocationId":"1","target":"Echo","arguments":["x"]}${RS}`)).status).toBe(200);
    expect(await second).toEqual({ status: 200, body: `{"type":3,"invocationId":"1","result":"x"}${RS}` });
  });

  it("answers an idle poll with an empty 200 after pollTimeout", async () => {
    const server = await startServer([TransportHub], {}, { ...QUICK, pollTimeout: 100 });
    const poller = await RawPoller.connect(server);
    expect(await poller.poll()).toEqual({ status: 200, body: "" });
  });

  it("carries several records in one poll answer, each whole", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    const poller = await RawPoller.connect(server);
    expect((await poller.post(`{"type":1,"invocationId":"1","target":"Burst","arguments":[3]}${RS}`)).status).toBe(200);
    await settle(50);
    const { body } = await poller.poll();
    expect(body).toBe(`{"type":1,"target":"Item","arguments":[0]}${RS}{"type":1,"target":"Item","arguments":[1]}${RS}{"type":1,"target":"Item","arguments":[2]}${RS}{"type":3,"invocationId":"1","result":null}${RS}`);
  });

  it("ends a connection that stops polling after disconnectTimeout, with onDisconnected once", async () => {
    disconnects.length = 0;
    const server = await startServer([TransportHub], {}, { ...QUICK, disconnectTimeout: 150 });
    const poller = await RawPoller.connect(server);
    await until(() => disconnects.length === 1, 3_000, "onDisconnected");
    await settle(300);
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0]!.error).toBe("The long-polling client stopped polling.");
    expect(await poller.poll()).toMatchObject({ status: 404 });
  });

  it("answers DELETE with 202 and the pending poll with 204; later requests get 404", async () => {
    disconnects.length = 0;
    const server = await startServer([TransportHub], {}, QUICK);
    const poller = await RawPoller.connect(server);
    const pending = poller.poll();
    await settle(30);
    expect(await poller.delete()).toBe(202);
    expect((await pending).status).toBe(204);
    expect((await poller.post(`{"type":7}${RS}`)).status).toBe(404);
    expect(await poller.delete()).toBe(404);
    await until(() => disconnects.length === 1);
  });

  it("delivers the Close message of server.close() to the next poll, then 204", async () => {
    const server = await startServer([TransportHub], {}, { closeTimeout: 3_000 });
    const poller = await RawPoller.connect(server);
    const closing = server.close();
    await settle(30);
    // The transport is stopping but waits for this client's last poll: negotiate says 503 meanwhile.
    expect((await fetch(`${server.url(PATH)}/negotiate?negotiateVersion=1`, { method: "POST" })).status).toBe(503);
    expect(await poller.poll()).toEqual({ status: 200, body: `{"type":7,"allowReconnect":true}${RS}` });
    expect((await poller.poll()).status).toBe(204);
    await closing;
  });

  it("closes a long-polling client whose waiting bytes pass maxBufferedBytes; the others get everything", async () => {
    disconnects.length = 0;
    const server = await startServer([TransportHub], { maxBufferedBytes: 20_000 }, QUICK);
    const poller = await RawPoller.connect(server); // never polls again
    const healthy = await connectOn(server, "LongPolling");
    const received = record(healthy, "Big");
    const context = server.server.hubContext(TransportHub);
    for (let i = 0; i < 10; i++) {
      await context.clients.all.send("Big", "x".repeat(4_000));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => disconnects.length === 1, 3_000, "the slow consumer to be closed");
    expect(disconnects[0]!.id).not.toBe(healthy.connectionId);
    await until(() => received.length === 10, 5_000, "the healthy client");
    // Its last poll collects what was queued before the cap and the Close, then it has ended.
    const last = await poller.poll();
    expect(last.body.endsWith(`{"type":7,"error":"Connection closed with an error. The client did not read its messages fast enough.","allowReconnect":true}${RS}`)).toBe(true);
    expect((await poller.poll()).status).toBe(204);
  });
});

describe("Server-Sent Events on the wire", () => {
  it("streams text/event-stream with a first comment and one data event per flush", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    const { connectionToken } = await negotiate(server, PATH);
    const controller = new AbortController();
    const response = await fetch(`${server.url(PATH)}?id=${connectionToken}`, { headers: { Accept: "text/event-stream" }, signal: controller.signal });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    expect(response.headers.get("cache-control")).toBe("no-cache, no-store");
    const reader = response.body!.getReader();
    let text = "";
    const readUntil = async (end: string): Promise<void> => {
      while (!text.includes(end)) text += new TextDecoder().decode((await reader.read()).value);
    };
    await readUntil(":\r\n");
    const post = (body: string) => fetch(`${server.url(PATH)}?id=${connectionToken}`, { method: "POST", body });
    expect((await post(`{"protocol":"json","version":1}${RS}`)).status).toBe(200);
    await readUntil(`data: {}${RS}\r\n\r\n`);
    expect((await post(`{"type":1,"invocationId":"1","target":"Echo","arguments":["a"]}${RS}`)).status).toBe(200);
    await readUntil(`"result":"a"}${RS}\r\n\r\n`);
    expect(text).toBe(`:\r\ndata: {}${RS}\r\n\r\ndata: {"type":3,"invocationId":"1","result":"a"}${RS}\r\n\r\n`);
    // A second stream for the same connection is a conflict; a poll is a transport change.
    expect((await fetch(`${server.url(PATH)}?id=${connectionToken}`, { headers: { Accept: "text/event-stream" } })).status).toBe(409);
    expect((await fetch(`${server.url(PATH)}?id=${connectionToken}`)).status).toBe(400);
    expect((await fetch(`${server.url(PATH)}?id=${connectionToken}`, { method: "DELETE" })).status).toBe(400);
    controller.abort();
  });

  it("writes a comment on an idle stream every keepAliveInterval (for proxies), and ends the stream on server.close()", async () => {
    const server = await startServer([TransportHub], { keepAliveInterval: 40 }, QUICK);
    const { connectionToken } = await negotiate(server, PATH);
    const response = await fetch(`${server.url(PATH)}?id=${connectionToken}`, { headers: { Accept: "text/event-stream" } });
    const reader = response.body!.getReader();
    let text = "";
    while (text.split(":\r\n").length - 1 < 3) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toBe(":\r\n:\r\n:\r\n");
    const closing = server.close();
    while (!(await reader.read()).done);
    await closing;
  });

  it.each([
    ["one line", "abc", "data: abc\r\n\r\n"],
    ["LF", "a\nb", "data: a\r\ndata: b\r\n\r\n"],
    ["CRLF", "a\r\nb", "data: a\r\ndata: b\r\n\r\n"],
    ["lone CR", "a\rb", "data: a\r\ndata: b\r\n\r\n"],
    ["trailing LF", "a\n", "data: a\r\ndata: \r\n\r\n"],
    ["empty", "", "data: \r\n\r\n"],
  ])("formats %s as SSE data lines", (_name, payload, event) => {
    expect(sseEvent(Buffer.from(payload)).toString()).toBe(event);
  });
});

describe("bad input on the HTTP endpoints", () => {
  it.each([
    ["GET without id → 400", "GET", "", undefined, 400, "Connection ID required"],
    ["SSE without id → 400", "GET", "", "text/event-stream", 400, "Connection ID required"],
    ["POST without id → 400", "POST", "", undefined, 400, "Connection ID required"],
    ["DELETE without id → 400", "DELETE", "", undefined, 400, "Connection ID required"],
    ["POST to an unknown id → 404", "POST", "?id=nope", undefined, 404, "No Connection with that ID"],
    ["DELETE of an unknown id → 404", "DELETE", "?id=nope", undefined, 404, "No Connection with that ID"],
    ["poll of an unknown id → 404", "GET", "?id=__proto__", undefined, 404, "No Connection with that ID"],
    ["PUT → 405", "PUT", "?id=x", undefined, 405, "Method Not Allowed"],
    ["PATCH on negotiate → 405", "PATCH", "/negotiate", undefined, 405, "Method Not Allowed"],
  ])("%s", async (_name, method, suffix, accept, status, text) => {
    const server = await startServer([TransportHub], {}, QUICK);
    const watcher = await connectOn(server, "LongPolling");
    const response = await fetch(`${server.url(PATH)}${suffix}`, { method, headers: accept === undefined ? {} : { Accept: accept }, body: method === "POST" || method === "PUT" || method === "PATCH" ? "x" : undefined });
    expect([response.status, await response.text()]).toEqual([status, text]);
    expect(await watcher.invoke("Echo", "fine")).toBe("fine");
  });

  it("closes only the sender of a garbage POST body, with a Close, and the others keep working", async () => {
    disconnects.length = 0;
    const server = await startServer([TransportHub], {}, QUICK);
    const other = await connectOn(server, "ServerSentEvents");
    const poller = await RawPoller.connect(server);
    expect((await poller.post(Buffer.from([0xff, 0x00, 0x7b, 0x1e]))).status).toBe(200);
    expect(await poller.poll()).toEqual({ status: 200, body: `{"type":7,"error":"Connection closed with an error.","allowReconnect":true}${RS}` });
    expect((await poller.poll()).status).toBe(204);
    expect(await other.invoke("Echo", "unharmed")).toBe("unharmed");
  });

  it("answers a bad handshake over long polling with the handshake error, then 204", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    const poller = await RawPoller.connect(server, PATH, "");
    expect((await poller.post(`{"protocol":"nope","version":1}${RS}`)).status).toBe(200);
    expect(await poller.poll()).toEqual({ status: 200, body: `{"error":"The protocol 'nope' is not supported."}${RS}` });
    expect((await poller.poll()).status).toBe(204);
  });

  it("refuses a POST over maxPayload with 413, delivers none of it, and the connection keeps working", async () => {
    const server = await startServer([TransportHub], {}, { ...QUICK, maxPayload: 40_000 });
    const poller = await RawPoller.connect(server);
    const big = `{"type":1,"invocationId":"1","target":"Echo","arguments":["${"x".repeat(50_000)}"]}${RS}`;
    expect((await poller.post(big)).status).toBe(413);
    // Streamed without Content-Length (chunked): refused once the limit is passed.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(poller.url(), { method: "POST", headers: { "Transfer-Encoding": "chunked" } }, (res) => resolve(res.statusCode!));
      req.on("error", reject);
      for (let i = 0; i < 5; i++) req.write("y".repeat(10_000));
      req.end();
    });
    expect(chunked).toBe(413);
    expect((await poller.post(`{"type":1,"invocationId":"2","target":"Echo","arguments":["small"]}${RS}`)).status).toBe(200);
    expect(await poller.poll()).toEqual({ status: 200, body: `{"type":3,"invocationId":"2","result":"small"}${RS}` });
  });

  it("stops reading POSTs while the connection's invocation queue is full, and reads on once it drains", async () => {
    hung = gate();
    const server = await startServer([TransportHub], { maxQueuedInvocations: 2 }, QUICK);
    const poller = await RawPoller.connect(server);
    const call = (id: number) => `{"type":1,"invocationId":"${id}","target":"Hang","arguments":[]}${RS}`;
    expect((await poller.post(call(1) + call(2) + call(3))).status).toBe(200); // one runs, two wait: paused
    let answered = false;
    const next = poller.post(call(4)).then((answer) => ((answered = true), answer));
    await settle(100);
    expect(answered).toBe(false);
    hung.resolve();
    expect((await next).status).toBe(200);
    const results = new Set<string>();
    while (results.size < 4) for (const record of (await poller.poll()).body.split(RS).filter(Boolean)) results.add(JSON.parse(record).invocationId);
    expect([...results].sort()).toEqual(["1", "2", "3", "4"]);
  });

  it("lets one POST be read at a time and refuses a fifth waiting one with 409", async () => {
    const server = await startServer([TransportHub], {}, QUICK);
    const poller = await RawPoller.connect(server);
    const hanging = Array.from({ length: 5 }, () => {
      const req = httpRequest(poller.url(), { method: "POST", headers: { "Content-Length": "10" } });
      req.on("error", () => {});
      req.write("{");
      return req;
    });
    await settle(100);
    expect((await poller.post(`{"type":6}${RS}`)).status).toBe(409);
    for (const req of hanging) req.destroy();
    await settle(50);
    expect((await poller.post(`{"type":1,"invocationId":"3","target":"Echo","arguments":[3]}${RS}`)).status).toBe(200);
    expect((await poller.poll()).body).toBe(`{"type":3,"invocationId":"3","result":3}${RS}`);
  });
});
