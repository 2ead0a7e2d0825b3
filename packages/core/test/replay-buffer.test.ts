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
      // A group's burst: one shared array, of which the first `count` records were sent.
      if (random(2) === 0) {
        const burst = Object.freeze(Array.from({ length: 1 + random(12) }, () => record(1 + random(9))));
        const count = 1 + random(burst.length);
        buffer.pushBurst(burst, count, burst.slice(0, count).reduce((sum, r) => sum + r.bytes.length, 0));
        model.push(...burst.slice(0, count));
      }
      if (random(3) === 0) {
        const id = acked + random(model.length - acked + 1);
        expect(buffer.ack(id)).toBe(true);
        acked = Math.max(acked, id);
      }
      if (step % 97 === 0) {
        const held = buffer.unacknowledged();
        expect(held.length).toBe(model.length - acked);
        expect(held.every((r, i) => r === model[acked + i])).toBe(true); // the very records, in order
        expect(buffer.bytes).toBe(model.slice(acked).reduce((sum, r) => sum + r.bytes.length, 0));
      }
    }
    expect(buffer.ack(model.length)).toBe(true);
    expect([buffer.unacknowledged().length, buffer.bytes, buffer.acked]).toEqual([0, 0, model.length]);
    expect(buffer.ack(model.length + 1)).toBe(false);
  });

  it("keeps a burst as one entry, acknowledged whole or up to a record inside it", () => {
    const buffer = new ReplayBuffer(1_000);
    const burst = Object.freeze([record(10), record(20), record(30), record(40)]);
    buffer.push(record(5));
    buffer.pushBurst(burst, 3, 60); // the fourth record was not sent
    buffer.push(record(7));
    expect([buffer.sent, buffer.bytes, buffer.capacity]).toEqual([5, 72, 16]);
    expect(buffer.unacknowledged()).toEqual([record(5), burst[0], burst[1], burst[2], record(7)]);
    expect(buffer.unacknowledged()[1]).toBe(burst[0]);
    expect(buffer.ack(2)).toBe(true); // into the burst
    expect([buffer.bytes, buffer.unacknowledged()]).toEqual([57, [burst[1], burst[2], record(7)]]);
    expect(buffer.ack(3)).toBe(true); // further into it
    expect([buffer.bytes, buffer.unacknowledged()]).toEqual([37, [burst[2], record(7)]]);
    expect(buffer.ack(3)).toBe(true); // a stale Ack changes nothing
    expect(buffer.bytes).toBe(37);
    expect(buffer.ack(5)).toBe(true); // past its end and the next record
    expect([buffer.acked, buffer.bytes, buffer.unacknowledged()]).toEqual([5, 0, []]);
    buffer.pushBurst(burst, 4, 100);
    expect(buffer.ack(9)).toBe(true); // a whole burst at once
    expect([buffer.acked, buffer.bytes, buffer.unacknowledged()]).toEqual([9, 0, []]);
    expect(buffer.ack(10)).toBe(false);
    // One slot per burst: sixteen bursts of four records fill the first ring, sixty-four records.
    for (let i = 0; i < 16; i++) buffer.pushBurst(burst, 4, 100);
    expect([buffer.capacity, buffer.unacknowledged().length]).toEqual([16, 64]);
  });

  it("keeps order when it grows while wrapped with a burst acknowledged in part at its head", () => {
    const buffer = new ReplayBuffer(1e9);
    const bursts = Array.from({ length: 20 }, (_, b) => Object.freeze([record(1 + b), record(2 + b), record(3 + b)]));
    for (let b = 0; b < 10; b++) buffer.pushBurst(bursts[b]!, 3, 6 + 3 * b);
    buffer.ack(3 * 6 + 2); // bursts 0 to 5 and two records of burst 6: its head is slot 6 of 16, two in
    for (let b = 10; b < 20; b++) buffer.pushBurst(bursts[b]!, 3, 6 + 3 * b); // 14 entries, wrapped; then it grows
    for (let b = 0; b < 4; b++) buffer.push(record(50 + b));
    const expected = [bursts[6]![2]!, ...bursts.slice(7).flat()];
    const held = buffer.unacknowledged();
    expect(held.length).toBe(expected.length + 4);
    expect(held.slice(0, expected.length).every((r, i) => r === expected[i])).toBe(true);
    expect(buffer.capacity).toBe(32);
    expect(buffer.bytes).toBe(held.reduce((sum, r) => sum + r.bytes.length, 0));
  });

  it("has room for records of a given size in all only when each of them would have found room", () => {
    const buffer = new ReplayBuffer(100);
    buffer.push(record(40));
    expect(buffer.hasRoomFor(59)).toBe(true);
    expect(buffer.hasRoomFor(60)).toBe(false); // 100 in all: left to the record-by-record rule
    buffer.pushBurst([record(30), record(29)], 2, 59);
    expect([buffer.hasRoom, buffer.hasRoomFor(1)]).toEqual([true, false]);
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
