import { MessageType, type InvocationMessage } from "../contracts/hub-messages.js";
import { checkGroupName } from "./group-registry.js";
import { ALL, type SendTarget } from "../contracts/send-target.js";

/**
 * The methods a server can call on a client, as an interface of methods (`Message(from: string,
 * text: string): void`). Only its method names and parameter lists are used, for typing `send`.
 */
export type ClientMethods = object;

/** Default client shape: any method with any arguments. */
export type AnyClient = { [method: string]: (...args: any[]) => unknown };

/** The parameter list of client method `K`. */
export type ClientArgs<TClient, K extends keyof TClient> = TClient[K] extends (...args: infer A) => unknown ? A : never;

/** The value client method `K` returns to a client-results invocation (its handler's return value). */
export type ClientResult<TClient, K extends keyof TClient> = TClient[K] extends (...args: any[]) => infer R ? Awaited<R> : unknown;

/** Options of a client-results invocation. */
export interface InvokeOptions {
  /** Milliseconds to wait for the answer. Default: the server's `clientResultTimeout`. */
  readonly timeout?: number;
  /** Stops waiting (the promise rejects with the signal's reason); a late answer is ignored. */
  readonly signal?: AbortSignal;
}

/** One member's answer to {@link GroupClientProxy.invokeAll}. */
export type ClientAnswer<T = unknown> = { readonly result: T } | { readonly error: string };

/** Where client proxies hand their sends and invocations: a hub endpoint (pipeline, then lifetime manager). */
export interface MessageSender {
  send(target: SendTarget, message: InvocationMessage): void | Promise<void>;
  /** Sends `message` to one connection with an invocation id and resolves with the client's result. */
  invokeClient(connectionId: string, message: InvocationMessage, options: InvokeOptions): Promise<unknown>;
  /** The same for every member of a group; resolves with every answer, errors and timeouts included. */
  invokeGroup(group: string, message: InvocationMessage, options: InvokeOptions): Promise<Map<string, ClientAnswer>>;
}

/** One addressed slice of clients. `send` resolves once the message is queued for every recipient. */
export interface ClientProxy<TClient extends ClientMethods = AnyClient> {
  send<K extends keyof TClient & string>(method: K, ...args: ClientArgs<TClient, K>): Promise<void>;
}

/**
 * One connection: besides `send`, `invoke` asks the client for a result — the return value of its
 * `connection.on(method, handler)` handler (SignalR's client results).
 */
export interface SingleClientProxy<TClient extends ClientMethods = AnyClient> extends ClientProxy<TClient> {
  /**
   * Resolves with the client's result; rejects with the client's error text (a `ClientResultError`,
   * e.g. "Client didn't provide a result." when it has no handler), when the connection ends, and
   * with `SB_ERR_TIMEOUT` after `clientResultTimeout`.
   */
  invoke<K extends keyof TClient & string>(method: K, ...args: ClientArgs<TClient, K>): Promise<ClientResult<TClient, K>>;
  /** The same proxy with another timeout or an abort signal. */
  withOptions(options: InvokeOptions): SingleClientProxy<TClient>;
}

/** A group: besides `send`, `invokeAll` asks every member for a result (beyond ASP.NET, like Socket.IO's broadcast acks). */
export interface GroupClientProxy<TClient extends ClientMethods = AnyClient> extends ClientProxy<TClient> {
  /**
   * Resolves, once every member answered or the timeout passed, with connection id → `{ result }`
   * or `{ error }` (a member that did not answer in time gets an error saying so). Never rejects
   * for a member's failure.
   */
  invokeAll<K extends keyof TClient & string>(method: K, ...args: ClientArgs<TClient, K>): Promise<Map<string, ClientAnswer<ClientResult<TClient, K>>>>;
  /** The same proxy with another timeout or an abort signal. */
  withOptions(options: InvokeOptions): GroupClientProxy<TClient>;
}

/** Every way to address clients from anywhere (HTTP handlers, timers, jobs, hubs). */
export interface HubClients<TClient extends ClientMethods = AnyClient> {
  readonly all: ClientProxy<TClient>;
  allExcept(connectionIds: readonly string[]): ClientProxy<TClient>;
  client(connectionId: string): SingleClientProxy<TClient>;
  clients(connectionIds: readonly string[]): ClientProxy<TClient>;
  group(name: string): GroupClientProxy<TClient>;
  /** Each connection once, even when it is in several of the groups. */
  groups(names: readonly string[]): ClientProxy<TClient>;
  groupExcept(name: string, connectionIds: readonly string[]): ClientProxy<TClient>;
  /** Every connection of the user. */
  user(userId: string): ClientProxy<TClient>;
  users(userIds: readonly string[]): ClientProxy<TClient>;
}

/** {@link HubClients} plus the forms relative to the calling connection. */
export interface HubCallerClients<TClient extends ClientMethods = AnyClient> extends HubClients<TClient> {
  readonly caller: SingleClientProxy<TClient>;
  readonly others: ClientProxy<TClient>;
  othersInGroup(name: string): ClientProxy<TClient>;
  othersInGroups(names: readonly string[]): ClientProxy<TClient>;
}

const RESOLVED = Promise.resolve();

// Addressing arguments are checked when the proxy is made, so misuse throws at the call site
// (a string where an array belongs would otherwise be iterated character by character).
function string(name: string, value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`'${name}' must be a string.`);
  return value;
}

function strings(name: string, values: unknown): readonly string[] {
  if (!Array.isArray(values)) throw new TypeError(`'${name}' must be an array of strings.`);
  for (const value of values) if (typeof value !== "string") throw new TypeError(`'${name}' must be an array of strings.`);
  return values as readonly string[];
}

function groupName(name: unknown): string {
  checkGroupName(name);
  return name;
}

function groupNames(names: unknown): readonly string[] {
  if (!Array.isArray(names)) throw new TypeError("'names' must be an array of group names.");
  for (const name of names) checkGroupName(name);
  return names as readonly string[];
}

const NO_OPTIONS: InvokeOptions = Object.freeze({});

function invocation(method: unknown, args: unknown[]): InvocationMessage {
  if (typeof method !== "string" || method.length === 0) throw new TypeError("The client method name must be a non-empty string.");
  return { type: MessageType.Invocation, target: method, arguments: args };
}

/** A target bound to a lifetime manager. One small object per addressing call, none per recipient. */
class TargetProxy implements SingleClientProxy<AnyClient>, GroupClientProxy<AnyClient> {
  readonly #manager: MessageSender;
  readonly #target: SendTarget;
  readonly #options: InvokeOptions;

  constructor(manager: MessageSender, target: SendTarget, options = NO_OPTIONS) {
    this.#manager = manager;
    this.#target = target;
    this.#options = options;
  }

  invoke(method: string, ...args: unknown[]): Promise<any> {
    const target = this.#target;
    if (target.kind !== "connection") return Promise.reject(new TypeError("invoke() addresses one connection: use clients.client(id) or clients.caller."));
    try {
      return this.#manager.invokeClient(target.connectionId, invocation(method, args), this.#options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  invokeAll(method: string, ...args: unknown[]): Promise<Map<string, ClientAnswer<any>>> {
    const target = this.#target;
    if (target.kind !== "group" || target.excluded !== undefined) return Promise.reject(new TypeError("invokeAll() addresses a group: use clients.group(name)."));
    try {
      return this.#manager.invokeGroup(target.group, invocation(method, args), this.#options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  withOptions(options: InvokeOptions): TargetProxy {
    if (options === null || typeof options !== "object") throw new TypeError("withOptions() takes { timeout?, signal? }.");
    return new TargetProxy(this.#manager, this.#target, { ...this.#options, ...options });
  }

  send(method: string, ...args: unknown[]): Promise<void> {
    if (typeof method !== "string" || method.length === 0) {
      return Promise.reject(new TypeError("The client method name must be a non-empty string."));
    }
    const message: InvocationMessage = { type: MessageType.Invocation, target: method, arguments: args };
    try {
      const pending = this.#manager.send(this.#target, message);
      return pending === undefined ? RESOLVED : pending;
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/** The addressing forms available outside a hub invocation (a hub context). */
export class DefaultHubClients implements HubClients<AnyClient> {
  readonly all: ClientProxy<AnyClient>;
  protected readonly manager: MessageSender;

  constructor(manager: MessageSender) {
    this.manager = manager;
    this.all = new TargetProxy(manager, ALL);
  }

  allExcept(connectionIds: readonly string[]): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "all", excluded: strings("connectionIds", connectionIds) });
  }
  client(connectionId: string): SingleClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "connection", connectionId: string("connectionId", connectionId) });
  }
  clients(connectionIds: readonly string[]): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "connections", connectionIds: strings("connectionIds", connectionIds) });
  }
  group(name: string): GroupClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "group", group: groupName(name) });
  }
  groups(names: readonly string[]): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "groups", groups: groupNames(names) });
  }
  groupExcept(name: string, connectionIds: readonly string[]): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "group", group: groupName(name), excluded: strings("connectionIds", connectionIds) });
  }
  user(userId: string): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "user", userId: string("userId", userId) });
  }
  users(userIds: readonly string[]): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "users", userIds: strings("userIds", userIds) });
  }
}

/** The addressing forms of one connection's hub invocations; built once per connection. */
export class DefaultHubCallerClients extends DefaultHubClients implements HubCallerClients<AnyClient> {
  readonly caller: SingleClientProxy<AnyClient>;
  readonly others: ClientProxy<AnyClient>;
  readonly #self: readonly string[];

  constructor(manager: MessageSender, connectionId: string) {
    super(manager);
    this.#self = [connectionId];
    this.caller = new TargetProxy(manager, { kind: "connection", connectionId });
    this.others = new TargetProxy(manager, { kind: "all", excluded: this.#self });
  }

  othersInGroup(name: string): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "group", group: groupName(name), excluded: this.#self });
  }
  othersInGroups(names: readonly string[]): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "groups", groups: groupNames(names), excluded: this.#self });
  }
}
