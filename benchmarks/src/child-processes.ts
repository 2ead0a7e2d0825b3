import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { ChildChannel } from "./ipc.js";

/**
 * Starts the benchmark's child processes (servers, clients, the in-process runner, redis-server),
 * pinned to a core with `taskset` when it exists, and makes sure none outlives the runner: every
 * child is killed on exit, on SIGINT/SIGTERM and on a crash, and our Node children exit by
 * themselves when their IPC channel closes.
 */

const children = new Set<ChildChannel>();
/** Programs that are not ours (redis-server): no IPC channel, so only the runner's hooks stop them. */
const programs = new Set<ChildProcess>();
let hooksInstalled = false;

function killAll(): void {
  for (const channel of children) if (channel.alive) channel.child.kill("SIGKILL");
  for (const child of programs) child.kill("SIGKILL");
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAll);
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
    process.on(signal, () => {
      killAll();
      process.exit(code);
    });
  }
}

let pinningChecked: boolean | undefined;

/** True when `taskset` works here and there are at least two cores to spread over. */
export function canPin(): boolean {
  if (pinningChecked === undefined) {
    const probe = spawnSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
    pinningChecked = probe.status === 0 && cpus().length >= 2;
  }
  return pinningChecked;
}

/** Moves this process (all its threads) to `core`, so it stays off the server's core. */
export function pinSelf(core: number): boolean {
  if (!canPin()) return false;
  return spawnSync("taskset", ["-a", "-p", "-c", String(core), String(process.pid)], { stdio: "ignore" }).status === 0;
}

/** The hard limit on open files for children (whose soft limit we raise to it), or Infinity. */
export function hardFdLimit(): number {
  const probe = spawnSync("/bin/sh", ["-c", "ulimit -Hn"], { encoding: "utf8" });
  const text = probe.stdout?.trim() ?? "";
  if (text === "unlimited") return Number.POSITIVE_INFINITY;
  const value = Number(text);
  return Number.isFinite(value) && value > 0 ? value : 1024;
}

export interface SpawnOptions {
  /** Core to pin the child to (ignored where pinning is not possible). */
  readonly core?: number;
  /** Run with `--expose-gc`, for memory measurements. */
  readonly exposeGc?: boolean;
  /** Extra Node flags (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[];
  /** Raise the soft open-files limit to the hard one before starting Node. */
  readonly raiseFdLimit?: boolean;
  /** How long the child may take to report `ready`. */
  readonly readyTimeoutMs?: number;
  /** A program (and its arguments) that runs Node, e.g. valgrind; the pid stays Node's (it execs or instruments in place). */
  readonly under?: readonly string[];
}

/** The harness test lists every pid the runner started (BENCH_PID_FILE) to check that none is left. */
function recordPid(child: ChildProcess): void {
  const pidFile = process.env["BENCH_PID_FILE"];
  if (pidFile !== undefined && child.pid !== undefined) appendFileSync(pidFile, `${child.pid}\n`);
}

/**
 * Starts `dist/<script>` as a child and waits for its `ready` event; resolves with the channel and
 * the ready event's data.
 */
export async function spawnChild<T = unknown>(name: string, script: string, args: readonly string[], options: SpawnOptions = {}): Promise<{ channel: ChildChannel; ready: T }> {
  installHooks();
  const path = fileURLToPath(new URL(script, import.meta.url));
  let command = process.execPath;
  let argv: string[] = [...(options.exposeGc === true ? ["--expose-gc"] : []), ...(options.nodeFlags ?? []), path, ...args];
  if (options.under !== undefined && options.under.length > 0) {
    argv = [...options.under.slice(1), command, ...argv];
    command = options.under[0]!;
  }
  if (options.core !== undefined && canPin()) {
    argv = ["-c", String(options.core), command, ...argv];
    command = "taskset";
  }
  if (options.raiseFdLimit === true) {
    // `exec` keeps the pid (and the IPC fd), so killing the child kills Node itself.
    argv = ["-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', "sh", command, ...argv];
    command = "/bin/sh";
  }
  const child = spawn(command, argv, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const channel = new ChildChannel(name, child);
  children.add(channel);
  void channel.exited.then(() => children.delete(channel));
  recordPid(child);
  try {
    const ready = await channel.next<T>("ready", options.readyTimeoutMs ?? 30_000);
    return { channel, ready };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

/**
 * Starts a program that is not one of ours (redis-server), pinned to `core` where possible, with
 * its output ignored. `taskset` execs the program, so the pid (and `/proc/<pid>`) is the
 * program's own. It is killed with the other children on exit, on a signal and on a crash; call
 * {@link stopProgram} to stop it before.
 */
export function spawnProgram(command: string, args: readonly string[], options: { readonly core?: number } = {}): ChildProcess {
  installHooks();
  const pinned = options.core !== undefined && canPin();
  const child = pinned ? spawn("taskset", ["-c", String(options.core), command, ...args], { stdio: "ignore" }) : spawn(command, args, { stdio: "ignore" });
  programs.add(child);
  child.once("exit", () => programs.delete(child));
  // A failed spawn (ENOENT) is reported by the caller's readiness check; never crash the runner here.
  child.once("error", () => programs.delete(child));
  recordPid(child);
  return child;
}

/** Kills a program started with {@link spawnProgram} and waits until it is gone. */
export async function stopProgram(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}

/** Kills every child still running (for error paths; normal paths `close()` their channels). */
export function killChildren(): void {
  killAll();
}
