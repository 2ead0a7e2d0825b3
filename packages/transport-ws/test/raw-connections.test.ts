/**
 * Raw connection handlers (`server.mapConnectionHandler`, ASP.NET's `MapConnectionHandler`) with
 * the official client's `HttpConnection` on each transport: negotiate, echo both ways, limits,
 * shutdown.
 */
import "reflect-metadata";
import { createRequire } from "node:module";
import { afterEach, describe, expect, it } from "vitest";
import { HubDefinitionError, type ConnectionHandler, type RawConnection } from "@switchboard/core";
import { closeAll, negotiate, settle, signalR, startServer, until, type TestServer } from "../../../test-support/harness.js";

afterEach(closeAll);

/** The client's connection without a hub protocol: internal to @microsoft/signalr, loaded from its CommonJS build. */
interface ClientConnection {
  readonly connectionId?: string;
  onreceive: ((data: string | ArrayBuffer) => void) | null;
  onclose: ((error?: Error) => void) | null;
  start(transferFormat: signalR.TransferFormat): Promise<void>;
  send(data: string | ArrayBuffer): Promise<void>;
  stop(error?: Error): Promise<void>;
}
const require = createRequire(import.meta.url);
const { HttpConnection } = require("@microsoft/signalr/dist/cjs/HttpConnection.js") as { HttpConnection: new (url: string, options: signalR.IHttpConnectionOptions) => ClientConnection };

const opened: ClientConnection[] = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((connection) => connection.stop()));
});

const TYPES = {
  WebSockets: signalR.HttpTransportType.WebSockets,
  ServerSentEvents: signalR.HttpTransportType.ServerSentEvents,
  LongPolling: signalR.HttpTransportType.LongPolling,
} as const;
type TransportName = keyof typeof TYPES;

function echoHandler(events: string[]): ConnectionHandler {
  return {
    onConnected(connection) {
      events.push(`connected ${connection.request.transport}`);
      connection.send(`hello ${connection.connectionId}`);
    },
    async onMessage(connection, data) {
      await settle(1); // a handler may be async: data waits, in order
      const text = Buffer.from(data).toString("utf8");
      if (text === "binary please") connection.send(Uint8Array.from([0, 1, 2, 255]));
      else if (text === "bye") connection.close();
      else connection.send(`echo:${text}`);
    },
    onDisconnected(connection, error) {
      events.push(`disconnected ${connection.request.transport}${error === undefined ? "" : ` ${error.message}`}`);
    },
  };
}

async function open(server: TestServer, transport: TransportName, format = signalR.TransferFormat.Text): Promise<{ connection: ClientConnection; received: (string | ArrayBuffer)[]; closed: Promise<Error | undefined> }> {
  const connection = new HttpConnection(server.url("/raw"), { transport: TYPES[transport], logger: signalR.NullLogger.instance });
  opened.push(connection);
  const received: (string | ArrayBuffer)[] = [];
  connection.onreceive = (data) => void received.push(data);
  const closed = new Promise<Error | undefined>((resolve) => (connection.onclose = resolve));
  await connection.start(format);
  return { connection, received, closed };
}

describe("raw connection handlers", () => {
  it.each(["WebSockets", "ServerSentEvents", "LongPolling"] as const)("echoes text over %s, in order, and ends with onDisconnected once", async (transport) => {
    const events: string[] = [];
    const server = await startServer([]);
    server.server.mapConnectionHandler("/raw", echoHandler(events));
    const { connection, received } = await open(server, transport);
    await until(() => received.length === 1);
    expect(received[0]).toBe(`hello ${connection.connectionId}`);
    for (let i = 0; i < 5; i++) await connection.send(`m${i}`);
    await until(() => received.length === 6, 5_000, "the echoes");
    expect(received.slice(1).join("")).toBe("echo:m0echo:m1echo:m2echo:m3echo:m4");
    await connection.stop();
    await until(() => events.length === 2);
    expect(events).toEqual([`connected ${transport}`, `disconnected ${transport}`]);
  });

  it.each(["WebSockets", "LongPolling"] as const)("carries binary both ways over %s", async (transport) => {
    const server = await startServer([]);
    server.server.mapConnectionHandler("/raw", echoHandler([]));
    const { connection, received } = await open(server, transport, signalR.TransferFormat.Binary);
    await until(() => received.length === 1);
    await connection.send(new TextEncoder().encode("binary please").buffer as ArrayBuffer);
    await until(() => received.length === 2);
    expect([...new Uint8Array(received[1] as ArrayBuffer)]).toEqual([0, 1, 2, 255]);
  });

  it.each(["WebSockets", "ServerSentEvents", "LongPolling"] as const)("lets the handler close a %s connection", async (transport) => {
    const events: string[] = [];
    const server = await startServer([]);
    server.server.mapConnectionHandler("/raw", echoHandler(events));
    const { connection, closed } = await open(server, transport);
    await connection.send("bye");
    await closed;
    await until(() => events.length === 2);
    expect(events[1]).toBe(`disconnected ${transport}`);
  });

  it("negotiates only the handler's transports, matches its path case-insensitively and refuses a second endpoint on it", async () => {
    const server = await startServer([]);
    server.server.mapConnectionHandler("/Raw", echoHandler([]), { transports: ["LongPolling"] });
    const body = await negotiate(server, "/raw");
    expect(body.availableTransports).toEqual([{ transport: "LongPolling", transferFormats: ["Text", "Binary"] }]);
    expect(() => server.server.mapConnectionHandler("/RAW", echoHandler([]))).toThrow(HubDefinitionError);
    expect(() => server.server.mapConnectionHandler("raw", echoHandler([]))).toThrow(HubDefinitionError);
    expect(() => server.server.mapConnectionHandler("/other", {} as ConnectionHandler)).toThrow(HubDefinitionError);
  });

  it("closes a raw client that falls maxBufferedBytes behind, and onDisconnected gets the error", async () => {
    const events: string[] = [];
    let victim: RawConnection | undefined;
    const server = await startServer([], { maxBufferedBytes: 10_000 }, { closeTimeout: 300 });
    server.server.mapConnectionHandler("/raw", {
      onConnected: (connection) => void (victim = connection),
      onMessage: () => undefined,
      onDisconnected: (_connection, error) => void events.push(error?.message ?? "none"),
    });
    // A long-polling client that never polls after the first: everything it is sent waits.
    const { connectionToken } = await negotiate(server, "/raw");
    expect((await fetch(`${server.url("/raw")}?id=${connectionToken}`)).status).toBe(200);
    await until(() => victim !== undefined);
    const results: boolean[] = [];
    for (let i = 0; i < 5; i++) results.push(victim!.send("z".repeat(4_000)));
    // "hello …" and two of these fit in 10 000 waiting bytes; the third would not: closed.
    expect(results).toEqual([true, true, false, false, false]);
    await until(() => events.length === 1);
    expect(events).toEqual(["Slow consumer."]);
  });

  it("ends raw connections on server.close() and waits for their onDisconnected", async () => {
    const events: string[] = [];
    const server = await startServer([]);
    server.server.mapConnectionHandler("/raw", echoHandler(events));
    const clients = await Promise.all((["WebSockets", "ServerSentEvents", "LongPolling"] as const).map((transport) => open(server, transport)));
    await server.close();
    await Promise.all(clients.map((client) => client.closed));
    expect(events.filter((event) => event.startsWith("disconnected")).sort()).toEqual(["disconnected LongPolling", "disconnected ServerSentEvents", "disconnected WebSockets"]);
  });
});
