import pg from "pg";
import type { Pool, PoolConfig } from "pg";
import type { MembershipStore } from "@switchboard/core";

/** Options of {@link PostgresMembershipStore}: a pool of your own, or what to build one from. */
export interface PostgresMembershipStoreOptions {
  /** A pool the application owns (the store never ends it). Exclusive with `connectionString`/`poolConfig`. */
  readonly pool?: Pool;
  /** `postgres://user@host:port/db`; the store builds (and on `close()` ends) its own pool. */
  readonly connectionString?: string;
  /** Extra settings for the store's own pool. Defaults: max 5, connection timeout 2 000 ms, query timeout 5 000 ms. */
  readonly poolConfig?: PoolConfig;
  /** Table name, optionally schema-qualified (`app.group_members`): letters, digits and `_` only. Default `switchboard_group_members`. */
  readonly table?: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Double-quotes a checked identifier (`schema.table` → `"schema"."table"`). */
function quotedTable(name: string): string {
  const parts = name.split(".");
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw new TypeError(`PostgresMembershipStore: table '${name}' must be [schema.]name of letters, digits and '_'.`);
  }
  return parts.map((part) => `"${part}"`).join(".");
}

/** PostgreSQL `text` holds any Unicode string except one containing U+0000. */
function checkText(what: string, value: string): void {
  if (typeof value !== "string" || value.length === 0) throw new TypeError(`PostgresMembershipStore: ${what} must be a non-empty string.`);
  if (value.includes("\u0000")) throw new TypeError(`PostgresMembershipStore: ${what} contains U+0000, which PostgreSQL text cannot store.`);
}

/**
 * A {@link MembershipStore} in one PostgreSQL table, `(hub, user_id, group_name)` as primary key.
 * The table (and nothing else) is created on first use if missing. Every value travels as a query
 * parameter; only the checked table name is part of the SQL text.
 */
export class PostgresMembershipStore implements MembershipStore {
  readonly table: string;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #sql: { readonly create: string; readonly add: string; readonly remove: string; readonly groupsOf: string };
  #ready: Promise<void> | undefined;

  constructor(options: PostgresMembershipStoreOptions) {
    if (options.pool !== undefined && (options.connectionString !== undefined || options.poolConfig !== undefined)) {
      throw new TypeError("PostgresMembershipStore: give either 'pool' or 'connectionString'/'poolConfig', not both.");
    }
    if (options.pool === undefined && options.connectionString === undefined && options.poolConfig === undefined) {
      throw new TypeError("PostgresMembershipStore: needs 'pool', 'connectionString' or 'poolConfig'.");
    }
    this.table = options.table ?? "switchboard_group_members";
    const table = quotedTable(this.table);
    this.#ownsPool = options.pool === undefined;
    this.#pool =
      options.pool ??
      new pg.Pool({ max: 5, connectionTimeoutMillis: 2_000, query_timeout: 5_000, ...options.poolConfig, ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }) });
    if (this.#ownsPool) {
      // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
      this.#pool.on("error", () => undefined);
    }
    this.#sql = {
      create: `CREATE TABLE IF NOT EXISTS ${table} (hub text NOT NULL, user_id text NOT NULL, group_name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (hub, user_id, group_name))`,
      add: `INSERT INTO ${table} (hub, user_id, group_name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      remove: `DELETE FROM ${table} WHERE hub = $1 AND user_id = $2 AND group_name = $3`,
      groupsOf: `SELECT group_name FROM ${table} WHERE hub = $1 AND user_id = $2`,
    };
  }

  /** Creates the table if missing (once; retried after a failure). */
  ready(): Promise<void> {
    this.#ready ??= this.#pool.query(this.#sql.create).then(
      () => undefined,
      (error: unknown) => {
        this.#ready = undefined;
        throw error;
      },
    );
    return this.#ready;
  }

  async add(hub: string, user: string, group: string): Promise<void> {
    checkText("hub", hub);
    checkText("user", user);
    checkText("group", group);
    await this.ready();
    await this.#pool.query(this.#sql.add, [hub, user, group]);
  }

  async remove(hub: string, user: string, group: string): Promise<void> {
    checkText("hub", hub);
    checkText("user", user);
    checkText("group", group);
    await this.ready();
    await this.#pool.query(this.#sql.remove, [hub, user, group]);
  }

  async groupsOf(hub: string, user: string): Promise<readonly string[]> {
    checkText("hub", hub);
    checkText("user", user);
    await this.ready();
    const result = await this.#pool.query<{ group_name: string }>(this.#sql.groupsOf, [hub, user]);
    return result.rows.map((row) => row.group_name);
  }

  /** Ends the store's own pool; a pool given in the options is left to its owner. */
  async close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end();
  }
}
