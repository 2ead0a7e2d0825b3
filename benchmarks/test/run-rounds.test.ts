/**
 * The closed loop's stopping rule: a repetition runs its length, then on until it holds the
 * floor's rounds, unless that takes longer than the floor's cap. Driven by fake processes whose
 * rounds take a fixed time, so no child process is started.
 */
import { describe, expect, it } from "vitest";
import { runRounds, type RoundFloor } from "../dist/e2e/driver.js";
import type { ChildChannel } from "../dist/ipc.js";

/** A server and a client process whose every round completes `roundMs` after it is sent. */
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
      setTimeout(() => onRound?.(data.round), roundMs);
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
  // Rounds of 50 ms: a late timer can only make fewer rounds fit, so the bounds below hold under load.
  it("stops at the first round past its length without a floor", async () => {
    const { rounds: completed } = await rounds(50, 120);
    expect(completed).toBeGreaterThanOrEqual(2);
    expect(completed).toBeLessThanOrEqual(3);
  });

  it("runs on past its length until it holds the floor's rounds", async () => {
    expect(await rounds(50, 60, { rounds: 5, maxMs: 5_000 })).toEqual({ rounds: 5, sends: 5 });
  });

  it("stops at the first round past the floor's cap even short of its rounds", async () => {
    const { rounds: completed } = await rounds(50, 60, { rounds: 50, maxMs: 175 });
    expect(completed).toBeGreaterThanOrEqual(2);
    expect(completed).toBeLessThanOrEqual(4);
  });
});
