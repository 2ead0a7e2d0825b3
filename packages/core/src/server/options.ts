import type { DependencyContainer } from "tsyringe";
import type { Backplane, GroupDirectory } from "../contracts/backplane.js";
import { OptionsError } from "../contracts/errors.js";
import type { HubProtocol } from "../contracts/hub-protocol.js";
import { consoleLogger, type Logger } from "../contracts/logger.js";
import type { HubClass } from "../hubs/hub.js";
import type { ConnectionRequest } from "../contracts/transport.js";
import type { AuthorizationPolicy } from "../hubs/authorization.js";
import type { HubMethodExposure } from "../hubs/hub-descriptor.js";
import type { Principal } from "../hubs/hub-caller-context.js";
import type { HubModuleRegistration } from "../pipeline/hub-module.js";
import type { ServerObserver } from "../contracts/server-observer.js";
import type { MembershipStore } from "../contracts/membership-store.js";
import { MemoryMembershipStore } from "./memory-membership-store.js";
import { RejoinTokens, type RejoinOptions } from "./rejoin-token.js";

/** The facts a `userIdProvider` sees about a connecting client. */
export interface UserIdContext {
  readonly connectionId: string;
  /** The principal from `authenticate`, or null. */
  readonly user: Principal | null;
  readonly request: ConnectionRequest;
}

/** What `authenticate` sees: the negotiate or connect request, with the bearer token extracted. */
export interface AuthenticationRequest {
  readonly headers: ConnectionRequest["headers"];
  readonly query: ConnectionRequest["query"];
  /** From `Authorization: Bearer …`, else the `access_token` query parameter (browsers' WebSockets). */
  readonly token: string | undefined;
}

/** The default user identifier: the principal's string `sub` or `id` claim. */
export function defaultUserId({ user }: UserIdContext): string | null {
  if (user === null) return null;
  const id = Object.hasOwn(user, "sub") ? user.sub : Object.hasOwn(user, "id") ? user.id : undefined;
  return typeof id === "string" && id.length > 0 ? id : null;
}

/** Options of a {@link SwitchboardServer}. Every limit has a safe default; times are milliseconds, sizes bytes. */
export interface ServerOptions {
  /** Hub protocols offered to clients (at least one), e.g. `new JsonHubProtocol()`. */
  readonly protocols: readonly HubProtocol[];
  /** Hub classes to serve (each decorated with `@Hub(path)`); more can be added with `addHub`. */
  readonly hubs?: readonly HubClass[];
  /** Parent DI container; the server works in a child of it. Default: tsyringe's root container. */
  readonly container?: DependencyContainer;
  /** Send a Ping when nothing was sent for this long. Default 15 000. */
  readonly keepAliveInterval?: number;
  /** Close a connection that sent no complete message for this long, armed at the handshake. Default 30 000. */
  readonly clientTimeout?: number;
  /** Time allowed for the handshake after the transport opens. Default 15 000. */
  readonly handshakeTimeout?: number;
  /** Largest incoming hub message (and handshake); larger closes that connection. Default 32 768. */
  readonly maxMessageSize?: number;
  /** Deepest nesting of arrays/objects in an incoming message. Default 64. */
  readonly maxDepth?: number;
  /** Unsent bytes allowed per connection before it is closed as a slow consumer. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** Longest accepted invocation id. Default 256. */
  readonly maxInvocationIdLength?: number;
  /** Hub method calls of one connection that run at the same time; more wait in order. Default 1. */
  readonly maxParallelInvocations?: number;
  /** Waiting calls per connection before the transport stops reading from it. Default 64. */
  readonly maxQueuedInvocations?: number;
  /** Negotiated connection tokens of one hub not yet used by a transport; past it, negotiate answers 503. */
  readonly maxPendingNegotiations?: number;
  /** Groups one connection may be in (of one hub); a join past it fails with a HubError to the caller. */
  readonly maxGroupsPerConnection?: number;
  /** Records of one connection handled per event-loop turn; the rest wait for the next turn, so one peer cannot hold the loop. */
  readonly maxMessagesPerTurn?: number;
  /** Negotiated connection tokens that are not used within this time expire. Default 15 000. */
  readonly unusedTokenTimeout?: number;
  /** On `close()`, how long `onDisconnected` handlers get to finish before `close()` resolves anyway. Default 10 000. */
  readonly shutdownTimeout?: number;
  /**
   * Offer stateful reconnect (§8) to clients that ask for it (`withStatefulReconnect()`): a lost
   * WebSocket keeps the connection for `disconnectTimeout` and a reattaching client gets every
   * message it missed. Default true.
   */
  readonly statefulReconnect?: boolean;
  /**
   * Bytes of sent but unacknowledged messages kept per stateful-reconnect connection for replay;
   * past it, that connection's sends wait for the client's Acks. Default 100 000 (as ASP.NET).
   */
  readonly statefulReconnectBufferSize?: number;
  /** How long a stateful-reconnect connection waits for its client after the transport is lost. Default 15 000. */
  readonly disconnectTimeout?: number;
  /** Server → client streams one connection may have running at once; more are refused with a clear error. Default 16. */
  readonly maxStreams?: number;
  /** Client → server upload streams one connection may have open at once. Default 10. */
  readonly maxUploadStreams?: number;
  /** Items an upload stream buffers before the server stops reading from that client (as ASP.NET's StreamBufferCapacity). Default 10. */
  readonly streamBufferCapacity?: number;
  /** Client results (`invoke` on a client) one connection may owe at once; more are refused. Default 64. */
  readonly maxPendingClientResults?: number;
  /** How long `invoke`/`invokeAll` wait for a client's result before rejecting (or reporting a timeout). Default 30 000. */
  readonly clientResultTimeout?: number;
  /** Send exception messages (never stacks) to clients. Default false. */
  readonly detailedErrors?: boolean;
  /**
   * Who a request is: returns a principal (claims) or null for anonymous. Called for negotiate and
   * for the transport's connect request; a throw counts as a failed authentication (401).
   * Default: everyone is anonymous.
   */
  readonly authenticate?: (request: AuthenticationRequest) => Principal | null | Promise<Principal | null>;
  /** Maps a connection to its user identifier (for `clients.user(id)`). Default: the principal's `sub` or `id` claim. */
  readonly userIdProvider?: (context: UserIdContext) => string | null | undefined;
  /**
   * Close a connection when its authentication expires (ASP.NET's `CloseOnAuthenticationExpiration`):
   * the expiry is the `exp` claim (seconds since the epoch, as in a JWT) of the principal
   * `authenticate` returned. The client gets a Close with `The authentication expired.` (within
   * one heartbeat tick, at most a second late); an already expired principal gets 401. Default false.
   */
  readonly closeOnAuthenticationExpiration?: boolean;
  /** Named authorization policies for `@Authorize("name")`. */
  readonly policies?: Readonly<Record<string, AuthorizationPolicy>>;
  /** Global pipeline modules, run before each hub's own (`@UseModules`), in order. */
  readonly modules?: readonly HubModuleRegistration[];
  /** Where the server logs. Default: JSON lines on stderr at level "warn". */
  readonly logger?: Logger;
  /** Told about connections, sends and invocations, for metrics (e.g. `new SwitchboardMetrics()`). Default: none, at no cost. */
  readonly observer?: ServerObserver;
  /**
   * Carries sends to and from the other Switchboard processes serving the same hubs (scale-out),
   * e.g. `new RedisBackplane({ url })` from `@switchboard/redis`. Default: none (one process).
   */
  readonly backplane?: Backplane;
  /**
   * Signed rejoin tokens: a client that asked for them (`@switchboard/client`) gets a token naming
   * its groups whenever they change, and a new connection presenting it is put back in those
   * groups (after the `rejoiningGroups` module hook) before its first invocation. Off by default;
   * on, it needs a key of at least 32 bytes (`SB_ERR_REJOIN_KEY` otherwise).
   */
  readonly rejoin?: RejoinOptions;
  /** Where `groups.add/remove(…, { persist: true })` record membership. Default: an in-memory store. */
  readonly membershipStore?: MembershipStore;
  /** How long a connecting user waits for `membershipStore.groupsOf`; past it, they connect without those groups (logged). Default 2 000. */
  readonly membershipTimeout?: number;
  /**
   * Which hub methods clients may invoke, for every hub unless `addHub` says otherwise: `"all"`
   * (default, as ASP.NET: every method of the class and its bases except lifecycle methods and
   * `@NotHubMethod()` ones; TypeScript `private` does not hide a method) or `"decorated"` (only
   * `@HubMethod()` methods).
   */
  readonly hubMethods?: HubMethodExposure;
}

/** {@link ServerOptions} with every default applied. */
export interface ResolvedOptions extends Required<Omit<ServerOptions, "hubs" | "container" | "authenticate" | "policies" | "observer" | "rejoin" | "backplane">> {
  readonly observer: ServerObserver | undefined;
  readonly backplane: Backplane | undefined;
  /** The backplane, when it also keeps a cluster-wide {@link GroupDirectory}. */
  readonly directory: GroupDirectory | undefined;
  /** Present when the `rejoin` option is. */
  readonly rejoin: RejoinTokens | undefined;
  readonly authenticate: ServerOptions["authenticate"];
  readonly policies: ReadonlyMap<string, AuthorizationPolicy>;
}

export const DEFAULTS = {
  keepAliveInterval: 15_000,
  clientTimeout: 30_000,
  handshakeTimeout: 15_000,
  maxMessageSize: 32 * 1024,
  maxDepth: 64,
  maxBufferedBytes: 1024 * 1024,
  maxInvocationIdLength: 256,
  maxParallelInvocations: 1,
  maxQueuedInvocations: 64,
  maxMessagesPerTurn: 128,
  maxGroupsPerConnection: 1000,
  maxPendingNegotiations: 10_000,
  unusedTokenTimeout: 15_000,
  shutdownTimeout: 10_000,
  detailedErrors: false,
  statefulReconnect: true,
  statefulReconnectBufferSize: 100_000,
  disconnectTimeout: 15_000,
  membershipTimeout: 2_000,
  maxStreams: 16,
  maxUploadStreams: 10,
  streamBufferCapacity: 10,
  maxPendingClientResults: 64,
  clientResultTimeout: 30_000,
  closeOnAuthenticationExpiration: false,
} as const;

/** Longest delay Node's timers honour; a larger one fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration in milliseconds: positive and usable by a timer. */
function duration(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new OptionsError(`Option '${name}' must be a number of milliseconds from 1 to ${MAX_TIMER_MS}, got ${String(value)}.`);
  }
  return value;
}

/** A size or count: a positive integer. */
function count(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new OptionsError(`Option '${name}' must be a positive integer, got ${String(value)}.`);
  }
  return value;
}

function optionalFunction<T>(name: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== "function") throw new OptionsError(`Option '${name}' must be a function.`);
  return value;
}

/** A {@link HubMethodExposure}: anything else (a typo) must not silently expose every method. */
export function hubMethodExposure(name: string, value: unknown): HubMethodExposure {
  if (value !== "all" && value !== "decorated") throw new OptionsError(`Option '${name}' must be "all" or "decorated", got ${String(value)}.`);
  return value;
}

function checkLogger(logger: Logger): Logger {
  for (const level of ["debug", "info", "warn", "error"] as const) {
    if (typeof logger?.[level] !== "function") throw new OptionsError(`Option 'logger' needs a '${level}(fields, message)' function.`);
  }
  return logger;
}

function checkBackplane(backplane: Backplane | undefined): Backplane | undefined {
  if (backplane === undefined) return undefined;
  for (const member of ["start", "publish", "command", "subscribe", "unsubscribe", "close"] as const) {
    if (typeof backplane?.[member] !== "function") throw new OptionsError(`Option 'backplane' needs a '${member}' function (see the Backplane contract).`);
  }
  return backplane;
}

/** The backplane as a {@link GroupDirectory}, when it implements one. */
function directoryOf(backplane: Backplane | undefined): GroupDirectory | undefined {
  const candidate = backplane as Partial<GroupDirectory> | undefined;
  const members = ["track", "count", "has", "groupsOf", "members", "groups"] as const;
  return candidate !== undefined && members.every((member) => typeof candidate[member] === "function") ? (candidate as GroupDirectory) : undefined;
}

/** Every key of {@link ServerOptions}, to warn about misspelt ones. */
const OPTION_KEYS: readonly (keyof ServerOptions)[] = [
  "protocols", "hubs", "container", "keepAliveInterval", "clientTimeout", "handshakeTimeout", "maxMessageSize", "maxDepth",
  "maxBufferedBytes", "maxInvocationIdLength", "maxParallelInvocations", "maxQueuedInvocations", "unusedTokenTimeout",
  "shutdownTimeout", "statefulReconnect", "statefulReconnectBufferSize", "disconnectTimeout", "detailedErrors",
  "maxStreams", "maxUploadStreams", "streamBufferCapacity", "maxPendingClientResults", "clientResultTimeout",
  "authenticate", "userIdProvider", "policies", "modules", "logger", "observer", "rejoin", "membershipStore", "membershipTimeout",
  "hubMethods", "backplane", "maxMessagesPerTurn", "maxGroupsPerConnection", "maxPendingNegotiations", "closeOnAuthenticationExpiration",
];

/** Edit distance, case-insensitive (option names are short: the quadratic cost is nothing). */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * Warns (once, at construction) about option keys that no component reads, naming the closest
 * valid key: a misspelt `maxMesageSize` would otherwise leave the default silently in force.
 */
export function warnUnknownKeys(options: object, valid: readonly string[], what: string, logger: Logger): void {
  for (const key of Object.keys(options)) {
    if (valid.includes(key)) continue;
    const lower = key.toLowerCase();
    // A prefix of a valid name (`keepAlive`) is the likeliest intent; else the nearest close name.
    let closest = valid.find((candidate) => key.length >= 4 && candidate.toLowerCase().startsWith(lower));
    if (closest === undefined) {
      let best = valid[0]!;
      for (const candidate of valid) if (distance(key, candidate) < distance(key, best)) best = candidate;
      if (distance(key, best) <= Math.max(2, Math.floor(key.length / 3))) closest = best;
    }
    const hint = closest === undefined ? "" : ` Did you mean '${closest}'?`;
    logger.warn({ option: key }, `Unknown ${what} option '${key}' is ignored.${hint}`);
  }
}

function checkStore(store: MembershipStore): MembershipStore {
  for (const method of ["add", "remove", "groupsOf"] as const) {
    if (typeof store?.[method] !== "function") throw new OptionsError(`Option 'membershipStore' needs a '${method}' method.`);
  }
  return store;
}

/** Applies defaults and rejects impossible combinations. */
export function resolveOptions(options: ServerOptions): ResolvedOptions {
  if (options.hubs !== undefined && !Array.isArray(options.hubs)) {
    throw new OptionsError("Option 'hubs' must be an array of hub classes, e.g. hubs: [ChatHub].");
  }
  const protocols = options.protocols ?? [];
  if (!Array.isArray(protocols) || protocols.length === 0) throw new OptionsError("Option 'protocols' needs at least one hub protocol, e.g. protocols: [new JsonHubProtocol()] from @switchboard/protocol-json.");
  const names = new Set<string>();
  for (const protocol of protocols) {
    if (typeof protocol?.name !== "string" || typeof protocol.write !== "function" || typeof protocol.createParser !== "function") {
      throw new OptionsError("Option 'protocols' holds something that is not a hub protocol.");
    }
    if (names.has(protocol.name)) throw new OptionsError(`Hub protocol '${protocol.name}' is registered twice.`);
    names.add(protocol.name);
  }
  for (const [name, policy] of Object.entries(options.policies ?? {})) {
    if (typeof policy !== "function") throw new OptionsError(`Policy '${name}' must be a function.`);
  }
  if (options.detailedErrors !== undefined && typeof options.detailedErrors !== "boolean") {
    // A string such as "false" from an environment variable must not switch detailed errors on.
    throw new OptionsError(`Option 'detailedErrors' must be a boolean, got ${typeof options.detailedErrors}.`);
  }
  if (options.statefulReconnect !== undefined && typeof options.statefulReconnect !== "boolean") {
    throw new OptionsError(`Option 'statefulReconnect' must be a boolean, got ${typeof options.statefulReconnect}.`);
  }
  const hubMethods = hubMethodExposure("hubMethods", options.hubMethods ?? "all");
  if (options.closeOnAuthenticationExpiration !== undefined && typeof options.closeOnAuthenticationExpiration !== "boolean") {
    throw new OptionsError(`Option 'closeOnAuthenticationExpiration' must be a boolean, got ${typeof options.closeOnAuthenticationExpiration}.`);
  }
  if (options.modules !== undefined && !Array.isArray(options.modules)) throw new OptionsError("Option 'modules' must be an array.");
  if (options.observer !== undefined && (options.observer === null || typeof options.observer !== "object")) throw new OptionsError("Option 'observer' must be an object (e.g. new SwitchboardMetrics() from @switchboard/metrics).");
  const resolved: ResolvedOptions = {
    protocols,
    keepAliveInterval: duration("keepAliveInterval", options.keepAliveInterval ?? DEFAULTS.keepAliveInterval),
    clientTimeout: duration("clientTimeout", options.clientTimeout ?? DEFAULTS.clientTimeout),
    handshakeTimeout: duration("handshakeTimeout", options.handshakeTimeout ?? DEFAULTS.handshakeTimeout),
    maxMessageSize: count("maxMessageSize", options.maxMessageSize ?? DEFAULTS.maxMessageSize),
    maxDepth: count("maxDepth", options.maxDepth ?? DEFAULTS.maxDepth),
    maxBufferedBytes: count("maxBufferedBytes", options.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes),
    maxInvocationIdLength: count("maxInvocationIdLength", options.maxInvocationIdLength ?? DEFAULTS.maxInvocationIdLength),
    maxParallelInvocations: count("maxParallelInvocations", options.maxParallelInvocations ?? DEFAULTS.maxParallelInvocations),
    maxQueuedInvocations: count("maxQueuedInvocations", options.maxQueuedInvocations ?? DEFAULTS.maxQueuedInvocations),
    maxPendingNegotiations: count("maxPendingNegotiations", options.maxPendingNegotiations ?? DEFAULTS.maxPendingNegotiations),
    maxGroupsPerConnection: count("maxGroupsPerConnection", options.maxGroupsPerConnection ?? DEFAULTS.maxGroupsPerConnection),
    maxMessagesPerTurn: count("maxMessagesPerTurn", options.maxMessagesPerTurn ?? DEFAULTS.maxMessagesPerTurn),
    unusedTokenTimeout: duration("unusedTokenTimeout", options.unusedTokenTimeout ?? DEFAULTS.unusedTokenTimeout),
    shutdownTimeout: duration("shutdownTimeout", options.shutdownTimeout ?? DEFAULTS.shutdownTimeout),
    detailedErrors: options.detailedErrors ?? DEFAULTS.detailedErrors,
    statefulReconnect: options.statefulReconnect ?? DEFAULTS.statefulReconnect,
    closeOnAuthenticationExpiration: options.closeOnAuthenticationExpiration ?? DEFAULTS.closeOnAuthenticationExpiration,
    statefulReconnectBufferSize: count("statefulReconnectBufferSize", options.statefulReconnectBufferSize ?? DEFAULTS.statefulReconnectBufferSize),
    disconnectTimeout: duration("disconnectTimeout", options.disconnectTimeout ?? DEFAULTS.disconnectTimeout),
    maxStreams: count("maxStreams", options.maxStreams ?? DEFAULTS.maxStreams),
    maxUploadStreams: count("maxUploadStreams", options.maxUploadStreams ?? DEFAULTS.maxUploadStreams),
    streamBufferCapacity: count("streamBufferCapacity", options.streamBufferCapacity ?? DEFAULTS.streamBufferCapacity),
    maxPendingClientResults: count("maxPendingClientResults", options.maxPendingClientResults ?? DEFAULTS.maxPendingClientResults),
    clientResultTimeout: duration("clientResultTimeout", options.clientResultTimeout ?? DEFAULTS.clientResultTimeout),
    userIdProvider: optionalFunction("userIdProvider", options.userIdProvider) ?? defaultUserId,
    authenticate: optionalFunction("authenticate", options.authenticate),
    policies: new Map(Object.entries(options.policies ?? {})),
    modules: options.modules ?? [],
    observer: options.observer,
    backplane: checkBackplane(options.backplane),
    directory: directoryOf(options.backplane),
    logger: checkLogger(options.logger ?? consoleLogger()),
    rejoin: options.rejoin === undefined ? undefined : new RejoinTokens(options.rejoin),
    membershipStore: checkStore(options.membershipStore ?? new MemoryMembershipStore()),
    membershipTimeout: duration("membershipTimeout", options.membershipTimeout ?? DEFAULTS.membershipTimeout),
    hubMethods,
  };
  warnUnknownKeys(options, OPTION_KEYS, "server", resolved.logger);
  return resolved;
}
