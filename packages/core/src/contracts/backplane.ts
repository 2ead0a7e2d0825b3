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

/**
 * A client-results invocation for a connection that may live on another server: its server
 * queues `message` (the Invocation, with its id, encoded by every protocol of the asking server)
 * and answers with the client's Completion.
 */
export interface InvokeCommand {
  readonly op: "invoke";
  readonly connectionId: string;
  readonly invocationId: string;
  readonly message: EncodedMessage;
  /** How long the asking server waits, in ms; the connection's server forgets the invocation after it. */
  readonly timeout: number;
}

/** The asking server stopped waiting for an {@link InvokeCommand} (timeout or abort): a late answer is ignored. */
export interface CancelCommand {
  readonly op: "cancel";
  readonly connectionId: string;
  readonly invocationId: string;
}

/** What one server asks the server of a connection to do; answered by that server only. */
export type ConnectionCommand = GroupCommand | InvokeCommand | CancelCommand;

/** The answer to a {@link ConnectionCommand}: empty, or for an invoke the client's Completion, as its protocol encoded it. */
export interface CommandAnswer {
  readonly completion?: { readonly protocol: string; readonly bytes: Uint8Array };
}

/** What a backplane hands to its server. */
export interface BackplaneReceiver {
  /** A send another server published to a scope this server subscribed to. */
  deliver(hub: string, target: SendTarget, message: EncodedMessage): void;
  /**
   * A command for a connection on this server: resolves with the answer once carried out,
   * `undefined` when the connection is not here (its own server answers), and rejects with an
   * error whose message may be shown to the asking server's caller.
   */
  command(hub: string, command: ConnectionCommand): Promise<CommandAnswer | undefined>;
  /** Every group membership of this server's connections, by hub, for a {@link GroupDirectory} to rewrite after Redis was away. */
  memberships(): Iterable<readonly [hub: string, group: string, connectionId: string]>;
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
  /** Starts; `receiver` gets the sends other servers published to subscribed scopes, and commands for local connections. */
  start(receiver: BackplaneReceiver): Promise<void>;
  /** Publishes one send; rejects (fast) when the other servers cannot be reached. */
  publish(hub: string, target: SendTarget, message: EncodedMessage): Promise<void>;
  /**
   * Has the server that holds `command.connectionId` carry out the command; resolves with its
   * answer, rejects with its error, with `SB_ERR_BACKPLANE` when no server has the connection, or
   * with `SB_ERR_TIMEOUT` when none answers in time (an invoke waits its own `timeout`).
   */
  command(hub: string, command: ConnectionCommand): Promise<CommandAnswer>;
  subscribe(hub: string, scope: BackplaneScope, key: string): void;
  unsubscribe(hub: string, scope: BackplaneScope, key: string): void;
  /** Stops; called by `server.close()`. */
  close(): Promise<void>;
}

/** Where a page of names starts and how long it is. */
export interface PageOptions {
  /** The `cursor` of the previous page; absent for the first. */
  readonly cursor?: string;
  /** At most this many names (1–1,000). Default 100. */
  readonly limit?: number;
}

/** One page of names, in a stable order; `cursor` fetches the next one and is absent on the last. */
export interface Page {
  readonly items: readonly string[];
  readonly cursor?: string;
}

/**
 * Cluster-wide group membership: every server records its connections' joins and leaves, and any
 * server answers queries about all of them. A {@link Backplane} may implement it too (the Redis
 * one does): the server then uses it for `groups.cluster`. Its lifetime is the backplane's; after
 * losing its store it rewrites this server's memberships from `BackplaneReceiver.memberships()`.
 *
 * For plugin authors: `track` is called in order, on the send path of joins and leaves, and must
 * neither throw nor block; a server that dies without closing must have its entries expire (a
 * lease). Names are arbitrary non-empty strings: store and return them exactly. Queries reject
 * (never answer stale-as-fresh) when the store cannot be reached.
 */
export interface GroupDirectory {
  /** A local connection joined (`true`) or left (`false`) a group of `hub`. */
  track(hub: string, group: string, connectionId: string, joined: boolean): void;
  /** Members of `group` on every server. */
  count(hub: string, group: string): Promise<number>;
  has(hub: string, group: string, connectionId: string): Promise<boolean>;
  /** The groups of a connection on any server (empty when unknown). */
  groupsOf(hub: string, connectionId: string): Promise<readonly string[]>;
  /** Connection ids in `group`, a page at a time. */
  members(hub: string, group: string, page: PageOptions): Promise<Page>;
  /** Names of the groups with at least one member on any server, a page at a time. */
  groups(hub: string, page: PageOptions): Promise<Page>;
}
