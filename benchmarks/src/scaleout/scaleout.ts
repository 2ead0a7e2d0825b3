import { spawnSync } from "node:child_process";
import { canPin, spawnChild } from "../child-processes.js";
import { runRounds, type Step } from "../e2e/driver.js";
import type { ClientMeasurement } from "../e2e/delivery-counter.js";
import type { ServerMeasurement } from "../e2e/server-main.js";
import type { ChildChannel } from "../ipc.js";
import type { Profile } from "../profiles.js";
import { median, round, type ScenarioResult, type SystemName } from "../results.js";
import { BenchRedis, redisServerMissing } from "./bench-redis.js";

/**
 * The scale-out scenario: each system as two server processes on one Redis of the scenario's own
 * (Switchboard on `RedisBackplane`, Socket.IO on `@socket.io/redis-adapter`), one group whose
 * members are spread evenly over the two servers (connection i on server i mod 2), and the first
 * server sending to it, so every send crosses Redis to reach the other half. Closed loop as in the
 * single-server scenarios; the systems' repetitions take turns on the same Redis.
 *
 * Charged CPU: both server processes (`process.cpuUsage()`) and redis-server (`/proc/<pid>`);
 * the client process is not. Also counted per message sent: PUBLISH + SPUBLISH calls Redis
 * executed (`INFO commandstats` deltas, read outside the measured window), and the sends of the
 * other server that Redis brought to each server. Both must stay at one per message, whatever
 * the group's size: the cross-server cost is per server, not per recipient.
 */

/** Server processes per system. */
export const SCALE_OUT_SERVERS = 2;

interface Plan {
  readonly system: SystemName;
  /** What the clients speak. */
  readonly protocol: string;
}

const PLANS: readonly Plan[] = [
  { system: "switchboard", protocol: "json" },
  { system: "socket.io", protocol: "socket.io" },
];

interface Cluster {
  readonly plan: Plan;
  /** The first one sends every round. */
  readonly servers: readonly ChildChannel[];
  readonly client: ChildChannel;
}

interface Repetition {
  readonly deliveriesPerCpuSecond: number;
  readonly deliveriesPerSecond: number;
  readonly userMicrosPerDelivery: number;
  readonly systemMicrosPerDelivery: number;
  readonly redisMicrosPerDelivery: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lastRecipientMs: number;
  readonly redisPublishesPerMessage: number;
  readonly sendingServerReceivedPerMessage: number;
  readonly otherServerReceivedPerMessage: number;
}

/** Steps of the scenario, for the progress line. */
export function scaleOutSteps(profile: Profile): number {
  return 1 + profile.scaleOut.bursts.length;
}

function systemLabel(plan: Plan): string {
  return plan.system === "switchboard" ? "Switchboard + RedisBackplane" : "Socket.IO + redis-adapter";
}

function redisVersion(): string {
  const text = spawnSync("redis-server", ["--version"], { encoding: "utf8" }).stdout ?? "";
  return /v=(\S+)/.exec(text)?.[1] ?? "unknown";
}

/** Starts a system's servers (at once: they only wait for Node and Redis) and then its client process. */
async function startCluster(plan: Plan, redis: BenchRedis, cpuProfileDir: string | undefined): Promise<Cluster> {
  const nodeFlags = (i: number): string[] => (cpuProfileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfileDir}`, `--cpu-prof-name=scaleout-${plan.system}-server-${i + 1}.cpuprofile`]);
  const started = await Promise.allSettled(
    Array.from({ length: SCALE_OUT_SERVERS }, (_, i) =>
      spawnChild<{ port: number }>(`scale-out ${plan.system} server ${i + 1}`, "./e2e/server-main.js", ["--system", plan.system, "--redis", redis.url], { core: 0, raiseFdLimit: true, nodeFlags: nodeFlags(i) }),
    ),
  );
  const servers = started.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value.channel] : []));
  try {
    const failed = started.find((outcome) => outcome.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    const ports = started.map((outcome) => (outcome as PromiseFulfilledResult<{ ready: { port: number } }>).value.ready.port);
    const { channel: client } = await spawnChild(`scale-out ${plan.system} client`, "./e2e/client-main.js", ["--system", plan.system, "--protocol", "json", "--port", ports.join(",")], { core: 1, raiseFdLimit: true });
    return { plan, servers, client };
  } catch (error) {
    await Promise.all(servers.map((server) => server.close()));
    throw error;
  }
}

/** Connects `members` clients (even on server 1, odd on server 2), joins them all to `group`, and waits for Redis to confirm the subscriptions. */
async function prepareGroup(cluster: Cluster, members: number, group: string, step: Step): Promise<void> {
  const { plan, servers, client } = cluster;
  step.update(`scale-out ${systemLabel(plan)}: connecting ${members} clients, split over ${SCALE_OUT_SERVERS} servers`);
  await client.request<number>("connect", { count: members });
  step.update(`scale-out ${systemLabel(plan)}: ${members} clients joining ${group}`);
  await client.request("join", { group, from: 0, to: members });
  let total = 0;
  for (const [index, server] of servers.entries()) {
    await server.request("subscribed");
    const { members: local } = await server.request<{ members: number }>("stats", { group });
    const expected = Math.floor(members / SCALE_OUT_SERVERS) + (index < members % SCALE_OUT_SERVERS ? 1 : 0);
    if (local !== expected) throw new Error(`${plan.system} server ${index + 1}: group ${group} has ${local} local members, expected ${expected}`);
    total += local;
  }
  if (total !== members) throw new Error(`${plan.system}: group ${group} has ${total} members, expected ${members}`);
}

function label(plan: Plan, members: number, burst: number): string {
  return `scale-out ${systemLabel(plan)}, ${SCALE_OUT_SERVERS} servers + Redis, group of ${members}, burst ${burst}`;
}

async function measureRepetition(cluster: Cluster, redis: BenchRedis, group: string, members: number, burst: number, profile: Profile): Promise<Repetition> {
  const { servers, client, plan } = cluster;
  const { repetitionMs, maxRounds } = profile.scaleOut;
  await client.request("arm", { deliveriesPerRound: members * burst });
  await client.request("measure-begin");
  const publishesBefore = await redis.publishCalls();
  for (const server of servers) await server.request("measure-begin");
  const redisBegin = redis.cpuMicros();
  const started = performance.now();
  const rounds = await runRounds(servers[0]!, client, group, burst, profile.e2e.payloadBytes, repetitionMs, maxRounds);
  const seconds = (performance.now() - started) / 1e3;
  const redisMicros = redis.cpuMicros() - redisBegin;
  const measured: ServerMeasurement[] = [];
  for (const server of servers) measured.push(await server.request<ServerMeasurement>("measure-end"));
  const publishes = (await redis.publishCalls()) - publishesBefore;
  const seen = await client.request<ClientMeasurement>("measure-end");
  const deliveries = rounds * members * burst;
  const messages = rounds * burst;
  const what = label(plan, members, burst);
  if (seen.deliveries !== deliveries) throw new Error(`${what}: clients received ${seen.deliveries} messages, ${deliveries} were sent`);
  if (seen.unexpectedCloses > 0) throw new Error(`${what}: ${seen.unexpectedCloses} connections closed`);
  let userMicros = 0;
  let systemMicros = 0;
  for (const m of measured) {
    userMicros += m.userMicros;
    systemMicros += m.systemMicros;
  }
  return {
    deliveriesPerCpuSecond: deliveries / ((userMicros + systemMicros + redisMicros) / 1e6),
    deliveriesPerSecond: deliveries / seconds,
    userMicrosPerDelivery: userMicros / deliveries,
    systemMicrosPerDelivery: systemMicros / deliveries,
    redisMicrosPerDelivery: redisMicros / deliveries,
    p50Ms: seen.p50Micros / 1e3,
    p99Ms: seen.p99Micros / 1e3,
    lastRecipientMs: seen.lastRecipientMicros / 1e3,
    redisPublishesPerMessage: publishes / messages,
    sendingServerReceivedPerMessage: (measured[0]!.receivedFromRedis ?? Number.NaN) / messages,
    otherServerReceivedPerMessage: (measured[1]!.receivedFromRedis ?? Number.NaN) / messages,
  };
}

async function measureBurst(clusters: readonly Cluster[], redis: BenchRedis, group: string, members: number, burst: number, profile: Profile, step: Step): Promise<ScenarioResult[]> {
  const { payloadBytes } = profile.e2e;
  const { warmupMs, maxRounds, repetitions: count } = profile.scaleOut;
  step.next(`scale-out, group of ${members} on ${SCALE_OUT_SERVERS} servers, burst ${burst}: warm-up`);
  for (const cluster of clusters) {
    step.update(`${label(cluster.plan, members, burst)}: warm-up`);
    await cluster.client.request("arm", { deliveriesPerRound: members * burst });
    await runRounds(cluster.servers[0]!, cluster.client, group, burst, payloadBytes, warmupMs, maxRounds);
  }
  const repetitions = clusters.map((): Repetition[] => []);
  for (let r = 1; r <= count; r++) {
    for (const [index, cluster] of clusters.entries()) {
      step.update(`${label(cluster.plan, members, burst)}: repetition ${r}/${count}, deliveries per CPU-second of servers + Redis, publishes per message`);
      repetitions[index]!.push(await measureRepetition(cluster, redis, group, members, burst, profile));
    }
  }
  return clusters.map((cluster, index) => {
    const measured = repetitions[index]!;
    const mid = (key: keyof Repetition): number => round(median(measured.map((repetition) => repetition[key])));
    return {
      name: burst === 1 ? "scale-out fan-out, one message per round" : `scale-out fan-out, bursts of ${burst}`,
      system: cluster.plan.system,
      protocol: cluster.plan.protocol,
      members,
      burst,
      payloadBytes,
      servers: SCALE_OUT_SERVERS,
      deliveriesPerCpuSecond: mid("deliveriesPerCpuSecond"),
      deliveriesPerSecond: mid("deliveriesPerSecond"),
      userMicrosPerDelivery: mid("userMicrosPerDelivery"),
      systemMicrosPerDelivery: mid("systemMicrosPerDelivery"),
      redisMicrosPerDelivery: mid("redisMicrosPerDelivery"),
      p50Ms: mid("p50Ms"),
      p99Ms: mid("p99Ms"),
      lastRecipientMs: mid("lastRecipientMs"),
      redisPublishesPerMessage: mid("redisPublishesPerMessage"),
      sendingServerReceivedPerMessage: mid("sendingServerReceivedPerMessage"),
      otherServerReceivedPerMessage: mid("otherServerReceivedPerMessage"),
      repetitions: measured.length,
    };
  });
}

/** What the scenario found, notes for the results file, and the Redis version it ran on. */
export interface ScaleOutOutcome {
  readonly scenarios: ScenarioResult[];
  readonly notes: string[];
  readonly versions: Record<string, string>;
}

/**
 * Runs the scenario, or skips it with a note when redis-server is missing; every process it
 * started is gone when it settles. With `cpuProfileDir`, each server writes a V8 CPU profile
 * there (`scaleout-<system>-server-<n>.cpuprofile`; server 1 is the one that sends).
 */
export async function runScaleOut(profile: Profile, step: Step, fdLimit: number, cpuProfileDir?: string): Promise<ScaleOutOutcome> {
  const missing = redisServerMissing();
  if (missing !== undefined) {
    step.next("scale-out: skipped");
    return { scenarios: [], notes: [`scale-out: skipped: ${missing}`], versions: {} };
  }
  const { members, bursts } = profile.scaleOut;
  if (members > fdLimit) {
    step.next("scale-out: skipped");
    return { scenarios: [], notes: [`scale-out: skipped: a group of ${members} does not fit the open-files limit`], versions: {} };
  }
  step.next(`scale-out: starting redis-server, then ${SCALE_OUT_SERVERS} servers and a client process per system`);
  const redis = await BenchRedis.start(0);
  const clusters: Cluster[] = [];
  try {
    const started = await Promise.allSettled(PLANS.map((plan) => startCluster(plan, redis, cpuProfileDir)));
    for (const outcome of started) if (outcome.status === "fulfilled") clusters.push(outcome.value);
    const failed = started.find((outcome) => outcome.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    const group = `s${members}`;
    for (const cluster of clusters) await prepareGroup(cluster, members, group, step);
    const scenarios: ScenarioResult[] = [];
    for (const burst of bursts) scenarios.push(...(await measureBurst(clusters, redis, group, members, burst, profile, step)));
    const version = redisVersion();
    const placement = canPin() ? "pinned with both servers of each system to core 0, one client process per system on core 1" : "not pinned";
    const notes = [`scale-out: redis-server ${version} on 127.0.0.1, ${placement}; CPU charged: both servers + redis-server`];
    return { scenarios, notes, versions: { "redis-server": version } };
  } finally {
    for (const cluster of clusters) {
      await cluster.client.close();
      for (const server of cluster.servers) await server.close();
    }
    await redis.stop();
  }
}
