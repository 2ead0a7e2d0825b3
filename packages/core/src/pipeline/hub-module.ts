import type { DependencyContainer } from "tsyringe";
import type { HubCallerContext, Principal } from "../hubs/hub-caller-context.js";
import type { Hub } from "../hubs/hub.js";
import type { InvocationMessage } from "../contracts/hub-messages.js";
import type { SendTarget } from "../contracts/send-target.js";
import type { ConnectionRequest } from "../contracts/transport.js";

/** An incoming hub method call, as modules see it. `arguments` may be replaced by a module. */
export interface InvocationContext {
  readonly hubName: string;
  /** The hub instance that will run the method (resolved from DI for this call). */
  readonly hub: Hub<any>;
  /** The method's declared name (as the hub names it, not as the client cased it). */
  readonly methodName: string;
  /** The arguments the method will be called with; a module may assign a new array. */
  arguments: unknown[];
  /** The client's invocation id, or undefined for a call that expects no answer. */
  readonly invocationId: string | undefined;
  readonly connection: HubCallerContext;
  /** The connection's DI scope. */
  readonly services: DependencyContainer;
}

/** A connection's lifecycle event (connected, disconnected, reconnected). */
export interface LifetimeContext {
  readonly hubName: string;
  readonly hub: Hub<any>;
  readonly connection: HubCallerContext;
  readonly services: DependencyContainer;
}

/** A server → client send, seen once per send (not per recipient), before it is encoded. */
export interface OutgoingContext {
  readonly hubName: string;
  /** Who receives it; a module may narrow or replace it. */
  target: SendTarget;
  /** What is sent; a module may replace it (e.g. add or redact arguments). */
  message: InvocationMessage;
}

/** A client asking to connect to a hub (at negotiate, and at the transport's connect request). */
export interface ConnectContext {
  readonly hubName: string;
  readonly user: Principal | null;
  readonly request: ConnectionRequest;
}

/** Where an error observed by `onError` happened. */
export interface ErrorContext {
  readonly hubName: string;
  readonly stage: "invoke" | "connected" | "disconnected" | "reconnected" | "rejoining" | "outgoing";
  readonly connection?: HubCallerContext;
  readonly methodName?: string;
}

/**
 * A pipeline module: middleware around the stages every connection goes through, in onion order
 * (`next()` runs the inner modules and finally the hub). Every hook is optional. Global modules
 * (the server's `modules` option) run before per-hub modules (`@UseModules`), each group in
 * registration order. Modules given as classes are resolved once from the server's DI container.
 * The hooks for a client that comes back are in {@link RejoinModule}; one object may have both.
 */
export interface HubModule {
  /** Around every incoming hub method call: may rewrite `ctx.arguments`, return a result without calling `next`, throw (a `HubError` reaches the client verbatim), or observe and translate errors. */
  invoke?(ctx: InvocationContext, next: () => Promise<unknown>): unknown;
  /** Around the hub's `onConnected`. Throwing closes the connection. */
  onConnected?(ctx: LifetimeContext, next: () => Promise<void>): void | Promise<void>;
  /** Around the hub's `onDisconnected`. */
  onDisconnected?(ctx: LifetimeContext, error: Error | undefined, next: () => Promise<void>): void | Promise<void>;
  /** Around every server → client send, once per send; may alter `ctx.message`/`ctx.target` or drop the send by not calling `next`. */
  outgoing?(ctx: OutgoingContext, next: () => Promise<void>): void | Promise<void>;
  /** May refuse a connection to a hub: return false (→ HTTP 403). */
  authorizeConnect?(ctx: ConnectContext): boolean | Promise<boolean>;
  /** Observes errors from hub methods, lifecycle methods and other modules. Must not throw. */
  onError?(ctx: ErrorContext, error: unknown): void;
}

/**
 * The module hooks for a client that comes back, registered like any {@link HubModule} (one
 * object may implement both interfaces).
 */
export interface RejoinModule {
  /** Around a reconnect of an existing logical connection (stateful reconnect). */
  onReconnected?(ctx: LifetimeContext, next: () => Promise<void>): void | Promise<void>;
  /**
   * Decides which of the groups a new connection claims (from a rejoin token and from the user's
   * persisted membership) it may join: return the ones to keep. Runs before the connection's
   * `onConnected` and first invocation; groups not claimed are ignored, a throw keeps none (the
   * connection still starts). The client is told which groups it got back.
   */
  rejoiningGroups?(ctx: LifetimeContext, groups: readonly string[]): readonly string[] | Promise<readonly string[]>;
}

/** What the `modules` option and `@UseModules` take: an object with any of the hooks of both module interfaces. */
export type PipelineModule = HubModule & RejoinModule;

/** A module instance, or a module class resolved from the server's container. */
export type HubModuleRegistration = PipelineModule | (new (...args: any[]) => PipelineModule);
