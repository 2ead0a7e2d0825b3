import type { DependencyContainer } from "tsyringe";
import { DefaultHubCallerClients, DefaultHubClients, type HubClients } from "./clients.js";
import { ConnectionStore, newId, type ClaimFailure } from "./connection-store.js";
import { DefaultGroupManager, type GroupManager } from "./group-manager.js";
import type { AnyClient, ClientMethods } from "./hub.js";
import type { HubCallerContext } from "./hub-caller-context.js";
import { HubConnection, type ConnectionHost } from "./hub-connection.js";
import type { HubDescriptor } from "./hub-descriptor.js";
import { activateHub, dispatchInvocation, type DispatchContext } from "./hub-dispatcher.js";
import { MessageType, PING_MESSAGE, type InvocationMessage, type StreamInvocationMessage } from "./hub-messages.js";
import type { FlushScheduler } from "./flush-scheduler.js";
import { DefaultHubLifetimeManager } from "./lifetime-manager.js";
import type { Logger } from "./logger.js";
import type { ResolvedOptions } from "./options.js";
import { SerializedRecord, type ConnectionHandle, type ConnectionRequest, type TransportConnection } from "./transport.js";

/** Sends to a hub's clients and manages its groups from outside hub methods. */
export interface HubContext<TClient extends ClientMethods = AnyClient> {
  readonly clients: HubClients<TClient>;
  readonly groups: GroupManager;
}

/** One entry of a negotiate response's `availableTransports`. */
export interface AvailableTransport {
  readonly transport: "WebSockets" | "ServerSentEvents" | "LongPolling";
  readonly transferFormats: readonly ("Text" | "Binary")[];
}

/** The negotiate answer (§1.2); always sent with HTTP 200, `error` included. */
export type NegotiateResponse =
  | { readonly error: string }
  | {
      readonly negotiateVersion: number;
      readonly connectionId: string;
      readonly connectionToken: string;
      readonly availableTransports: readonly AvailableTransport[];
    };

/** A connection reserved by {@link HubEndpoint.claim}, not started yet. */
export interface PendingConnection {
  readonly connectionId: string;
  readonly token: string | undefined;
}

/** Lowest negotiate version served: version 0 would make the public id the secret token. */
const MIN_NEGOTIATE_VERSION = 1;

class CallerContext implements HubCallerContext {
  readonly #connection: HubConnection;
  constructor(connection: HubConnection) {
    this.#connection = connection;
  }
  get connectionId(): string {
    return this.#connection.connectionId;
  }
  get userIdentifier(): string | null {
    return this.#connection.userIdentifier;
  }
  get items(): Map<unknown, unknown> {
    return this.#connection.items;
  }
  abort(): void {
    this.#connection.close({ type: MessageType.Close });
  }
}

/**
 * Everything one hub path serves: negotiate, connections, dispatch, groups and fan-out. Created by
 * the server for each `@Hub` class; transports reach it through `server.endpoint(path)`.
 */
export class HubEndpoint implements ConnectionHost, DispatchContext {
  readonly descriptor: HubDescriptor;
  readonly options: ResolvedOptions;
  readonly scheduler: FlushScheduler;
  readonly logger: Logger;
  readonly detailedErrors: boolean;
  readonly lifetimeManager: DefaultHubLifetimeManager;
  readonly groupManager: GroupManager;
  readonly context: HubContext;
  /** Every live connection, handshaking or connected (for keep-alive and shutdown). */
  readonly connections = new Set<HubConnection>();
  readonly store: ConnectionStore;
  readonly #container: DependencyContainer;
  readonly #protocolIndex = new Map<string, number>();
  readonly #pingRecords: SerializedRecord[];
  readonly #tokens = new WeakMap<HubConnection, string>();
  readonly #disconnects = new Set<Promise<void>>();

  constructor(descriptor: HubDescriptor, options: ResolvedOptions, container: DependencyContainer, scheduler: FlushScheduler) {
    this.descriptor = descriptor;
    this.options = options;
    this.scheduler = scheduler;
    this.logger = options.logger;
    this.detailedErrors = options.detailedErrors;
    this.#container = container;
    this.lifetimeManager = new DefaultHubLifetimeManager(options.protocols, options.logger);
    this.groupManager = new DefaultGroupManager(this.lifetimeManager);
    this.context = { clients: new DefaultHubClients(this.lifetimeManager), groups: this.groupManager };
    this.store = new ConnectionStore(options.unusedTokenTimeout);
    options.protocols.forEach((protocol, index) => this.#protocolIndex.set(protocol.name, index));
    this.#pingRecords = options.protocols.map((protocol) => new SerializedRecord(protocol.write(PING_MESSAGE)));
  }

  /** Answers `POST {path}/negotiate` given the raw `negotiateVersion` query value. */
  negotiate(versionParameter: string | undefined, availableTransports: readonly AvailableTransport[], owner?: unknown): NegotiateResponse {
    const version = versionParameter === undefined ? 0 : Number(versionParameter);
    if (versionParameter !== undefined && !/^\d+$/.test(versionParameter)) {
      return { error: "The client requested a non-integer protocol version." };
    }
    if (version < MIN_NEGOTIATE_VERSION) {
      return { error: `The client requested version '${version}', but the server does not support this version.` };
    }
    const { connectionId, connectionToken } = this.store.create(owner);
    return { negotiateVersion: 1, connectionId, connectionToken, availableTransports };
  }

  /**
   * Reserves a connection for a transport about to be accepted. With a `token` it must come from
   * `negotiate` (else "unknown" → 404, or "in-use" → 409); without one (the client's
   * `skipNegotiation`) a new connection id is made.
   */
  claim(token: string | undefined): PendingConnection | ClaimFailure {
    if (token === undefined) return { connectionId: newId(), token: undefined };
    const claimed = this.store.claim(token);
    if (typeof claimed === "string") return claimed;
    return { connectionId: claimed.connectionId, token };
  }

  /** Gives back a reservation whose transport never opened. */
  abandon(pending: PendingConnection): void {
    if (pending.token !== undefined) this.store.release(pending.token);
  }

  /** Starts the connection reserved by `claim` on its now open transport. */
  connect(pending: PendingConnection, transport: TransportConnection, request: ConnectionRequest): ConnectionHandle {
    const connection = new HubConnection(this, pending.connectionId, transport, request, this.#container.createChildContainer());
    if (pending.token !== undefined) this.#tokens.set(connection, pending.token);
    this.connections.add(connection);
    return connection;
  }

  protocolIndex(name: string): number {
    return this.#protocolIndex.get(name) ?? -1;
  }

  pingRecord(index: number): SerializedRecord {
    return this.#pingRecords[index]!;
  }

  connected(connection: HubConnection): void {
    connection.userIdentifier = this.#userIdOf(connection);
    connection.callerContext = new CallerContext(connection);
    connection.callerClients = new DefaultHubCallerClients(this.lifetimeManager, connection.connectionId);
    this.lifetimeManager.onConnected(connection);
    if (this.descriptor.hasOnConnected) void this.#runOnConnected(connection);
  }

  #userIdOf(connection: HubConnection): string | null {
    const provider = this.options.userIdProvider;
    if (provider === undefined) return null;
    try {
      const id = provider({ connectionId: connection.connectionId, request: connection.request });
      return typeof id === "string" && id.length > 0 ? id : null;
    } catch (error) {
      this.logger.error({ connectionId: connection.connectionId, err: error }, "userIdProvider failed; the connection has no user.");
      return null;
    }
  }

  async #runOnConnected(connection: HubConnection): Promise<void> {
    try {
      await activateHub(this, connection).onConnected!();
    } catch (error) {
      // Like ASP.NET: a failing onConnected ends the connection, and the client must not retry.
      this.logger.error({ connectionId: connection.connectionId, hub: this.descriptor.name, err: error }, "onConnected failed; closing the connection.");
      connection.close({ type: MessageType.Close, error: "Connection closed with an error." }, error instanceof Error ? error : undefined);
    }
  }

  invoke(connection: HubConnection, message: InvocationMessage | StreamInvocationMessage): Promise<void> {
    return dispatchInvocation(this, connection, message);
  }

  ended(connection: HubConnection, error: Error | undefined): void {
    if (!this.connections.delete(connection)) return;
    const token = this.#tokens.get(connection);
    if (token !== undefined) this.store.release(token);
    const registered = this.lifetimeManager.connections.get(connection.connectionId) === connection;
    if (!registered) {
      void connection.container.dispose();
      return;
    }
    this.lifetimeManager.onDisconnected(connection);
    const done = this.#runOnDisconnected(connection, error);
    this.#disconnects.add(done);
    void done.finally(() => this.#disconnects.delete(done));
  }

  async #runOnDisconnected(connection: HubConnection, error: Error | undefined): Promise<void> {
    try {
      if (this.descriptor.hasOnDisconnected) await activateHub(this, connection).onDisconnected!(error);
    } catch (cause) {
      this.logger.error({ connectionId: connection.connectionId, hub: this.descriptor.name, err: cause }, "onDisconnected failed.");
    } finally {
      await connection.container.dispose();
    }
  }

  /** Keep-alive and client-timeout check for every connection. */
  tick(now: number): void {
    for (const connection of this.connections) connection.tick(now);
  }

  /** Sends Close (allowReconnect: the server is going away) to every client and closes it. */
  closeAll(): void {
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
