import type { Logger } from "../contracts/logger.js";
import type { ConnectContext, ErrorContext, InvocationContext, LifetimeContext, OutgoingContext, PipelineModule } from "./hub-module.js";

type Step<C, R> = (module: PipelineModule, ctx: C, next: () => Promise<R>) => unknown;

/**
 * Runs `modules` around `final` in onion order. `next` may be called once per module; a second
 * call is a programming error and rejects.
 */
function compose<C, R>(modules: readonly PipelineModule[], step: Step<C, R>, ctx: C, final: (ctx: C) => R | Promise<R>): Promise<R> {
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
  readonly #invoke: PipelineModule[];
  readonly #connected: PipelineModule[];
  readonly #disconnected: PipelineModule[];
  readonly #reconnected: PipelineModule[];
  readonly #outgoing: PipelineModule[];
  readonly #authorizeConnect: PipelineModule[];
  readonly #rejoining: PipelineModule[];
  readonly #onError: PipelineModule[];
  readonly #logger: Logger;

  constructor(modules: readonly PipelineModule[], logger: Logger) {
    const having = (hook: keyof PipelineModule) => modules.filter((module) => typeof module[hook] === "function");
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
  get hasReconnected(): boolean {
    return this.#reconnected.length > 0;
  }
  get hasOutgoing(): boolean {
    return this.#outgoing.length > 0;
  }
  get hasRejoiningGroups(): boolean {
    return this.#rejoining.length > 0;
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
