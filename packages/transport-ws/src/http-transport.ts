import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Server as NetServer, type AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { AddressLimit } from "./address-limit.js";
import { checkServer, isAdmission, isRefusal, OptionsError, SwitchboardError, warnUnknownKeys, TRANSPORT_TYPES, type AttachedTransport, type AvailableTransport, type ConnectionEndpoint, type ConnectionHandle, type Logger, type PendingConnection, type SwitchboardServer, type TransportType } from "@switchboard/core";
import { WebSocket, WebSocketServer } from "ws";
import { WebSocketConnection } from "./websocket-connection.js";
import { HttpConnection, type HttpConnectionHost } from "./http-connection.js";
import { ServerSentEventsConnection } from "./server-sent-events-connection.js";
import { LongPollingConnection } from "./long-polling-connection.js";
import { OriginPolicy, type CorsOptions, type OriginList } from "./origin-policy.js";
import { rejectUpgrade, requestOf, respond, splitUrl } from "./http-responses.js";

/** Options of an {@link HttpTransport}. Sizes in bytes, times in milliseconds. */
export interface HttpTransportOptions {
  /** Transports served, for every hub (a hub can narrow them further). Default: all three. */
  readonly transports?: readonly TransportType[];
  /** Largest WebSocket message and POST body accepted (either may hold several messages). Default: max(1 MiB, 2 × maxMessageSize): the official client sends what queued up during a send as one message, so many concurrent calls make one large frame or POST of small hub messages. */
  readonly maxPayload?: number;
  /** On `stop()`, how long connections get to finish closing before they are destroyed. Default 5 000. */
  readonly closeTimeout?: number;
  /** Long polling: a held poll is answered empty after this long. Default 90 000 (below the client's 100 s). */
  readonly pollTimeout?: number;
  /** Long polling: a connection with no poll held for this long is ended. Default 15 000. */
  readonly disconnectTimeout?: number;
  /** Cross-origin browser access to negotiate, Server-Sent Events and long polling. Default: same origin only. */
  readonly cors?: CorsOptions;
  /**
   * Origins whose pages may open WebSockets (browsers do not CORS-check upgrades; an unlisted
   * `Origin` gets 403). Default: same origin, plus the `cors` origins unless those are `"*"`.
   * Requests without `Origin` (non-browser clients) always pass.
   */
  readonly allowedOrigins?: OriginList;
  /**
   * Open connections (any transport, all hubs) allowed per remote address; past it, the connect
   * request gets 429. Default: no limit (clients behind one proxy or NAT share an address).
   */
  readonly maxConnectionsPerAddress?: number;
}

const NEGOTIATE_SUFFIX = "/negotiate";
const TOO_MANY_FROM_ADDRESS = "Too many connections from this address.";
const AVAILABLE: Readonly<Record<TransportType, AvailableTransport>> = {
  WebSockets: Object.freeze({ transport: "WebSockets", transferFormats: Object.freeze(["Text", "Binary"] as const) }),
  // Text only: the client never picks it for MessagePack (§2.1), as with ASP.NET.
  ServerSentEvents: Object.freeze({ transport: "ServerSentEvents", transferFormats: Object.freeze(["Text"] as const) }),
  LongPolling: Object.freeze({ transport: "LongPolling", transferFormats: Object.freeze(["Text", "Binary"] as const) }),
};
/** Marks an http.Server that has a transport (Symbol.for: seen by every copy of this package). */
const kAttached = Symbol.for("switchboard.transport.attached");
const OPTION_KEYS: readonly (keyof HttpTransportOptions)[] = ["transports", "maxPayload", "closeTimeout", "pollTimeout", "disconnectTimeout", "cors", "allowedOrigins", "maxConnectionsPerAddress"];
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Reads a new TCP connection's peer address once, as the server accepts it. Node caches the
 * address on the socket object, and that adds a property: read at the first request, the cache
 * gave a negotiate socket, an upgraded one and a fresh one different layouts, and Node's own
 * write path, shared by every socket of the process, saw so many that its property reads turned
 * megamorphic (a generic lookup on every `socket.write`). Read here, first, every socket gets it
 * at the same point of its life. callgrind, group sends to 1,000 members: 3,501 → 3,122
 * user-space instructions per delivery (benchmarks/RESULTS.md, issue 19).
 */
function readPeerAddress(socket: { readonly remoteAddress?: string }): void {
  void socket.remoteAddress;
}

// Socket listeners are module-level functions: the socket is the connection (`this`; ws types it
// as its base class), so there is no closure and no back-reference per connection.
function onSocketMessage(this: WebSocket, data: Buffer): void {
  (this as WebSocketConnection).handle?.receive(data);
}
function onSocketClose(this: WebSocket, code: number): void {
  const connection = this as WebSocketConnection;
  connection.openSockets?.delete(connection);
  const normal = code === 1000 || code === 1001 || code === 1005;
  connection.handle?.transportClosed(normal ? undefined : new Error(`WebSocket closed with status code: ${code}.`));
}
function onSocketError(this: WebSocket, error: Error): void {
  // ws closes the socket itself after a receive error (1002, 1007, 1009…); 'close' follows.
  const connection = this as WebSocketConnection;
  connection.logger?.debug({ connectionId: connection.handle?.connectionId, err: error }, "WebSocket error.");
}
function onRawSocketError(): void {
  // Upgrade sockets can see ECONNRESET before ws owns them (CVE-2022-41940): never let it throw.
}

function duration(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) throw new OptionsError(`Option '${name}' must be a number of milliseconds from 1 to ${MAX_TIMER_MS}.`);
  return value;
}

/**
 * An answer from the core that is neither a refusal nor an admission (e.g. from a core this
 * transport cannot recognize): the request is refused with a 500, never let in.
 */
function unrecognized(logger: Logger, stage: string, answer: unknown, refuse: () => void): undefined {
  logger.error({ stage, type: answer === null ? "null" : typeof answer }, "The endpoint returned neither a refusal nor an admission; the request is refused. Are two copies of @switchboard/core loaded?");
  refuse();
  return undefined;
}

function acceptsEventStream(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return typeof accept === "string" && accept.toLowerCase().includes("text/event-stream");
}

/**
 * Serves a {@link SwitchboardServer}'s hubs and connection handlers over HTTP (§1, §2):
 * `POST {path}/negotiate`, WebSocket upgrades on `{path}?id=<token>` (or without `id`, for
 * clients that skip negotiation), Server-Sent Events (`GET` with `Accept: text/event-stream`),
 * long polling (`GET`, `DELETE`), and the POSTs that carry client data for those two.
 * Attach it to any `http.Server`, let it `listen` alone, or call `handleRequest`/`handleUpgrade`
 * from your own middleware.
 */
export class HttpTransport implements AttachedTransport, HttpConnectionHost {
  readonly logger: Logger;
  readonly maxPayload: number;
  readonly #server: SwitchboardServer;
  readonly #transports: ReadonlySet<TransportType>;
  readonly #origins: OriginPolicy;
  readonly #wss: WebSocketServer;
  readonly #closeTimeout: number;
  readonly #times: { readonly pollTimeout: number; readonly disconnectTimeout: number };
  readonly #sockets = new Set<WebSocketConnection>();
  /** Server-Sent Events and long-polling connections by token. */
  readonly #http = new Map<string, HttpConnection>();
  /** `maxConnectionsPerAddress`, when set, and the address each HTTP connection holds a slot for. */
  readonly #perAddress: AddressLimit | undefined;
  readonly #httpAddress = new Map<HttpConnection, string | undefined>();
  readonly #detach: (() => void)[] = [];
  #keepAliveTimer: NodeJS.Timeout | undefined;
  #httpServer: Server | undefined;
  #ownsHttpServer = false;
  #stopping: Promise<void> | undefined;
  #finishedAll: (() => void) | undefined;

  constructor(server: SwitchboardServer, options: HttpTransportOptions = {}) {
    if ((server as unknown) instanceof NetServer) {
      // Socket.IO's habit: `new Server(httpServer)`. Here the hub server comes first.
      throw new OptionsError(`new ${new.target.name}() takes the SwitchboardServer, not the http.Server: write \`new ${new.target.name}(switchboard).attach(httpServer)\` (or \`.listen(port)\`).`);
    }
    this.#server = checkServer(server, "@switchboard/transport-ws");
    this.logger = server.options.logger;
    warnUnknownKeys(options, OPTION_KEYS, new.target.name, this.logger);
    const transports = options.transports ?? TRANSPORT_TYPES;
    if (!Array.isArray(transports) || transports.length === 0 || transports.some((name) => !TRANSPORT_TYPES.includes(name))) {
      throw new OptionsError(`Option 'transports' must be a non-empty list of ${TRANSPORT_TYPES.join(", ")}.`);
    }
    this.#transports = new Set(transports);
    this.#closeTimeout = duration("closeTimeout", options.closeTimeout ?? 5_000);
    if (options.maxConnectionsPerAddress !== undefined) {
      const max = options.maxConnectionsPerAddress;
      if (typeof max !== "number" || !Number.isSafeInteger(max) || max <= 0) throw new OptionsError(`Option 'maxConnectionsPerAddress' must be a positive integer, got ${String(max)}.`);
      this.#perAddress = new AddressLimit(max);
    }
    const pollTimeout = duration("pollTimeout", options.pollTimeout ?? 90_000);
    if (pollTimeout >= 100_000) throw new OptionsError("Option 'pollTimeout' must stay below the client's fixed 100 000 ms poll timeout.");
    this.#times = { pollTimeout, disconnectTimeout: duration("disconnectTimeout", options.disconnectTimeout ?? 15_000) };
    const maxPayload = options.maxPayload ?? Math.max(1024 * 1024, 2 * server.options.maxMessageSize);
    if (!Number.isSafeInteger(maxPayload) || maxPayload < server.options.maxMessageSize) {
      // A smaller limit would close clients for hub messages the server accepts.
      throw new OptionsError(`Option 'maxPayload' must be an integer of at least maxMessageSize (${server.options.maxMessageSize}).`);
    }
    this.maxPayload = maxPayload;
    this.#origins = new OriginPolicy(options.cors, options.allowedOrigins);
    // closeTimeout also bounds how long ws waits for a peer's close frame before destroying the socket.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false, skipUTF8Validation: false, closeTimeout: this.#closeTimeout, WebSocket: WebSocketConnection } as ConstructorParameters<typeof WebSocketServer>[0]);
    server.attachTransport(this);
  }

  /**
   * Serves the hubs from `httpServer`. Requests for other paths go to the server's other
   * `request` listeners (e.g. an Express app) as before.
   */
  attach(httpServer: Server): this {
    if (!((httpServer as unknown) instanceof NetServer)) throw new OptionsError("transport.attach(httpServer) needs an http.Server (Express: http.createServer(app); Fastify: fastify.server).");
    if (this.#httpServer !== undefined) throw new SwitchboardError("SB_ERR_OPTIONS", "This transport is already attached to an HTTP server.");
    if (this.#stopping !== undefined) throw new SwitchboardError("SB_ERR_SERVER_CLOSED", "This transport has been stopped.");
    if ((httpServer as unknown as Record<symbol, unknown>)[kAttached] === true) {
      // Two transports would both answer the hub paths' requests and upgrades.
      throw new OptionsError("This http.Server already has a Switchboard transport: one transport serves every hub of a SwitchboardServer; attach only one.");
    }
    Object.defineProperty(httpServer, kAttached, { value: true, configurable: true });
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
        rejectUpgrade(socket, 404, "Not Found");
      }
    };
    httpServer.on("connection", readPeerAddress);
    httpServer.on("request", onRequest);
    httpServer.on("upgrade", onUpgrade);
    this.#detach.push(() => {
      delete (httpServer as unknown as Record<symbol, unknown>)[kAttached];
      httpServer.off("connection", readPeerAddress);
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

  /** The transports `endpoint` can be reached by through this transport, in negotiate order. */
  #available(endpoint: ConnectionEndpoint): AvailableTransport[] {
    const list: AvailableTransport[] = [];
    for (const name of TRANSPORT_TYPES) if (this.#transports.has(name) && endpoint.transports.has(name)) list.push(AVAILABLE[name]);
    return list;
  }

  #serves(endpoint: ConnectionEndpoint, transport: TransportType): boolean {
    return this.#transports.has(transport) && endpoint.transports.has(transport);
  }

  /**
   * Handles a plain HTTP request if it is for a hub or connection handler (negotiate, Server-Sent
   * Events, long polling, sends); returns false otherwise, so it can be used as middleware:
   * `app.use((req, res, next) => transport.handleRequest(req, res) || next())`.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const url = splitUrl(req.url);
    if (url === undefined) return false;
    const negotiating = url.path.endsWith(NEGOTIATE_SUFFIX);
    const endpoint = this.#server.route(negotiating ? url.path.slice(0, -NEGOTIATE_SUFFIX.length) || "/" : url.path);
    if (endpoint === undefined) return false;
    if (req.method === "OPTIONS") {
      req.resume();
      const status = this.#origins.preflight(req, res);
      if (status === 204) res.writeHead(204, { "Content-Length": 0 }).end();
      else respond(res, status, "This origin is not allowed.");
      return true;
    }
    if (!this.#origins.allow(req, res)) {
      req.resume();
      respond(res, 403, "This origin is not allowed.");
      return true;
    }
    if (negotiating) {
      req.resume(); // the client sends an empty body; drain whatever comes
      if (req.method !== "POST") {
        res.setHeader("Allow", "POST");
        respond(res, 405, "Method Not Allowed");
      } else if (this.#stopping !== undefined || this.#server.closed) {
        respond(res, 503, "The server is shutting down.");
      } else {
        void this.#negotiate(endpoint, req, res, url.query);
      }
      return true;
    }
    const token = url.query.get("id");
    switch (req.method) {
      case "GET":
        if (token === undefined || token.length === 0) return this.#refuse(req, res, 400, "Connection ID required");
        if (acceptsEventStream(req)) this.#serverSentEvents(endpoint, req, res, url.query, token);
        else this.#longPoll(endpoint, req, res, url.query, token);
        return true;
      case "POST": {
        if (token === undefined || token.length === 0) return this.#refuse(req, res, 400, "Connection ID required");
        const connection = this.#http.get(token);
        if (connection === undefined) return this.#refuse(req, res, 404, "No Connection with that ID");
        connection.post(req, res);
        return true;
      }
      case "DELETE": {
        req.resume();
        if (token === undefined || token.length === 0) return this.#refuse(req, res, 400, "Connection ID required");
        const connection = this.#http.get(token);
        if (connection === undefined) return this.#refuse(req, res, 404, "No Connection with that ID");
        connection.delete(res);
        return true;
      }
      default:
        res.setHeader("Allow", "GET, POST, DELETE");
        return this.#refuse(req, res, 405, "Method Not Allowed");
    }
  }

  #refuse(req: IncomingMessage, res: ServerResponse, status: number, text: string): true {
    req.resume();
    respond(res, status, text);
    return true;
  }

  async #negotiate(endpoint: ConnectionEndpoint, req: IncomingMessage, res: ServerResponse, query: Map<string, string>): Promise<void> {
    try {
      const answer: unknown = await endpoint.negotiate(requestOf(req, query), this.#available(endpoint));
      if (isRefusal(answer)) respond(res, answer.status, answer.reason);
      else if (isAdmission(answer)) respond(res, 200, JSON.stringify(answer), "application/json");
      else unrecognized(this.logger, "negotiate", answer, () => respond(res, 500, "Internal Server Error"));
    } catch (error) {
      this.logger.error({ err: error }, "Negotiate failed.");
      respond(res, 500, "Internal Server Error");
    }
  }

  /** Admits a Server-Sent Events or long-polling connect request; undefined when refused (already answered). */
  async #admit(endpoint: ConnectionEndpoint, req: IncomingMessage, res: ServerResponse, query: Map<string, string>, token: string, transport: TransportType): Promise<PendingConnection | undefined> {
    if (!this.#serves(endpoint, transport)) {
      respond(res, 404, `${transport} transport not supported by this end point type`);
      return undefined;
    }
    if (this.#stopping !== undefined || this.#server.closed) {
      respond(res, 503, "The server is shutting down.");
      return undefined;
    }
    let pending: unknown;
    try {
      pending = await endpoint.admit(requestOf(req, query, transport), token);
    } catch (error) {
      this.logger.error({ err: error }, `Admitting a ${transport} connection failed.`);
      respond(res, 500, "Internal Server Error");
      return undefined;
    }
    if (isRefusal(pending)) {
      respond(res, pending.status, pending.reason);
      return undefined;
    }
    if (!isAdmission(pending)) return unrecognized(this.logger, "admit", pending, () => respond(res, 500, "Internal Server Error"));
    const admitted = pending as PendingConnection;
    if (res.destroyed || this.#stopping !== undefined) {
      endpoint.abandon(admitted);
      respond(res, 503, "The server is shutting down.");
      return undefined;
    }
    return admitted;
  }

  #serverSentEvents(endpoint: ConnectionEndpoint, req: IncomingMessage, res: ServerResponse, query: Map<string, string>, token: string): void {
    if (this.#http.has(token)) {
      respond(res, this.#http.get(token) instanceof ServerSentEventsConnection ? 409 : 400, "Cannot change transports mid-connection");
      return;
    }
    void this.#admit(endpoint, req, res, query, token, "ServerSentEvents").then((pending) => {
      if (pending === undefined || !this.#takeSlot(endpoint, pending, req, res)) return;
      const connection = new ServerSentEventsConnection(token, this, res);
      this.#holdSlot(connection, req);
      this.#http.set(token, connection);
      connection.open();
      connection.handle = endpoint.connect(pending, connection, requestOf(req, query, "ServerSentEvents"));
      this.#keepAliveTimer ??= this.#startKeepAlive();
    });
  }

  #longPoll(endpoint: ConnectionEndpoint, req: IncomingMessage, res: ServerResponse, query: Map<string, string>, token: string): void {
    const existing = this.#http.get(token);
    if (existing instanceof LongPollingConnection) return existing.poll(res);
    if (existing !== undefined) return respond(res, 400, "Cannot change transports mid-connection");
    // The first poll starts the connection and is answered at once (§2.5).
    void this.#admit(endpoint, req, res, query, token, "LongPolling").then((pending) => {
      if (pending === undefined || !this.#takeSlot(endpoint, pending, req, res)) return;
      const connection = new LongPollingConnection(token, this, this.#times);
      this.#holdSlot(connection, req);
      this.#http.set(token, connection);
      connection.open(res);
      connection.handle = endpoint.connect(pending, connection, requestOf(req, query, "LongPolling"));
    });
  }

  /** Takes a `maxConnectionsPerAddress` slot for an admitted HTTP connection, else answers 429. */
  #takeSlot(endpoint: ConnectionEndpoint, pending: PendingConnection, req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#perAddress === undefined || this.#perAddress.acquire(req.socket.remoteAddress)) return true;
    endpoint.abandon(pending);
    respond(res, 429, TOO_MANY_FROM_ADDRESS);
    return false;
  }

  #holdSlot(connection: HttpConnection, req: IncomingMessage): void {
    if (this.#perAddress !== undefined) this.#httpAddress.set(connection, req.socket.remoteAddress);
  }

  /** One timer for every Server-Sent Events stream: a comment on the idle ones. */
  #startKeepAlive(): NodeJS.Timeout {
    const interval = this.#server.options.keepAliveInterval;
    const timer = setInterval(() => {
      const now = Date.now();
      for (const connection of this.#http.values()) if (connection instanceof ServerSentEventsConnection) connection.keepAlive(now, interval);
    }, interval);
    timer.unref();
    return timer;
  }

  /** An HTTP connection has ended on the transport's side. */
  finished(connection: HttpConnection): void {
    if (this.#http.get(connection.token) === connection) this.#http.delete(connection.token);
    if (this.#perAddress !== undefined && this.#httpAddress.has(connection)) {
      this.#perAddress.release(this.#httpAddress.get(connection));
      this.#httpAddress.delete(connection);
    }
    if (this.#http.size === 0) this.#finishedAll?.();
  }

  /** Accepts a WebSocket upgrade if it is for a hub or connection handler; returns false otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    socket.on("error", onRawSocketError);
    const url = splitUrl(req.url);
    const endpoint = url === undefined ? undefined : this.#server.route(url.path);
    if (url === undefined || endpoint === undefined) {
      socket.off("error", onRawSocketError);
      return false;
    }
    if (!this.#origins.upgradeAllowed(req)) {
      this.logger.debug({ origin: req.headers.origin }, "Refused a WebSocket upgrade from an origin that is not allowed.");
      rejectUpgrade(socket, 403, "This origin is not allowed.");
      return true;
    }
    if (!this.#serves(endpoint, "WebSockets")) {
      rejectUpgrade(socket, 404, "WebSockets transport not supported by this end point type");
      return true;
    }
    if (this.#stopping !== undefined || this.#server.closed) {
      rejectUpgrade(socket, 503, "The server is shutting down.");
      return true;
    }
    if (this.#perAddress !== undefined) {
      const limit = this.#perAddress;
      const address = req.socket.remoteAddress;
      if (!limit.acquire(address)) {
        rejectUpgrade(socket, 429, TOO_MANY_FROM_ADDRESS);
        return true;
      }
      // The raw socket closes however the upgrade or the WebSocket ends: the slot goes back then.
      socket.once("close", () => limit.release(address));
    }
    void this.#upgrade(endpoint, req, socket, head, url.query);
    return true;
  }

  async #upgrade(endpoint: ConnectionEndpoint, req: IncomingMessage, socket: Duplex, head: Buffer, query: Map<string, string>): Promise<void> {
    let pending: unknown;
    try {
      pending = await endpoint.admit(requestOf(req, query, "WebSockets"), query.get("id"));
    } catch (error) {
      this.logger.error({ err: error }, "Admitting a WebSocket connection failed.");
      return rejectUpgrade(socket, 500, "Internal Server Error");
    }
    if (isRefusal(pending)) return rejectUpgrade(socket, pending.status, pending.reason);
    if (!isAdmission(pending)) return unrecognized(this.logger, "admit", pending, () => rejectUpgrade(socket, 500, "Internal Server Error"));
    const admitted = pending as PendingConnection;
    if (socket.destroyed || !socket.writable || this.#stopping !== undefined) {
      endpoint.abandon(admitted);
      if (!socket.destroyed) rejectUpgrade(socket, 503, "The server is shutting down.");
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
        // ws now listens for the socket's errors itself (and keeps listening after the first): a
        // second listener would only make the socket's 'error' listeners an array per connection.
        socket.off("error", onRawSocketError);
        this.#accept(endpoint, admitted, ws as WebSocketConnection, req, query);
      });
    } catch (error) {
      this.logger.debug({ err: error }, "WebSocket upgrade failed.");
      socket.destroy();
    }
  }

  #accept(endpoint: ConnectionEndpoint, pending: PendingConnection, connection: WebSocketConnection, req: IncomingMessage, query: Map<string, string>): void {
    // The error listener goes on before any data can flow: without it, one bad frame would throw
    // an unhandled 'error' and kill the process (CVE-2022-21676's shape).
    connection.logger = this.logger;
    connection.on("error", onSocketError);
    if (this.#stopping !== undefined) {
      endpoint.abandon(pending);
      connection.close(1001);
      return;
    }
    connection.handle = endpoint.connect(pending, connection, requestOf(req, query, "WebSockets"));
    this.#sockets.add(connection);
    connection.on("message", onSocketMessage);
    connection.on("close", onSocketClose);
    connection.openSockets = this.#sockets;
  }

  /**
   * Stops accepting (negotiate and new connections get 503 meanwhile), then waits (up to
   * `closeTimeout`) for every connection to close and destroys the rest.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    clearInterval(this.#keepAliveTimer);
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
    // Long-polling connections hand their last data (the Close message) to the next poll.
    for (const connection of [...this.#http.values()]) connection.shutdown();
    if (this.#http.size > 0) {
      closing.push(
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.#closeTimeout);
          this.#finishedAll = () => {
            clearTimeout(timer);
            resolve();
          };
        }),
      );
    }
    await Promise.all(closing);
    for (const connection of [...this.#http.values()]) connection.abort();
    for (const detach of this.#detach.splice(0)) detach();
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
