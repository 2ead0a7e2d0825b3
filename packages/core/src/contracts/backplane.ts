import type { SendTarget } from "./send-target.js";

/** What a backplane subscribes to for one hub: every connection, a group, a user or one connection. */
export type BackplaneScope = "all" | "group" | "user" | "connection";

/**
 * One send as it crosses the backplane: the message already encoded by every protocol of the
 * sending server, by protocol name (`"json"`, `"messagepack"`). Receiving servers hand these bytes
 * to their local recipients as they are: a send is encoded once per protocol cluster-wide.
 */
export type EncodedMessage = ReadonlyMap<string, Uint8Array>;

/** A group change for a connection that may live on another server (`groups.add/remove` of a remote connection). */
export interface GroupCommand {
  readonly op: "add" | "remove";
  readonly connectionId: string;
  readonly group: string;
  /** Also record it in the membership store (`{ persist: true }`), done by the connection's server. */
  readonly persist?: boolean;
}

/** What a backplane hands to its server. */
export interface BackplaneReceiver {
  /** A send another server published to a scope this server subscribed to. */
  deliver(hub: string, target: SendTarget, message: EncodedMessage): void;
  /**
   * A group command for one of this server's connections: resolves true once applied, false when
   * the connection is not here (another server answers), and rejects when applying it failed.
   */
  groupCommand(hub: string, command: GroupCommand): Promise<boolean>;
}

/**
 * The scale-out contract (e.g. `@switchboard/redis`): carries sends between Switchboard processes.
 * A server delivers every send to its own connections first and then publishes it once; it
 * subscribes to a scope while it has a local connection in it (a group with a local member, a
 * user with a local connection, a local connection) and unsubscribes when the last one leaves, so
 * a send reaches only the servers that have recipients. A backplane never hands a server its own
 * messages back. Implementations must not throw from `subscribe`/`unsubscribe`.
 */
export interface Backplane {
  /** Starts; `receiver` gets the sends other servers published to subscribed scopes, and group commands for local connections. */
  start(receiver: BackplaneReceiver): Promise<void>;
  /** Publishes one send; rejects (fast) when the other servers cannot be reached. */
  publish(hub: string, target: SendTarget, message: EncodedMessage): Promise<void>;
  /**
   * Has the server that holds `command.connectionId` apply the command; resolves once it did,
   * rejects with its error, or with `SB_ERR_TIMEOUT` when no server answers in time.
   */
  groupCommand(hub: string, command: GroupCommand): Promise<void>;
  subscribe(hub: string, scope: BackplaneScope, key: string): void;
  unsubscribe(hub: string, scope: BackplaneScope, key: string): void;
  /** Stops; called by `server.close()`. */
  close(): Promise<void>;
}
