import type { DependencyContainer } from "tsyringe";
import { DefaultHubCallerClients, DefaultHubClients, type AnyClient, type ClientAnswer, type ClientMethods, type HubClients, type InvokeOptions, type MessageSender } from "../fan-out/clients.js";
import { ClientResults } from "./client-results.js";
import { ConnectionStore, newId } from "../connections/connection-store.js";
import type { GroupManager } from "../fan-out/group-manager.js";
import { EndpointGroupManager } from "./endpoint-group-manager.js";
import { GroupRejoin } from "./group-rejoin.js";
import type { Hub } from "../hubs/hub.js";
import type { HubCallerContext } from "../hubs/hub-caller-context.js";
import { HubConnection, TransportLease, type ConnectionHost } from "../connections/hub-connection.js";
import { createConnectionScope } from "../connections/connection-scope.js";
import type { HubDescriptor } from "../hubs/hub-descriptor.js";
import { activateHub, dispatchInvocation, type DispatchContext } from "./hub-dispatcher.js";
import { MessageType, PING_MESSAGE, type InvocationMessage, type StreamInvocationMessage } from "../contracts/hub-messages.js";
import type { FlushScheduler } from "../fan-out/flush-scheduler.js";
import { DefaultHubLifetimeManager } from "../fan-out/lifetime-manager.js";
import type { Logger } from "../contracts/logger.js";
import type { AuthenticationRequest, ResolvedOptions } from "./options.js";
import type { Principal } from "../hubs/hub-caller-context.js";
import type { LifetimeContext, OutgoingContext } from "../pipeline/hub-module.js";
import type { HubPipeline } from "../pipeline/hub-pipeline.js";
import type { SendTarget } from "../contracts/send-target.js";
import type { Backplane, BackplaneScope, CommandAnswer, ConnectionCommand, EncodedMessage } from "../contracts/backplane.js";
import { DirectoryClusterGroups } from "./cluster-groups.js";
import { ForeignMessage } from "../fan-out/serialized-message.js";
import { admitted, isRefusal, Refusal } from "./admission.js";
import { SerializedRecord, TRANSPORT_TYPES, type ConnectionHandle, type ConnectionRequest, type TransportConnection, type TransportType } from "../contracts/transport.js";
import { ConnectionRequestContext, type RequestContext } from "../hubs/request-context.js";
import type { ConnectionEndpoint } from "./connection-endpoint.js";
import type { ConnectionEndStatus, HubStats, ServerObserver } from "../contracts/server-observer.js";

/** Sends to a hub's clients and manages its groups from outside hub methods. */
export interface HubContext<TClient extends ClientMethods = AnyClient> {
  readonly clients: HubClients<TClient>;
  readonly groups: GroupManager;
}

/** When a principal's authentication expires: its `exp` claim (seconds since the epoch, as in a JWT), in ms; never without one. */
function authenticationExpiry(user: Principal | null): number {
  const exp = user?.exp;
  return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : Infinity;
}

/** One entry of a negotiate response's `availableTransports`. */
export interface AvailableTransport {
  readonly transport: TransportType;
  readonly transferFormats: readonly ("Text" | "Binary")[];
}

/** The negotiate answer body (§1.2); sent with HTTP 200, `error` included. */
export type NegotiateResponse =
  | { readonly error: string }
  | {
      readonly negotiateVersion: number;
      readonly connectionId: string;
      readonly connectionToken: string;
      /** Present (true) when the client asked for stateful reconnect and the server allows it (§8.1). */
      readonly useStatefulReconnect?: true;
      readonly availableTransports: readonly AvailableTransport[];
    };

export { Refusal, isRefusal, isAdmission } from "./admission.js";

/** A connection reserved by {@link HubEndpoint.admit}, not started yet. */
export interface PendingConnection {
  readonly connectionId: string;
  readonly token: string | undefined;
  readonly user: Principal | null;
  /** The token's negotiate offered stateful reconnect (always false without a token). */
  readonly statefulReconnect: boolean;
}

/** Transports as ASP.NET Core's `signalr.transport` metric attribute names them. */
const SIGNALR_TRANSPORT: Readonly<Record<TransportType, string>> = { WebSockets: "web_sockets", ServerSentEvents: "server_sent_events", LongPolling: "long_polling" };

const NOTHING = (): void => undefined;
const RESOLVED = Promise.resolve();
const PERSIST = Object.freeze({ persist: true });
const CONNECTED = Promise.resolve(true);
const NO_ANSWER: CommandAnswer = Object.freeze({});

/** Lowest negotiate version served: version 0 would make the public id the secret token. */
const MIN_NEGOTIATE_VERSION = 1;

const UNAUTHENTICATED = new Refusal(401, "Unauthorized");
const FORBIDDEN = new Refusal(403, "Forbidden");
const UNKNOWN = new Refusal(404, "No Connection with that ID");
const IN_USE = new Refusal(409, "The connection already has a transport.");
const REATTACHING = new Refusal(409, "The connection is already reconnecting.");
const ENDED = new Refusal(404, "The connection has ended.");
const SHUTTING_DOWN = new Refusal(503, "The server is shutting down.");
const TOO_MANY_PENDING = new Refusal(503, "Too many connections are being negotiated; try again later.");

/** The bearer token of a request: `Authorization: Bearer …`, else the `access_token` query parameter. */
export function bearerToken(request: ConnectionRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === "string") {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match !== null) return match[1];
  }
  const query = request.query.get("access_token");
  return query === undefined || query.length === 0 ? undefined : query;
}

class CallerContext implements HubCallerContext {
  readonly #connection: HubConnection;
  #request: RequestContext | undefined;
  constructor(connection: HubConnection) {
    this.#connection = connection;
  }
  get connectionId(): string {
    return this.#connection.connectionId;
  }
  get userIdentifier(): string | null {
    return this.#connection.userIdentifier;
  }
  get user(): Principal | null {
    return this.#connection.user;
  }
  get items(): Map<unknown, unknown> {
    return this.#connection.items;
  }
  get request(): RequestContext {
    return (this.#request ??= new ConnectionRequestContext(this.#connection.request));
  }
  abort(): void {
    this.#connection.close({ type: MessageType.Close });
  }
}

/**
 * Everything one hub path serves: negotiate, admission (authentication, authorization, token
 * binding), connections, dispatch, groups and fan-out. Created by the server for each `@Hub`
 * class; transports reach it through `server.route(path)`.
 */
export class HubEndpoint implements ConnectionEndpoint, ConnectionHost, DispatchContext, MessageSender {
  readonly descriptor: HubDescriptor;
  /** The transports this hub accepts (ASP.NET's `HttpConnectionDispatcherOptions.Transports`). */
  readonly transports: ReadonlySet<TransportType>;
  readonly options: ResolvedOptions;
  readonly scheduler: FlushScheduler;
  readonly logger: Logger;
  readonly detailedErrors: boolean;
  readonly pipeline: HubPipeline;
  readonly lifetimeManager: DefaultHubLifetimeManager<HubConnection>;
  readonly groupManager: GroupManager;
  readonly context: HubContext;
  readonly #rejoin: GroupRejoin;
  /** Every live connection, handshaking or connected (for keep-alive and shutdown). */
  readonly connections = new Set<HubConnection>();
  readonly store: ConnectionStore;
  readonly #container: DependencyContainer;
  readonly #protocolIndex = new Map<string, number>();
  readonly #pingRecords: SerializedRecord[];
  readonly #disconnects = new Set<Promise<void>>();
  readonly #onConnectedRuns = new WeakMap<HubConnection, Promise<boolean>>();
  /** Stateful-reconnect connections by token: the ones a new transport may resume. */
  readonly #resumable = new Map<string, HubConnection>();
  /** Admitted reattaches, until their transport opens or is abandoned. */
  readonly #reattaches = new WeakMap<PendingConnection, HubConnection>();
  readonly #observer: ServerObserver | undefined;
  readonly #clientResults: ClientResults;
  readonly #backplane: Backplane | undefined;
  /** Start time and transport of each connection, kept only when there is an observer. */
  readonly #started = new WeakMap<HubConnection, { at: number; transport: string }>();
  #closing = false;

  constructor(descriptor: HubDescriptor, options: ResolvedOptions, container: DependencyContainer, scheduler: FlushScheduler, pipeline: HubPipeline, transports: readonly TransportType[] = TRANSPORT_TYPES) {
    this.descriptor = descriptor;
    this.transports = new Set(transports);
    this.options = options;
    this.scheduler = scheduler;
    this.logger = options.logger;
    this.detailedErrors = options.detailedErrors;
    this.pipeline = pipeline;
    this.#container = container;
    const backplane = (this.#backplane = options.backplane);
    const remote = backplane === undefined ? undefined : (command: ConnectionCommand): Promise<CommandAnswer> => backplane.command(descriptor.path, command);
    this.#clientResults = new ClientResults(options.protocols, options.logger, options.clientResultTimeout, options, remote);
    const observer = (this.#observer = options.observer);
    let onSent: ((deliveries: readonly number[]) => void) | undefined;
    if (observer?.messageSent !== undefined) {
      const names = options.protocols.map((protocol) => protocol.name);
      onSent = (deliveries) => {
        try {
          observer.messageSent!(descriptor.name, names, deliveries); // no closure per send
        } catch (error) {
          this.logger.error({ hub: descriptor.name, err: error }, "The server observer threw.");
        }
      };
    }
    // With a backplane this server subscribes to what it has local connections in (and to "all").
    const interest =
      backplane === undefined
        ? undefined
        : (scope: BackplaneScope, key: string, present: boolean): void => {
            if (present) backplane.subscribe(descriptor.path, scope, key);
            else backplane.unsubscribe(descriptor.path, scope, key);
          };
    backplane?.subscribe(descriptor.path, "all", "");
    // With a directory every local join and leave is recorded for the cluster-wide queries.
    const directory = options.directory;
    const membership = directory === undefined ? undefined : (group: string, connectionId: string, joined: boolean): void => directory.track(descriptor.path, group, connectionId, joined);
    this.lifetimeManager = new DefaultHubLifetimeManager<HubConnection>(options.protocols, options.logger, { onSent, maxGroupsPerConnection: options.maxGroupsPerConnection, interest, membership, scheduler });
    this.#rejoin = new GroupRejoin(this);
    const cluster = directory === undefined ? undefined : new DirectoryClusterGroups(descriptor.path, directory);
    this.groupManager = new EndpointGroupManager(descriptor.name, this.lifetimeManager, options.membershipStore, this.#rejoin, remote, cluster);
    this.context = { clients: new DefaultHubClients(this), groups: this.groupManager };
    this.store = new ConnectionStore(options.unusedTokenTimeout);
    options.protocols.forEach((protocol, index) => this.#protocolIndex.set(protocol.name, index));
    this.#pingRecords = options.protocols.map((protocol) => new SerializedRecord(protocol.write(PING_MESSAGE)));
  }

  // ---- admission ---------------------------------------------------------------------------

  /** Authenticates, then applies the hub's `@Authorize` and the modules' `authorizeConnect`. */
  async #authorize(request: ConnectionRequest): Promise<Principal | null | Refusal> {
    let user: Principal | null = null;
    const authenticate = this.options.authenticate;
    if (authenticate !== undefined) {
      const auth: AuthenticationRequest = { headers: request.headers, query: request.query, token: bearerToken(request) };
      try {
        const result = await authenticate(auth);
        user = result !== null && typeof result === "object" ? result : null;
      } catch (error) {
        this.logger.debug({ hub: this.descriptor.name, err: error }, "Authentication failed.");
        return UNAUTHENTICATED;
      }
    }
    if (user === null && this.descriptor.authorize !== undefined) return UNAUTHENTICATED;
    if (this.options.closeOnAuthenticationExpiration && authenticationExpiry(user) <= Date.now()) return UNAUTHENTICATED;
    if (this.pipeline.hasAuthorizeConnect) {
      try {
        if (!(await this.pipeline.authorizeConnect({ hubName: this.descriptor.name, user, request }))) return FORBIDDEN;
      } catch (error) {
        this.logger.error({ hub: this.descriptor.name, err: error }, "authorizeConnect threw; refusing the connection.");
        return FORBIDDEN;
      }
    }
    return user;
  }

  #userKey(user: Principal | null, connectionId: string, request: ConnectionRequest): string | null {
    try {
      const id = this.options.userIdProvider({ connectionId, user, request });
      return typeof id === "string" && id.length > 0 ? id : null;
    } catch (error) {
      this.logger.error({ connectionId, err: error }, "userIdProvider failed; the connection has no user.");
      return null;
    }
  }

  /**
   * Answers `POST {path}/negotiate`: a refusal (401/403) for an unauthenticated or unauthorized
   * request, else a body for HTTP 200. The new token is bound to the requesting user.
   */
  async negotiate(request: ConnectionRequest, availableTransports: readonly AvailableTransport[]): Promise<NegotiateResponse | Refusal> {
    const versionParameter = request.query.get("negotiateVersion");
    if (versionParameter !== undefined && !/^\d+$/.test(versionParameter)) {
      return admitted({ error: "The client requested a non-integer protocol version." });
    }
    const version = versionParameter === undefined ? 0 : Number(versionParameter);
    if (version < MIN_NEGOTIATE_VERSION) {
      return admitted({ error: `The client requested version '${version}', but the server does not support this version.` });
    }
    const user = await this.#authorize(request);
    if (isRefusal(user)) return user;
    if (this.#closing) return SHUTTING_DOWN; // close() began while authenticate ran
    if (this.store.pending >= this.options.maxPendingNegotiations) {
      this.logger.debug({ hub: this.descriptor.name }, "Negotiate refused: too many unused connection tokens.");
      return TOO_MANY_PENDING;
    }
    const stateful = this.options.statefulReconnect && request.query.get("useStatefulReconnect") === "true";
    const { connectionId, connectionToken } = this.store.create((id) => this.#userKey(user, id, request), stateful);
    if (stateful) return admitted({ negotiateVersion: 1, connectionId, connectionToken, useStatefulReconnect: true, availableTransports });
    return admitted({ negotiateVersion: 1, connectionId, connectionToken, availableTransports });
  }

  /**
   * Admits a transport's connect request. With a `token` it must come from `negotiate` (404
   * otherwise), be unused (409) and be presented by the user who negotiated it (403); without one
   * (the client's `skipNegotiation`) a new connection id is made. Authentication and authorization
   * apply as for negotiate. On success the connection is reserved until `connect` or `abandon`.
   *
   * A token already in use is a reattach (stateful reconnect, §8.4): admitted only for a
   * connection that negotiated the feature and is not ending (404 once it has ended or the server
   * closed it, 409 for a connection without the feature or a reattach already under way), and only
   * for the user who negotiated it (403).
   */
  async admit(request: ConnectionRequest, token: string | undefined): Promise<PendingConnection | Refusal> {
    const user = await this.#authorize(request);
    if (isRefusal(user)) return user;
    if (this.#closing) return SHUTTING_DOWN;
    if (token === undefined) return admitted({ connectionId: newId(), token: undefined, user, statefulReconnect: false });
    const entry = this.store.peek(token);
    if (entry === undefined) return UNKNOWN;
    const resumed = entry.inUse ? this.#resumable.get(token) : undefined;
    if (entry.inUse && resumed === undefined) return IN_USE;
    if (entry.owner !== this.#userKey(user, entry.connectionId, request)) {
      this.logger.warn({ hub: this.descriptor.name, connectionId: entry.connectionId }, "A connection token was presented by a different user; refused.");
      return FORBIDDEN;
    }
    const pending: PendingConnection = admitted({ connectionId: entry.connectionId, token: entry.token, user, statefulReconnect: entry.statefulReconnect });
    if (resumed !== undefined) {
      if (!resumed.resumable) return ENDED;
      if (resumed.reattaching) return REATTACHING;
      resumed.reattaching = true; // checked and set in one synchronous step, like claim below
      this.#reattaches.set(pending, resumed);
      return pending;
    }
    this.store.claim(token); // peek and claim run in one synchronous step: no other admit can interleave
    return pending;
  }

  /** Gives back a reservation whose transport never opened. */
  abandon(pending: PendingConnection): void {
    const resumed = this.#reattaches.get(pending);
    if (resumed !== undefined) {
      this.#reattaches.delete(pending);
      resumed.reattaching = false;
      return;
    }
    if (pending.token !== undefined) this.store.release(pending.token);
  }

  /**
   * Starts the connection reserved by `admit` on its now open transport, or resumes the one a
   * reattach names. A reattach to a connection that ended meanwhile closes `transport` at once.
   */
  connect(pending: PendingConnection, transport: TransportConnection, request: ConnectionRequest): ConnectionHandle {
    const resumed = this.#reattaches.get(pending);
    if (resumed !== undefined) {
      this.#reattaches.delete(pending);
      resumed.reattaching = false;
      const lease = new TransportLease(resumed, transport);
      if (this.options.closeOnAuthenticationExpiration) resumed.authenticationExpiresAt = authenticationExpiry(pending.user); // a reattach may bring a fresh token
      if (!resumed.reattach(transport)) {
        transport.close();
        return lease;
      }
      this.logger.debug({ connectionId: resumed.connectionId }, "Connection resumed on a new transport.");
      this.#reconnected(resumed);
      return lease;
    }
    const connection = new HubConnection(this, pending.connectionId, transport, request, pending.token, pending.statefulReconnect);
    connection.user = pending.user;
    if (this.options.closeOnAuthenticationExpiration) connection.authenticationExpiresAt = authenticationExpiry(pending.user);
    this.connections.add(connection);
    const observer = this.#observer;
    if (observer !== undefined) {
      const transportName = request.transport === undefined ? "unknown" : SIGNALR_TRANSPORT[request.transport];
      this.#started.set(connection, { at: performance.now(), transport: transportName });
      if (observer.connectionStarted !== undefined) this.#observe(() => observer.connectionStarted!(this.descriptor.name, transportName));
    }
    // A connection that may be resumed on another transport gets a handle per transport.
    return pending.statefulReconnect ? new TransportLease(connection, transport) : connection;
  }

  // ---- connection host -----------------------------------------------------------------------

  protocolIndex(name: string): number {
    return this.#protocolIndex.get(name) ?? -1;
  }

  pingRecord(index: number): SerializedRecord {
    return this.#pingRecords[index]!;
  }

  callerClients(connection: HubConnection): unknown {
    return new DefaultHubCallerClients(this, connection.connectionId);
  }

  callerContext(connection: HubConnection): HubCallerContext {
    return new CallerContext(connection);
  }

  connectionScope(): DependencyContainer {
    return createConnectionScope(this.#container);
  }

  connected(connection: HubConnection): Promise<void> | undefined {
    connection.userIdentifier = this.#userKey(connection.user, connection.connectionId, connection.request);
    this.lifetimeManager.onConnected(connection);
    if (connection.resumable) {
      const token = connection.token;
      if (token !== undefined) this.#resumable.set(token, connection);
    }
    // Groups from a rejoin token or the membership store are joined first: onConnected and the
    // first invocation already see them, and the client hears `sb.rejoined` before anything else.
    const restoring = this.#rejoin.restore(connection);
    if (!this.descriptor.hasOnConnected && !this.pipeline.hasConnected) {
      if (restoring === undefined) return undefined;
      this.#onConnectedRuns.set(connection, restoring.then(() => true));
      return restoring;
    }
    // The connection holds its invocations, and its onDisconnected, until onConnected has finished.
    const run = restoring === undefined ? this.#runOnConnected(connection) : restoring.then(() => this.#runOnConnected(connection));
    this.#onConnectedRuns.set(connection, run);
    return run.then(NOTHING);
  }

  #lifetimeContext(connection: HubConnection, hub: Hub<any>): LifetimeContext {
    return { hubName: this.descriptor.name, hub, connection: connection.callerContext, services: connection.container };
  }

  /** Runs onConnected (through the modules); false when it failed and the connection was closed. */
  async #runOnConnected(connection: HubConnection): Promise<boolean> {
    try {
      const hub = activateHub(this, connection);
      if (this.pipeline.hasConnected) await this.pipeline.onConnected(this.#lifetimeContext(connection, hub), () => hub.onConnected?.());
      else await hub.onConnected!();
      return true;
    } catch (error) {
      // Like ASP.NET: a failing onConnected ends the connection, and the client must not retry.
      this.logger.error({ connectionId: connection.connectionId, hub: this.descriptor.name, err: error }, "onConnected failed; closing the connection.");
      this.pipeline.reportError({ hubName: this.descriptor.name, stage: "connected", connection: connection.callerContext }, error);
      connection.close({ type: MessageType.Close, error: "Connection closed with an error." }, error instanceof Error ? error : undefined);
      return false;
    }
  }

  invoke(connection: HubConnection, message: InvocationMessage | StreamInvocationMessage): Promise<void> {
    const observer = this.#observer;
    if (observer?.invocationCompleted === undefined) return dispatchInvocation(this, connection, message) as Promise<unknown> as Promise<void>;
    return this.#timedInvoke(observer, connection, message);
  }

  async #timedInvoke(observer: ServerObserver, connection: HubConnection, message: InvocationMessage | StreamInvocationMessage): Promise<void> {
    const started = performance.now();
    const outcome = await dispatchInvocation(this, connection, message);
    const method = outcome === undefined ? undefined : this.descriptor.methods.get(message.target.toLowerCase());
    if (method !== undefined) this.#observe(() => observer.invocationCompleted!(this.descriptor.name, method.name, outcome!, (performance.now() - started) / 1000));
  }

  /** Calls the observer; one that throws is logged, never lets the server's work fail. */
  #observe(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.logger.error({ hub: this.descriptor.name, err: error }, "The server observer threw.");
    }
  }

  #connectionEnded(connection: HubConnection, error: Error | undefined): void {
    const observer = this.#observer!;
    const started = this.#started.get(connection);
    if (started === undefined || observer.connectionEnded === undefined) return;
    const code = (error as { code?: unknown } | undefined)?.code;
    const status: ConnectionEndStatus = this.#closing ? "app_shutdown" : code === "SB_ERR_TIMEOUT" ? "timeout" : code === "SB_ERR_LIMIT_BUFFERED_BYTES" ? "slow_consumer" : "normal_closure";
    this.#observe(() => observer.connectionEnded!(this.descriptor.name, started.transport, status, (performance.now() - started.at) / 1000));
  }

  /** Counts for `server.stats()`: one pass over this hub's connections. */
  stats(): HubStats {
    let bufferedBytes = 0;
    for (const connection of this.connections) bufferedBytes += connection.bufferedBytes;
    return { path: this.descriptor.path, connections: this.connections.size, groups: this.lifetimeManager.groups.size, bufferedBytes };
  }

  ended(connection: HubConnection, error: Error | undefined): void {
    if (!this.connections.delete(connection)) return;
    if (this.#observer !== undefined) this.#connectionEnded(connection, error);
    this.#rejoin.ended(connection);
    const token = connection.token;
    if (token !== undefined) {
      this.store.release(token);
      this.#resumable.delete(token);
    }
    if (this.lifetimeManager.connections.get(connection.connectionId) !== connection) return;
    // Membership ends at once; user code (onDisconnected) runs later, never inside the caller's
    // stack — which may be a fan-out loop closing a slow consumer — and only after onConnected
    // finished. Like ASP.NET, a connection whose onConnected failed gets no onDisconnected.
    this.lifetimeManager.onDisconnected(connection);
    const connectedRun = this.#onConnectedRuns.get(connection) ?? CONNECTED;
    const done = connectedRun.then((succeeded) => (succeeded ? this.#runOnDisconnected(connection, error) : undefined));
    this.#disconnects.add(done);
    done.then(
      () => this.#disconnects.delete(done),
      () => this.#disconnects.delete(done),
    );
  }

  /** Runs `onReconnected` (through the modules) after a reattach, once `onConnected` has succeeded. */
  #reconnected(connection: HubConnection): void {
    if (!this.descriptor.hasOnReconnected && !this.pipeline.hasReconnected) return;
    const connectedRun = this.#onConnectedRuns.get(connection) ?? CONNECTED;
    const done = connectedRun.then((succeeded) => (succeeded && connection.connected ? this.#runOnReconnected(connection) : undefined));
    this.#disconnects.add(done);
    done.then(
      () => this.#disconnects.delete(done),
      () => this.#disconnects.delete(done),
    );
  }

  async #runOnReconnected(connection: HubConnection): Promise<void> {
    try {
      const hub = activateHub(this, connection);
      if (this.pipeline.hasReconnected) await this.pipeline.onReconnected(this.#lifetimeContext(connection, hub), () => hub.onReconnected?.());
      else await hub.onReconnected!();
    } catch (error) {
      // The connection has already resumed: a failing hook is reported, not fatal.
      this.logger.error({ connectionId: connection.connectionId, hub: this.descriptor.name, err: error }, "onReconnected failed.");
      this.pipeline.reportError({ hubName: this.descriptor.name, stage: "reconnected", connection: connection.callerContext }, error);
    }
  }

  async #runOnDisconnected(connection: HubConnection, error: Error | undefined): Promise<void> {
    try {
      if (this.pipeline.hasDisconnected) {
        const hub = activateHub(this, connection);
        await this.pipeline.onDisconnected(this.#lifetimeContext(connection, hub), error, () => hub.onDisconnected?.(error));
      } else if (this.descriptor.hasOnDisconnected) {
        await activateHub(this, connection).onDisconnected!(error);
      }
    } catch (cause) {
      this.logger.error({ connectionId: connection.connectionId, hub: this.descriptor.name, err: cause }, "onDisconnected failed.");
      this.pipeline.reportError({ hubName: this.descriptor.name, stage: "disconnected", connection: connection.callerContext }, cause);
    }
    // The connection's child container is not dispose()d: tsyringe would also dispose parent
    // singletons first resolved through it. Release connection resources in onDisconnected.
  }

  // ---- sending -------------------------------------------------------------------------------

  /**
   * Every hub-initiated send goes through here: the `outgoing` modules run once per send (not per
   * recipient), then the lifetime manager delivers. With no module there is no context and no
   * closure: the call goes straight to the lifetime manager.
   */
  send(target: SendTarget, message: InvocationMessage): void | Promise<void> {
    if (!this.pipeline.hasOutgoing) return this.#backplane === undefined ? this.lifetimeManager.send(target, message) : this.#sendEverywhere(target, message);
    const ctx: OutgoingContext = { hubName: this.descriptor.name, target, message };
    const deliver = (final: OutgoingContext): void | Promise<void> => (this.#backplane === undefined ? this.lifetimeManager.send(final.target, final.message) : this.#sendEverywhere(final.target, final.message));
    return this.pipeline.outgoing(ctx, deliver).catch((error: unknown) => {
      this.pipeline.reportError({ hubName: this.descriptor.name, stage: "outgoing" }, error);
      throw error;
    });
  }

  /**
   * With a backplane: delivers to this server's recipients, then publishes the send once, already
   * encoded by every protocol, for the other servers (nothing is published for a connection that is
   * here). Rejects when the backplane cannot publish; local recipients have the message by then.
   */
  #sendEverywhere(target: SendTarget, message: InvocationMessage): Promise<void> {
    const serialized = this.lifetimeManager.sendLocal(target, message);
    if (target.kind === "connection" && this.lifetimeManager.connections.has(target.connectionId)) return RESOLVED;
    return this.#backplane!.publish(this.descriptor.path, target, serialized.everyEncoding());
  }

  /** A command from another server for one of this server's connections; `undefined` when it is not here. */
  async applyCommand(command: ConnectionCommand): Promise<CommandAnswer | undefined> {
    const connection = this.lifetimeManager.connections.get(command.connectionId);
    if (connection === undefined) return undefined;
    switch (command.op) {
      case "add":
      case "remove": {
        const options = command.persist === true ? PERSIST : undefined;
        if (command.op === "add") await this.groupManager.add(command.connectionId, command.group, options);
        else await this.groupManager.remove(command.connectionId, command.group, options);
        return NO_ANSWER;
      }
      case "invoke":
        return this.#clientResults.answerRemote(connection, command);
      case "cancel":
        connection.streams.forgetResult(command.invocationId);
        return NO_ANSWER;
    }
  }

  /** Every group membership of this hub's connections, for a directory rewriting them. */
  *memberships(): IterableIterator<readonly [group: string, connectionId: string]> {
    for (const connection of this.lifetimeManager.connections.values()) for (const group of connection.groups) yield [group, connection.connectionId];
  }

  /** A send published by another server: delivered to this server's recipients, as encoded there. */
  deliverForeign(target: SendTarget, message: EncodedMessage): void {
    try {
      this.lifetimeManager.deliver(target, new ForeignMessage(this.options.protocols, message));
    } catch (error) {
      // E.g. a malformed group name from another server's version: drop it, never crash.
      this.logger.warn({ hub: this.descriptor.name, err: error }, "A message from the backplane could not be delivered and was dropped.");
    }
  }

  /** Client results: asks one connection (see client-results.ts). Outgoing modules do not see these. */
  invokeClient(connectionId: string, message: InvocationMessage, options: InvokeOptions): Promise<unknown> {
    return this.#clientResults.invoke(this.lifetimeManager.connections.get(connectionId), connectionId, message, options);
  }

  /** Client results from every member of `group` (on every server, with a directory). */
  async invokeGroup(group: string, message: InvocationMessage, options: InvokeOptions): Promise<Map<string, ClientAnswer>> {
    const local = this.lifetimeManager.groups.membersOf(group) ?? [];
    const remote: string[] = [];
    if (this.options.directory !== undefined) {
      // Members of other servers, listed a page at a time; the message is still encoded once.
      let cursor: string | undefined;
      do {
        const page = await this.groupManager.cluster.members(group, { cursor, limit: 1000 });
        for (const id of page.items) if (!this.lifetimeManager.connections.has(id)) remote.push(id);
        cursor = page.cursor;
      } while (cursor !== undefined);
    }
    return this.#clientResults.invokeAll(local, message, options, remote);
  }

  /** Which of `claimed` groups a new connection may rejoin (the modules decide); called by {@link GroupRejoin} at connect. */
  rejoiningGroups(connection: HubConnection, claimed: readonly string[]): Promise<readonly string[]> {
    return this.pipeline.rejoiningGroups(this.#lifetimeContext(connection, activateHub(this, connection)), claimed);
  }

  // ---- keep-alive and shutdown ---------------------------------------------------------------

  /** Keep-alive and client-timeout check for every connection. */
  tick(now: number): void {
    for (const connection of this.connections) connection.tick(now);
  }

  /**
   * Sends Close (allowReconnect: the server is going away) to every client and closes it;
   * connections in their reconnect window end too.
   */
  closeAll(): void {
    this.#closing = true;
    for (const connection of [...this.connections]) {
      if (connection.connected) connection.close({ type: MessageType.Close, allowReconnect: true });
      else connection.transportClosed();
    }
    this.store.clear();
  }

  /** Resolves when every `onDisconnected` started so far has finished. */
  async drained(): Promise<void> {
    while (this.#disconnects.size > 0) await Promise.allSettled([...this.#disconnects]);
  }
}
