/**
 * `npm run bench [-- --quick]`: Switchboard's group fan-out against Socket.IO and a raw `ws` floor.
 *
 * Flags: `--quick` (smaller N, shorter repetitions, about a minute), `--tiny` (the harness test's
 * configuration), `--out <dir>` (where latest.json and fanout.svg go; default benchmarks/results,
 * benchmarks/results/quick for --quick), `--only in-process|e2e|scaleout|instructions` (scaleout: two servers
 * of each system on a redis-server of its own, skipped with a note without one; instructions: the
 * end-to-end servers of Switchboard and the floor under callgrind, never part of a run of
 * everything, skipped with a note without valgrind), `--cpu-prof` (the end-to-end
 * servers write V8 CPU profiles into the output directory; summarize one with
 * `node benchmarks/dist/profile-summary.js`). RESULTS.md is rewritten only by a full run of
 * everything into the default directory.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { canPin, hardFdLimit, killChildren, pinSelf, spawnChild } from "./child-processes.js";
import { runSystems, stepsOf, type SystemPlan } from "./e2e/driver.js";
import { fanoutSvg } from "./fanout-chart.js";
import { instructionSteps, runInstructionCounts } from "./instructions/callgrind.js";
import { PROFILES, type Profile, type ProfileName } from "./profiles.js";
import { runScaleOut, scaleOutSteps } from "./scaleout/scaleout.js";
import { Progress } from "./progress.js";
import { buildTables, checkTargets, renderText, targetsTable } from "./report.js";
import { updateResultsMarkdown } from "./results-markdown.js";
import { machineInfo, type ResultsFile, type ScenarioResult } from "./results.js";

interface Arguments {
  readonly profile: ProfileName;
  readonly out: string | undefined;
  readonly only: "in-process" | "e2e" | "scaleout" | "instructions" | undefined;
  readonly cpuProfile: boolean;
}

function parseArguments(argv: readonly string[]): Arguments {
  let profile: ProfileName = "full";
  let out: string | undefined;
  let only: Arguments["only"];
  let cpuProfile = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--quick") profile = "quick";
    else if (flag === "--tiny") profile = "tiny";
    else if (flag === "--out") out = argv[++i];
    else if (flag === "--cpu-prof") cpuProfile = true;
    else if (flag === "--only") {
      const value = argv[++i];
      if (value !== "in-process" && value !== "e2e" && value !== "scaleout" && value !== "instructions") throw new Error("--only takes in-process, e2e, scaleout or instructions");
      only = value;
    } else throw new Error(`unknown flag '${flag}' (try --quick, --tiny, --out <dir>, --only in-process|e2e|scaleout|instructions, --cpu-prof)`);
  }
  return { profile, out, only, cpuProfile };
}

/** Connections beyond this would not fit the open-files limit of a child (both ends hold one fd each). */
const FD_HEADROOM = 256;

function plansFor(profile: Profile, notes: string[]): SystemPlan[] {
  const limit = hardFdLimit() - FD_HEADROOM;
  const fits = (n: number): boolean => n <= limit;
  for (const n of profile.e2e.sizes) if (!fits(n)) notes.push(`e2e: group of ${n} skipped: the open-files limit (${limit + FD_HEADROOM}) is too low`);
  const sizes = profile.e2e.sizes.filter(fits);
  let memory: SystemPlan["memory"] = { low: profile.memory.low, high: Math.min(profile.memory.high, limit) };
  if (memory.high < profile.memory.high) notes.push(`memory: measured up to ${memory.high} connections only (open-files limit)`);
  if (memory.high <= memory.low) memory = undefined;
  const bursts = profile.e2e.bursts;
  return [
    { system: "switchboard", protocol: "json", memory, sizes, bursts },
    { system: "socket.io", protocol: "socket.io", memory, sizes, bursts },
    { system: "raw-ws", protocol: "json", memory, sizes, bursts },
    { system: "switchboard", protocol: "messagepack", memory: undefined, sizes: profile.e2e.messagePackSizes.filter(fits), bursts },
    // The same JSON clients with stateful reconnect negotiated: the replay buffer's cost on the fan-out.
    { system: "switchboard", protocol: "json+stateful", memory: undefined, sizes: profile.e2e.statefulSizes.filter(fits), bursts },
  ];
}

async function inProcess(profile: Profile, progress: Progress): Promise<{ scenarios: ScenarioResult[]; notes: string[] }> {
  progress.next("in-process (sink transports): hot path ns per recipient, pipeline, group churn");
  const { channel } = await spawnChild("in-process benchmark", "./in-process/main.js", [], { core: 0, exposeGc: true });
  try {
    channel.on("progress", (text) => progress.update(`in-process: ${String(text)}`));
    return await channel.request("run", { profile: profile.name }, 30 * 60_000);
  } finally {
    await channel.close();
  }
}

function commandLine(argv: readonly string[]): string {
  if (process.env["npm_lifecycle_event"] === "bench") return `npm run bench${argv.length > 0 ? ` -- ${argv.join(" ")}` : ""}`;
  return ["node", "benchmarks/dist/run.js", ...argv].join(" ");
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArguments(argv);
  const profile = PROFILES[args.profile];
  // A quick or tiny run, or a run of one part, never replaces the full run's results (which
  // RESULTS.md describes): results/quick/, results/only-scaleout/, results/quick/only-e2e/, …
  const defaultDir = `../results/${profile.name === "full" ? "" : `${profile.name}/`}${args.only === undefined ? "" : `only-${args.only}/`}`;
  const outDir = resolve(args.out ?? fileURLToPath(new URL(defaultDir, import.meta.url)));
  const notes: string[] = [];
  if (pinSelf(1)) notes.push("runner pinned to core 1, servers and the in-process benchmark to core 0, clients to core 1");
  else if (!canPin()) notes.push("taskset or a second core is missing: processes are not pinned");
  const plans = args.only === undefined || args.only === "e2e" ? plansFor(profile, notes) : [];
  const runInProcess = args.only === undefined || args.only === "in-process";
  const runScaleOutScenario = args.only === undefined || args.only === "scaleout";
  // Valgrind runs Node 30-50 times slower: instruction counts run only when asked for.
  const countInstructions = args.only === "instructions";
  const progress = new Progress((runInProcess ? 1 : 0) + plans.reduce((sum, plan) => sum + stepsOf(plan), 0) + (runScaleOutScenario ? scaleOutSteps(profile) : 0) + (countInstructions ? instructionSteps(profile) : 0));
  for (const note of notes) progress.note(`bench: ${note}`);

  const scenarios: ScenarioResult[] = [];
  if (runInProcess) {
    const result = await inProcess(profile, progress);
    scenarios.push(...result.scenarios);
    for (const note of result.notes) progress.note(`bench: ${note}`);
    notes.push(...result.notes);
  }
  if (args.cpuProfile) mkdirSync(outDir, { recursive: true });
  if (plans.length > 0) scenarios.push(...(await runSystems(plans, profile, progress, args.cpuProfile ? outDir : undefined)));
  let versions: Record<string, string> = {};
  if (runScaleOutScenario) {
    const result = await runScaleOut(profile, progress, hardFdLimit() - FD_HEADROOM, args.cpuProfile ? outDir : undefined);
    scenarios.push(...result.scenarios);
    for (const note of result.notes) progress.note(`bench: ${note}`);
    notes.push(...result.notes);
    versions = result.versions;
  }
  if (countInstructions) {
    const result = await runInstructionCounts(profile, progress);
    scenarios.push(...result.scenarios);
    for (const note of result.notes) progress.note(`bench: ${note}`);
    notes.push(...result.notes);
  }
  progress.done();

  const results: ResultsFile = { machine: machineInfo(versions), profile: profile.name, date: new Date().toISOString(), command: commandLine(argv), notes, scenarios };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(resolve(outDir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  const subtitle = `${results.machine.cpuModel}, ${results.machine.cpus} cores, Node ${results.machine.node}; JSON over loopback, ${profile.e2e.payloadBytes} B payload, profile ${profile.name}`;
  writeFileSync(resolve(outDir, "fanout.svg"), fanoutSvg(scenarios, subtitle));
  const tables = [targetsTable(checkTargets(scenarios)), ...buildTables(scenarios)];
  process.stdout.write(`${tables.map(renderText).join("\n\n")}\n\nbench: wrote ${resolve(outDir, "latest.json")} and fanout.svg\n`);
  if (profile.name === "full" && args.out === undefined && args.only === undefined && !args.cpuProfile) {
    const markdown = fileURLToPath(new URL("../RESULTS.md", import.meta.url));
    updateResultsMarkdown(markdown, results);
    process.stdout.write(`bench: updated ${markdown}\n`);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`\nbench: failed: ${(error as Error)?.stack ?? String(error)}\n`);
    killChildren();
    process.exit(1);
  },
);
