import "reflect-metadata";
import { container as rootContainer, type DependencyContainer, type InjectionToken } from "tsyringe";
import { CoreMismatchError, DependencyResolutionError, HubDefinitionError, OptionsError, SwitchboardError } from "../contracts/errors.js";
import { FlushScheduler } from "../fan-out/flush-scheduler.js";
import type { Hub, HubClass } from "../hubs/hub.js";
import type { AnyClient, ClientMethods } from "../fan-out/clients.js";
import { describeHub, type HubMethodExposure } from "../hubs/hub-descriptor.js";
import { HubEndpoint, type HubContext } from "./hub-endpoint.js";
import { transportList, type ConnectionEndpoint } from "./connection-endpoint.js";
import { ConnectionHandlerEndpoint, type ConnectionHandler, type ConnectionHandlerOptions } from "./connection-handler-endpoint.js";
import type { TransportType } from "../contracts/transport.js";
import { hubMethodExposure, resolveOptions, type ResolvedOptions, type ServerOptions } from "./options.js";
import { hubModules } from "../pipeline/use-modules.js";
import { LOGGER } from "../contracts/logger.js";
import type { HubStats, ServerStats } from "../contracts/server-observer.js";
import type { HubModuleRegistration, PipelineModule } from "../pipeline/hub-module.js";
import { HubPipeline } from "../pipeline/hub-pipeline.js";

/** A transport attached to a server; `stop` stops accepting and resolves once its sockets are gone. */
export interface AttachedTransport {
  stop(): Promise<void>;
}

/** The version of this copy of `@switchboard/core` (its package.json version; a test keeps them equal). */
export const CORE_VERSION = "0.1.0";

/** Carries the core version on every server, readable by plugins built against any copy of core. */
const kCoreVersion = Symbol.for("switchboard.core.version");

const contextTokens = new WeakMap<HubClass, symbol>();

/** Options of `server.addHub`. */
export interface HubEndpointOptions {
  /** Transports this hub accepts (ASP.NET's `HttpConnectionDispatcherOptions.Transports`). Default: all three. */
  readonly transports?: readonly TransportType[];
  /** Which methods of this hub clients may invoke; default: the server's `hubMethods` option. */
  readonly hubMethods?: HubMethodExposure;
}

/** Paths match case-insensitively, as in ASP.NET routing. */
function routeKey(path: string): string {
  return path.toLowerCase();
}

/**
 * The DI token of a hub's {@link HubContext}, for constructor injection in services:
 * `constructor(@inject(hubContextToken(ChatHub)) private chat: HubContext<ChatClient>)`.
 */
export function hubContextToken<T extends Hub<any>>(hub: HubClass<T>): InjectionToken<HubContext<any>> {
  let token = contextTokens.get(hub);
  if (token === undefined) contextTokens.set(hub, (token = Symbol(`HubContext<${hub.name}>`)));
  return token;
}

/**
 * A Switchboard server: hubs, options, connections. Transports (e.g. `@switchboard/transport-ws`)
 * attach to it and hand it their connections; `close()` shuts everything down.
 */
export class SwitchboardServer {
  readonly options: ResolvedOptions;
  /** The server's own DI container (a child of `options.container`); register services here. */
  readonly container: DependencyContainer;
  /** Hub endpoints by lower-cased path. */
  readonly #endpoints = new Map<string, HubEndpoint>();
  /** Raw connection handlers by lower-cased path. */
  readonly #handlers = new Map<string, ConnectionHandlerEndpoint>();
  readonly #byClass = new Map<HubClass, HubEndpoint>();
  readonly #transports = new Set<AttachedTransport>();
  readonly #scheduler = new FlushScheduler();
  readonly #modules = new Map<HubModuleRegistration, PipelineModule>();
  readonly #globalModules: readonly PipelineModule[];
  readonly #heartbeat: NodeJS.Timeout;
  /**
   * Settles when the server can reach the other servers: at once without a backplane, else when
   * the backplane has started (it rejects if it cannot start; the server still serves its own
   * connections). Await it before relying on cross-server sends, e.g. in tests.
   */
  readonly ready: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(options: ServerOptions) {
    if (options === null || typeof options !== "object") {
      throw new OptionsError("new SwitchboardServer(options) needs its options, at least the hub protocols: new SwitchboardServer({ protocols: [new JsonHubProtocol()], hubs: [ChatHub] }).");
    }
    this.options = resolveOptions(options);
    this.container = (options.container ?? rootContainer).createChildContainer();
    this.container.register(LOGGER, { useValue: this.options.logger });
    this.#globalModules = this.options.modules.map((module) => this.#module(module));
    for (const hub of options.hubs ?? []) this.addHub(hub);
    this.options.observer?.attached?.(() => this.stats());
    const backplane = this.options.backplane;
    this.ready =
      backplane === undefined
        ? Promise.resolve()
        : backplane.start({
            deliver: (hub, target, message) => this.#endpoints.get(routeKey(hub))?.deliverForeign(target, message),
            command: (hub, command) => this.#endpoints.get(routeKey(hub))?.applyCommand(command) ?? Promise.resolve(undefined),
            memberships: () => this.#memberships(),
          });
    // An unawaited failure must not crash the process: it is logged, and `ready` still rejects for callers.
    this.ready.catch((error: unknown) => this.options.logger.error({ err: error }, "The backplane could not start; this server serves only its own connections."));
    // One timer for every connection: keep-alive pings, client timeouts and, for stateful
    // reconnect, Acks (about once a second, §8.2) and the end of reconnect windows.
    const period = Math.max(5, Math.min(1000, this.options.keepAliveInterval / 4, this.options.clientTimeout / 4, this.options.disconnectTimeout / 4));
    this.#heartbeat = setInterval(() => this.#tick(), period);
    this.#heartbeat.unref();
  }

  /** Serves `hub` on the path of its `@Hub(path)` decorator, or on `path`. Paths match case-insensitively. */
  addHub(hub: HubClass, path?: string, options: HubEndpointOptions = {}): this {
    if (this.#closing) throw new SwitchboardError("SB_ERR_SERVER_CLOSED", "The server is closed.");
    if (this.#byClass.has(hub)) {
      throw new HubDefinitionError(`Hub '${hub.name}' is registered twice: list it once, either in the 'hubs' option or in one addHub() call.`);
    }
    const descriptor = describeHub(hub, path, options.hubMethods === undefined ? this.options.hubMethods : hubMethodExposure("hubMethods", options.hubMethods));
    const transports = transportList(options.transports, `Hub '${hub.name}'`);
    const taken = this.route(descriptor.path);
    if (taken !== undefined) {
      const holder = taken instanceof HubEndpoint ? `Hubs '${taken.descriptor.name}' and '${descriptor.name}' are` : `A connection handler and hub '${descriptor.name}' are`;
      throw new HubDefinitionError(`${holder} both registered on '${descriptor.path}': give each its own path.`);
    }
    for (const method of descriptor.methods.values()) {
      for (const requirement of method.authorization) {
        for (const policy of requirement.policies) {
          if (!this.options.policies.has(policy)) {
            throw new HubDefinitionError(`Hub '${descriptor.name}' method '${method.name}' needs policy '${policy}', which is not in the server's 'policies' option.`);
          }
        }
      }
    }
    const underscored = [...descriptor.methods.values()].filter((method) => method.name.startsWith("_")).map((method) => method.name);
    if (underscored.length > 0) {
      this.options.logger.warn(
        { hub: descriptor.name, methods: underscored },
        "Hub methods whose names start with '_' are invocable by clients; hide helpers with @NotHubMethod() or the 'hubMethods: \"decorated\"' option.",
      );
    }
    const modules = [...this.#globalModules, ...hubModules(hub).map((module) => this.#module(module))];
    const pipeline = new HubPipeline(modules, this.options.logger);
    const endpoint = new HubEndpoint(descriptor, this.options, this.container, this.#scheduler, pipeline, transports);
    this.#endpoints.set(routeKey(descriptor.path), endpoint);
    this.#byClass.set(hub, endpoint);
    this.container.register(hubContextToken(hub), { useValue: endpoint.context });
    return this;
  }

  /** A module instance, or one resolved once from this server's container. */
  #module(registration: HubModuleRegistration): PipelineModule {
    if (typeof registration !== "function") {
      if (registration === null || typeof registration !== "object") throw new HubDefinitionError("A pipeline module must be an object or a class.");
      return registration;
    }
    let module = this.#modules.get(registration);
    if (module === undefined) {
      try {
        module = this.container.resolve(registration);
      } catch (cause) {
        throw new DependencyResolutionError(`Pipeline module '${registration.name}' could not be constructed: ${(cause as Error)?.message ?? cause}`, { cause });
      }
      this.#modules.set(registration, module);
    }
    return module;
  }

  /**
   * Serves raw connections on `path` (ASP.NET's `MapConnectionHandler`): no hub protocol, the
   * handler gets each connection's data and writes its own, over any transport, with negotiate,
   * authentication (`authenticate`) and the server's limits (`maxBufferedBytes`).
   */
  mapConnectionHandler(path: string, handler: ConnectionHandler, options: ConnectionHandlerOptions = {}): this {
    if (this.#closing) throw new SwitchboardError("SB_ERR_SERVER_CLOSED", "The server is closed.");
    if (typeof path !== "string" || !path.startsWith("/")) throw new HubDefinitionError(`A connection handler needs a path starting with '/', got ${String(path)}.`);
    if (typeof handler?.onMessage !== "function") throw new HubDefinitionError("A connection handler needs an onMessage(connection, data) function.");
    if (this.route(path) !== undefined) throw new HubDefinitionError(`Two endpoints are registered on '${path}'.`);
    this.#handlers.set(routeKey(path), new ConnectionHandlerEndpoint(path, handler, this.options, transportList(options.transports, `Connection handler '${path}'`)));
    return this;
  }

  /** The hub endpoint serving `path` (matched case-insensitively), if any. */
  endpoint(path: string): HubEndpoint | undefined {
    return this.#endpoints.get(routeKey(path));
  }

  /** The hub or raw connection handler serving `path` (matched case-insensitively), for transports. */
  route(path: string): ConnectionEndpoint | undefined {
    const key = routeKey(path);
    return this.#endpoints.get(key) ?? this.#handlers.get(key);
  }

  /** All hub endpoints. */
  endpoints(): IterableIterator<HubEndpoint> {
    return this.#endpoints.values();
  }

  /** Sends to a hub's clients and manages its groups from outside hubs (HTTP handlers, timers, jobs). */
  hubContext<TClient extends ClientMethods = AnyClient>(hub: HubClass<Hub<TClient>>): HubContext<TClient> {
    const endpoint = this.#byClass.get(hub);
    if (endpoint === undefined) throw new HubDefinitionError(`Hub '${hub.name}' is not registered on this server.`);
    return endpoint.context as unknown as HubContext<TClient>;
  }

  /**
   * A snapshot for health endpoints: connections, groups and buffered bytes, in total and per hub
   * (by class name). One pass over the connections; no per-send cost.
   */
  stats(): ServerStats {
    const hubs: Record<string, HubStats> = {};
    let connections = 0;
    let groups = 0;
    let bufferedBytes = 0;
    for (const endpoint of this.#endpoints.values()) {
      const hub = endpoint.stats();
      hubs[endpoint.descriptor.name] = hub;
      connections += hub.connections;
      groups += hub.groups;
      bufferedBytes += hub.bufferedBytes;
    }
    return { connections, groups, bufferedBytes, hubs };
  }

  /** Called by transports when they attach; `close()` stops them. */
  attachTransport(transport: AttachedTransport): void {
    if (this.#closing) throw new SwitchboardError("SB_ERR_SERVER_CLOSED", "The server is closed.");
    this.#transports.add(transport);
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Stops accepting, sends Close (with `allowReconnect`) to every client, closes every connection
   * and resolves once every transport has let go of its sockets and every `onDisconnected` ran.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#heartbeat);
    for (const endpoint of this.#endpoints.values()) endpoint.closeAll();
    for (const handler of this.#handlers.values()) handler.closeAll();
    await Promise.allSettled([...this.#transports].map((transport) => transport.stop()));
    if (this.options.backplane !== undefined) {
      try {
        await this.options.backplane.close();
      } catch (error) {
        this.options.logger.warn({ err: error }, "The backplane did not close cleanly.");
      }
    }
    // onDisconnected handlers get shutdownTimeout to finish; a hung one must not hang close().
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.options.shutdownTimeout)));
    const drained = Promise.all([...this.#endpoints.values(), ...this.#handlers.values()].map((endpoint) => endpoint.drained())).then(() => true);
    const finished = await Promise.race([drained, expired]);
    clearTimeout(timer);
    if (!finished) this.options.logger.warn({ shutdownTimeout: this.options.shutdownTimeout }, "Some onDisconnected handlers were still running when the server closed.");
  }

  /** Every group membership of every hub's connections, for the backplane's directory. */
  *#memberships(): IterableIterator<readonly [hub: string, group: string, connectionId: string]> {
    for (const endpoint of this.#endpoints.values()) {
      for (const [group, connectionId] of endpoint.memberships()) yield [endpoint.descriptor.path, group, connectionId];
    }
  }

  #tick(): void {
    const now = Date.now();
    for (const endpoint of this.#endpoints.values()) endpoint.tick(now);
  }
}

Object.defineProperty(SwitchboardServer.prototype, kCoreVersion, { value: CORE_VERSION });

/**
 * For plugins (transports): returns `server` if it is a {@link SwitchboardServer} of the same copy
 * of `@switchboard/core` as the plugin's own, and throws otherwise: `SB_ERR_CORE_MISMATCH` when it
 * comes from another copy (an app must load exactly one core), `SB_ERR_OPTIONS` when it is no
 * server at all. `plugin` names the caller in the message.
 */
export function checkServer(server: unknown, plugin: string): SwitchboardServer {
  if (server instanceof SwitchboardServer) return server;
  const version = server !== null && typeof server === "object" ? (server as Record<symbol, unknown>)[kCoreVersion] : undefined;
  if (typeof version === "string") {
    throw new CoreMismatchError(
      `${plugin} was given a SwitchboardServer from another copy of @switchboard/core (the server's core is ${version}, ${plugin} was loaded with ${CORE_VERSION}). ` +
        "An app must load exactly one @switchboard/core: install @switchboard packages whose versions agree, then check with `npm ls @switchboard/core` (and `npm dedupe`).",
    );
  }
  throw new OptionsError(`${plugin} needs a SwitchboardServer as its first argument, got ${server === null ? "null" : typeof server === "object" ? (server.constructor?.name ?? "an object") : typeof server}.`);
}
