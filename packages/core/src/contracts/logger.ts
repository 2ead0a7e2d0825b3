import type { InjectionToken } from "tsyringe";

/**
 * The logging interface the server writes to. Its shape is pino's `(object, message)` form, so a
 * pino instance can be passed as is. Connection tokens and access tokens are never logged.
 */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** An error as a log field: its stack only at `error` level, where someone has to act on it. */
function errorField(error: Error, withStack: boolean, depth = 0): Record<string, unknown> {
  const field: Record<string, unknown> = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") field.code = code;
  if (withStack && typeof error.stack === "string") field.stack = error.stack;
  if (error.cause instanceof Error && depth < 3) field.cause = errorField(error.cause, withStack, depth + 1); // causes may form a cycle
  return field;
}

/**
 * A logger that writes one JSON line per entry to stderr, at `level` and above (`"debug"`,
 * `"info"`, `"warn"` (the default), `"error"` or `"silent"`). Errors in fields are written with
 * name, message and code, plus their stack at `error` level.
 */
export function consoleLogger(level: LogLevel = "warn"): Logger {
  const min = RANK[level];
  const write = (at: LogLevel, fields: object, message: string): void => {
    if (RANK[at] < min) return;
    const entry: Record<string, unknown> = { level: at, time: Date.now(), msg: message };
    for (const [key, value] of Object.entries(fields)) {
      entry[key] = value instanceof Error ? errorField(value, at === "error") : value;
    }
    // Logging must never throw into the caller (a hub may throw a circular object or a BigInt).
    let line: string;
    try {
      line = JSON.stringify(entry, (_key, value: unknown) => (typeof value === "bigint" ? `${value}n` : value));
    } catch {
      line = JSON.stringify({ level: at, time: entry.time, msg: message, note: "fields could not be serialized" });
    }
    process.stderr.write(`${line}\n`);
  };
  return {
    debug: (fields, message) => write("debug", fields, message),
    info: (fields, message) => write("info", fields, message),
    warn: (fields, message) => write("warn", fields, message),
    error: (fields, message) => write("error", fields, message),
  };
}

/** DI token of the server's {@link Logger}, for modules and services: `@inject(LOGGER) logger: Logger`. */
export const LOGGER: InjectionToken<Logger> = Symbol("switchboard.Logger");
