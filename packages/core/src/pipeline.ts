import type { DependencyContainer } from "tsyringe";
import type { HubCallerContext } from "./hub-caller-context.js";
import type { Hub } from "./hub.js";
import type { InvocationMessage } from "./hub-messages.js";
import type { Logger } from "./logger.js";
import type { SendTarget } from "./send-target.js";
import type { ConnectionRequest } from "./transport.js";

/** Who a request or connection is, as returned by the server's `authenticate` option (claims). */
export type Principal = { readonly [claim: string]: unknown };

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
  readonly stage: "invoke" | "connected" | "disconnected" | "reconnected" | "outgoing";
  readonly connection?: HubCallerContext;
  readonly methodName?: string;
}

/**
 * A pipeline module: middleware around the hub's stages, in onion order (`next()` runs the inner
 * modules and finally the hub). Every hook is optional. Global modules run before per-hub modules,
 * each group in registration order. Modules given as classes are resolved once from the server's
 * DI container.
 */
export interface HubModule {
  /** Around every incoming hub method call: may rewrite `ctx.arguments`, return a result without calling `next`, throw (a `HubError` reaches the client verbatim), or observe and translate errors. */
  invoke?(ctx: InvocationContext, next: () => Promise<unknown>): unknown;
  /** Around the hub's `onConnected`. Throwing closes the connection. */
  onConnected?(ctx: LifetimeContext, next: () => Promise<void>): void | Promise<void>;
  /** Around the hub's `onDisconnected`. */
  onDisconnected?(ctx: LifetimeContext, error: Error | undefined, next: () => Promise<void>): void | Promise<void>;
  /** Around a reconnect of an existing logical connection (stateful reconnect). */
  onReconnected?(ctx: LifetimeContext, next: () => Promise<void>): void | Promise<void>;
  /** Around every server → client send, once per send; may alter `ctx.message`/`ctx.target` or drop the send by not calling `next`. */
  outgoing?(ctx: OutgoingContext, next: () => Promise<void>): void | Promise<void>;
  /** May refuse a connection to a hub: return false (→ HTTP 403). */
  authorizeConnect?(ctx: ConnectContext): boolean | Promise<boolean>;
  /** Decides which of the groups a reconnecting connection claims it may keep. */
  rejoiningGroups?(ctx: LifetimeContext, groups: readonly string[]): readonly string[] | Promise<readonly string[]>;
  /** Observes errors from hub methods, lifecycle methods and other modules. Must not throw. */
  onError?(ctx: ErrorContext, error: unknown): void;
}

/** A module instance, or a module class resolved from the server's container. */
export type HubModuleRegistration = HubModule | (new (...args: any[]) => HubModule);

type Step<C, R> = (module: HubModule, ctx: C, next: () => Promise<R>) => unknown;

/**
 * Runs `modules` around `final` in onion order. `next` may be called once per module; a second
 * call is a programming error and rejects.
 */
function compose<C, R>(modules: readonly HubModule[], step: Step<C, R>, ctx: C, final: (ctx: C) => R | Promise<R>): Promise<R> {
  let last = -1;
  const run = (index: number): Promise<R> => {
    if (index <= last) return Promise.reject(new Error("A pipeline module called next() more than once."));
    last = index;
    try {
      if (index === modules.length) return Promise.resolve(final(ctx));
      return Promise.resolve(step(modules[index]!, ctx, () => run(index + 1)) as R | Promise<R>);
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return run(0);
}

const invokeStep: Step<InvocationContext, unknown> = (module, ctx, next) => module.invoke!(ctx, next);
const connectedStep: Step<LifetimeContext, void> = (module, ctx, next) => module.onConnected!(ctx, next);
const reconnectedStep: Step<LifetimeContext, void> = (module, ctx, next) => module.onReconnected!(ctx, next);
const outgoingStep: Step<OutgoingContext, void> = (module, ctx, next) => module.outgoing!(ctx, next);

/**
 * The modules of one hub (global first, then the hub's own), split by hook so a stage with no
 * module costs nothing: callers check `has*` and take the direct path, allocating no closures or
 * contexts.
 */
export class HubPipeline {
  readonly #invoke: HubModule[];
  readonly #connected: HubModule[];
  readonly #disconnected: HubModule[];
  readonly #reconnected: HubModule[];
  readonly #outgoing: HubModule[];
  readonly #authorizeConnect: HubModule[];
  readonly #rejoining: HubModule[];
  readonly #onError: HubModule[];
  readonly #logger: Logger;

  constructor(modules: readonly HubModule[], logger: Logger) {
    const having = (hook: keyof HubModule) => modules.filter((module) => typeof module[hook] === "function");
    this.#invoke = having("invoke");
    this.#connected = having("onConnected");
    this.#disconnected = having("onDisconnected");
    this.#reconnected = having("onReconnected");
    this.#outgoing = having("outgoing");
    this.#authorizeConnect = having("authorizeConnect");
    this.#rejoining = having("rejoiningGroups");
    this.#onError = having("onError");
    this.#logger = logger;
  }

  get hasInvoke(): boolean {
    return this.#invoke.length > 0;
  }
  get hasConnected(): boolean {
    return this.#connected.length > 0;
  }
  get hasDisconnected(): boolean {
    return this.#disconnected.length > 0;
  }
  get hasOutgoing(): boolean {
    return this.#outgoing.length > 0;
  }
  get hasAuthorizeConnect(): boolean {
    return this.#authorizeConnect.length > 0;
  }

  invoke(ctx: InvocationContext, final: (ctx: InvocationContext) => unknown): Promise<unknown> {
    return compose(this.#invoke, invokeStep, ctx, final);
  }

  onConnected(ctx: LifetimeContext, final: (ctx: LifetimeContext) => void | Promise<void>): Promise<void> {
    return compose(this.#connected, connectedStep, ctx, final);
  }

  onDisconnected(ctx: LifetimeContext, error: Error | undefined, final: (ctx: LifetimeContext) => void | Promise<void>): Promise<void> {
    return compose(this.#disconnected, (module, c, next) => module.onDisconnected!(c, error, next), ctx, final);
  }

  onReconnected(ctx: LifetimeContext, final: (ctx: LifetimeContext) => void | Promise<void>): Promise<void> {
    return compose(this.#reconnected, reconnectedStep, ctx, final);
  }

  outgoing(ctx: OutgoingContext, final: (ctx: OutgoingContext) => void | Promise<void>): Promise<void> {
    return compose(this.#outgoing, outgoingStep, ctx, final);
  }

  /** True unless a module refuses. Modules run in order and the first refusal wins. */
  async authorizeConnect(ctx: ConnectContext): Promise<boolean> {
    for (const module of this.#authorizeConnect) if ((await module.authorizeConnect!(ctx)) !== true) return false;
    return true;
  }

  /** Each module filters the list the previous one left; with no module, every claimed group is kept. */
  async rejoiningGroups(ctx: LifetimeContext, groups: readonly string[]): Promise<readonly string[]> {
    let result = groups;
    for (const module of this.#rejoining) {
      const next = await module.rejoiningGroups!(ctx, result);
      result = Array.isArray(next) ? next.filter((group): group is string => typeof group === "string" && group.length > 0) : [];
    }
    return result;
  }

  /** Tells every `onError` module; a module that throws here is logged and skipped. */
  reportError(ctx: ErrorContext, error: unknown): void {
    for (const module of this.#onError) {
      try {
        module.onError!(ctx, error);
      } catch (cause) {
        this.#logger.error({ hub: ctx.hubName, err: cause }, "A module's onError threw.");
      }
    }
  }
}
