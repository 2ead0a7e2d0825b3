import { describe, expect, it } from "vitest";
import { SerializedRecord } from "../src/contracts/transport.js";
import { ReplayBuffer } from "../src/connections/replay-buffer.js";

function record(size: number): SerializedRecord {
  return new SerializedRecord(new Uint8Array(size));
}

describe("ReplayBuffer", () => {
  it("keeps sent records by reference until acknowledged, and knows the oldest unacknowledged id", () => {
    const buffer = new ReplayBuffer(1_000);
    const records = [record(10), record(20), record(30)];
    for (const r of records) buffer.push(r);
    expect(buffer.unacknowledged()).toEqual(records);
    expect(buffer.unacknowledged()[0]).toBe(records[0]);
    expect([buffer.sent, buffer.bytes]).toEqual([3, 60]);
    expect(buffer.ack(2)).toBe(true);
    expect(buffer.unacknowledged()).toEqual([records[2]]);
    expect([buffer.acked + 1, buffer.bytes]).toEqual([3, 30]);
    expect(buffer.ack(1)).toBe(true); // a stale Ack changes nothing
    expect(buffer.bytes).toBe(30);
    expect(buffer.ack(3)).toBe(true);
    expect([buffer.acked + 1, buffer.bytes, buffer.unacknowledged().length]).toEqual([4, 0, 0]);
  });

  it.each([
    ["nothing sent", 0, 1],
    ["two sent", 2, 3],
  ])("refuses an Ack beyond what was sent (%s)", (_name, sent, ack) => {
    const buffer = new ReplayBuffer(1_000);
    for (let i = 0; i < sent; i++) buffer.push(record(1));
    expect(buffer.ack(ack)).toBe(false);
    expect(buffer.bytes).toBe(sent);
  });

  it("has room below its limit and lets one record pass it, as the client does", () => {
    const buffer = new ReplayBuffer(100);
    expect(buffer.hasRoom).toBe(true);
    buffer.push(record(99));
    expect(buffer.hasRoom).toBe(true);
    buffer.push(record(50));
    expect(buffer.hasRoom).toBe(false);
    buffer.ack(1);
    expect(buffer.hasRoom).toBe(true);
  });

  it("keeps order when the ring wraps and when it grows while wrapped", () => {
    const buffer = new ReplayBuffer(1e9);
    const records = Array.from({ length: 40 }, (_, i) => record(1 + i));
    for (let i = 0; i < 10; i++) buffer.push(records[i]!);
    buffer.ack(6); // the oldest is now slot 6 of 16
    for (let i = 10; i < 22; i++) buffer.push(records[i]!); // 16 held: the ring is full and wrapped
    expect(buffer.unacknowledged()).toEqual(records.slice(6, 22));
    for (let i = 22; i < 40; i++) buffer.push(records[i]!); // grows twice, from a wrapped ring
    expect(buffer.unacknowledged()).toEqual(records.slice(6, 40));
    expect(buffer.bytes).toBe(records.slice(6).reduce((sum, r) => sum + r.bytes.length, 0));
    buffer.ack(40);
    expect([buffer.unacknowledged().length, buffer.bytes]).toEqual([0, 0]);
  });

  it("matches a plain list over a long random run of sends and Acks, large backlogs included", () => {
    const buffer = new ReplayBuffer(1e9);
    const model: SerializedRecord[] = [];
    let acked = 0;
    let seed = 19;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    for (let step = 0; step < 4_000; step++) {
      // Mostly short runs; now and then a backlog past the size at which an emptied ring is dropped.
      const pushes = random(50) === 0 ? 1_500 + random(1_000) : random(8);
      for (let i = 0; i < pushes; i++) {
        const r = record(1 + random(9));
        buffer.push(r);
        model.push(r);
      }
      if (random(3) === 0) {
        const id = acked + random(model.length - acked + 1);
        expect(buffer.ack(id)).toBe(true);
        acked = Math.max(acked, id);
      }
      if (step % 97 === 0) {
        expect(buffer.unacknowledged()).toEqual(model.slice(acked));
        expect(buffer.bytes).toBe(model.slice(acked).reduce((sum, r) => sum + r.bytes.length, 0));
      }
    }
    expect(buffer.ack(model.length)).toBe(true);
    expect([buffer.unacknowledged().length, buffer.bytes, buffer.acked]).toEqual([0, 0, model.length]);
    expect(buffer.ack(model.length + 1)).toBe(false);
  });

  it("releases an empty ring at the second trim without pushes in between, and keeps a busy one", () => {
    const buffer = new ReplayBuffer(1e9);
    for (let i = 0; i < 600; i++) buffer.push(record(1));
    buffer.ack(600);
    expect(buffer.capacity).toBe(1_024); // emptied, kept for the next burst
    buffer.trim(); // pushes since the last trim: kept
    expect(buffer.capacity).toBe(1_024);
    buffer.push(record(1));
    buffer.trim(); // not empty: kept
    expect(buffer.capacity).toBe(1_024);
    buffer.push(record(1));
    buffer.ack(602);
    buffer.trim(); // empty, but a push came since the last trim: kept
    expect(buffer.capacity).toBe(1_024);
    buffer.trim(); // empty and idle for a whole period: released
    expect(buffer.capacity).toBe(0);
    buffer.push(record(3));
    expect([buffer.capacity, buffer.bytes, buffer.unacknowledged().length]).toEqual([16, 3, 1]);
  });

  it("counts incoming messages, drops re-sent ones after a Sequence, and refuses a Sequence that skips messages", () => {
    const buffer = new ReplayBuffer(1_000);
    expect([buffer.receive(), buffer.receive(), buffer.receive()]).toEqual([true, true, true]);
    expect(buffer.received).toBe(3);
    expect(buffer.sequence(5)).toBe(false);
    expect(buffer.sequence(0)).toBe(false);
    expect(buffer.sequence(2)).toBe(true); // the client re-sends 2 and 3, then 4 is new
    expect([buffer.receive(), buffer.receive(), buffer.receive()]).toEqual([false, false, true]);
    expect(buffer.received).toBe(4);
    expect(buffer.sequence(5)).toBe(true);
  });
});
