import { injectable } from "tsyringe";
import { HubDefinitionError } from "../contracts/errors.js";
import type { AnyClient, ClientMethods, HubCallerClients } from "../fan-out/clients.js";
import type { HubCallerContext } from "./hub-caller-context.js";
import type { GroupManager } from "../fan-out/group-manager.js";

/** A hub class: constructed by the DI container, so its constructor parameters are injected. */
export type HubClass<T extends Hub<any> = Hub<any>> = new (...args: any[]) => T;

export const kHubPath = Symbol("switchboard.hubPath");
export const kMethodName = Symbol("switchboard.methodName");
export const kNotHubMethod = Symbol("switchboard.notHubMethod");

/** Metadata recorded by the decorators; read once at startup by the hub descriptor builder. */
interface HubMetadata {
  [kHubPath]?: string;
}

/**
 * The instance side of a hub. `context`, `clients` and `groups` are set by the server before a
 * hub method or lifecycle method runs; a hub instance lives for one invocation.
 */
export interface Hub<TClient extends ClientMethods = AnyClient> {
  /** The calling connection: id, user, per-connection items, abort. */
  context: HubCallerContext;
  /** Addresses clients: caller, others, all, a client, groups, users… */
  clients: HubCallerClients<TClient>;
  /** Adds and removes connections to and from groups of this hub, and answers membership queries. */
  groups: GroupManager;
  /** Runs after the handshake, before any invocation of the connection. */
  onConnected?(): void | Promise<void>;
  /**
   * Runs once when the connection has ended; `error` is set when it ended abnormally. With stateful
   * reconnect a lost transport is not an end: this runs when the client did not come back within
   * `disconnectTimeout`, or when the connection ends cleanly.
   */
  onDisconnected?(error?: Error): void | Promise<void>;
  /**
   * Runs after a stateful-reconnect client resumed this connection on a new transport (same
   * connection id, groups and items; nothing lost). Invocations do not wait for it.
   */
  onReconnected?(): void | Promise<void>;
}

/**
 * `Hub` is both the base class of hubs and the decorator that registers one on a path:
 *
 * ```ts
 * @Hub("/hubs/chat")
 * class ChatHub extends Hub<ChatClient> { … }
 * ```
 *
 * The decorator only records the path (and marks the class injectable for tsyringe); the server
 * builds its dispatch table from it once, at `addHub` time.
 */
export const Hub = function HubBase(this: unknown, path?: unknown): unknown {
  if (new.target !== undefined) return undefined; // `super()` from a hub class: nothing to set up.
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new HubDefinitionError(`@Hub(path) needs a path starting with '/', got ${String(path)}.`);
  }
  return (target: HubClass) => {
    (target as unknown as HubMetadata)[kHubPath] = path;
    injectable()(target);
  };
} as unknown as {
  new <TClient extends ClientMethods = AnyClient>(): Hub<TClient>;
  (path: string): (target: HubClass) => void;
  readonly prototype: Hub<any>;
};

/** The path a hub class was registered on with `@Hub(path)`, if any. */
export function hubPathOf(hub: HubClass): string | undefined {
  return Object.hasOwn(hub, kHubPath) ? (hub as unknown as HubMetadata)[kHubPath] : undefined;
}

/** Options of {@link HubMethod}. */
export interface HubMethodOptions {
  /** The name clients invoke (matched case-insensitively). Default: the method's own name. */
  readonly name?: string;
}

/**
 * Marks a hub method, optionally renaming it. Decorating a method also makes TypeScript emit its
 * parameter types, which the server then checks (number, string, boolean, array) before calling it.
 */
export function HubMethod(nameOrOptions?: string | HubMethodOptions): MethodDecorator {
  const name = typeof nameOrOptions === "string" ? nameOrOptions : nameOrOptions?.name;
  if (name !== undefined && (typeof name !== "string" || name.length === 0)) {
    throw new HubDefinitionError("@HubMethod(name) needs a non-empty name.");
  }
  return (target, propertyKey) => {
    const names: Map<string | symbol, string> = Object.hasOwn(target, kMethodName)
      ? (target as Record<symbol, Map<string | symbol, string>>)[kMethodName]!
      : new Map();
    names.set(propertyKey, name ?? String(propertyKey));
    Object.defineProperty(target, kMethodName, { value: names, configurable: true });
  };
}

/** Keeps a public method of a hub class from being invocable by clients. */
export function NotHubMethod(): MethodDecorator {
  return (target, propertyKey) => {
    const hidden: Set<string | symbol> = Object.hasOwn(target, kNotHubMethod)
      ? (target as Record<symbol, Set<string | symbol>>)[kNotHubMethod]!
      : new Set();
    hidden.add(propertyKey);
    Object.defineProperty(target, kNotHubMethod, { value: hidden, configurable: true });
  };
}
