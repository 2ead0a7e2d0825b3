import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, cpus, platform, release } from "node:os";
import { dirname, join } from "node:path";

/** The three things compared. */
export type SystemName = "switchboard" | "socket.io" | "raw-ws";
export const SYSTEMS: readonly SystemName[] = ["switchboard", "socket.io", "raw-ws"];
/** The name of the same-process comparison's scenarios (Switchboard's group send against the floor's loop). */
export const SAME_PROCESS = "same-process fan-out, group send vs the floor's loop";
/** The name of the instruction-count scenarios (`--only instructions`). */
export const INSTRUCTIONS = "user-space instructions per delivery (callgrind)";

/**
 * One measured scenario of one system: medians over the repetitions. Fields that do not apply to a
 * scenario are omitted. Times in milliseconds, sizes in bytes.
 */
export interface ScenarioResult {
  readonly name: string;
  readonly system: SystemName;
  /** "json", "messagepack", "mixed", "json+stateful" (Switchboard), "socket.io" (engine.io v4 text packets). */
  readonly protocol: string;
  readonly members?: number;
  readonly burst?: number;
  readonly payloadBytes?: number;
  /** Messages received by clients per CPU-second of the server process (user + system); scale-out: of all servers and Redis. */
  readonly deliveriesPerCpuSecond?: number;
  /** Messages received by clients per wall-clock second. */
  readonly deliveriesPerSecond?: number;
  readonly userMicrosPerDelivery?: number;
  readonly systemMicrosPerDelivery?: number;
  /** Send → receive latency over every recipient's last message of a round. */
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  /** Median over rounds of the time until the last recipient had the round. */
  readonly lastRecipientMs?: number;
  readonly heapBytesPerConnection?: number;
  readonly rssBytesPerConnection?: number;
  readonly opsPerSecond?: number;
  /** In-process hot path: CPU nanoseconds per recipient of a group send. */
  readonly nsPerRecipient?: number;
  /** In-process hot path: protocol `write` calls per send (must equal the protocols present). */
  readonly serializationsPerSend?: number;
  /** Pipeline scenarios: pass-through modules installed. */
  readonly modules?: number;
  /** Churn: groups the connections are spread over; memory: the lower connection count. */
  readonly groups?: number;
  readonly fromConnections?: number;
  /** Scale-out: server processes of the system, all on one Redis. */
  readonly servers?: number;
  /** Scale-out: redis-server's CPU µs per delivery (the servers' are user/systemMicrosPerDelivery, summed over them). */
  readonly redisMicrosPerDelivery?: number;
  /** Scale-out: PUBLISH + SPUBLISH calls Redis executed per message sent to the group. */
  readonly redisPublishesPerMessage?: number;
  /** Scale-out: sends of the other server that Redis brought to the sending server, per message (its own echoes excluded). */
  readonly sendingServerReceivedPerMessage?: number;
  /** Scale-out: sends Redis brought to the server that did not send, per message. */
  readonly otherServerReceivedPerMessage?: number;
  /**
   * Same-process comparison: deliveries per CPU-second of the floor's loop on the same sockets,
   * rounds alternating with the system's own send (whose figure is `deliveriesPerCpuSecond`).
   */
  readonly floorDeliveriesPerCpuSecond?: number;
  /** Same-process comparison: rounds measured per way; instruction counts: rounds counted. */
  readonly rounds?: number;
  /** Instruction counts (callgrind): user-space instructions per delivery on the server's main thread (the event loop). */
  readonly instructionsPerDelivery?: number;
  /** Instruction counts: the same over every thread of the server (V8's compiler and GC helpers too). */
  readonly allThreadsInstructionsPerDelivery?: number;
  /** Instruction counts, Switchboard: the floor's loop on the same sockets of the same server, main thread. */
  readonly floorLoopInstructionsPerDelivery?: number;
  readonly repetitions?: number;
}

export interface MachineInfo {
  readonly node: string;
  readonly cpuModel: string;
  readonly cpus: number;
  readonly os: string;
  readonly versions: Readonly<Record<string, string>>;
}

export interface ResultsFile {
  readonly machine: MachineInfo;
  readonly profile: string;
  readonly date: string;
  readonly command: string;
  /** Scenarios that could not run here, and why. */
  readonly notes: readonly string[];
  readonly scenarios: readonly ScenarioResult[];
}

const require = createRequire(import.meta.url);

/** The version of an installed package: the nearest package.json above its entry that names it. */
function versionOf(spec: string): string {
  try {
    let dir = dirname(require.resolve(spec));
    for (let depth = 0; depth < 12; depth++) {
      const file = join(dir, "package.json");
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
        if (pkg.name === spec && pkg.version !== undefined) return pkg.version;
      }
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  } catch {
    // not installed: reported as unknown
  }
  return "unknown";
}

/** The machine and the versions of what ran; `extra` adds versions found during the run (redis-server). */
export function machineInfo(extra: Readonly<Record<string, string>> = {}): MachineInfo {
  const list = cpus();
  return {
    node: process.version,
    cpuModel: list[0]?.model.trim() ?? "unknown",
    cpus: list.length,
    os: `${platform()} ${release()} ${arch()}`,
    versions: {
      v8: process.versions.v8,
      "@switchboard/core": versionOf("@switchboard/core"),
      "socket.io": versionOf("socket.io"),
      "@socket.io/redis-adapter": versionOf("@socket.io/redis-adapter"),
      ioredis: versionOf("ioredis"),
      ws: versionOf("ws"),
      mitata: versionOf("mitata"),
      "hdr-histogram-js": versionOf("hdr-histogram-js"),
      ...extra,
    },
  };
}

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Rounds to `digits` significant digits, so the JSON stays readable. */
export function round(value: number, digits = 4): number {
  if (!Number.isFinite(value) || value === 0) return value;
  return Number(value.toPrecision(digits));
}
