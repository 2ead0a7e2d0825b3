import { afterEach, describe, expect, it } from "vitest";
import { SerializedRecord, type Logger } from "@switchboard/core";
import { WebSocket, WebSocketServer } from "ws";
import { WebSocketConnection } from "../src/index.js";
import { RawClient, RS, closeAll } from "../../../test-support/harness.js";

class QuietLogger implements Logger {
  debug(): void {}
  info(): void {}
  warn(): void {}
  error(): void {}
}

const servers: WebSocketServer[] = [];
afterEach(async () => {
  await closeAll();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => {
    for (const client of server.clients) client.terminate();
    server.close(() => resolve());
  })));
});

/** A bare `ws` server on 127.0.0.1 and `count` raw clients; resolves with the server-side sockets. */
async function pairs(count: number): Promise<{ server: WebSocket[]; clients: RawClient[] }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  servers.push(wss);
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const port = (wss.address() as { port: number }).port;
  const server: WebSocket[] = [];
  wss.on("connection", (socket) => void server.push(socket));
  const clients: RawClient[] = [];
  for (let i = 0; i < count; i++) clients.push(await RawClient.open(`ws://127.0.0.1:${port}/`));
  while (server.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
  return { server, clients };
}

describe("WebSocketConnection", () => {
  it("frames a record sent alone once and writes the same frame to every socket", async () => {
    const { server, clients } = await pairs(3);
    const connections = server.map((socket) => new WebSocketConnection(socket, new QuietLogger()));
    /** Counts how often a transport builds and stores a frame for this record. */
    class CountingRecord extends SerializedRecord {
      stored = 0;
      override cache(key: symbol, value: unknown): void {
        this.stored++;
        super.cache(key, value);
      }
    }
    const record = new CountingRecord(new TextEncoder().encode(`{"type":1,"target":"Seq","arguments":[1]}${RS}`));
    connections[0]!.write([record], 1, "text");
    expect(record.stored).toBe(1); // the frame-once path is live
    connections[1]!.write([record], 1, "text");
    connections[2]!.write([record], 1, "text");
    expect(record.stored).toBe(1); // the same frame served the other two sockets
    for (const client of clients) {
      const received = await client.frame(0);
      expect(received.binary).toBe(false);
      expect(received.data.toString("utf8")).toBe(`{"type":1,"target":"Seq","arguments":[1]}${RS}`);
    }
  });

  it("sends several records as one message in the requested format", async () => {
    const { server, clients } = await pairs(1);
    const connection = new WebSocketConnection(server[0]!, new QuietLogger());
    const records = [Uint8Array.of(1, 2), Uint8Array.of(3), Uint8Array.of(4, 5, 6)].map((bytes) => new SerializedRecord(bytes));
    connection.write(records, 3, "binary");
    const received = await clients[0]!.frame(0);
    expect(received.binary).toBe(true);
    expect([...received.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
