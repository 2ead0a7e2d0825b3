import { MemoryMembershipStore, type MembershipStore } from "@switchboard/core";
import { PostgresMembershipStore } from "@switchboard/postgres";
import { RedisBackplane, RedisMembershipStore } from "@switchboard/redis";
import { rejoinKey, startChatApp, type ChatApp } from "./app.js";

/** A startup problem the user can fix: printed as one line, without a stack. */
function fail(message: string): never {
  console.error(`chat demo: ${message}`);
  process.exit(1);
}

const portText = process.env.PORT ?? "5000";
const host = process.env.HOST ?? "127.0.0.1";
if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) fail(`PORT must be a port number from 0 to 65535, got '${portText}'.`);
const port = Number(portText);

// Rooms of named users are persisted: in memory, in PostgreSQL when DATABASE_URL is set, else in
// Redis when REDIS_URL is set. REDIS_URL also turns on the backplane: several demo processes on
// one Redis are one chat (REDIS_URL=redis://127.0.0.1:6379 PORT=5001 npm start, and again on 5002).
const databaseUrl = process.env.DATABASE_URL;
const redisUrl = process.env.REDIS_URL === "" ? undefined : process.env.REDIS_URL;
const postgres = databaseUrl === undefined || databaseUrl === "" ? undefined : new PostgresMembershipStore({ connectionString: databaseUrl });
const redisStore = postgres === undefined && redisUrl !== undefined ? new RedisMembershipStore({ url: redisUrl }) : undefined;
const membershipStore: MembershipStore = postgres ?? redisStore ?? new MemoryMembershipStore();
const backplane = redisUrl === undefined ? undefined : new RedisBackplane({ url: redisUrl });

let app: ChatApp;
try {
  // With Redis, used anonymous rejoin tokens are remembered by every demo process, not each alone.
  const rejoin = redisStore === undefined ? {} : { rejoin: { keys: [rejoinKey().key], usedTokens: redisStore } };
  app = await startChatApp(port, host, backplane === undefined ? { membershipStore } : { membershipStore, backplane, ...rejoin });
  if (backplane !== undefined) {
    // The backplane would keep retrying; the demo says what is wrong instead of waiting silently.
    const unreachable = () => fail(`REDIS_URL is set but Redis at ${redisUrl} cannot be reached: start it, or unset REDIS_URL for a single process.`);
    const timer = setTimeout(unreachable, 5_000);
    await app.switchboard.ready.then(() => clearTimeout(timer), unreachable);
  }
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") fail(`port ${port} on ${host} is already in use: stop what is using it, or pick another port (PORT=${port === 65535 ? 5001 : port + 1} npm start).`);
  if (code === "EACCES") fail(`port ${port} needs privileges this process does not have: pick a port above 1023 (PORT=5000 npm start).`);
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND") fail(`HOST '${host}' is not an address of this machine (HOST=127.0.0.1 or HOST=0.0.0.0).`);
  fail(`could not start: ${(error as Error)?.message ?? String(error)}`);
}
console.log(
  `Switchboard chat demo: http://${host === "0.0.0.0" ? "localhost" : host}:${app.port}/  (hub: /hubs/chat; ` +
    `rejoin tokens signed with ${rejoinKey().source}; rooms persisted ${postgres !== undefined ? `in PostgreSQL table ${postgres.table}` : redisStore !== undefined ? "in Redis" : "in memory (set DATABASE_URL=postgres://… for PostgreSQL)"}; ` +
    `${backplane === undefined ? "one process (set REDIS_URL=redis://… to scale out)" : `scaled out through Redis at ${redisUrl}`})`,
);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    console.log("Stopping: telling every client, then closing.");
    void app
      .close()
      .then(() => postgres?.close())
      .then(() => redisStore?.close())
      .then(() => process.exit(0));
  });
}
