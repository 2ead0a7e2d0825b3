/**
 * Shared helpers for wire tests: a real server on a free 127.0.0.1 port, the official SignalR
 * client, and a raw WebSocket client that shows the exact bytes. Every test closes what it opens.
 */
import "reflect-metadata";
import { container as rootContainer } from "tsyringe";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol as ClientMessagePackProtocol } from "@microsoft/signalr-protocol-msgpack";
import { Refusal, SwitchboardServer, type ConnectionHandle, type ConnectionRequest, type HubClass, type Logger, type ServerOptions, type TransportConnection } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { HttpTransport, type HttpTransportOptions } from "@switchboard/transport-ws";
import { WebSocket } from "ws";

export { signalR };

/** A logger that keeps every entry, for asserting on logs (and keeping test output quiet). */
export class MemoryLogger implements Logger {
  readonly entries: { level: string; fields: object; message: string }[] = [];
  debug(fields: object, message: string): void {
    this.entries.push({ level: "debug", fields, message });
  }
  info(fields: object, message: string): void {
    this.entries.push({ level: "info", fields, message });
  }
  warn(fields: object, message: string): void {
    this.entries.push({ level: "warn", fields, message });
  }
  error(fields: object, message: string): void {
    this.entries.push({ level: "error", fields, message });
  }
  text(): string {
    return JSON.stringify(this.entries, (_key, value) => (value instanceof Error ? `${value.name}: ${value.message}` : value));
  }
}

export interface TestServer {
  readonly server: SwitchboardServer;
  readonly transport: HttpTransport;
  readonly port: number;
  readonly logger: MemoryLogger;
  /** `http://127.0.0.1:<port><path>` */
  url(path: string): string;
  close(): Promise<void>;
}

const open: TestServer[] = [];

/** Starts a server with JSON and MessagePack and every transport on a free port, with its own DI container. */
export async function startServer(hubs: HubClass[], options: Partial<ServerOptions> = {}, transportOptions?: HttpTransportOptions): Promise<TestServer> {
  const logger = new MemoryLogger();
  const server = new SwitchboardServer({
    hubs,
    protocols: [new JsonHubProtocol(), new MessagePackHubProtocol()],
    container: rootContainer.createChildContainer(),
    logger,
    ...options,
  });
  const transport = new HttpTransport(server, transportOptions);
  const address = await transport.listen(0, "127.0.0.1");
  const handle: TestServer = {
    server,
    transport,
    port: address.port,
    logger,
    url: (path) => `http://127.0.0.1:${address.port}${path}`,
    close: () => server.close(),
  };
  open.push(handle);
  return handle;
}

export type ClientProtocol = "json" | "messagepack";

const clients: signalR.HubConnection[] = [];

/** Builds (not starts) an official client for `url`, on WebSockets unless `configure` says otherwise. */
export function buildClient(url: string, protocol: ClientProtocol = "json", configure?: (builder: signalR.HubConnectionBuilder) => void): signalR.HubConnection {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(url, { transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.None);
  if (protocol === "messagepack") builder.withHubProtocol(new ClientMessagePackProtocol());
  configure?.(builder);
  const connection = builder.build();
  clients.push(connection);
  return connection;
}

/** Builds and starts an official client. */
export async function connectClient(url: string, protocol: ClientProtocol = "json", configure?: (builder: signalR.HubConnectionBuilder) => void): Promise<signalR.HubConnection> {
  const connection = buildClient(url, protocol, configure);
  await connection.start();
  return connection;
}

/** Collects calls of a client method. */
export function record(connection: signalR.HubConnection, method: string): unknown[][] {
  const calls: unknown[][] = [];
  connection.on(method, (...args: unknown[]) => void calls.push(args));
  return calls;
}

/** Waits until `predicate` holds (polling), or fails after `timeout` ms. */
export async function until(predicate: () => boolean, timeout = 5_000, what = "condition"): Promise<void> {
  const started = Date.now();
  while (!predicate()) {
    if (Date.now() - started > timeout) throw new Error(`Timed out waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Lets pending sends flush and in-flight frames arrive. */
export function settle(ms = 50): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Stops every client and server opened through these helpers (call in afterEach). */
export async function closeAll(): Promise<void> {
  await Promise.allSettled(clients.splice(0).map((client) => client.stop()));
  await Promise.allSettled(open.splice(0).map((server) => server.close()));
  await Promise.allSettled(raws.splice(0).map((raw) => raw.close()));
}

// ---- raw WebSocket client ----------------------------------------------------------------

export const RS = "\u001e";

/** One frame received by a {@link RawClient}. */
export interface RawFrame {
  readonly data: Buffer;
  readonly binary: boolean;
}

const raws: RawClient[] = [];

/** A plain `ws` client that records every frame, for byte-exact and bad-input tests. */
export class RawClient {
  readonly socket: WebSocket;
  readonly frames: RawFrame[] = [];
  closeCode: number | undefined;
  readonly opened: Promise<void>;
  readonly closedPromise: Promise<number>;

  private constructor(url: string, headers?: Record<string, string>) {
    this.socket = new WebSocket(url, { headers });
    this.socket.on("error", () => {});
    this.socket.on("message", (data: Buffer, binary: boolean) => this.frames.push({ data, binary }));
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve());
      this.socket.once("unexpected-response", (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      this.socket.once("error", reject);
    });
    this.closedPromise = new Promise((resolve) => this.socket.once("close", (code: number) => resolve((this.closeCode = code))));
  }

  /** Opens a raw socket to `wsUrl` (ws://…). */
  static async open(wsUrl: string, headers?: Record<string, string>): Promise<RawClient> {
    const client = new RawClient(wsUrl, headers);
    raws.push(client);
    await client.opened;
    return client;
  }

  /** Negotiates, opens the socket and completes a handshake for `protocol`. */
  static async connect(server: TestServer, path: string, protocol: ClientProtocol = "json"): Promise<RawClient> {
    const negotiated = await negotiate(server, path);
    const client = await RawClient.open(`ws://127.0.0.1:${server.port}${path}?id=${negotiated.connectionToken}`);
    client.sendText(`{"protocol":"${protocol}","version":1}${RS}`);
    await client.nextFrame();
    return client;
  }

  sendText(text: string): void {
    this.socket.send(text, { binary: false });
  }

  sendBinary(bytes: Uint8Array | number[]): void {
    this.socket.send(Buffer.from(bytes as Uint8Array), { binary: true });
  }

  /** Waits for frame number `index` (0-based, counting every frame received so far). */
  async frame(index: number, timeout = 5_000): Promise<RawFrame> {
    await until(() => this.frames.length > index || this.closeCode !== undefined, timeout, `frame ${index}`);
    const frame = this.frames[index];
    if (frame === undefined) throw new Error(`The socket closed (${this.closeCode}) before frame ${index}.`);
    return frame;
  }

  #read = 0;
  /** The next frame not returned yet. */
  async nextFrame(timeout?: number): Promise<RawFrame> {
    return this.frame(this.#read++, timeout);
  }

  /** Text of every frame received so far, joined. */
  text(): string {
    return this.frames.map((frame) => frame.data.toString("utf8")).join("");
  }

  closed(timeout = 5_000): Promise<number> {
    return Promise.race([this.closedPromise, new Promise<number>((_, reject) => setTimeout(() => reject(new Error("socket did not close")), timeout))]);
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    this.socket.terminate();
    await this.closedPromise;
  }
}

/** POSTs a negotiate request and returns the parsed body. */
export async function negotiate(server: TestServer, path: string, query = "negotiateVersion=1"): Promise<{ connectionId: string; connectionToken: string; negotiateVersion: number; availableTransports: unknown[]; error?: string }> {
  const response = await fetch(`${server.url(path)}/negotiate?${query}`, { method: "POST" });
  if (response.status !== 200) throw new Error(`negotiate answered ${response.status}`);
  return (await response.json()) as never;
}

const JSON_HANDSHAKE = new TextEncoder().encode(`{"protocol":"json","version":1}\u001e`);
const IN_PROCESS_REQUEST: ConnectionRequest = { query: new Map(), headers: {}, remoteAddress: "127.0.0.1" };

/**
 * Connects `count` connections speaking `protocol` (default JSON) to the hub at `path` in process,
 * each on a transport made by `makeTransport` (a test double), handshake done; resolves after the
 * turn that handles it.
 */
export async function connectInProcess<T extends TransportConnection>(server: TestServer, path: string, count: number, makeTransport: () => T, protocol = "json"): Promise<{ handle: ConnectionHandle; transport: T }[]> {
  const handshake = protocol === "json" ? JSON_HANDSHAKE : new TextEncoder().encode(`{"protocol":"${protocol}","version":1}\u001e`);
  const endpoint = server.server.endpoint(path);
  if (endpoint === undefined) throw new Error(`no hub at ${path}`);
  const connections: { handle: ConnectionHandle; transport: T }[] = [];
  for (let i = 0; i < count; i++) {
    const pending = await endpoint.admit(IN_PROCESS_REQUEST, undefined);
    if (pending instanceof Refusal) throw new Error(`admit refused: ${pending.status}`);
    const transport = makeTransport();
    const handle = endpoint.connect(pending, transport, IN_PROCESS_REQUEST);
    handle.receive(handshake);
    connections.push({ handle, transport });
  }
  await new Promise((resolve) => setImmediate(resolve));
  return connections;
}
