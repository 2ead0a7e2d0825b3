import { setImmediate as nextTurn } from "node:timers/promises";
import { measure } from "mitata";
import type { Profile } from "../profiles.js";
import { round, type ScenarioResult } from "../results.js";
import { payloadOf } from "../e2e/stamp.js";
import { recordsOf, SinkServer, type SinkConnection } from "./sink-server.js";

/** Group compositions of the hot path: one protocol, the other, or half and half. */
export type Mix = "json" | "messagepack" | "mixed";
const MIXES: readonly Mix[] = ["json", "messagepack", "mixed"];

export type Progress = (text: string) => void;

/**
 * This process's CPU time (user + system, every thread, so GC helpers count) in nanoseconds, with
 * microsecond resolution. The in-process benchmarks are timed with it rather than the wall clock:
 * on a shared machine another process on our core stretches wall time but not our CPU time.
 */
export function cpuNanos(): number {
  const used = process.cpuUsage();
  return (used.user + used.system) * 1e3;
}

/**
 * mitata options for a run of at least `minTimeMs` of CPU time and at least `samples` samples.
 * Everything timed here takes microseconds, so batches stay small (mitata's default of 4,096
 * calls per sample is meant for nanosecond functions and would make short runs long).
 */
export function mitataOptions(minTimeMs: number, samples: number): { min_cpu_time: number; min_samples: number; batch_samples: number; now: () => number } {
  return { min_cpu_time: minTimeMs * 1e6, min_samples: Math.max(5, samples), batch_samples: 64, now: cpuNanos };
}

/**
 * Runs `fn` for at least `ms` and 20 calls before it is timed: mitata warms up only functions
 * faster than 0.5 ms, and ours (a turn of sends) are often slower, so the first samples would be
 * taken before V8 has optimized the send path.
 */
export async function warmUp(fn: () => Promise<void>, ms: number): Promise<void> {
  const until = performance.now() + ms;
  for (let calls = 0; calls < 20 || performance.now() < until; calls++) await fn();
}

/** What one `await nextTurn()` costs, to subtract from benchmarks that must let the flush run. */
export async function turnCost(minTimeMs: number, samples: number): Promise<number> {
  return (await measure(async () => await nextTurn(), mitataOptions(minTimeMs, samples))).p50;
}

export interface GroupSendTiming {
  /** Median nanoseconds per send, its flush included, without the benchmark's own event-loop turn. */
  readonly nsPerSend: number;
  readonly serializationsPerSend: number;
}

/**
 * Times sends to `groups` (one send to each, all in one event-loop turn, then the end-of-turn
 * flush that writes to every member's transport), checks that every member got every message,
 * and counts protocol writes per send. The groups must not share members: each send is then
 * encoded, queued and flushed on its own, exactly as a lone send, while the turn the benchmark
 * has to wait for is shared by all of them.
 */
export async function timeGroupSend(server: SinkServer, groups: readonly string[], members: readonly SinkConnection[], payload: string, baseline: number, minTimeMs: number, samples: number): Promise<GroupSendTiming> {
  const clients = server.context.clients;
  let sends = 0;
  const serializedBefore = server.serializations();
  const recordsBefore = recordsOf(members);
  const turn = async (): Promise<void> => {
    for (const group of groups) void clients.group(group).send("m", payload);
    sends += groups.length;
    await nextTurn(); // the flush scheduled by the sends runs first
  };
  await warmUp(turn, minTimeMs / 2);
  const stats = await measure(turn, mitataOptions(minTimeMs, samples));
  const delivered = recordsOf(members) - recordsBefore;
  if (delivered * groups.length !== sends * members.length) {
    throw new Error(`groups '${groups[0]}'…: ${delivered} records delivered for ${sends} sends to ${members.length / groups.length} members each`);
  }
  return { nsPerSend: Math.max(0, stats.p50 - baseline) / groups.length, serializationsPerSend: (server.serializations() - serializedBefore) / sends };
}

/** Recipients per timed turn for small groups, so the turn's own cost is spread thin. */
const RECIPIENTS_PER_TURN = 1_000;

/**
 * The in-process hot path: one hub sending to a group of N sink connections, for every group size,
 * protocol mix and payload of the profile. Reports CPU nanoseconds per recipient and protocol
 * writes per send (which must equal the number of protocols present in the group). Groups smaller
 * than 1,000 are timed ⌊1000/N⌋ at a time, each with its own members, one send each per turn.
 */
export async function hotPath(profile: Profile, progress: Progress): Promise<ScenarioResult[]> {
  const { sizes, payloads, minTimeMs } = profile.hotPath;
  const pool = Math.max(RECIPIENTS_PER_TURN, ...sizes);
  const server = new SinkServer();
  try {
    progress(`hot path: opening ${2 * pool} sink connections`);
    const json: SinkConnection[] = [];
    const messagePack: SinkConnection[] = [];
    for (let i = 0; i < pool; i++) {
      json.push(await server.open("json"));
      messagePack.push(await server.open("messagepack"));
    }
    const manager = server.context.groups;
    const layout = new Map<string, { groups: string[]; members: SinkConnection[] }>();
    for (const size of sizes) {
      const count = Math.max(1, Math.floor(RECIPIENTS_PER_TURN / size));
      const half = Math.ceil(size / 2);
      for (const mix of MIXES) {
        const entry = { groups: [] as string[], members: [] as SinkConnection[] };
        for (let k = 0; k < count; k++) {
          const members =
            mix === "json" ? json.slice(k * size, (k + 1) * size)
            : mix === "messagepack" ? messagePack.slice(k * size, (k + 1) * size)
            : [...json.slice(k * half, (k + 1) * half), ...messagePack.slice(k * (size - half), (k + 1) * (size - half))];
          const group = `${mix}-${size}-${k}`;
          for (const member of members) await manager.add(member.id, group);
          entry.groups.push(group);
          entry.members.push(...members);
        }
        layout.set(`${mix}-${size}`, entry);
      }
    }
    const baseline = await turnCost(minTimeMs, profile.repetitions);
    const results: ScenarioResult[] = [];
    for (const payloadBytes of payloads) {
      const payload = payloadOf(payloadBytes);
      for (const mix of MIXES) {
        for (const size of sizes) {
          if (mix === "mixed" && size < 2) continue; // one member cannot speak two protocols
          progress(`hot path: ${mix} group of ${size}, ${payloadBytes} B payload`);
          const { groups, members } = layout.get(`${mix}-${size}`)!;
          const timing = await timeGroupSend(server, groups, members, payload, baseline, minTimeMs, profile.repetitions);
          const present = mix === "mixed" ? 2 : 1;
          if (timing.serializationsPerSend !== present) {
            throw new Error(`${mix} group of ${size}: ${timing.serializationsPerSend} serializations per send, expected ${present} (one per protocol present)`);
          }
          const nsPerRecipient = timing.nsPerSend / size;
          results.push({
            name: "in-process group send",
            system: "switchboard",
            protocol: mix,
            members: size,
            payloadBytes,
            nsPerRecipient: round(nsPerRecipient),
            serializationsPerSend: round(timing.serializationsPerSend),
            deliveriesPerCpuSecond: round(1e9 / nsPerRecipient),
          });
        }
      }
    }
    return results;
  } finally {
    await server.close();
  }
}
