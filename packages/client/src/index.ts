/**
 * @switchboard/client — rejoin groups after the official SignalR client comes back as a new
 * connection (`withAutomaticReconnect`, a server restart, a page reload, another server).
 *
 * The server hands a client that asks for it a signed rejoin token whenever its groups change
 * (client method `sb.rejoinToken`). This helper keeps the latest token (and, given a storage such
 * as `sessionStorage`, keeps it across page loads), puts it in the connection's URL while the
 * client is Reconnecting (the official client lets `baseUrl` change then) and before a first
 * start, and reports the groups the server restored (client method `sb.rejoined`, sent first on
 * every new connection). It depends only on the official client's public API.
 */
import type { HubConnection, HubConnectionBuilder } from "@microsoft/signalr";

/** Query parameter asking the server for rejoin messages. */
export const REJOIN_QUERY = "sb_rejoin";
/** Query parameter carrying the token. */
export const REJOIN_TOKEN_QUERY = "sb_rejoin_token";
/** Client method carrying a fresh token (or null: nothing to rejoin). */
export const REJOIN_TOKEN_METHOD = "sb.rejoinToken";
/** Client method carrying the restored group names, first on each connection. */
export const REJOINED_METHOD = "sb.rejoined";

/** The part of the Web Storage API the helper uses (`sessionStorage`, `localStorage` or your own). */
export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface RejoinOptions {
  /** Keeps the token across page loads or process restarts. Default: memory only (survives reconnects, not reloads). */
  readonly storage?: TokenStorage;
  /** Key under which `storage` keeps the token. Default `switchboard.rejoin:` + the hub URL's path. */
  readonly storageKey?: string;
  /** Called with the restored group names each time a connection starts (an empty array when none came back). */
  readonly onRejoined?: (groups: readonly string[]) => void;
}

/** What {@link withRejoin} returns. */
export interface Rejoin {
  /** The wired connection. */
  readonly connection: HubConnection;
  /** The groups the server restored on the latest connection (empty before the first). */
  readonly groups: readonly string[];
  /** The latest token, if any. Treat it as a credential: do not log it. */
  readonly token: string | undefined;
  /** Adds a listener for restored groups; returns a function that removes it. */
  onRejoined(listener: (groups: readonly string[]) => void): () => void;
  /** Forgets the token (memory and storage), e.g. when the user logs out. */
  clear(): void;
}

function isBuilder(target: HubConnection | HubConnectionBuilder): target is HubConnectionBuilder {
  return typeof (target as HubConnectionBuilder).build === "function";
}

/** The connection URL with the rejoin parameters set (and the token, when there is one). */
function rejoinUrl(url: string, token: string | undefined): string {
  const parsed = new URL(url);
  parsed.searchParams.set(REJOIN_QUERY, "1");
  if (token === undefined) parsed.searchParams.delete(REJOIN_TOKEN_QUERY);
  else parsed.searchParams.set(REJOIN_TOKEN_QUERY, token);
  return parsed.toString();
}

/**
 * Wires a connection (or builds one from `builder`) for rejoin. Call it before `start()`.
 *
 * ```ts
 * const { connection, onRejoined } = withRejoin(new HubConnectionBuilder().withUrl(url).withAutomaticReconnect(), { storage: sessionStorage });
 * onRejoined((groups) => console.log("back in", groups));
 * await connection.start();
 * ```
 */
export function withRejoin(target: HubConnection | HubConnectionBuilder, options: RejoinOptions = {}): Rejoin {
  const connection = isBuilder(target) ? target.build() : target;
  const storage = options.storage;
  const storageKey = options.storageKey ?? `switchboard.rejoin:${new URL(connection.baseUrl).pathname}`;
  const listeners = new Set<(groups: readonly string[]) => void>();
  if (options.onRejoined !== undefined) listeners.add(options.onRejoined);
  let token: string | undefined;
  let groups: readonly string[] = [];
  try {
    token = storage?.getItem(storageKey) ?? undefined;
  } catch {
    token = undefined; // storage may be unavailable (private mode, quota): keep the token in memory only
  }

  const keep = (value: string | undefined): void => {
    token = value;
    try {
      if (value === undefined) storage?.removeItem(storageKey);
      else storage?.setItem(storageKey, value);
    } catch {
      // as above: memory only
    }
  };

  connection.on(REJOIN_TOKEN_METHOD, (value: unknown) => keep(typeof value === "string" && value.length > 0 ? value : undefined));
  connection.on(REJOINED_METHOD, (value: unknown) => {
    groups = Array.isArray(value) ? value.filter((group): group is string => typeof group === "string") : [];
    for (const listener of listeners) listener(groups);
  });
  // A reconnect is a new connection: hand it the latest token. The official client allows a new
  // baseUrl exactly while Reconnecting.
  connection.onreconnecting(() => {
    connection.baseUrl = rejoinUrl(connection.baseUrl, token);
  });
  // After a stop (or a failed reconnect), a later start() carries the latest token too.
  connection.onclose(() => {
    connection.baseUrl = rejoinUrl(connection.baseUrl, token);
  });
  connection.baseUrl = rejoinUrl(connection.baseUrl, token);

  return {
    connection,
    get groups() {
      return groups;
    },
    get token() {
      return token;
    },
    onRejoined(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    clear() {
      keep(undefined);
      if (connection.state === "Disconnected" || connection.state === "Reconnecting") connection.baseUrl = rejoinUrl(connection.baseUrl, undefined);
    },
  };
}
