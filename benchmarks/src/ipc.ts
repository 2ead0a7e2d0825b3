import type { ChildProcess } from "node:child_process";

/**
 * Control messages between the runner and its child processes over Node's IPC channel. A request
 * carries an id and gets one reply; id 0 is a notification (no reply, used for the per-round
 * `send` so the server process does as little control work as possible). Children also push
 * events (`ready`, `round`, `progress`).
 */
interface RequestMessage {
  readonly id: number;
  readonly cmd: string;
  readonly args: unknown;
}
interface ReplyMessage {
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}
interface EventMessage {
  readonly event: string;
  readonly data: unknown;
}

type Handler = (args: any) => unknown;

function isRequest(message: unknown): message is RequestMessage {
  return typeof message === "object" && message !== null && typeof (message as RequestMessage).cmd === "string";
}

/** Child side: answers the runner's requests with `handlers`, and exits when the runner goes away. */
export function serveCommands(handlers: Readonly<Record<string, Handler>>): void {
  process.on("message", (message: unknown) => {
    if (!isRequest(message)) return;
    const handler = handlers[message.cmd];
    const reply = (body: { result?: unknown; error?: string }): void => {
      if (message.id !== 0) process.send?.({ id: message.id, ...body });
    };
    if (handler === undefined) return reply({ error: `unknown command '${message.cmd}'` });
    let result: unknown;
    try {
      result = handler(message.args);
    } catch (error) {
      if (message.id === 0) throw error; // a failed notification has nobody to tell: crash loudly
      return reply({ error: String((error as Error)?.stack ?? error) });
    }
    if (result instanceof Promise) {
      result.then(
        (value: unknown) => reply({ result: value }),
        (error: unknown) => reply({ error: String((error as Error)?.stack ?? error) }),
      );
    } else {
      reply({ result });
    }
  });
  // The runner died or closed the channel: never outlive it.
  process.on("disconnect", () => process.exit(0));
}

/** Child side: pushes an event to the runner. */
export function emit(event: string, data?: unknown): void {
  process.send?.({ event, data });
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Runner side: requests, notifications and events of one child process. */
export class ChildChannel {
  readonly name: string;
  readonly child: ChildProcess;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Map<string, (data: unknown) => void>();
  readonly #exitWaiters = new Set<(error: Error) => void>();
  #exited: Error | undefined;
  readonly exited: Promise<void>;

  constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    child.on("message", (message: unknown) => this.#onMessage(message));
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.#exited = new Error(`${name} exited (${signal ?? `code ${code}`})`);
        for (const pending of this.#pending.values()) {
          clearTimeout(pending.timer);
          pending.reject(this.#exited);
        }
        this.#pending.clear();
        for (const waiter of this.#exitWaiters) waiter(this.#exited);
        this.#exitWaiters.clear();
        resolve();
      });
    });
  }

  get alive(): boolean {
    return this.#exited === undefined;
  }

  #onMessage(message: unknown): void {
    if (typeof message !== "object" || message === null) return;
    if ("event" in message) {
      const { event, data } = message as EventMessage;
      this.#listeners.get(event)?.(data);
      return;
    }
    const { id, result, error } = message as ReplyMessage;
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (error !== undefined) pending.reject(new Error(`${this.name}: ${error}`));
    else pending.resolve(result);
  }

  /** Sends a command and resolves with its result. */
  request<T>(cmd: string, args?: unknown, timeoutMs = 180_000): Promise<T> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: '${cmd}' timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      this.child.send({ id, cmd, args });
    });
  }

  /** Sends a command without waiting for (or getting) an answer. */
  notify(cmd: string, args?: unknown): void {
    if (this.#exited === undefined) this.child.send({ id: 0, cmd, args });
  }

  /** One listener per event name (a later one replaces it). */
  on(event: string, listener: (data: unknown) => void): void {
    this.#listeners.set(event, listener);
  }

  off(event: string): void {
    this.#listeners.delete(event);
  }

  /** Resolves with the data of the next `event`, or rejects on timeout or exit. */
  next<T>(event: string, timeoutMs: number): Promise<T> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    return new Promise<T>((resolve, reject) => {
      const onExit = (error: Error): void => {
        done();
        reject(error);
      };
      const done = (): void => {
        clearTimeout(timer);
        this.off(event);
        this.#exitWaiters.delete(onExit);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no '${event}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on(event, (data) => {
        done();
        resolve(data as T);
      });
      this.#exitWaiters.add(onExit);
    });
  }

  /** Calls `listener` once if the child exits (until `offExit`). */
  onExit(listener: (error: Error) => void): void {
    if (this.#exited !== undefined) listener(this.#exited);
    else this.#exitWaiters.add(listener);
  }

  offExit(listener: (error: Error) => void): void {
    this.#exitWaiters.delete(listener);
  }

  /** Asks the child to close, then kills it if it is still there after `graceMs`. */
  async close(graceMs = 5_000): Promise<void> {
    if (this.#exited !== undefined) return;
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    try {
      await this.request("close", undefined, graceMs).catch(() => undefined);
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
