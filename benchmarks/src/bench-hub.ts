import { Hub, type Logger } from "@switchboard/core";

/**
 * The hub both the end-to-end server and the in-process benchmark serve. Clients join groups
 * through it; the messages measured are sent from outside, through the hub context, so what is
 * timed is the fan-out itself.
 */
@Hub("/bench")
export class BenchHub extends Hub {
  async Join(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group);
  }

  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }

  /** An invocation that does nothing, to time the invocation path (pipeline scenario). */
  Noop(): void {}
}

/** Errors go to stderr; nothing else is logged (a log line per connection would be measured too). */
export const QUIET_LOGGER: Logger = {
  debug() {},
  info() {},
  warn(fields, message) {
    process.stderr.write(`[bench warn] ${message} ${JSON.stringify(fields)}\n`);
  },
  error(fields, message) {
    process.stderr.write(`[bench error] ${message} ${JSON.stringify(fields, (_key, value: unknown) => (value instanceof Error ? value.message : value))}\n`);
  },
};
