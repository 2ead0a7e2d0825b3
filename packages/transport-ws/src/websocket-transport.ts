import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { OptionsError, Refusal, type AttachedTransport, type AvailableTransport, type ConnectionHandle, type ConnectionRequest, type HubEndpoint, type Logger, type PendingConnection, type SwitchboardServer } from "@switchboard/core";
import { WebSocket, WebSocketServer } from "ws";
import { WebSocketConnection } from "./websocket-connection.js";

/** Options of a {@link WebSocketTransport}. Sizes in bytes, times in milliseconds. */
export interface WebSocketTransportOptions {
  /** Largest WebSocket message `ws` accepts (a message may hold several hub messages). Default: max(64 KiB, 2 × maxMessageSize). */
  readonly maxPayload?: number;
  /** On `stop()`, how long sockets get to finish their closing handshake before they are destroyed. Default 5 000. */
  readonly closeTimeout?: number;
}

const NEGOTIATE_SUFFIX = "/negotiate";
const AVAILABLE: readonly AvailableTransport[] = Object.freeze([{ transport: "WebSockets", transferFormats: ["Text", "Binary"] }]);
const kHandle = Symbol("switchboard.connectionHandle");
const kLogger = Symbol("switchboard.logger");
const kSockets = Symbol("switchboard.sockets");

type TrackedSocket = WebSocket & { [kHandle]?: ConnectionHandle; [kLogger]?: Logger; [kSockets]?: Set<TrackedSocket> };

// Socket listeners are module-level functions that reach their connection through a symbol
// back-reference: no closures per connection.
function onSocketMessage(this: TrackedSocket, data: Buffer): void {
  this[kHandle]?.receive(data);
}
function onSocketClose(this: TrackedSocket, code: number): void {
  this[kSockets]?.delete(this);
  const normal = code === 1000 || code === 1001 || code === 1005;
  this[kHandle]?.transportClosed(normal ? undefined : new Error(`WebSocket closed with status code: ${code}.`));
}
function onSocketError(this: TrackedSocket, error: Error): void {
  // ws closes the socket itself after a receive error (1002, 1007, 1009…); 'close' follows.
  this[kLogger]?.debug({ connectionId: this[kHandle]?.connectionId, err: error }, "WebSocket error.");
}
function onRawSocketError(): void {
  // Upgrade sockets can see ECONNRESET before ws owns them (CVE-2022-41940): never let it throw.
}

function splitUrl(url: string | undefined): { path: string; query: Map<string, string> } | undefined {
  if (url === undefined) return undefined;
  const mark = url.indexOf("?");
  let path = mark === -1 ? url : url.slice(0, mark);
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  const query = new Map<string, string>();
  if (mark !== -1) {
    for (const [key, value] of new URLSearchParams(url.slice(mark + 1))) if (!query.has(key)) query.set(key, value);
  }
  return { path, query };
}

function rejectUpgrade(socket: Duplex, status: number, reason: string, body: string): void {
  if (!socket.writable) return void socket.destroy();
  // end() only half-closes, and a client that keeps its side open would pin the socket (and
  // server.close()) forever: destroy it once the response is written, as ws does.
  socket.once("finish", socket.destroy);
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function respond(res: ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8"): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string | number> = { "Content-Type": type, "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-cache" };
  if (status === 401) headers["WWW-Authenticate"] = "Bearer";
  res.writeHead(status, headers);
  res.end(body);
}

const STATUS_TEXT: Record<number, string> = { 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 503: "Service Unavailable" };

function requestOf(req: IncomingMessage, query: Map<string, string>): ConnectionRequest {
  return { query, headers: req.headers, remoteAddress: req.socket.remoteAddress };
}

/**
 * Serves a {@link SwitchboardServer}'s hubs over HTTP: `POST {hub}/negotiate` and WebSocket
 * upgrades on `{hub}?id=<token>` (or without `id`, for clients that skip negotiation).
 * Attach it to any `http.Server` (plain, Express, Fastify's `server`) or let it `listen` alone.
 */
export class WebSocketTransport implements AttachedTransport {
  readonly #server: SwitchboardServer;
  readonly #logger: Logger;
  readonly #wss: WebSocketServer;
  readonly #closeTimeout: number;
  readonly #sockets = new Set<TrackedSocket>();
  readonly #detach: (() => void)[] = [];
  #httpServer: Server | undefined;
  #ownsHttpServer = false;
  #stopping: Promise<void> | undefined;

  constructor(server: SwitchboardServer, options: WebSocketTransportOptions = {}) {
    this.#server = server;
    this.#logger = server.options.logger;
    this.#closeTimeout = options.closeTimeout ?? 5_000;
    if (!Number.isFinite(this.#closeTimeout) || this.#closeTimeout <= 0 || this.#closeTimeout > 2 ** 31 - 1) {
      throw new OptionsError(`Option 'closeTimeout' must be a number of milliseconds from 1 to ${2 ** 31 - 1}.`);
    }
    const maxPayload = options.maxPayload ?? Math.max(64 * 1024, 2 * server.options.maxMessageSize);
    if (!Number.isSafeInteger(maxPayload) || maxPayload < server.options.maxMessageSize) {
      // A smaller WebSocket limit would close clients for hub messages the server accepts.
      throw new OptionsError(`Option 'maxPayload' must be an integer of at least maxMessageSize (${server.options.maxMessageSize}).`);
    }
    // closeTimeout also bounds how long ws waits for a peer's close frame before destroying the socket.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false, skipUTF8Validation: false, closeTimeout: this.#closeTimeout } as ConstructorParameters<typeof WebSocketServer>[0]);
    server.attachTransport(this);
  }

  /**
   * Serves the hubs from `httpServer`. Requests for other paths go to the server's other
   * `request` listeners (e.g. an Express app) as before.
   */
  attach(httpServer: Server): this {
    if (this.#httpServer !== undefined) throw new Error("This transport is already attached to an HTTP server.");
    if (this.#stopping !== undefined) throw new Error("This transport has been stopped.");
    this.#httpServer = httpServer;
    const previous = httpServer.listeners("request") as ((req: IncomingMessage, res: ServerResponse) => void)[];
    httpServer.removeAllListeners("request");
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      if (this.handleRequest(req, res)) return;
      if (previous.length === 0) return respond(res, 404, "Not Found");
      for (const listener of previous) listener.call(httpServer, req, res);
    };
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      if (this.handleUpgrade(req, socket, head)) return;
      if (httpServer.listenerCount("upgrade") === 1) {
        // No one else owns this socket: a client RST while the 404 is written must not throw (CVE-2022-41940).
        socket.on("error", onRawSocketError);
        rejectUpgrade(socket, 404, "Not Found", "Not Found");
      }
    };
    httpServer.on("request", onRequest);
    httpServer.on("upgrade", onUpgrade);
    this.#detach.push(() => {
      httpServer.off("request", onRequest);
      httpServer.off("upgrade", onUpgrade);
      for (const listener of previous) httpServer.on("request", listener);
    });
    return this;
  }

  /** Creates an HTTP server of its own, attaches to it and listens. Resolves with the bound address. */
  async listen(port: number, host?: string): Promise<AddressInfo> {
    const httpServer = createServer();
    this.attach(httpServer);
    this.#ownsHttpServer = true;
    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(port, host, () => {
        httpServer.off("error", reject);
        resolve();
      });
    });
    return httpServer.address() as AddressInfo;
  }

  /** The HTTP server this transport is attached to, if any. */
  get httpServer(): Server | undefined {
    return this.#httpServer;
  }

  /**
   * Handles a plain HTTP request if it is for a hub (negotiate); returns false otherwise, so it can
   * be used as middleware: `app.use((req, res, next) => transport.handleRequest(req, res) || next())`.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const url = splitUrl(req.url);
    if (url === undefined) return false;
    if (url.path.endsWith(NEGOTIATE_SUFFIX)) {
      const endpoint = this.#server.endpoint(url.path.slice(0, -NEGOTIATE_SUFFIX.length) || "/");
      if (endpoint === undefined) return false;
      req.resume(); // the client sends an empty body; drain whatever comes
      if (req.method !== "POST") {
        res.setHeader("Allow", "POST");
        respond(res, 405, "Method Not Allowed");
        return true;
      }
      if (this.#stopping !== undefined || this.#server.closed) {
        respond(res, 503, "The server is shutting down.");
        return true;
      }
      void this.#negotiate(endpoint, req, res, url.query);
      return true;
    }
    if (this.#server.endpoint(url.path) === undefined) return false;
    req.resume();
    respond(res, 400, "This hub accepts WebSocket connections only.");
    return true;
  }

  async #negotiate(endpoint: HubEndpoint, req: IncomingMessage, res: ServerResponse, query: Map<string, string>): Promise<void> {
    try {
      const answer = await endpoint.negotiate(requestOf(req, query), AVAILABLE);
      if (answer instanceof Refusal) respond(res, answer.status, answer.reason);
      else respond(res, 200, JSON.stringify(answer), "application/json");
    } catch (error) {
      this.#logger.error({ err: error }, "Negotiate failed.");
      respond(res, 500, "Internal Server Error");
    }
  }

  /** Accepts a WebSocket upgrade if it is for a hub; returns false otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    socket.on("error", onRawSocketError);
    const url = splitUrl(req.url);
    const endpoint = url === undefined ? undefined : this.#server.endpoint(url.path);
    if (url === undefined || endpoint === undefined) {
      socket.off("error", onRawSocketError);
      return false;
    }
    if (this.#stopping !== undefined || this.#server.closed) {
      rejectUpgrade(socket, 503, "Service Unavailable", "The server is shutting down.");
      return true;
    }
    void this.#upgrade(endpoint, req, socket, head, url.query);
    return true;
  }

  async #upgrade(endpoint: HubEndpoint, req: IncomingMessage, socket: Duplex, head: Buffer, query: Map<string, string>): Promise<void> {
    let pending: PendingConnection | Refusal;
    try {
      pending = await endpoint.admit(requestOf(req, query), query.get("id"));
    } catch (error) {
      this.#logger.error({ err: error }, "Admitting a WebSocket connection failed.");
      return rejectUpgrade(socket, 500, "Internal Server Error", "Internal Server Error");
    }
    if (pending instanceof Refusal) return rejectUpgrade(socket, pending.status, STATUS_TEXT[pending.status]!, pending.reason);
    const admitted = pending;
    if (socket.destroyed || !socket.writable || this.#stopping !== undefined) {
      endpoint.abandon(admitted);
      if (!socket.destroyed) rejectUpgrade(socket, 503, "Service Unavailable", "The server is shutting down.");
      return;
    }
    let accepted = false;
    const abandon = (): void => {
      if (!accepted) endpoint.abandon(admitted);
    };
    socket.once("close", abandon);
    try {
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        accepted = true;
        socket.off("close", abandon);
        this.#accept(endpoint, admitted, ws as TrackedSocket, req, query);
      });
    } catch (error) {
      this.#logger.debug({ err: error }, "WebSocket upgrade failed.");
      socket.destroy();
    }
  }

  #accept(endpoint: HubEndpoint, pending: PendingConnection, ws: TrackedSocket, req: IncomingMessage, query: Map<string, string>): void {
    // The error listener goes on before any data can flow: without it, one bad frame would throw
    // an unhandled 'error' and kill the process (CVE-2022-21676's shape).
    ws[kLogger] = this.#logger;
    ws.on("error", onSocketError);
    if (this.#stopping !== undefined) {
      endpoint.abandon(pending);
      ws.close(1001);
      return;
    }
    const handle = endpoint.connect(pending, new WebSocketConnection(ws, this.#logger), requestOf(req, query));
    ws[kHandle] = handle;
    this.#sockets.add(ws);
    ws.on("message", onSocketMessage);
    ws.on("close", onSocketClose);
    ws[kSockets] = this.#sockets;
  }

  /** Stops accepting, then waits (up to `closeTimeout`) for every socket to close and destroys the rest. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    for (const detach of this.#detach.splice(0)) detach();
    const closing = [...this.#sockets].map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => ws.terminate(), this.#closeTimeout);
          ws.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
          if (ws.readyState === WebSocket.OPEN) ws.close(1001);
        }),
    );
    await Promise.all(closing);
    this.#wss.close();
    const httpServer = this.#httpServer;
    if (this.#ownsHttpServer && httpServer !== undefined) {
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
    }
  }
}
