/**
 * `npm run bench -- --only instructions`: user-space instructions per delivery, counted by
 * valgrind's callgrind in the end-to-end server of Switchboard (JSON) and in the raw `ws` floor's,
 * over the same closed-loop group sends as the end-to-end scenarios; and, in a third server, the
 * floor's loop on Switchboard's own sockets, which separates what the send costs from what the
 * process around it costs (Node's write path is shared by every socket of a process, and V8 makes
 * it slower when it sees more kinds of sockets: the HTTP ones of negotiate here).
 *
 * CPU time on a shared 2-core VM moves by 5–15 % between two runs of the same build; an
 * instruction count does not depend on what else the machine is doing, so a difference of a few
 * per cent between the two servers shows in one run. It counts user space only: the kernel's work
 * per delivery is the same `write(2)` of the same bytes for both (RESULTS.md, `strace -c`), and
 * instructions are not time (a cache miss costs more than an add).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { spawnChild } from "../child-processes.js";
import { runRounds, type Step } from "../e2e/driver.js";
import type { ChildChannel } from "../ipc.js";
import type { Profile } from "../profiles.js";
import { INSTRUCTIONS, type ScenarioResult, type SystemName } from "../results.js";

const PAYLOAD_BYTES = 64;
/** Node under callgrind starts 30–50 times slower than alone. */
const READY_TIMEOUT_MS = 180_000;
/** Time the server under callgrind gets to close its connections and exit by itself (valgrind then removes its vgdb FIFOs). */
const CLOSE_GRACE_MS = 60_000;

/** Why the scenario cannot run here, or undefined when valgrind and callgrind_control are present. */
export function callgrindMissing(): string | undefined {
  for (const program of ["valgrind", "callgrind_control"]) {
    if (spawnSync(program, ["--version"], { stdio: "ignore" }).error !== undefined) return `${program} is missing (Debian: apt-get install valgrind)`;
  }
  return undefined;
}

/** Progress steps of a run: one per counted server. */
export function instructionSteps(profile: Profile): number {
  return SERVERS_PER_BURST * profile.instructions.bursts.length;
}

/** The `summary:` (or, lacking it, `totals:`) event count of one callgrind output file. */
export function callgrindTotal(text: string): number {
  const line = /^summary:\s*(\d+)/m.exec(text) ?? /^totals:\s*(\d+)/m.exec(text);
  if (line === null) throw new Error("not a callgrind output file: no summary or totals line");
  return Number(line[1]);
}

/**
 * Instructions of one dump of a run with `--separate-threads=yes` (`<base>.<dump>-<thread>`
 * files): thread 1 is the main thread, where the event loop runs.
 */
export function readDump(base: string, dump: number): { main: number; all: number } {
  const dir = dirname(base);
  const prefix = `${basename(base)}.${dump}-`;
  let main: number | undefined;
  let all = 0;
  for (const file of readdirSync(dir)) {
    if (!file.startsWith(prefix)) continue;
    const count = callgrindTotal(readFileSync(join(dir, file), "utf8"));
    all += count;
    if (Number(file.slice(prefix.length)) === 1) main = count;
  }
  if (main === undefined) throw new Error(`callgrind wrote no main-thread file for dump ${dump} (${prefix}01)`);
  return { main, all };
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-20).join("\n");
  } catch {
    return "(no log)";
  }
}

function control(pid: number, command: "--zero" | "--dump"): void {
  const result = spawnSync("callgrind_control", [command, String(pid)], { encoding: "utf8", timeout: 60_000 });
  if (result.status !== 0) throw new Error(`callgrind_control ${command} ${pid} failed: ${(result.stderr || result.stdout || String(result.error)).trim()}`);
}

/**
 * What a counted server runs: the system's own group send, or (Switchboard) the floor's loop on
 * its own sockets, in a server of its own so that neither way's JIT state shapes the other's.
 */
type Way = "own send" | "floor loop";
/** Counted servers per burst: Switchboard's send, the floor's loop in a Switchboard server, the floor. */
const SERVERS_PER_BURST = 3;

/** Main-thread and all-thread instructions of the counted rounds, and how many rounds they were. */
interface Counted {
  readonly main: number;
  readonly all: number;
  readonly rounds: number;
}

async function count(system: SystemName, way: Way, burst: number, profile: Profile, step: Step): Promise<Counted> {
  const { members, warmupRounds, rounds } = profile.instructions;
  const label = `instructions ${system}${way === "floor loop" ? " (the floor's loop on its sockets)" : ""}, group of ${members}, burst ${burst}`;
  step.next(`${label}: starting the server under callgrind`);
  const dir = mkdtempSync(join(tmpdir(), "sb-callgrind-"));
  const base = join(dir, "server.out");
  let server: ChildChannel | undefined;
  let client: ChildChannel | undefined;
  try {
    // valgrind's own lines go to a file of the run (shown if the server does not start).
    const log = join(dir, "valgrind.log");
    const under = ["valgrind", "--tool=callgrind", "--separate-threads=yes", `--callgrind-out-file=${base}`, `--log-file=${log}`];
    const started = await spawnChild<{ port: number }>(`${system} server under callgrind`, "./e2e/server-main.js", ["--system", system], { core: 0, raiseFdLimit: true, under, readyTimeoutMs: READY_TIMEOUT_MS }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\nvalgrind said:\n${tail(log)}`, { cause: error });
    });
    server = started.channel;
    const pid = server.child.pid!;
    ({ channel: client } = await spawnChild(`${system} client`, "./e2e/client-main.js", ["--system", system, "--protocol", "json", "--port", String(started.ready.port)], { core: 1, raiseFdLimit: true }));
    step.update(`${label}: ${members} clients connecting and joining`);
    await client.request("connect", { count: members }, READY_TIMEOUT_MS);
    await client.request("join", { group: `m${members}`, from: 0, to: members }, READY_TIMEOUT_MS);
    const stats = await server.request<{ members: number }>("stats", { group: `m${members}` });
    if (stats.members !== members) throw new Error(`${label}: the group has ${stats.members} members, expected ${members}`);
    await client.request("arm", { deliveriesPerRound: members * burst });
    if (way === "floor loop") await server.request("floor-loop", { on: true });
    step.update(`${label}: ${warmupRounds} rounds of warm-up (not counted)`);
    await runRounds(server, client, `m${members}`, burst, PAYLOAD_BYTES, Number.MAX_SAFE_INTEGER, warmupRounds);
    control(pid, "--zero");
    step.update(`${label}: ${rounds} rounds counted`);
    const done = await runRounds(server, client, `m${members}`, burst, PAYLOAD_BYTES, Number.MAX_SAFE_INTEGER, rounds);
    control(pid, "--dump");
    return { ...readDump(base, 1), rounds: done };
  } finally {
    await client?.close();
    await server?.close(CLOSE_GRACE_MS);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(burst: number, profile: Profile, step: Step): Promise<ScenarioResult[]> {
  const { members } = profile.instructions;
  const switchboard = await count("switchboard", "own send", burst, profile, step);
  const loop = await count("switchboard", "floor loop", burst, profile, step);
  const raw = await count("raw-ws", "own send", burst, profile, step);
  const perDelivery = (instructions: number, run: Counted): number => Math.round(instructions / (run.rounds * members * burst));
  const result = (system: SystemName, own: Counted): ScenarioResult => ({
    name: INSTRUCTIONS,
    system,
    protocol: "json",
    members,
    burst,
    payloadBytes: PAYLOAD_BYTES,
    instructionsPerDelivery: perDelivery(own.main, own),
    allThreadsInstructionsPerDelivery: perDelivery(own.all, own),
    rounds: own.rounds,
  });
  return [{ ...result("switchboard", switchboard), floorLoopInstructionsPerDelivery: perDelivery(loop.main, loop) }, result("raw-ws", raw)];
}

/** Runs every system and burst, or skips with a note when valgrind is missing. */
export async function runInstructionCounts(profile: Profile, step: Step): Promise<{ scenarios: ScenarioResult[]; notes: string[] }> {
  const missing = callgrindMissing();
  if (missing !== undefined) {
    step.next("instructions: skipped");
    return { scenarios: [], notes: [`instructions: skipped: ${missing}`] };
  }
  const scenarios: ScenarioResult[] = [];
  for (const burst of profile.instructions.bursts) scenarios.push(...(await measure(burst, profile, step)));
  const { warmupRounds, rounds } = profile.instructions;
  return { scenarios, notes: [`instructions: callgrind, ${rounds} rounds counted after ${warmupRounds} of warm-up, server pinned to core 0; user space only`] };
}
