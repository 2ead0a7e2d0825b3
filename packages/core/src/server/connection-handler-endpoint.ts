import { SwitchboardError } from "../contracts/errors.js";
import type { Logger } from "../contracts/logger.js";
import { SerializedRecord, type ConnectionHandle, type ConnectionRequest, type TransportConnection, type TransportType } from "../contracts/transport.js";
import { ConnectionStore, newId } from "../connections/connection-store.js";
import type { Principal } from "../hubs/hub-caller-context.js";
import { ConnectionRequestContext, type RequestContext } from "../hubs/request-context.js";
import type { ConnectionEndpoint } from "./connection-endpoint.js";
import { admitted, isRefusal } from "./admission.js";
import { bearerToken, Refusal, type AvailableTransport, type NegotiateResponse, type PendingConnection } from "./hub-endpoint.js";
import type { ResolvedOptions } from "./options.js";

/**
 * An application's handler of raw connections on one path (ASP.NET's `MapConnectionHandler`):
 * no hub protocol and no handshake, just the bytes each client sends and the bytes written back,
 * over WebSockets, Server-Sent Events or long polling. The official client's `HttpConnection`
 * connects to it.
 */
export interface ConnectionHandler {
  /** A client connected. Its data waits until a returned promise settles. */
  onConnected?(connection: RawConnection): void | Promise<void>;
  /**
   * Data from the client, in order: one WebSocket message or one POST body. The official client
   * concatenates sends queued while a POST is in flight, so frame your own messages. While a
   * returned promise is pending, the connection stops reading (back-pressure).
   */
  onMessage(connection: RawConnection, data: Uint8Array): void | Promise<void>;
  /** The connection ended (once, after `onConnected` finished); `error` when abnormal. */
  onDisconnected?(connection: RawConnection, error: Error | undefined): void | Promise<void>;
}

/** Options of `server.mapConnectionHandler`. */
export interface ConnectionHandlerOptions {
  /** Transports this path accepts. Default: all three. */
  readonly transports?: readonly TransportType[];
}

/** One client of a {@link ConnectionHandler}. */
export interface RawConnection {
  readonly connectionId: string;
  /** The principal from the server's `authenticate` option, or null. */
  readonly user: Principal | null;
  /** The HTTP request the connection was made with. */
  readonly request: RequestContext;
  /** State kept for the life of the connection. */
  readonly items: Map<unknown, unknown>;
  /**
   * Sends one message: a string as text, bytes as binary (over Server-Sent Events everything is
   * text). Returns false when the connection has ended, or was just closed because the client
   * fell `maxBufferedBytes` behind.
   */
  send(data: string | Uint8Array): boolean;
  /** Ends the connection. */
  close(): void;
}

const OPEN = 0;
const CLOSED = 1;
const encoder = new TextEncoder();

class RawClient implements RawConnection, ConnectionHandle {
  readonly connectionId: string;
  readonly user: Principal | null;
  readonly transport: TransportConnection;
  readonly #endpoint: ConnectionHandlerEndpoint;
  readonly #request: ConnectionRequest;
  #requestContext: RequestContext | undefined;
  #items: Map<unknown, unknown> | undefined;
  #state = OPEN;
  /** Data received while the handler was busy (the transport is paused meanwhile). */
  readonly #waiting: Uint8Array[] = [];
  #busy = true; // until onConnected has finished
  #ended: Promise<void> | undefined;
  #error: Error | undefined;

  constructor(endpoint: ConnectionHandlerEndpoint, pending: PendingConnection, transport: TransportConnection, request: ConnectionRequest) {
    this.#endpoint = endpoint;
    this.connectionId = pending.connectionId;
    this.user = pending.user;
    this.transport = transport;
    this.#request = request;
  }

  get request(): RequestContext {
    return (this.#requestContext ??= new ConnectionRequestContext(this.#request));
  }
  get items(): Map<unknown, unknown> {
    return (this.#items ??= new Map());
  }

  start(): void {
    this.#run(() => this.#endpoint.handler.onConnected?.(this), "onConnected");
  }

  send(data: string | Uint8Array): boolean {
    if (this.#state === CLOSED) return false;
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    const transport = this.transport;
    const buffered = transport.bufferedAmount;
    if (buffered > 0 && buffered + bytes.length > this.#endpoint.options.maxBufferedBytes) {
      this.#endpoint.logger.warn({ connectionId: this.connectionId, maxBufferedBytes: this.#endpoint.options.maxBufferedBytes }, "Closing a slow consumer.");
      this.#end(new SwitchboardError("SB_ERR_LIMIT_BUFFERED_BYTES", "Slow consumer."));
      return false;
    }
    // Raw messages keep their boundaries on WebSockets: each send is its own transport message.
    const format = typeof data === "string" || !transport.transferFormats.includes("binary") ? "text" : "binary";
    transport.write([new SerializedRecord(bytes)], 1, format);
    return true;
  }

  close(): void {
    this.#end(undefined);
  }

  receive(data: Uint8Array): void {
    if (this.#state === CLOSED) return;
    if (this.#busy) {
      this.#waiting.push(data);
      return;
    }
    this.#run(() => this.#endpoint.handler.onMessage(this, data), "onMessage");
  }

  transportClosed(error?: Error): void {
    this.#end(error);
  }

  /** Runs a handler callback; while its promise is pending, data waits and the transport is paused. */
  #run(callback: () => void | Promise<void>, stage: string): void {
    let result: void | Promise<void>;
    try {
      result = callback();
    } catch (error) {
      this.#failed(error, stage);
      return;
    }
    if (result === undefined || typeof (result as Promise<void>).then !== "function") {
      this.#next();
      return;
    }
    this.#busy = true;
    this.transport.pause();
    (result as Promise<void>).then(
      () => this.#next(),
      (error: unknown) => this.#failed(error, stage),
    );
  }

  #next(): void {
    if (this.#busy) {
      this.#busy = false;
      if (this.#state === OPEN) this.transport.resume();
    }
    while (this.#state === OPEN && !this.#busy && this.#waiting.length > 0) {
      const data = this.#waiting.shift()!;
      this.#run(() => this.#endpoint.handler.onMessage(this, data), "onMessage");
    }
    if (this.#state === CLOSED && !this.#busy) this.#disconnect();
  }

  #failed(error: unknown, stage: string): void {
    this.#endpoint.logger.error({ connectionId: this.connectionId, err: error }, `A connection handler's ${stage} threw; closing the connection.`);
    this.#busy = false;
    if (this.#state === OPEN) this.#end(error instanceof Error ? error : new Error(String(error)));
    else this.#disconnect();
  }

  #end(error: Error | undefined): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#error = error;
    this.#waiting.length = 0;
    this.transport.close();
    this.#endpoint.ended(this);
    if (!this.#busy) this.#disconnect();
  }

  /** Runs onDisconnected once, after whatever handler call was running. */
  #disconnect(): void {
    if (this.#ended !== undefined) return;
    const handler = this.#endpoint.handler;
    this.#ended = (async () => {
      try {
        await handler.onDisconnected?.(this, this.#error);
      } catch (error) {
        this.#endpoint.logger.error({ connectionId: this.connectionId, err: error }, "A connection handler's onDisconnected threw.");
      }
    })();
    this.#endpoint.track(this.#ended);
  }
}

/** Lowest negotiate version served (version 0 would make the public id the secret token). */
const MIN_NEGOTIATE_VERSION = 1;

/** Serves one {@link ConnectionHandler} on one path: negotiate, admission, connections, shutdown. */
export class ConnectionHandlerEndpoint implements ConnectionEndpoint {
  readonly path: string;
  readonly handler: ConnectionHandler;
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  readonly transports: ReadonlySet<TransportType>;
  readonly store: ConnectionStore;
  /** Every live connection. */
  readonly connections = new Set<RawConnection>();
  readonly #tokens = new WeakMap<RawConnection, string>();
  readonly #disconnects = new Set<Promise<void>>();
  #closing = false;

  constructor(path: string, handler: ConnectionHandler, options: ResolvedOptions, transports: readonly TransportType[]) {
    this.path = path;
    this.handler = handler;
    this.options = options;
    this.logger = options.logger;
    this.transports = new Set(transports);
    this.store = new ConnectionStore(options.unusedTokenTimeout);
  }

  async #authenticate(request: ConnectionRequest): Promise<Principal | null | Refusal> {
    const authenticate = this.options.authenticate;
    if (authenticate === undefined) return null;
    try {
      const user = await authenticate({ headers: request.headers, query: request.query, token: bearerToken(request) });
      return user !== null && typeof user === "object" ? user : null;
    } catch (error) {
      this.logger.debug({ path: this.path, err: error }, "Authentication failed.");
      return new Refusal(401, "Unauthorized");
    }
  }

  #owner(user: Principal | null, connectionId: string, request: ConnectionRequest): string | null {
    try {
      const id = this.options.userIdProvider({ connectionId, user, request });
      return typeof id === "string" && id.length > 0 ? id : null;
    } catch {
      return null;
    }
  }

  async negotiate(request: ConnectionRequest, availableTransports: readonly AvailableTransport[]): Promise<NegotiateResponse | Refusal> {
    const parameter = request.query.get("negotiateVersion");
    if (parameter !== undefined && !/^\d+$/.test(parameter)) return admitted({ error: "The client requested a non-integer protocol version." });
    const version = parameter === undefined ? 0 : Number(parameter);
    if (version < MIN_NEGOTIATE_VERSION) return admitted({ error: `The client requested version '${version}', but the server does not support this version.` });
    const user = await this.#authenticate(request);
    if (isRefusal(user)) return user;
    if (this.#closing) return new Refusal(503, "The server is shutting down.");
    if (this.store.pending >= this.options.maxPendingNegotiations) return new Refusal(503, "Too many connections are being negotiated; try again later.");
    const { connectionId, connectionToken } = this.store.create((id) => this.#owner(user, id, request));
    return admitted({ negotiateVersion: 1, connectionId, connectionToken, availableTransports });
  }

  async admit(request: ConnectionRequest, token: string | undefined): Promise<PendingConnection | Refusal> {
    const user = await this.#authenticate(request);
    if (isRefusal(user)) return user;
    if (this.#closing) return new Refusal(503, "The server is shutting down.");
    // Raw connections have no hub protocol, hence no stateful reconnect.
    if (token === undefined) return admitted({ connectionId: newId(), token: undefined, user, statefulReconnect: false });
    const entry = this.store.peek(token);
    if (entry === undefined) return new Refusal(404, "No Connection with that ID");
    if (entry.inUse) return new Refusal(409, "The connection already has a transport.");
    if (entry.owner !== this.#owner(user, entry.connectionId, request)) return new Refusal(403, "Forbidden");
    this.store.claim(token);
    return admitted({ connectionId: entry.connectionId, token, user, statefulReconnect: false });
  }

  abandon(pending: PendingConnection): void {
    if (pending.token !== undefined) this.store.release(pending.token);
  }

  connect(pending: PendingConnection, transport: TransportConnection, request: ConnectionRequest): ConnectionHandle {
    const connection = new RawClient(this, pending, transport, request);
    if (pending.token !== undefined) this.#tokens.set(connection, pending.token);
    this.connections.add(connection);
    connection.start();
    return connection;
  }

  /** A connection has ended: forget its token. */
  ended(connection: RawConnection): void {
    if (!this.connections.delete(connection)) return;
    const token = this.#tokens.get(connection);
    if (token !== undefined) this.store.release(token);
  }

  track(disconnect: Promise<void>): void {
    this.#disconnects.add(disconnect);
    void disconnect.then(() => this.#disconnects.delete(disconnect));
  }

  /** Closes every connection and refuses new ones (server shutdown). */
  closeAll(): void {
    this.#closing = true;
    for (const connection of [...this.connections]) connection.close();
    this.store.clear();
  }

  /** Resolves when every `onDisconnected` started so far has finished. */
  async drained(): Promise<void> {
    while (this.#disconnects.size > 0) await Promise.allSettled([...this.#disconnects]);
  }
}
