/** Shared by the WebSocketConnection tests: bare `ws` servers with raw clients, closed after each test. */
import { afterEach } from "vitest";
import type { Logger } from "@switchboard/core";
import { WebSocketServer } from "ws";
import { WebSocketConnection } from "../src/index.js";
import { RawClient, closeAll } from "../../../test-support/harness.js";

/** A logger that drops everything. */
export class QuietLogger implements Logger {
  debug(): void {}
  info(): void {}
  warn(): void {}
  error(): void {}
}

const servers: WebSocketServer[] = [];
afterEach(async () => {
  await closeAll();
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          for (const client of server.clients) client.terminate();
          server.close(() => resolve());
        }),
    ),
  );
});

/** A bare `ws` server on 127.0.0.1 making WebSocketConnections (ws's `WebSocket` option, as the transport does), and `count` raw clients. */
export async function socketPairs(count: number): Promise<{ connections: WebSocketConnection[]; clients: RawClient[] }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, WebSocket: WebSocketConnection });
  servers.push(wss);
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const port = (wss.address() as { port: number }).port;
  const accepted: WebSocketConnection[] = [];
  wss.on("connection", (socket) => {
    socket.logger = new QuietLogger();
    accepted.push(socket);
  });
  const clients: RawClient[] = [];
  for (let i = 0; i < count; i++) clients.push(await RawClient.open(`ws://127.0.0.1:${port}/`));
  while (accepted.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
  return { connections: accepted, clients };
}
