/**
 * The benchmark harness end to end in its tiny configuration: every child process (in-process
 * benchmark, servers, clients) starts, talks, measures and goes away, and the results file and
 * chart come out valid with every system in them. Correctness only: no timing is asserted.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { allGone, alive, RUN, runHarness } from "./harness-process.js";

const LATEST = fileURLToPath(new URL("../results/latest.json", import.meta.url));
const SYSTEMS = ["switchboard", "socket.io", "raw-ws"];
/** The scale-out scenario needs redis-server; without it the run skips it with a note. */
const redisInstalled = spawnSync("redis-server", ["--version"]).error === undefined;

type Scenario = Record<string, unknown> & { name: string; system: string; protocol: string };

describe("npm run bench harness", () => {
  it("produces a valid results file and chart with every system, in a temp dir, and leaves no process behind", async () => {
    if (!existsSync(RUN)) throw new Error("benchmarks/dist/run.js is missing: build first (`npx tsc -b`; `npm test` does it)");
    const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-"));
    const pidFile = join(dir, "pids");
    const latestBefore = existsSync(LATEST) ? statSync(LATEST).mtimeMs : undefined;
    try {
      const outcome = await runHarness(["--tiny", "--out", dir], { BENCH_PID_FILE: pidFile }, 80_000);
      expect(outcome.code, outcome.stderr).toBe(0);
      // No child crashed or complained, even after it had answered.
      expect(outcome.stderr).not.toMatch(/\w*Error\b|Unhandled|\[bench (error|warn|client)\]/);
      expect(outcome.stdout).toContain("SB/Socket.IO");
      expect(outcome.stdout).toContain("SB/raw");

      const results = JSON.parse(readFileSync(join(dir, "latest.json"), "utf8")) as { machine: Record<string, unknown>; scenarios: Scenario[]; notes: string[] };
      expect(results.machine).toMatchObject({ node: process.version, cpus: expect.any(Number), cpuModel: expect.any(String), os: expect.any(String) });
      expect(Object.keys(results.machine["versions"] as object)).toEqual(expect.arrayContaining(["socket.io", "ws", "@switchboard/core"]));
      for (const scenario of results.scenarios) {
        expect(SYSTEMS).toContain(scenario.system);
        expect(scenario.name).toEqual(expect.any(String));
        expect(scenario.protocol).toEqual(expect.any(String));
        for (const [key, value] of Object.entries(scenario)) {
          if (!["name", "system", "protocol"].includes(key)) expect(Number.isFinite(value), `${scenario.name} ${key}`).toBe(true);
        }
      }

      // Scale-out: counts, not timings. One publish per message sent to the group, and one message
      // through Redis for the server that did not send, whatever the group's size.
      const scaleOut = results.scenarios.filter((s) => s.name.startsWith("scale-out fan-out"));
      if (redisInstalled) {
        for (const system of ["switchboard", "socket.io"]) {
          const runs = scaleOut.filter((s) => s.system === system);
          expect(runs.map((s) => s["burst"]).sort(), system).toEqual([1, 10]);
          for (const run of runs) {
            expect(run, `${system} burst ${run["burst"]}`).toMatchObject({ servers: 2, redisPublishesPerMessage: 1, sendingServerReceivedPerMessage: 0, otherServerReceivedPerMessage: 1 });
            for (const key of ["deliveriesPerCpuSecond", "deliveriesPerSecond", "lastRecipientMs"]) expect(run[key], `${system} ${key}`).toBeGreaterThan(0);
            expect(run["redisMicrosPerDelivery"]).toBeGreaterThanOrEqual(0);
          }
        }
        expect(outcome.stdout).toContain("Scale-out over Redis");
        expect((results.machine["versions"] as Record<string, string>)["redis-server"]).toMatch(/^\d/);
      } else {
        expect(scaleOut).toEqual([]);
        expect(results.notes.join("\n")).toContain("scale-out: skipped");
      }

      const e2e = results.scenarios.filter((s) => s.name.startsWith("e2e fan-out"));
      for (const system of SYSTEMS) {
        const runs = e2e.filter((s) => s.system === system);
        expect(runs.map((s) => s.burst).sort()).toEqual(expect.arrayContaining([1, 10]));
        for (const run of runs) {
          for (const key of ["deliveriesPerCpuSecond", "deliveriesPerSecond", "p50Ms", "p99Ms", "lastRecipientMs"]) expect(run[key], `${system} ${key}`).toBeGreaterThan(0);
          expect(run["userMicrosPerDelivery"]).toBeGreaterThanOrEqual(0);
          expect(run["systemMicrosPerDelivery"]).toBeGreaterThanOrEqual(0);
          expect(run["repetitions"]).toBeGreaterThanOrEqual(5);
        }
        const memory = results.scenarios.find((s) => s.system === system && s.name === "idle memory per connection");
        expect(memory, `${system} memory`).toMatchObject({ heapBytesPerConnection: expect.any(Number), rssBytesPerConnection: expect.any(Number) });
      }
      // The same-process comparison: every size and burst of Switchboard JSON, both ways measured
      // (the run itself checks that the clients got every message of both ways).
      const sameProcess = results.scenarios.filter((s) => s.name === "same-process fan-out, group send vs the floor's loop");
      const jsonRuns = e2e.filter((s) => s.system === "switchboard" && s.protocol === "json");
      expect(sameProcess.map((s) => `${s["members"]}/${s["burst"]}`).sort()).toEqual(jsonRuns.map((s) => `${s["members"]}/${s["burst"]}`).sort());
      for (const run of sameProcess) {
        expect(run, `${run["members"]}/${run["burst"]}`).toMatchObject({ system: "switchboard", protocol: "json" });
        for (const key of ["deliveriesPerCpuSecond", "floorDeliveriesPerCpuSecond", "rounds"]) expect(run[key], key).toBeGreaterThan(0);
      }
      expect(outcome.stdout).toContain("SB/floor");
      expect(e2e.some((s) => s.system === "switchboard" && s.protocol === "messagepack")).toBe(true);
      expect(e2e.some((s) => s.system === "switchboard" && s.protocol === "json+stateful")).toBe(true);

      const hot = results.scenarios.filter((s) => s.name === "in-process group send");
      expect(hot.length).toBeGreaterThan(0);
      for (const s of hot) {
        expect(s["serializationsPerSend"], `${s.protocol} ${s["members"]}`).toBe(s.protocol === "mixed" ? 2 : 1);
        expect(s["nsPerRecipient"]).toBeGreaterThanOrEqual(0);
      }
      expect(new Set(hot.map((s) => s.protocol))).toEqual(new Set(["json", "messagepack", "mixed"]));
      const pipeline = results.scenarios.filter((s) => s.name.startsWith("pipeline"));
      if (pipeline.length === 0) expect(results.notes.join("\n")).toContain("pipeline: skipped");
      else expect(pipeline.map((s) => s["modules"]).sort()).toEqual([0, 0, 1, 1]);
      for (const name of ["group churn join+leave", "disconnect in many groups"]) {
        expect(results.scenarios.find((s) => s.name === name)?.["opsPerSecond"], name).toBeGreaterThan(0);
      }

      const svg = readFileSync(join(dir, "fanout.svg"), "utf8");
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
      for (const label of ["Switchboard", "Socket.IO", "raw ws"]) expect(svg).toContain(label);
      expect(svg.match(/<polyline /g)?.length).toBe(6); // 3 systems × (1 message, bursts)

      // The real results file is never touched by a run into another directory.
      expect(existsSync(LATEST) ? statSync(LATEST).mtimeMs : undefined).toBe(latestBefore);

      const pids = readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
      // in-process + 3 × (server, client) for idle memory + 5 × (server, client) for fan-out, and
      // for scale-out redis-server + 2 × (2 servers, client)
      expect(pids.length).toBe(redisInstalled ? 24 : 17);
      expect(await allGone(pids, 3_000)).toEqual([]);
    } finally {
      if (existsSync(pidFile)) for (const pid of readFileSync(pidFile, "utf8").trim().split("\n").map(Number)) if (alive(pid)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it("skips the scale-out scenario with a printed reason when redis-server is missing, and still writes its results", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-"));
    try {
      // No PATH entry holds redis-server (nor taskset: the run is simply not pinned).
      const outcome = await runHarness(["--tiny", "--only", "scaleout", "--out", dir], { PATH: join(dir, "empty") }, 20_000);
      expect(outcome.code, outcome.stderr).toBe(0);
      expect(outcome.stderr).toContain("scale-out: skipped: redis-server is not installed");
      const results = JSON.parse(readFileSync(join(dir, "latest.json"), "utf8")) as { scenarios: Scenario[]; notes: string[] };
      expect(results.scenarios).toEqual([]);
      expect(results.notes.join("\n")).toContain("scale-out: skipped");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 25_000);
});
