import { describe, expect, it } from "vitest";
import { SerializedRecord } from "@switchboard/core";
import { socketPairs } from "./socket-pairs.js";

/** A record that counts how often its bytes are read (each build of a message reads them). */
class CountingRecord extends SerializedRecord {
  reads = 0;
  constructor(text: string) {
    super(new TextEncoder().encode(text));
    const bytes = this.bytes;
    Object.defineProperty(this, "bytes", { get: () => (this.reads++, bytes) });
  }
}

describe("WebSocketConnection, several records in one message", () => {
  it("builds a burst shared by several sockets once per flush pass and sends every socket the same message", async () => {
    const { connections, clients } = await socketPairs(3);
    const records = ["a\u001e", "bb\u001e", "ccc\u001e"].map((text) => new CountingRecord(text));
    for (const connection of connections) connection.write(records, 3, "text");
    // One build reads each record twice (size, then copy); the other sockets reuse its frame.
    expect(records.map((record) => record.reads)).toEqual([2, 2, 2]);
    for (const client of clients) {
      const frame = await client.frame(0);
      expect(frame.binary).toBe(false);
      expect(frame.data.toString("utf8")).toBe("a\u001ebb\u001eccc\u001e");
    }
  });

  it("never hands one socket another socket's message: other records, another count or format", async () => {
    const { connections, clients } = await socketPairs(4);
    const [a, b, c] = ["a\u001e", "b\u001e", "c\u001e"].map((text) => new CountingRecord(text));
    connections[0]!.write([a!, b!, c!], 3, "text");
    connections[1]!.write([a!, c!, b!], 3, "text");
    connections[2]!.write([a!, b!, c!], 2, "text");
    connections[3]!.write([a!, b!, c!], 3, "binary");
    const received = await Promise.all(clients.map((client) => client.frame(0)));
    expect(received.map((frame) => frame.data.toString("utf8"))).toEqual(["a\u001eb\u001ec\u001e", "a\u001ec\u001eb\u001e", "a\u001eb\u001e", "a\u001eb\u001ec\u001e"]);
    expect(received.map((frame) => frame.binary)).toEqual([false, false, false, true]);
  });

  it("takes the same frozen array again as the same records, for the same count and format only", async () => {
    const { connections, clients } = await socketPairs(4);
    const records = Object.freeze(["a\u001e", "bb\u001e", "ccc\u001e"].map((text) => new CountingRecord(text)));
    connections[0]!.write(records, 3, "text");
    connections[1]!.write(records, 3, "text");
    connections[2]!.write(records, 2, "text");
    connections[3]!.write(records, 3, "binary");
    const received = await Promise.all(clients.map((client) => client.frame(0)));
    expect(received.map((frame) => frame.data.toString("utf8"))).toEqual(["a\u001ebb\u001eccc\u001e", "a\u001ebb\u001eccc\u001e", "a\u001ebb\u001e", "a\u001ebb\u001eccc\u001e"]);
    expect(received.map((frame) => frame.binary)).toEqual([false, false, false, true]);
  });

  it("does not take a reused array that is not frozen for the same records", async () => {
    const { connections, clients } = await socketPairs(2);
    const [a, b, c, d] = ["a\u001e", "b\u001e", "c\u001e", "d\u001e"].map((text) => new CountingRecord(text));
    // What a connection's outbox is: one array, refilled.
    const outbox = [a!, b!];
    connections[0]!.write(outbox, 2, "text");
    outbox[0] = c!;
    outbox[1] = d!;
    connections[1]!.write(outbox, 2, "text");
    const received = await Promise.all(clients.map((client) => client.frame(0)));
    expect(received.map((frame) => frame.data.toString("utf8"))).toEqual(["a\u001eb\u001e", "c\u001ed\u001e"]);
  });

  it("builds the message again in a later pass (nothing is kept after the flush)", async () => {
    const { connections, clients } = await socketPairs(2);
    const records = ["x\u001e", "y\u001e"].map((text) => new CountingRecord(text));
    connections[0]!.write(records, 2, "text");
    await new Promise((resolve) => setImmediate(resolve));
    connections[1]!.write(records, 2, "text");
    expect(records.map((record) => record.reads)).toEqual([4, 4]);
    for (const client of clients) expect((await client.frame(0)).data.toString("utf8")).toBe("x\u001ey\u001e");
  });
});
