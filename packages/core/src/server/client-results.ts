import { ConnectionTimeoutError, SwitchboardError } from "../contracts/errors.js";
import type { InvocationMessage } from "../contracts/hub-messages.js";
import type { HubProtocol } from "../contracts/hub-protocol.js";
import type { Logger } from "../contracts/logger.js";
import type { SerializedRecord } from "../contracts/transport.js";
import type { HubConnection } from "../connections/hub-connection.js";
import type { ClientAnswer, InvokeOptions } from "../fan-out/clients.js";
import { SerializedMessage } from "../fan-out/serialized-message.js";

/**
 * Client results (§4.5): a server → client Invocation with an id, answered by the client's
 * Completion. Ids are `s1`, `s2`, … as ASP.NET's (the `s` keeps them apart from the client's own
 * numeric stream ids), counted per hub, so one id serves every member of an `invokeAll` and the
 * message is encoded once per protocol, not once per member.
 */
export class ClientResults {
  #lastId = 0;
  readonly #protocols: readonly HubProtocol[];
  readonly #logger: Logger;
  readonly #defaultTimeout: number;

  constructor(protocols: readonly HubProtocol[], logger: Logger, defaultTimeout: number) {
    this.#protocols = protocols;
    this.#logger = logger;
    this.#defaultTimeout = defaultTimeout;
  }

  /** Asks one connection; resolves with its result. */
  invoke(connection: HubConnection | undefined, connectionId: string, message: InvocationMessage, options: InvokeOptions): Promise<unknown> {
    if (connection === undefined || !connection.connected) {
      return Promise.reject(new SwitchboardError("SB_ERR_CONNECTION_CLOSED", `Connection '${connectionId}' is not connected.`));
    }
    const serialized = new SerializedMessage({ ...message, invocationId: `s${++this.#lastId}` }, this.#protocols, this.#logger);
    return this.#ask(connection, serialized, options);
  }

  /** Asks every member; resolves with each answer once all answered or timed out. */
  async invokeAll(members: Iterable<HubConnection>, message: InvocationMessage, options: InvokeOptions): Promise<Map<string, ClientAnswer>> {
    const serialized = new SerializedMessage({ ...message, invocationId: `s${++this.#lastId}` }, this.#protocols, this.#logger);
    const asked: [string, Promise<unknown>][] = [];
    for (const member of [...members]) asked.push([member.connectionId, this.#ask(member, serialized, options)]);
    const answers = new Map<string, ClientAnswer>();
    const settled = await Promise.allSettled(asked.map(([, answer]) => answer));
    settled.forEach((outcome, i) => {
      answers.set(asked[i]![0], outcome.status === "fulfilled" ? { result: outcome.value } : { error: outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason) });
    });
    return answers;
  }

  #ask(connection: HubConnection, serialized: SerializedMessage, options: InvokeOptions): Promise<unknown> {
    const record: SerializedRecord | null = serialized.recordFor(connection.protocolIndex);
    if (record === null) return Promise.reject(new SwitchboardError("SB_ERR_INVALID_MESSAGE", "The invocation could not be encoded for this client's protocol."));
    const id = (serialized.message as InvocationMessage).invocationId!;
    const timeout = options.timeout ?? this.#defaultTimeout;
    const signal = options.signal;
    return new Promise<unknown>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = (): void => {
        connection.streams.forgetResult(id);
        settle();
        reject(signal!.reason instanceof Error ? signal!.reason : new SwitchboardError("SB_ERR_CLIENT_RESULT", "The client result was aborted."));
      };
      if (signal?.aborted === true) return onAbort();
      try {
        connection.streams.expectResult(id, {
          resolve: (value) => (settle(), resolve(value)),
          reject: (error) => (settle(), reject(error)),
        });
      } catch (error) {
        return reject(error);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      timer = setTimeout(() => {
        connection.streams.forgetResult(id);
        settle();
        reject(new ConnectionTimeoutError(`The client did not answer '${(serialized.message as InvocationMessage).target}' within ${timeout} ms.`));
      }, timeout);
      connection.enqueue(record);
    });
  }
}
