import { spawnChild } from "../child-processes.js";
import type { ChildChannel } from "../ipc.js";
import type { Profile } from "../profiles.js";
import { median, round, SAME_PROCESS, type ScenarioResult, type SystemName } from "../results.js";
import type { ClientMeasurement } from "./delivery-counter.js";
import type { MemorySample, PathsMeasurement, ServerMeasurement } from "./server-main.js";

/**
 * Runs the systems end to end over loopback: each system's server in a child process pinned to
 * core 0, its lean clients in another pinned to core 1. First idle memory at two connection
 * counts, one system at a time on processes of its own that are closed afterwards; then all
 * systems are started and run closed-loop fan-out to groups of each size, one message or a burst
 * per round, with the repetitions of the systems taking turns (SB, Socket.IO, raw, SB, …) so a
 * change in the machine's load over the run hits every system alike instead of whichever
 * happened to run at the time.
 */

export interface SystemPlan {
  readonly system: SystemName;
  /** The wire protocol the clients speak ("json", "messagepack", "json+stateful", "socket.io"). */
  readonly protocol: string;
  /** Idle-memory measuring points, or undefined to skip. */
  readonly memory: { readonly low: number; readonly high: number } | undefined;
  readonly sizes: readonly number[];
  readonly bursts: readonly number[];
}

/** Steps of a plan, for the progress line. */
export function stepsOf(plan: SystemPlan): number {
  // Switchboard JSON also runs the same-process comparison at every size and burst.
  const sameProcess = plan.system === "switchboard" && plan.protocol === "json" ? 2 : 1;
  return (plan.memory === undefined ? 0 : 1) + plan.sizes.length * plan.bursts.length * sameProcess;
}

/** The runner's progress line: `next` starts a step, `update` rewrites the current one. */
export interface Step {
  next(text: string): void;
  update(text: string): void;
}

/**
 * Rounds a timed repetition runs at least, unless that takes longer than `maxMs`. Where a round
 * takes 100 ms or more (10,000 members), a repetition of the plain length holds only a handful of
 * rounds, and the first rounds after the systems take turns cost more than the rest.
 */
export interface RoundFloor {
  readonly rounds: number;
  readonly maxMs: number;
}
const NO_FLOOR: RoundFloor = { rounds: 0, maxMs: 0 };

/** A round that has not completed after this long means a lost message or a dead process. */
const ROUND_TIMEOUT_MS = 60_000;
let nextRound = 1;

/**
 * Closed loop: sends a round (via the server), waits for the client process to report every
 * delivery of it, sends the next; stops after `durationMs` or `maxRounds`. Resolves with the
 * number of rounds completed. (The scale-out scenario runs it too, with one of its servers sending.)
 */
export function runRounds(server: ChildChannel, client: ChildChannel, group: string, burst: number, payloadBytes: number, durationMs: number, maxRounds: number, atLeast: RoundFloor = NO_FLOOR): Promise<number> {
  return new Promise((resolve, reject) => {
    const begun = performance.now();
    const deadline = begun + durationMs;
    const cap = begun + Math.max(durationMs, atLeast.maxMs);
    let rounds = 0;
    let current = 0;
    let progressAt = performance.now();
    const send = (): void => {
      current = nextRound++;
      server.notify("send", { group, burst, round: current, payloadBytes });
    };
    const finish = (error?: Error): void => {
      clearInterval(watchdog);
      client.off("round");
      client.offExit(finish);
      server.offExit(finish);
      if (error !== undefined) reject(error);
      else resolve(rounds);
    };
    client.on("round", (round) => {
      if (round !== current) return finish(new Error(`round ${String(round)} completed while ${current} was in flight`));
      rounds++;
      progressAt = performance.now();
      if (rounds >= maxRounds || (progressAt >= deadline && rounds >= atLeast.rounds) || progressAt >= cap) finish();
      else send();
    });
    const watchdog = setInterval(() => {
      if (performance.now() - progressAt > ROUND_TIMEOUT_MS) finish(new Error(`round ${current} to '${group}' did not complete within ${ROUND_TIMEOUT_MS} ms`));
    }, 1_000);
    client.onExit(finish);
    server.onExit(finish);
    send();
  });
}

interface Repetition {
  readonly deliveriesPerCpuSecond: number;
  readonly deliveriesPerSecond: number;
  readonly userMicrosPerDelivery: number;
  readonly systemMicrosPerDelivery: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lastRecipientMs: number;
}

/** One system's two processes and how many clients it has connected. */
interface Running {
  readonly plan: SystemPlan;
  readonly server: ChildChannel;
  readonly client: ChildChannel;
  connected: number;
}

function labelOf(running: Running, members: number, burst: number): string {
  return `e2e ${running.plan.system} ${running.plan.protocol}, group of ${members}, burst ${burst}`;
}

async function measureRepetition(running: Running, members: number, burst: number, profile: Profile): Promise<Repetition> {
  const { server, client } = running;
  const { payloadBytes, repetitionMs, maxRounds, minRounds, maxRepetitionMs } = profile.e2e;
  const label = labelOf(running, members, burst);
  await client.request("arm", { deliveriesPerRound: members * burst });
  await client.request("measure-begin");
  await server.request("measure-begin");
  const started = performance.now();
  const rounds = await runRounds(server, client, `m${members}`, burst, payloadBytes, repetitionMs, maxRounds, { rounds: minRounds, maxMs: maxRepetitionMs });
  const seconds = (performance.now() - started) / 1e3;
  const cpu = await server.request<ServerMeasurement>("measure-end");
  const seen = await client.request<ClientMeasurement>("measure-end");
  const deliveries = rounds * members * burst;
  if (seen.deliveries !== deliveries) throw new Error(`${label}: clients received ${seen.deliveries} messages, ${deliveries} were sent`);
  if (seen.unexpectedCloses > 0) throw new Error(`${label}: ${seen.unexpectedCloses} connections closed`);
  const cpuMicros = cpu.userMicros + cpu.systemMicros;
  return {
    deliveriesPerCpuSecond: deliveries / (cpuMicros / 1e6),
    deliveriesPerSecond: deliveries / seconds,
    userMicrosPerDelivery: cpu.userMicros / deliveries,
    systemMicrosPerDelivery: cpu.systemMicros / deliveries,
    p50Ms: seen.p50Micros / 1e3,
    p99Ms: seen.p99Micros / 1e3,
    lastRecipientMs: seen.lastRecipientMicros / 1e3,
  };
}

/**
 * Warm-up for each system, then the repetitions of all systems in turn; medians per system. A
 * system's step starts (one progress line when not on a terminal) with its first timed
 * repetition and says what is measured; warm-ups only rewrite the current line.
 */
async function measureFanout(systems: readonly Running[], members: number, burst: number, profile: Profile, step: Step): Promise<ScenarioResult[]> {
  const { payloadBytes, warmupMs, maxRounds } = profile.e2e;
  const total = profile.e2e.repetitions;
  for (const running of systems) {
    step.update(`${labelOf(running, members, burst)}: warm-up (not measured)`);
    await running.client.request("arm", { deliveriesPerRound: members * burst });
    await runRounds(running.server, running.client, `m${members}`, burst, payloadBytes, warmupMs, maxRounds);
  }
  const others = systems.length > 1 ? ` in turn with ${systems.length - 1} other system${systems.length > 2 ? "s" : ""}` : "";
  const repetitions = systems.map((): Repetition[] => []);
  for (let r = 1; r <= total; r++) {
    for (const [index, running] of systems.entries()) {
      const label = labelOf(running, members, burst);
      if (r === 1) step.next(`${label}: deliveries per server CPU-second and latency, ${total} repetitions${others}`);
      else step.update(`${label}: deliveries per server CPU-second and latency, repetition ${r}/${total}`);
      repetitions[index]!.push(await measureRepetition(running, members, burst, profile));
    }
  }
  return systems.map((running, index) => {
    const measured = repetitions[index]!;
    const mid = (key: keyof Repetition): number => round(median(measured.map((repetition) => repetition[key])));
    return {
      name: burst === 1 ? "e2e fan-out, one message per round" : `e2e fan-out, bursts of ${burst}`,
      system: running.plan.system,
      protocol: running.plan.protocol,
      members,
      burst,
      payloadBytes,
      deliveriesPerCpuSecond: mid("deliveriesPerCpuSecond"),
      deliveriesPerSecond: mid("deliveriesPerSecond"),
      userMicrosPerDelivery: mid("userMicrosPerDelivery"),
      systemMicrosPerDelivery: mid("systemMicrosPerDelivery"),
      p50Ms: mid("p50Ms"),
      p99Ms: mid("p99Ms"),
      lastRecipientMs: mid("lastRecipientMs"),
      repetitions: measured.length,
    };
  });
}

/**
 * Switchboard's group send against the floor's loop on the same sockets of the same process,
 * round by round in turn, each charged the CPU of its send and the turn that wrote it: the
 * per-delivery difference without what separate processes add (keep-alive traffic, the
 * systems taking turns on the core, the machine's drift between repetitions).
 */
async function measureSameProcess(running: Running, members: number, burst: number, profile: Profile, step: Step): Promise<ScenarioResult> {
  const { server, client } = running;
  const { payloadBytes, maxRounds, sameProcessMs, sameProcessMinRounds, maxRepetitionMs, warmupMs } = profile.e2e;
  step.next(`same process: Switchboard's group send against the floor's loop on its sockets, group of ${members}, burst ${burst}, rounds in turn`);
  await client.request("arm", { deliveriesPerRound: members * burst });
  // Untimed first: the floor's loop has not run yet, and its first rounds would fall on one way.
  await server.request("paths-begin");
  try {
    await runRounds(server, client, `m${members}`, burst, payloadBytes, warmupMs, maxRounds, { rounds: 4, maxMs: maxRepetitionMs });
  } finally {
    await server.request("paths-end");
  }
  await client.request("measure-begin");
  await server.request("paths-begin");
  let paths: PathsMeasurement;
  try {
    await runRounds(server, client, `m${members}`, burst, payloadBytes, sameProcessMs, maxRounds, { rounds: sameProcessMinRounds, maxMs: maxRepetitionMs * 10 });
  } finally {
    paths = await server.request<PathsMeasurement>("paths-end");
  }
  const seen = await client.request<ClientMeasurement>("measure-end");
  const rounds = paths.own.rounds + paths.floor.rounds;
  if (seen.deliveries !== rounds * members * burst) throw new Error(`same process, ${members} members: clients received ${seen.deliveries} messages, ${rounds * members * burst} were sent`);
  if (seen.unexpectedCloses > 0) throw new Error(`same process, ${members} members: ${seen.unexpectedCloses} connections closed`);
  const perCpuSecond = (way: { cpuMicros: number; rounds: number }): number => (way.rounds * members * burst) / (way.cpuMicros / 1e6);
  return {
    name: SAME_PROCESS,
    system: "switchboard",
    protocol: "json",
    members,
    burst,
    payloadBytes,
    deliveriesPerCpuSecond: round(perCpuSecond(paths.own)),
    floorDeliveriesPerCpuSecond: round(perCpuSecond(paths.floor)),
    rounds: Math.min(paths.own.rounds, paths.floor.rounds),
  };
}

async function memorySamples(server: ChildChannel, count: number): Promise<MemorySample[]> {
  const samples: MemorySample[] = [];
  for (let i = 0; i < count; i++) samples.push(await server.request<MemorySample>("memory"));
  return samples;
}

async function measureMemory(running: Running, low: number, high: number, profile: Profile, step: Step): Promise<ScenarioResult> {
  const { plan, server, client } = running;
  step.next(`idle memory ${plan.system}: heap and RSS per connection, at ${low} and ${high} idle connections`);
  running.connected = await client.request<number>("connect", { count: low });
  const atLow = await memorySamples(server, profile.repetitions);
  step.update(`idle memory ${plan.system}: heap and RSS at ${high} idle connections`);
  running.connected = await client.request<number>("connect", { count: high - low });
  const atHigh = await memorySamples(server, profile.repetitions);
  const stats = await server.request<{ connections: number }>("stats", {});
  if (stats.connections !== high) throw new Error(`${plan.system}: the server has ${stats.connections} connections, expected ${high}`);
  const slope = (key: keyof MemorySample): number => (median(atHigh.map((s) => s[key])) - median(atLow.map((s) => s[key]))) / (high - low);
  return {
    name: "idle memory per connection",
    system: plan.system,
    protocol: plan.protocol,
    members: high,
    fromConnections: low,
    heapBytesPerConnection: round(slope("heapUsed")),
    rssBytesPerConnection: round(slope("rss")),
    repetitions: profile.repetitions,
  };
}

async function start(plan: SystemPlan, cpuProfileDir: string | undefined): Promise<Running> {
  const nodeFlags = cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`, `--cpu-prof-name=${plan.system}-${plan.protocol}-server.cpuprofile`];
  const { channel: server, ready } = await spawnChild<{ port: number }>(`${plan.system} ${plan.protocol} server`, "./e2e/server-main.js", ["--system", plan.system], { core: 0, exposeGc: true, raiseFdLimit: true, nodeFlags });
  try {
    const clientProtocol = plan.protocol === "messagepack" || plan.protocol === "json+stateful" ? plan.protocol : "json";
    const { channel: client } = await spawnChild(`${plan.system} ${plan.protocol} client`, "./e2e/client-main.js", ["--system", plan.system, "--protocol", clientProtocol, "--port", String(ready.port)], { core: 1, raiseFdLimit: true });
    return { plan, server, client, connected: 0 };
  } catch (error) {
    await server.close();
    throw error;
  }
}

/** Makes the first `members` clients of a system the members of group `m<members>`. */
async function prepareGroup(running: Running, members: number, step: Step): Promise<void> {
  const { plan, server, client } = running;
  if (running.connected < members) {
    step.update(`e2e ${plan.system} ${plan.protocol}: connecting ${members - running.connected} more clients`);
    running.connected = await client.request<number>("connect", { count: members - running.connected });
  }
  const group = `m${members}`;
  step.update(`e2e ${plan.system} ${plan.protocol}: ${members} clients joining ${group}`);
  await client.request("join", { group, from: 0, to: members });
  const stats = await server.request<{ members: number }>("stats", { group });
  if (stats.members !== members) throw new Error(`${plan.system}: group ${group} has ${stats.members} members, expected ${members}`);
}

/** Runs every plan and resolves with their scenarios; every child process is gone when it settles. */
export async function runSystems(plans: readonly SystemPlan[], profile: Profile, step: Step, cpuProfileDir?: string): Promise<ScenarioResult[]> {
  const running: Running[] = [];
  try {
    const results: ScenarioResult[] = [];
    // Idle memory on processes of its own, closed afterwards: the fan-out servers then hold only
    // the connections their groups need. (Left connected, thousands of idle SignalR connections
    // with their keep-alive Pings were charged to the fan-out of one system and not the others.)
    for (const plan of plans) {
      if (plan.memory === undefined) continue;
      const system = await start(plan, undefined);
      running.push(system);
      results.push(await measureMemory(system, plan.memory.low, plan.memory.high, profile, step));
      running.pop();
      await system.client.close();
      await system.server.close();
    }
    for (const plan of plans) running.push(await start(plan, cpuProfileDir));
    const sizes = [...new Set(plans.flatMap((plan) => plan.sizes))].sort((a, b) => a - b);
    const bursts = [...new Set(plans.flatMap((plan) => plan.bursts))].sort((a, b) => a - b);
    for (const members of sizes) {
      const active = running.filter((system) => system.plan.sizes.includes(members));
      for (const system of active) await prepareGroup(system, members, step);
      for (const burst of bursts) {
        const systems = active.filter((system) => system.plan.bursts.includes(burst));
        if (systems.length > 0) results.push(...(await measureFanout(systems, members, burst, profile, step)));
        const json = systems.find((system) => system.plan.system === "switchboard" && system.plan.protocol === "json");
        if (json !== undefined) results.push(await measureSameProcess(json, members, burst, profile, step));
      }
    }
    return results;
  } finally {
    for (const system of running) {
      await system.client.close();
      await system.server.close();
    }
  }
}
