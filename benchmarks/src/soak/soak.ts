/**
 * `npm run soak [-- --minutes N] [-- --connections N]`: a long run of thousands of connections
 * against one server (this process, run with --expose-gc), clients in a child process. Checks
 * exactly-once delivery to well-behaved clients, prints heap after GC, RSS, file descriptors and
 * the Echo round trip of a probe client per round (the first round without the misbehaving peers,
 * the rest with a Ping flood and a join flood), then closes the server under load and checks that
 * every acknowledged message was delivered. Writes the summary to benchmarks/results.
 */
import "reflect-metadata";
import { fork } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { SwitchboardServer } from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { HttpTransport } from "@switchboard/transport-ws";
import { SoakHub } from "./soak-hub.js";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  const value = at === -1 ? fallback : Number(args[at + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
  return value;
};
const minutes = flag("minutes", 2);
const connections = flag("connections", 3_000);
const roundMs = Math.min(15_000, (minutes * 60_000) / 4);
const rounds = Math.max(2, Math.round((minutes * 60_000) / roundMs));
const maybeGc = (globalThis as { gc?: () => void }).gc;
if (maybeGc === undefined) throw new Error("Run with node --expose-gc (npm run soak does).");
const gc: () => void = maybeGc;

interface ClientRound {
  count: number;
  p50: number;
  p99: number;
  max: number;
  flooding: boolean;
  delivered: number;
  violations: number;
  churnCycles: number;
  errors: number;
  floodFrames: number;
  floodJoins: number;
  capErrors: number;
}

const fds = () => readdirSync("/proc/self/fd").length;
const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
const ms = (value: number) => Math.round(value * 10) / 10;

async function main(): Promise<void> {
  const server = new SwitchboardServer({ protocols: [new JsonHubProtocol()], hubs: [SoakHub] });
  const transport = new HttpTransport(server);
  const { port } = await transport.listen(0, "127.0.0.1");
  const baseline = { fds: fds() };
  const child = fork(join(here, "soak-clients.js"), [String(port), String(connections)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const next = <T>(kind: string) => new Promise<T>((resolve) => {
    const listener = (message: { kind: string }) => {
      if (message.kind !== kind) return;
      child.off("message", listener);
      resolve(message as T);
    };
    child.on("message", listener);
  });
  const ready = await next<{ stable: number; churn: number }>("ready");
  const prober = fork(join(here, "soak-clients.js"), [String(port), "1", "probe"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await new Promise((resolve) => prober.once("message", resolve));
  const probeRound = () =>
    new Promise<ClientRound>((resolve) => {
      prober.once("message", (message) => resolve(message as ClientRound));
      prober.send({ kind: "round" });
    });
  console.log(`soak: ${minutes} min, ${rounds} rounds of ${roundMs / 1000} s; ${ready.stable} stable clients (exactly-once checked), ${ready.churn} churning, 1 probe (own process), 2 misbehaving`);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const table: Record<string, unknown>[] = [];
  for (let round = 1; round <= rounds; round++) {
    await new Promise((resolve) => setTimeout(resolve, roundMs));
    const report = next<ClientRound>("round");
    child.send({ kind: "round", flooding: round >= 1 }); // round 1 ran without the floods; they start now
    const [clients, probed] = await Promise.all([report, probeRound()]);
    gc();
    const memory = process.memoryUsage();
    const stats = server.stats();
    const row = {
      round,
      flood: clients.flooding,
      connections: stats.connections,
      groups: stats.groups,
      heapMB: mb(memory.heapUsed),
      rssMB: mb(memory.rss),
      fds: fds(),
      loopP99ms: ms(loop.percentile(99) / 1e6),
      echoP50ms: ms(probed.p50),
      echoP99ms: ms(probed.p99),
      echoMaxMs: ms(probed.max),
      echoes: probed.count,
      delivered: clients.delivered,
      violations: clients.violations,
      churnCycles: clients.churnCycles,
      clientErrors: clients.errors,
      pingFloodFrames: clients.floodFrames,
      floodJoins: clients.floodJoins,
      groupCapErrors: clients.capErrors,
    };
    loop.reset();
    table.push(row);
    console.log(JSON.stringify(row));
  }
  // Exactly-once so far: every message a stable sender had acknowledged reached every stable client.
  const running = next<{ lost: number; stableClosedEarly: number }>("check");
  child.send({ kind: "check" });
  const { lost: lostWhileRunning, stableClosedEarly } = await running;
  // Graceful shutdown under load: the stable senders keep sending while the server closes.
  child.send({ kind: "stop" });
  prober.kill();
  const closeStarted = performance.now();
  await server.close();
  const closeMs = ms(performance.now() - closeStarted);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const check = next<{ lost: number; violations: number; delivered: number }>("check");
  child.send({ kind: "check" });
  const final = await check;
  child.kill();
  gc();
  const flooded = table.filter((row) => row.flood === true);
  const summary = {
    date: new Date().toISOString(),
    node: process.version,
    minutes,
    connections,
    rounds: table,
    lostWhileRunning, stableClosedEarly, shutdown: { closeMs, acknowledgedButLost: final.lost, orderOrDuplicateViolations: final.violations, delivered: final.delivered },
    afterClose: { fds: fds(), baselineFds: baseline.fds, heapMB: mb(process.memoryUsage().heapUsed) },
    echoP99UnderFloodMs: Math.max(...flooded.map((row) => row.echoP99ms as number)),
    echoP99WithoutFloodMs: table[0]!.echoP99ms,
  };
  const out = join(here, "..", "..", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "soak-latest.json"), JSON.stringify(summary, null, 2) + "\n");
  console.log(JSON.stringify({ lostWhileRunning, stableClosedEarly, shutdown: summary.shutdown, afterClose: summary.afterClose, echoP99UnderFloodMs: summary.echoP99UnderFloodMs, echoP99WithoutFloodMs: summary.echoP99WithoutFloodMs }));
  console.log(`written to ${join(out, "soak-latest.json")}`);
  process.exit(final.lost === 0 && final.violations === 0 ? 0 : 1);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
