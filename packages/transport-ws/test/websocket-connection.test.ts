import { describe, expect, it } from "vitest";
import { SerializedRecord } from "@switchboard/core";
import { RS } from "../../../test-support/harness.js";
import { socketPairs } from "./socket-pairs.js";

describe("WebSocketConnection", () => {
  it("frames a record sent alone once and writes the same frame to every socket", async () => {
    const { connections, clients } = await socketPairs(3);
    /** Counts how often a transport builds and stores a frame for this record. */
    class CountingRecord extends SerializedRecord {
      stored = 0;
      override cache(key: symbol, value: unknown): void {
        this.stored++;
        super.cache(key, value);
      }
    }
    const record = new CountingRecord(new TextEncoder().encode(`{"type":1,"target":"Seq","arguments":[1]}${RS}`));
    connections[0]!.write([record], 1, "text");
    expect(record.stored).toBe(1); // the frame-once path is live
    connections[1]!.write([record], 1, "text");
    connections[2]!.write([record], 1, "text");
    expect(record.stored).toBe(1); // the same frame served the other two sockets
    for (const client of clients) {
      const received = await client.frame(0);
      expect(received.binary).toBe(false);
      expect(received.data.toString("utf8")).toBe(`{"type":1,"target":"Seq","arguments":[1]}${RS}`);
    }
  });

  it("sends several records as one message in the requested format", async () => {
    const { connections, clients } = await socketPairs(1);
    const connection = connections[0]!;
    const records = [Uint8Array.of(1, 2), Uint8Array.of(3), Uint8Array.of(4, 5, 6)].map((bytes) => new SerializedRecord(bytes));
    connection.write(records, 3, "binary");
    const received = await clients[0]!.frame(0);
    expect(received.binary).toBe(true);
    expect([...received.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
