/**
 * PostgresMembershipStore against a real PostgreSQL (127.0.0.1:5432, trust auth, database `test`,
 * or PG_TEST_URL). Each run uses its own table and drops it. Without a reachable server the suite
 * is skipped with a warning, except under CI=true, where it fails.
 */
import "reflect-metadata";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { Hub, type ServerOptions } from "@switchboard/core";
import { PostgresMembershipStore } from "@switchboard/postgres";
import { closeAll, connectClient, record, startServer, until, type ClientProtocol } from "../../../test-support/harness.js";
import { CutProxy } from "../../../test-support/cut-proxy.js";

const URL = process.env.PG_TEST_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const mustRun = process.env.CI === "true";

async function reachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: URL, connectionTimeoutMillis: 2_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const unreachable = await reachable();
if (unreachable !== undefined && !mustRun) {
  console.warn(`packages/postgres: skipping the PostgreSQL tests, ${URL} is unreachable (${unreachable}).`);
}

@Hub("/rooms")
class RoomHub extends Hub {
  async Persist(group: string): Promise<void> {
    await this.groups.add(this.context.connectionId, group, { persist: true });
  }
  async Unpersist(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group, { persist: true });
  }
  MyGroups(): string[] {
    return this.groups.groupsOf(this.context.connectionId).sort();
  }
}

const AWKWARD_USERS: Record<string, string> = { big: "u".repeat(10 * 1024), proto: "__proto__", quote: `O'Brien "); DROP TABLE x; --` };
const auth: Partial<ServerOptions> = {
  authenticate: ({ token }) => (token === undefined ? null : { sub: token }),
  userIdProvider: ({ user }) => (user === null ? null : (AWKWARD_USERS[user.sub as string] ?? (user.sub as string))),
};

const table = `sb_test_members_${randomBytes(6).toString("hex")}`;
const stores: PostgresMembershipStore[] = [];
function store(options: Partial<ConstructorParameters<typeof PostgresMembershipStore>[0]> = {}): PostgresMembershipStore {
  const created = new PostgresMembershipStore({ connectionString: URL, table, ...options });
  stores.push(created);
  return created;
}

afterEach(async () => {
  await closeAll();
  await Promise.allSettled(stores.splice(0).map((s) => s.close()));
});

describe.skipIf(unreachable !== undefined && !mustRun)("PostgresMembershipStore", () => {
  beforeEach(() => {
    if (unreachable !== undefined) throw new Error(`CI=true but PostgreSQL at ${URL} is unreachable: ${unreachable}`);
  });
  afterAll(async () => {
    if (unreachable !== undefined) return;
    const client = new pg.Client({ connectionString: URL });
    await client.connect();
    await client.query(`DROP TABLE IF EXISTS "${table}"`);
    await client.end();
  });

  it("creates its table, and add/remove/groupsOf are idempotent and scoped by hub and user", async () => {
    const s = store();
    await s.add("H", "alice", "a");
    await s.add("H", "alice", "a");
    await s.add("H", "alice", "b");
    await s.add("Other", "alice", "c");
    await s.add("H", "bob", "d");
    expect([...(await s.groupsOf("H", "alice"))].sort()).toEqual(["a", "b"]);
    await s.remove("H", "alice", "b");
    await s.remove("H", "alice", "never");
    expect(await s.groupsOf("H", "alice")).toEqual(["a"]);
    expect(await s.groupsOf("H", "nobody")).toEqual([]);
  });

  it("refuses a table name that is not a plain identifier, and U+0000 (which PostgreSQL text cannot hold)", async () => {
    expect(() => new PostgresMembershipStore({ connectionString: URL, table: 'x"; DROP TABLE y; --' })).toThrow(TypeError);
    await expect(store().add("H", "u", "a\u0000b")).rejects.toThrow(/U\+0000/);
  });

  it.each<ClientProtocol>(["json", "messagepack"])("persisted membership survives a restart (%s), awkward names and user ids exactly", async (protocol) => {
    const groups = [`it's "quoted"; DROP TABLE x; --`, "__proto__", "g".repeat(10 * 1024), "ünï 😀", `${protocol}-room`];
    const first = await startServer([RoomHub], { ...auth, membershipStore: store() });
    for (const user of ["big", "proto", "quote"]) {
      const connection = await connectClient(`${first.url("/rooms")}?access_token=${user}`, protocol);
      for (const group of groups) await connection.invoke("Persist", group);
      await connection.invoke("Unpersist", `${protocol}-room`);
    }
    await closeAll(); // the first server and its clients are gone

    const second = await startServer([RoomHub], { ...auth, membershipStore: store() });
    const expected = groups.filter((group) => group !== `${protocol}-room`).sort();
    for (const user of ["big", "proto", "quote"]) {
      const connection = await connectClient(`${second.url("/rooms")}?access_token=${user}&sb_rejoin=1`, protocol);
      expect(await connection.invoke("MyGroups")).toEqual(expected);
    }
    const client = new pg.Client({ connectionString: URL });
    await client.connect();
    const rows = await client.query(`SELECT count(*)::int AS n FROM "${table}" WHERE user_id = $1`, [AWKWARD_USERS.quote]);
    await client.end();
    expect(rows.rows[0].n).toBeGreaterThanOrEqual(expected.length);
  });

  it("database unreachable mid-run: users still connect (error logged), and once it is back nothing persisted was lost", async () => {
    const proxy = await CutProxy.start(5432);
    const proxied = URL.replace("127.0.0.1:5432", `127.0.0.1:${proxy.port}`);
    const s = store({ connectionString: proxied, poolConfig: { connectionTimeoutMillis: 500, query_timeout: 500, idleTimeoutMillis: 100 } });
    const server = await startServer([RoomHub], { ...auth, membershipStore: s, membershipTimeout: 300 });
    const alice = await connectClient(`${server.url("/rooms")}?access_token=alice`);
    await alice.invoke("Persist", "kept");

    proxy.cut();
    proxy.hold(); // the database stops answering: new connections hang, existing ones are gone
    const during = await connectClient(`${server.url("/rooms")}?access_token=alice&sb_rejoin=1`);
    const rejoined = record(during, "sb.rejoined");
    expect(await during.invoke("MyGroups")).toEqual([]);
    await until(() => rejoined.length === 1, 5_000, "sb.rejoined");
    expect(rejoined[0]).toEqual([[]]);
    expect(server.logger.entries.some((entry) => entry.level === "error" && entry.message.includes("Reading persisted groups failed"))).toBe(true);
    await expect(during.invoke("Persist", "during-outage")).rejects.toThrow();

    proxy.release();
    await proxy.close(); // held connections dropped; the store reconnects directly below
    const direct = await startServer([RoomHub], { ...auth, membershipStore: store() });
    const after = await connectClient(`${direct.url("/rooms")}?access_token=alice`);
    expect(await after.invoke("MyGroups")).toEqual(["kept"]);
  });
});

describe("PostgresMembershipStore without a database", () => {
  it("a store pointing nowhere: the user connects, the error is logged", async () => {
    const nowhere = new PostgresMembershipStore({ connectionString: "postgres://postgres@127.0.0.1:1/test", poolConfig: { connectionTimeoutMillis: 500 } });
    stores.push(nowhere);
    const server = await startServer([RoomHub], { ...auth, membershipStore: nowhere, membershipTimeout: 1_000 });
    const connection = await connectClient(`${server.url("/rooms")}?access_token=alice`);
    expect(await connection.invoke("MyGroups")).toEqual([]);
    await until(() => server.logger.entries.some((entry) => entry.level === "error" && entry.message.includes("Reading persisted groups failed")), 5_000, "logged error");
  });
});
