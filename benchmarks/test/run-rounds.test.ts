/**
 * The closed loop's stopping rule: a repetition runs its length, then on until it holds the
 * floor's rounds, unless that takes longer than the floor's cap. Driven by fake processes whose
 * rounds each take `roundMs` of a fake clock, so no child process is started and the machine's
 * load cannot change the outcome.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runRounds, type RoundFloor } from "../dist/e2e/driver.js";
import type { ChildChannel } from "../dist/ipc.js";

let clock = 0;
beforeEach(() => {
  clock = 0;
  vi.spyOn(performance, "now").mockImplementation(() => clock);
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** A server and a client process whose every round completes `roundMs` (fake time) after it is sent. */
function fakeProcesses(roundMs: number): { server: ChildChannel; client: ChildChannel; sends: () => number } {
  let onRound: ((round: number) => void) | undefined;
  let sends = 0;
  const exits = { onExit: () => undefined, offExit: () => undefined };
  const client = {
    ...exits,
    on: (_event: string, handler: (round: number) => void) => (onRound = handler),
    off: () => (onRound = undefined),
  };
  const server = {
    ...exits,
    notify: (_event: string, data: { round: number }) => {
      sends++;
      setImmediate(() => {
        clock += roundMs;
        onRound?.(data.round);
      });
    },
  };
  return { server: server as unknown as ChildChannel, client: client as unknown as ChildChannel, sends: () => sends };
}

async function rounds(roundMs: number, durationMs: number, floor?: RoundFloor): Promise<{ rounds: number; sends: number }> {
  const { server, client, sends } = fakeProcesses(roundMs);
  const completed = await runRounds(server, client, "g", 1, 64, durationMs, 1_000, floor);
  return { rounds: completed, sends: sends() };
}

describe("runRounds", () => {
  it("stops at the first round past its length without a floor", async () => {
    expect(await rounds(50, 120)).toEqual({ rounds: 3, sends: 3 });
  });

  it("runs on past its length until it holds the floor's rounds", async () => {
    expect(await rounds(50, 60, { rounds: 5, maxMs: 5_000 })).toEqual({ rounds: 5, sends: 5 });
  });

  it("stops at the first round past the floor's cap even short of its rounds", async () => {
    expect(await rounds(50, 60, { rounds: 50, maxMs: 175 })).toEqual({ rounds: 4, sends: 4 });
  });

  it("never runs past maxRounds, floor or not", async () => {
    const { server, client } = fakeProcesses(50);
    expect(await runRounds(server, client, "g", 1, 64, 10_000, 3, { rounds: 10, maxMs: 20_000 })).toBe(3);
  });
});
