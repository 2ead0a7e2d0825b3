import { inject, injectable } from "tsyringe";
import { HubError } from "../contracts/errors.js";
import { LOGGER, type Logger } from "../contracts/logger.js";
import type { HubModule, InvocationContext, LifetimeContext, RejoinModule } from "./hub-module.js";

/**
 * Structured logging of a hub's life: one `info` entry per connect, disconnect and stateful
 * reconnect, and one `debug` entry per invocation with its duration and outcome. Failures are not
 * logged here: the server logs each one itself, once, at `error` (a `HubError` at `debug`), with
 * or without this module. Writes to the server's logger (`LOGGER`, e.g. a pino instance).
 * Arguments and results are never logged (they may hold personal data), nor are tokens.
 *
 * ```ts
 * new SwitchboardServer({ protocols, hubs, logger: pino(), modules: [LoggingModule] });
 * ```
 */
@injectable()
export class LoggingModule implements HubModule, RejoinModule {
  readonly #logger: Logger;

  constructor(@inject(LOGGER) logger: Logger) {
    this.#logger = logger;
  }

  async invoke(ctx: InvocationContext, next: () => Promise<unknown>): Promise<unknown> {
    const started = performance.now();
    const fields = { hub: ctx.hubName, method: ctx.methodName, connectionId: ctx.connection.connectionId, invocationId: ctx.invocationId };
    try {
      const result = await next();
      this.#logger.debug({ ...fields, outcome: "completed", durationMs: round(performance.now() - started) }, "Hub method invoked.");
      return result;
    } catch (error) {
      const outcome = error instanceof HubError ? "hub-error" : "failed";
      this.#logger.debug({ ...fields, outcome, durationMs: round(performance.now() - started) }, "Hub method invoked.");
      throw error;
    }
  }

  async onConnected(ctx: LifetimeContext, next: () => Promise<void>): Promise<void> {
    await next();
    this.#logger.info({ hub: ctx.hubName, connectionId: ctx.connection.connectionId, user: ctx.connection.userIdentifier }, "Client connected.");
  }

  async onDisconnected(ctx: LifetimeContext, error: Error | undefined, next: () => Promise<void>): Promise<void> {
    this.#logger.info({ hub: ctx.hubName, connectionId: ctx.connection.connectionId, user: ctx.connection.userIdentifier, abnormal: error !== undefined }, "Client disconnected.");
    await next();
  }

  async onReconnected(ctx: LifetimeContext, next: () => Promise<void>): Promise<void> {
    this.#logger.info({ hub: ctx.hubName, connectionId: ctx.connection.connectionId, user: ctx.connection.userIdentifier }, "Client reconnected.");
    await next();
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
