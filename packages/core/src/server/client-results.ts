import { randomBytes } from "node:crypto";
import { ConnectionTimeoutError, SwitchboardError } from "../contracts/errors.js";
import { MessageType, type CompletionMessage, type HubMessage, type InvocationMessage } from "../contracts/hub-messages.js";
import type { HubProtocol, ParserLimits } from "../contracts/hub-protocol.js";
import type { CommandAnswer, ConnectionCommand, InvokeCommand } from "../contracts/backplane.js";
import { ClientResultError } from "../connections/connection-streams.js";
import type { Logger } from "../contracts/logger.js";
import type { SerializedRecord } from "../contracts/transport.js";
import type { HubConnection } from "../connections/hub-connection.js";
import type { ClientAnswer, InvokeOptions } from "../fan-out/clients.js";
import { ForeignMessage, SerializedMessage } from "../fan-out/serialized-message.js";

/** How a server reaches a connection of another server (its backplane). */
export type RemoteCommand = (command: ConnectionCommand) => Promise<CommandAnswer>;

/**
 * Client results (§4.5): a server → client Invocation with an id, answered by the client's
 * Completion. Ids are `s1`, `s2`, … as ASP.NET's (the `s` keeps them apart from the client's own
 * numeric stream ids), counted per hub, so one id serves every member of an `invokeAll` and the
 * message is encoded once per protocol, not once per member.
 *
 * With a backplane a connection of another server is asked through it: the Invocation travels
 * encoded by every protocol, that server queues it and sends back the client's Completion as the
 * client's protocol encoded it. Ids then carry a random per-process part, so two servers never
 * hand one connection the same id.
 */
export class ClientResults {
  #lastId = 0;
  readonly #prefix: string;
  readonly #protocols: readonly HubProtocol[];
  readonly #logger: Logger;
  readonly #defaultTimeout: number;
  readonly #limits: ParserLimits;
  readonly #remote: RemoteCommand | undefined;

  constructor(protocols: readonly HubProtocol[], logger: Logger, defaultTimeout: number, limits: ParserLimits, remote?: RemoteCommand) {
    this.#protocols = protocols;
    this.#logger = logger;
    this.#defaultTimeout = defaultTimeout;
    this.#limits = limits;
    this.#remote = remote;
    this.#prefix = remote === undefined ? "s" : `s${randomBytes(6).toString("base64url")}.`;
  }

  #nextId(): string {
    return `${this.#prefix}${++this.#lastId}`;
  }

  /** Asks one connection; resolves with its result. */
  invoke(connection: HubConnection | undefined, connectionId: string, message: InvocationMessage, options: InvokeOptions): Promise<unknown> {
    if (connection === undefined && this.#remote !== undefined) {
      const serialized = new SerializedMessage({ ...message, invocationId: this.#nextId() }, this.#protocols, this.#logger);
      return this.#askRemote(connectionId, serialized, options);
    }
    if (connection === undefined || !connection.connected) {
      return Promise.reject(new SwitchboardError("SB_ERR_CONNECTION_CLOSED", `Connection '${connectionId}' is not connected.`));
    }
    const serialized = new SerializedMessage({ ...message, invocationId: this.#nextId() }, this.#protocols, this.#logger);
    return this.#ask(connection, serialized, options);
  }

  /**
   * Asks every member; resolves with each answer once all answered or timed out. `remote` are
   * members on other servers (from a directory), asked through the backplane.
   */
  async invokeAll(members: Iterable<HubConnection>, message: InvocationMessage, options: InvokeOptions, remote: readonly string[] = []): Promise<Map<string, ClientAnswer>> {
    const serialized = new SerializedMessage({ ...message, invocationId: this.#nextId() }, this.#protocols, this.#logger);
    const asked: [string, Promise<unknown>][] = [];
    for (const member of [...members]) asked.push([member.connectionId, this.#ask(member, serialized, options)]);
    for (const connectionId of remote) asked.push([connectionId, this.#askRemote(connectionId, serialized, options)]);
    const answers = new Map<string, ClientAnswer>();
    const settled = await Promise.allSettled(asked.map(([, answer]) => answer));
    settled.forEach((outcome, i) => {
      answers.set(asked[i]![0], outcome.status === "fulfilled" ? { result: outcome.value } : { error: outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason) });
    });
    return answers;
  }

  /** Asks a connection of another server through the backplane. */
  #askRemote(connectionId: string, serialized: SerializedMessage, options: InvokeOptions): Promise<unknown> {
    const remote = this.#remote!;
    const invocation = serialized.message as InvocationMessage;
    const invocationId = invocation.invocationId!;
    const timeout = options.timeout ?? this.#defaultTimeout;
    const signal = options.signal;
    return new Promise<unknown>((resolve, reject) => {
      let done = false;
      const stop = (): void => {
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      // The other server stops waiting too; a lost cancel only costs it its own timeout.
      const cancel = (): void => void remote({ op: "cancel", connectionId, invocationId }).catch(() => undefined);
      const onAbort = (): void => {
        if (done) return;
        stop();
        cancel();
        reject(signal!.reason instanceof Error ? signal!.reason : new SwitchboardError("SB_ERR_CLIENT_RESULT", "The client result was aborted."));
      };
      const timer = setTimeout(() => {
        if (done) return;
        stop();
        cancel();
        reject(new ConnectionTimeoutError(`The client did not answer '${invocation.target}' within ${timeout} ms.`));
      }, timeout);
      if (signal?.aborted === true) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      remote({ op: "invoke", connectionId, invocationId, message: serialized.everyEncoding(), timeout }).then(
        (answer) => {
          if (done) return;
          stop();
          try {
            resolve(this.#completionResult(answer, invocationId));
          } catch (error) {
            reject(error);
          }
        },
        (error: unknown) => {
          if (done) return;
          stop();
          reject(error);
        },
      );
    });
  }

  /** The result in a Completion another server passed on (decoded by the client's protocol here). */
  #completionResult(answer: CommandAnswer, invocationId: string): unknown {
    const completion = answer.completion;
    const protocol = completion === undefined ? undefined : this.#protocols.find((candidate) => candidate.name === completion.protocol);
    let found: CompletionMessage | undefined;
    if (protocol !== undefined) {
      protocol.createParser(this.#limits).parse(completion!.bytes, (message: HubMessage) => {
        if (message.type === MessageType.Completion && message.invocationId === invocationId) found = message;
      });
    }
    if (found === undefined) throw new SwitchboardError("SB_ERR_CLIENT_RESULT", "The other server's answer could not be read.");
    if (found.error !== undefined) throw new ClientResultError(found.error);
    return found.result;
  }

  /**
   * Carries out an invoke another server asked of `connection` (here): queues the Invocation and
   * resolves with the client's Completion, encoded by the client's protocol (an error text when it
   * failed, the connection ended or the asking server's time ran out).
   */
  answerRemote(connection: HubConnection, command: InvokeCommand): Promise<CommandAnswer> {
    const protocol = this.#protocols[connection.protocolIndex]!;
    const record = new ForeignMessage(this.#protocols, command.message).recordFor(connection.protocolIndex);
    if (record === null) return Promise.reject(new SwitchboardError("SB_ERR_INVALID_MESSAGE", "The invocation was not encoded for this client's protocol."));
    const answer = (completion: CompletionMessage): CommandAnswer => ({ completion: { protocol: protocol.name, bytes: protocol.write(completion) } });
    const id = command.invocationId;
    return new Promise<CommandAnswer>((resolve, reject) => {
      const timeout = Math.min(Math.max(command.timeout, 0), 2 ** 31 - 1);
      const timer = setTimeout(() => {
        connection.streams.forgetResult(id);
        reject(new ConnectionTimeoutError(`The client did not answer within ${timeout} ms.`));
      }, timeout);
      try {
        connection.streams.expectResult(id, {
          resolve: (value) => (clearTimeout(timer), resolve(answer({ type: MessageType.Completion, invocationId: id, hasResult: true, result: value }))),
          reject: (error) => (clearTimeout(timer), resolve(answer({ type: MessageType.Completion, invocationId: id, error: error.message }))),
        });
      } catch (error) {
        clearTimeout(timer);
        return reject(error);
      }
      connection.enqueue(record);
    });
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

