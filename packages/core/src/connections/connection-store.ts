import { randomBytes } from "node:crypto";

/** A new public connection id or secret connection token: 16 CSPRNG bytes, base64url (22 chars). */
export function newId(): string {
  return randomBytes(16).toString("base64url");
}

interface Entry {
  /**
   * The token itself (the map's key). A connection keeps this string rather than the one its
   * transport read from the request URL, which V8 keeps as a 32-byte slice of that URL.
   */
  readonly token: string;
  readonly connectionId: string;
  /** Forgets the token if no transport claims it in time; undefined once one has (in use). */
  timer: NodeJS.Timeout | undefined;
  /** Who negotiated this token (for binding the token to a principal). */
  readonly owner: unknown;
  /** The negotiate answer offered stateful reconnect (§8.1). */
  readonly statefulReconnect: boolean;
}

/**
 * Negotiated connection tokens of one hub endpoint (§1.2): a secret token maps to the public id.
 * A token must be claimed by exactly one transport within `unusedTimeout`, and is forgotten when
 * its connection ends. Look-ups go through a `Map`, never a plain object.
 */
export class ConnectionStore {
  readonly #entries = new Map<string, Entry>();
  readonly #unusedTimeout: number;
  #pending = 0;

  constructor(unusedTimeout: number) {
    this.#unusedTimeout = unusedTimeout;
  }

  /**
   * Creates a pending connection: a public id and its secret token. `owner` names who negotiated
   * it (given the new id); `peek` returns it so a connect request by someone else can be refused.
   * `statefulReconnect` records that the negotiate answer offered stateful reconnect.
   */
  create(owner?: (connectionId: string) => unknown, statefulReconnect = false): { connectionId: string; connectionToken: string } {
    const connectionId = newId();
    const connectionToken = newId();
    const entry: Entry = { token: connectionToken, connectionId, timer: undefined, owner: owner?.(connectionId), statefulReconnect };
    entry.timer = setTimeout(() => {
      this.#pending--;
      this.#entries.delete(connectionToken);
    }, this.#unusedTimeout);
    this.#pending++;
    entry.timer.unref();
    this.#entries.set(connectionToken, entry);
    return { connectionId, connectionToken };
  }

  /** Looks `token` up without claiming it. The answer's `token` is the store's own copy of the string. */
  peek(token: string): { readonly token: string; readonly connectionId: string; readonly owner: unknown; readonly inUse: boolean; readonly statefulReconnect: boolean } | undefined {
    const entry = this.#entries.get(token);
    return entry === undefined ? undefined : { token: entry.token, connectionId: entry.connectionId, owner: entry.owner, inUse: entry.timer === undefined, statefulReconnect: entry.statefulReconnect };
  }

  /** Marks a pending token (checked with `peek`) as used by a transport: it no longer expires. */
  claim(token: string): void {
    const entry = this.#entries.get(token);
    if (entry === undefined || entry.timer === undefined) return;
    this.#pending--;
    clearTimeout(entry.timer);
    entry.timer = undefined;
  }

  /** Forgets `token` (its connection has ended); a later `peek` finds nothing. */
  release(token: string): void {
    const entry = this.#entries.get(token);
    if (entry === undefined) return;
    if (entry.timer !== undefined) this.#pending--;
    clearTimeout(entry.timer);
    this.#entries.delete(token);
  }

  /** Forgets every token (server shutdown). */
  clear(): void {
    for (const entry of this.#entries.values()) clearTimeout(entry.timer);
    this.#entries.clear();
    this.#pending = 0;
  }

  /** Tokens negotiated but not claimed by a transport yet. */
  get pending(): number {
    return this.#pending;
  }

  get size(): number {
    return this.#entries.size;
  }
}
