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

  it("stays correct across compaction of a long run of Acks", () => {
    const buffer = new ReplayBuffer(1e9);
    const records = Array.from({ length: 5_000 }, (_, i) => record(1 + (i % 7)));
    for (let i = 0; i < records.length; i++) {
      buffer.push(records[i]!);
      if (i % 3 === 2) buffer.ack(i - 1);
    }
    const left = buffer.unacknowledged();
    expect(left).toEqual(records.slice(buffer.acked));
    expect(buffer.bytes).toBe(left.reduce((sum, r) => sum + r.bytes.length, 0));
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
