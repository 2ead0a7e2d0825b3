import { setImmediate as nextTurn } from "node:timers/promises";
import { measure } from "mitata";
import { Server } from "socket.io";
import type { Profile } from "../profiles.js";
import { median, round, type ScenarioResult, type SystemName } from "../results.js";
import { cpuNanos, mitataOptions, type Progress } from "./hot-path.js";
import { SinkServer, type SinkConnection } from "./sink-server.js";

/** A small deterministic generator, so every run churns the same pairs. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0);
}

/** What a join+leave pair calls on each system. */
interface Membership {
  join(id: string, group: string): void;
  leave(id: string, group: string): void;
}

/** The plain two-way index, nothing else: the floor any implementation pays. */
class FloorMembership implements Membership {
  readonly #connections = new Map<string, { readonly groups: Set<string> }>();
  readonly #groups = new Map<string, Set<{ readonly groups: Set<string> }>>();
  join(id: string, group: string): void {
    let connection = this.#connections.get(id);
    if (connection === undefined) this.#connections.set(id, (connection = { groups: new Set() }));
    if (connection.groups.has(group)) return;
    let members = this.#groups.get(group);
    if (members === undefined) this.#groups.set(group, (members = new Set()));
    members.add(connection);
    connection.groups.add(group);
  }
  leave(id: string, group: string): void {
    const connection = this.#connections.get(id);
    if (connection === undefined || !connection.groups.delete(group)) return;
    const members = this.#groups.get(group)!;
    members.delete(connection);
    if (members.size === 0) this.#groups.delete(group);
  }
}

/** Puts every connection in its home group (round robin). */
function populate(membership: Membership, ids: readonly string[], names: readonly string[]): void {
  for (let i = 0; i < ids.length; i++) membership.join(ids[i]!, names[i % names.length]!);
}

/** Median nanoseconds of one call of `batch` (one batch of join+leave pairs). */
async function timeBatch(batch: () => void, minTimeMs: number): Promise<number> {
  return (await measure(batch, mitataOptions(minTimeMs, 5))).p50;
}

/**
 * Group churn with many connections: join+leave pairs per second (each connection joining a group
 * it is not in, then leaving it) through Switchboard's public group manager on real (sink)
 * connections, through Socket.IO's in-memory adapter exactly as `socket.join`/`socket.leave` call
 * it, and on a plain Map/Set two-way index (the floor); then the cost of disconnecting a
 * Switchboard connection that is in many groups.
 */
export async function churn(profile: Profile, progress: Progress): Promise<ScenarioResult[]> {
  const { connections, groups, pairsPerBatch, disconnectGroups, disconnectsPerBatch, minTimeMs } = profile.churn;
  const names = Array.from({ length: groups }, (_, index) => `group-${index}`);
  const random = lcg(42);
  const connectionOf = new Int32Array(pairsPerBatch);
  const groupOf = new Int32Array(pairsPerBatch);
  for (let i = 0; i < pairsPerBatch; i++) {
    const connection = random() % connections;
    connectionOf[i] = connection;
    // Never the connection's home group: a pair must really join and really leave.
    groupOf[i] = ((connection % groups) + 1 + (random() % (groups - 1))) % groups;
  }
  const results: ScenarioResult[] = [];
  const churned = (system: SystemName, opsPerSecond: number): ScenarioResult => ({ name: "group churn join+leave", system, protocol: system === "socket.io" ? "socket.io" : "json", members: connections, groups, opsPerSecond: round(opsPerSecond) });

  const server = new SinkServer();
  try {
    progress(`churn: opening ${connections} connections over ${groups} groups`);
    const manager = server.context.groups;
    const ids: string[] = [];
    for (let i = 0; i < connections; i++) ids.push((await server.open("json")).id);
    // The three are built side by side and timed in turns, in one heap: Switchboard's 100,000
    // real connections make every collection dearer, and alone they would weigh on its figure only.
    // A Socket.IO server that is not attached to any HTTP server: no engine, no sockets to close.
    const adapter = new Server().of("/").adapter;
    const floor = new FloorMembership();
    const socketIo: Membership = { join: (id, group) => void adapter.addAll(id, new Set([group])), leave: (id, group) => void adapter.del(id, group) };
    populate({ join: (id, group) => void manager.add(id, group), leave: () => {} }, ids, names);
    populate(socketIo, ids, names);
    populate(floor, ids, names);
    // One loop per system, written out: a loop shared through an interface would make its call
    // sites polymorphic and slow every system down by a different amount.
    const systems: { readonly system: SystemName; readonly batch: () => void; readonly ns: number[] }[] = [
      {
        system: "switchboard",
        batch: () => {
          for (let i = 0; i < pairsPerBatch; i++) {
            const id = ids[connectionOf[i]!]!;
            const group = names[groupOf[i]!]!;
            void manager.add(id, group);
            void manager.remove(id, group);
          }
        },
        ns: [],
      },
      {
        system: "socket.io",
        batch: () => {
          for (let i = 0; i < pairsPerBatch; i++) {
            const id = ids[connectionOf[i]!]!;
            const group = names[groupOf[i]!]!;
            void adapter.addAll(id, new Set([group])); // what socket.join(group) does
            void adapter.del(id, group); // what socket.leave(group) does
          }
        },
        ns: [],
      },
      {
        system: "raw-ws",
        batch: () => {
          for (let i = 0; i < pairsPerBatch; i++) {
            const id = ids[connectionOf[i]!]!;
            const group = names[groupOf[i]!]!;
            floor.join(id, group);
            floor.leave(id, group);
          }
        },
        ns: [],
      },
    ];
    for (let round = 0; round <= profile.repetitions; round++) {
      progress(`churn: join+leave pairs, Switchboard / Socket.IO adapter / plain Map/Set in turns (${round}/${profile.repetitions})`);
      for (const entry of systems) {
        const ns = await timeBatch(entry.batch, minTimeMs);
        if (round > 0) entry.ns.push(ns); // round 0 warms up
      }
    }
    for (const entry of systems) results.push(churned(entry.system, pairsPerBatch / (median(entry.ns) / 1e9)));
    const perGroup = connections / groups;
    for (const name of [names[0]!, names[groups - 1]!]) {
      const count = manager.count(name);
      if (count !== Math.floor(perGroup) && count !== Math.ceil(perGroup)) throw new Error(`churn left ${count} members in ${name}`);
    }

    progress(`churn: disconnecting connections that are in ${disconnectGroups} groups`);
    const rates: number[] = [];
    for (let repetition = 0; repetition <= Math.max(profile.repetitions, 9); repetition++) {
      const batch: SinkConnection[] = [];
      for (let k = 0; k < disconnectsPerBatch; k++) {
        const connection = await server.open("json");
        for (let g = 0; g < disconnectGroups; g++) await manager.add(connection.id, names[(k * disconnectGroups + g * 7 + repetition * 13) % groups]!);
        batch.push(connection);
      }
      // The setup's garbage is not the disconnect's cost; and the setup ran in microtasks only, so
      // timers that came due meanwhile (the heartbeat's pass over every connection) and the GC's
      // background sweeping get to finish before the clock starts.
      (globalThis as { gc?: () => void }).gc?.();
      await new Promise((resolve) => setTimeout(resolve, 20));
      const started = cpuNanos();
      for (const connection of batch) connection.handle.transportClosed();
      await nextTurn(); // onDisconnected and the scope's disposal are asynchronous: count them too
      const seconds = (cpuNanos() - started) / 1e9;
      if (manager.groupsOf(batch[0]!.id).length !== 0) throw new Error("a disconnected connection is still in its groups");
      // The first batch warms up; the median keeps a batch that met the once-a-second heartbeat
      // (a pass over every connection) from deciding the figure.
      if (repetition > 0) rates.push(disconnectsPerBatch / Math.max(seconds, 1e-6));
    }
    results.push({ name: "disconnect in many groups", system: "switchboard", protocol: "json", members: connections, groups: disconnectGroups, opsPerSecond: round(median(rates)), repetitions: rates.length });
  } finally {
    await server.close();
  }
  return results;
}
