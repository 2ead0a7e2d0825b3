import { spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { Redis } from "ioredis";
import { spawnProgram, stopProgram } from "../child-processes.js";

/**
 * The scale-out scenario's own redis-server: a child process on a free 127.0.0.1 port, with no
 * persistence, pinned to the servers' core. Its CPU time is read from `/proc/<pid>` (it is not a
 * Node process we could ask), and its command counters from `INFO commandstats` over a connection
 * of the runner's, queried outside the measured windows.
 */

/** Why the scale-out scenario cannot run here, or undefined when `redis-server` is installed. */
export function redisServerMissing(): string | undefined {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) return "redis-server is not installed (Debian: apt-get install redis-server)";
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on Linux unless told otherwise). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const value = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim());
    ticksPerSecond = Number.isFinite(value) && value > 0 ? value : 100;
  }
  return ticksPerSecond;
}

/**
 * CPU time (user + system) of process `pid` and all its threads, in microseconds. Nanosecond
 * run time from `/proc/<pid>/task/<tid>/schedstat` where the kernel has it; else utime + stime of
 * `/proc/<pid>/stat`, which counts in clock ticks (10 ms), too coarse for a 150 ms repetition.
 */
export function processCpuMicros(pid: number): number {
  try {
    let nanos = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) nanos += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    if (Number.isFinite(nanos)) return nanos / 1e3;
  } catch {
    // no schedstat (CONFIG_SCHED_INFO off): fall back to the tick counters
  }
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces and parentheses): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) / clockTicks()) * 1e6;
}

/** Calls of each command so far, from `INFO commandstats` (`cmdstat_publish:calls=12,...`). */
export function parseCommandStats(info: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1]!, Number(match[2]));
  return calls;
}

export class BenchRedis {
  readonly port: number;
  readonly #process: ChildProcess;
  readonly #admin: Redis;

  private constructor(port: number, child: ChildProcess, admin: Redis) {
    this.port = port;
    this.#process = child;
    this.#admin = admin;
  }

  /** Starts redis-server pinned to `core` and waits until it accepts connections. */
  static async start(core: number): Promise<BenchRedis> {
    const port = await freePort();
    const child = spawnProgram("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"], { core });
    try {
      const deadline = performance.now() + 10_000;
      while (!(await accepts(port))) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited (${child.signalCode ?? `code ${child.exitCode}`}) before accepting connections on port ${port}`);
        if (performance.now() > deadline) throw new Error(`redis-server did not accept connections on port ${port} within 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const admin = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 1 });
      admin.on("error", () => undefined); // a failed command rejects; the bench reports that
      await admin.connect();
      return new BenchRedis(port, child, admin);
    } catch (error) {
      await stopProgram(child);
      throw error;
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.#process.pid!;
  }

  /** CPU time redis-server has used so far, in microseconds. */
  cpuMicros(): number {
    return processCpuMicros(this.pid);
  }

  /** PUBLISH + SPUBLISH calls Redis has executed so far (every client's). */
  async publishCalls(): Promise<number> {
    const calls = parseCommandStats(await this.#admin.info("commandstats"));
    return (calls.get("publish") ?? 0) + (calls.get("spublish") ?? 0);
  }

  async stop(): Promise<void> {
    this.#admin.disconnect();
    await stopProgram(this.#process);
  }
}
