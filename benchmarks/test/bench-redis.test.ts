/**
 * The scale-out scenario's readings of redis-server: command counters from `INFO commandstats`
 * and a process's CPU time from /proc.
 */
import { describe, expect, it } from "vitest";
import { parseCommandStats, processCpuMicros } from "../src/scaleout/bench-redis.js";

describe("INFO commandstats", () => {
  const cases: [string, string, Record<string, number>][] = [
    ["publish and spublish among others", "# Commandstats\r\ncmdstat_publish:calls=12,usec=40,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\ncmdstat_spublish:calls=7,usec=21,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=3,usec=90,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n", { publish: 12, spublish: 7, info: 3 }],
    ["subcommands keep their name", "cmdstat_client|setname:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\n", { "client|setname": 2 }],
    ["no commands yet", "# Commandstats\r\n", {}],
  ];
  it.each(cases)("%s", (_name, info, expected) => {
    expect(Object.fromEntries(parseCommandStats(info))).toEqual(expected);
  });
});

describe("processCpuMicros", () => {
  it("reads this process's CPU time from /proc", () => {
    const micros = processCpuMicros(process.pid);
    expect(Number.isFinite(micros)).toBe(true);
    expect(micros).toBeGreaterThan(0);
  });
});
