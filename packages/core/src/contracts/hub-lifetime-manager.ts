import type { InvocationMessage } from "./hub-messages.js";
import type { SendTarget } from "./send-target.js";
import type { SerializedRecord } from "./transport.js";

/**
 * What fan-out needs of a connection (the server's connections implement it). Fan-out reads these
 * fields and calls `enqueue`; it never touches the transport.
 */
export interface Recipient {
  /** The public connection id. */
  readonly connectionId: string;
  /** Names of the groups the connection is in (kept by the group registry). */
  readonly groups: Set<string>;
  /** The user this connection belongs to, or null. */
  readonly userIdentifier: string | null;
  /** Index of the connection's hub protocol in the server's `protocols` option. */
  readonly protocolIndex: number;
  /** Scratch mark for deduplicating recipients within one send; only the lifetime manager writes it. */
  sendStamp: number;
  /** True between the handshake and the end of the connection. */
  readonly connected: boolean;
  /** Queues one encoded record for this connection (it goes out at the end of the event-loop turn). */
  enqueue(record: SerializedRecord): void;
  /**
   * Sends records `[0, count)`, in order, as one transport message now if nothing else waits for
   * this connection; otherwise queues them as `enqueue` would. Called at the end of a turn.
   * `bytes` is the records' total length (counted once per burst, not per member). The array does
   * not change afterwards: a connection may keep it (stateful reconnect does, until the Ack).
   */
  deliverNow(records: readonly SerializedRecord[], count: number, bytes: number): void;
}

/**
 * The backplane contract: tracks the connections of one hub and delivers messages to any slice of
 * them. The in-memory manager answers synchronously; a backplane implementation returns promises
 * (hence `T | Promise<T>`).
 */
export interface HubLifetimeManager<C extends Recipient = Recipient> {
  onConnected(connection: C): void | Promise<void>;
  onDisconnected(connection: C): void | Promise<void>;
  send(target: SendTarget, message: InvocationMessage): void | Promise<void>;
  addToGroup(connectionId: string, group: string): void | Promise<void>;
  removeFromGroup(connectionId: string, group: string): void | Promise<void>;
}
