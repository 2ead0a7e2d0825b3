/**
 * Reading callgrind's output for `--only instructions`: one dump of a run with
 * `--separate-threads=yes` is one file per thread, `<base>.<dump>-<thread>`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { callgrindTotal, readDump } from "../src/instructions/callgrind.js";

const file = (count: number, header = "summary"): string => `# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\nevents: Ir\n${header}: ${count}\n\nfn=(1) main\n0x1 0 ${count}\n`;

describe("callgrind output", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("reads the summary line, or the totals line of a file without one", () => {
    expect(callgrindTotal(file(135_173_518))).toBe(135_173_518);
    expect(callgrindTotal(file(42, "totals"))).toBe(42);
  });

  it("refuses a file that is not callgrind output", () => {
    expect(() => callgrindTotal("events: Ir\n0x1 0 5\n")).toThrow(/no summary or totals line/);
  });

  it("takes thread 1 as the main thread and sums every thread of the one dump asked for", () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-callgrind-test-"));
    dirs.push(dir);
    const base = join(dir, "server.out");
    writeFileSync(`${base}.1-01`, file(1_000));
    writeFileSync(`${base}.1-02`, file(30));
    writeFileSync(`${base}.1-10`, file(5));
    // The final dump at exit and another dump are not part of it.
    writeFileSync(`${base}-01`, file(999_999));
    writeFileSync(`${base}.2-01`, file(777));
    expect(readDump(base, 1)).toEqual({ main: 1_000, all: 1_035 });
    expect(readDump(base, 2)).toEqual({ main: 777, all: 777 });
    expect(() => readDump(base, 3)).toThrow(/no main-thread file for dump 3/);
  });
});
