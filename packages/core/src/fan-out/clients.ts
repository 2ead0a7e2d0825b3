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

/** Where client proxies hand their sends: a hub endpoint (pipeline, then lifetime manager). */
export interface MessageSender {
  send(target: SendTarget, message: InvocationMessage): void | Promise<void>;
}

/** One addressed slice of clients. `send` resolves once the message is queued for every recipient. */
export interface ClientProxy<TClient extends ClientMethods = AnyClient> {
  send<K extends keyof TClient & string>(method: K, ...args: ClientArgs<TClient, K>): Promise<void>;
}

/** Every way to address clients from anywhere (HTTP handlers, timers, jobs, hubs). */
export interface HubClients<TClient extends ClientMethods = AnyClient> {
  readonly all: ClientProxy<TClient>;
  allExcept(connectionIds: readonly string[]): ClientProxy<TClient>;
  client(connectionId: string): ClientProxy<TClient>;
  clients(connectionIds: readonly string[]): ClientProxy<TClient>;
  group(name: string): ClientProxy<TClient>;
  /** Each connection once, even when it is in several of the groups. */
  groups(names: readonly string[]): ClientProxy<TClient>;
  groupExcept(name: string, connectionIds: readonly string[]): ClientProxy<TClient>;
  /** Every connection of the user. */
  user(userId: string): ClientProxy<TClient>;
  users(userIds: readonly string[]): ClientProxy<TClient>;
}

/** {@link HubClients} plus the forms relative to the calling connection. */
export interface HubCallerClients<TClient extends ClientMethods = AnyClient> extends HubClients<TClient> {
  readonly caller: ClientProxy<TClient>;
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

/** A target bound to a lifetime manager. One small object per addressing call, none per recipient. */
class TargetProxy implements ClientProxy<AnyClient> {
  readonly #manager: MessageSender;
  readonly #target: SendTarget;

  constructor(manager: MessageSender, target: SendTarget) {
    this.#manager = manager;
    this.#target = target;
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
  client(connectionId: string): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "connection", connectionId: string("connectionId", connectionId) });
  }
  clients(connectionIds: readonly string[]): ClientProxy<AnyClient> {
    return new TargetProxy(this.manager, { kind: "connections", connectionIds: strings("connectionIds", connectionIds) });
  }
  group(name: string): ClientProxy<AnyClient> {
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
  readonly caller: ClientProxy<AnyClient>;
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
