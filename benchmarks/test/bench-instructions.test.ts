/**
 * The benchmark's instruction counts (`--only instructions`) in their tiny configuration: both
 * servers run under callgrind, the counts come out in the results file, and every process is
 * gone afterwards. A file of its own, so it runs next to the other harness test, not after it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { callgrindMissing } from "../src/instructions/callgrind.js";
import { allGone, alive, runHarness } from "./harness-process.js";

/** Instruction counts need valgrind (with callgrind_control); .ci/run installs it. */
const valgrindMissing = callgrindMissing();
const mustRun = process.env["CI"] === "true";
if (valgrindMissing !== undefined && !mustRun) console.warn(`benchmarks: skipping the instruction-count harness test: ${valgrindMissing}.`);

type Scenario = Record<string, unknown> & { name: string; system: string; protocol: string };

describe("npm run bench -- --only instructions", () => {
  it.skipIf(valgrindMissing !== undefined && !mustRun)("counts user-space instructions per delivery of both servers, and of the floor's loop in Switchboard's server, under callgrind, and leaves no process behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-bench-"));
    const pidFile = join(dir, "pids");
    try {
      const outcome = await runHarness(["--tiny", "--only", "instructions", "--out", dir], { BENCH_PID_FILE: pidFile }, 280_000);
      expect(outcome.code, outcome.stderr).toBe(0);
      expect(outcome.stderr).not.toMatch(/\w*Error\b|Unhandled|\[bench (error|warn|client)\]/);
      expect(outcome.stdout).toContain("User-space instructions per delivery");
      const results = JSON.parse(readFileSync(join(dir, "latest.json"), "utf8")) as { scenarios: Scenario[]; notes: string[] };
      expect(results.scenarios.map((s) => `${s.system} ${s["burst"]}`).sort()).toEqual(["raw-ws 1", "switchboard 1"]);
      for (const run of results.scenarios) {
        expect(run, run.system).toMatchObject({ name: "user-space instructions per delivery (callgrind)", protocol: "json", members: 10, rounds: 5 });
        // A delivery is at least the socket write's own JavaScript, and the main thread is part of all threads.
        expect(run["instructionsPerDelivery"], run.system).toBeGreaterThan(500);
        expect(run["allThreadsInstructionsPerDelivery"], run.system).toBeGreaterThanOrEqual(run["instructionsPerDelivery"] as number);
      }
      // Switchboard's server also counts the floor's loop on its own sockets (the raw floor has nothing to compare with).
      const [sb, raw] = ["switchboard", "raw-ws"].map((system) => results.scenarios.find((s) => s.system === system)!);
      expect(sb!["floorLoopInstructionsPerDelivery"]).toBeGreaterThan(500);
      expect(raw!["floorLoopInstructionsPerDelivery"]).toBeUndefined();
      expect(outcome.stdout).toContain("floor's loop in SB's server");
      expect(results.notes.join("\n")).toContain("instructions: callgrind");
      // Per counted server (Switchboard's send, the floor's loop in Switchboard's server, the floor) a server under valgrind and a client.
      const pids = readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
      expect(pids.length).toBe(6);
      expect(await allGone(pids, 3_000)).toEqual([]);
    } finally {
      if (existsSync(pidFile)) for (const pid of readFileSync(pidFile, "utf8").trim().split("\n").map(Number)) if (alive(pid)) process.kill(pid, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
