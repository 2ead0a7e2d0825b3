import { afterEach, describe, expect, it } from "vitest";
import { FlushScheduler, type DeferredSend } from "../src/fan-out/flush-scheduler.js";

/** A deferred send that counts how often the scheduler asks it to catch a recipient up or to deliver. */
class CountingSend implements DeferredSend {
  static catchUps = 0;
  delivered: boolean | undefined;
  deliver(alone: boolean): void {
    this.delivered = alone;
  }
  catchUp(): void {
    CountingSend.catchUps++;
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterEach(() => {
  CountingSend.catchUps = 0;
});

describe("FlushScheduler with deferred sends", () => {
  it("delivers a lone deferred send at the end of the turn as alone, several as not alone, in order", async () => {
    const scheduler = new FlushScheduler();
    const one = new CountingSend();
    scheduler.defer(one);
    expect(scheduler.deferring).toBe(true);
    await turn();
    expect(one.delivered).toBe(true);
    expect(scheduler.deferring).toBe(false);
    const sends = [new CountingSend(), new CountingSend()];
    for (const send of sends) scheduler.defer(send);
    await turn();
    expect(sends.map((send) => send.delivered)).toEqual([false, false]);
  });

  it("a catch-up asks a bounded number of deferred sends, however many were deferred in the turn", async () => {
    // A send to each of many groups, each followed by a send to one connection (which catches
    // that connection up): without a bound every catch-up asks every send deferred so far.
    const scheduler = new FlushScheduler();
    const sends: CountingSend[] = [];
    for (let i = 0; i < 1_000; i++) {
      const send = new CountingSend();
      sends.push(send);
      scheduler.defer(send);
      scheduler.catchUp({});
    }
    expect(CountingSend.catchUps).toBeLessThanOrEqual(1_000 * 16);
    await turn();
    // Every send was still delivered once (the older ones queued before the end of the turn).
    expect(sends.every((send) => send.delivered === false)).toBe(true);
  });
});
