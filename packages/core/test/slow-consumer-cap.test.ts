import "reflect-metadata";
import { afterEach, describe, expect, it } from "vitest";
import { Hub, type ConnectionHandle, type HubContext, type SerializedRecord, type ServerOptions, type TransferFormat, type TransportConnection } from "@switchboard/core";
import { closeAll, connectInProcess, RS, startServer, until, type TestServer } from "../../../test-support/harness.js";

class CapHub extends Hub {
  async postAndLeave(text: string): Promise<void> {
    await this.clients.group("g").send("M", text);
    this.context.abort();
  }
}

/** A transport whose buffered amount the test sets, and which counts how often it is read. */
class BufferingTransport implements TransportConnection {
  readonly transferFormats: readonly TransferFormat[] = ["text", "binary"];
  buffered = 0;
  reads = 0;
  readonly written: string[] = [];
  closed = false;
  get bufferedAmount(): number {
    this.reads++;
    return this.buffered;
  }
  write(records: readonly SerializedRecord[], count: number): void {
    for (let i = 0; i < count; i++) this.written.push(new TextDecoder().decode(records[i]!.bytes));
  }
  close(): void {
    this.closed = true;
  }
  pause(): void {}
  resume(): void {}
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

let server: TestServer | undefined;
afterEach(async () => {
  await closeAll();
  server = undefined;
});

async function connect(test: TestServer, count: number): Promise<{ handle: ConnectionHandle; transport: BufferingTransport }[]> {
  return connectInProcess(test, "/cap", count, () => new BufferingTransport());
}

/** A server with the cap, and `count` connections in group "g". */
async function capServer(maxBufferedBytes: number, count: number, options: Partial<ServerOptions> = {}): Promise<{ test: TestServer; context: HubContext; connections: { handle: ConnectionHandle; transport: BufferingTransport }[] }> {
  const test = (server = await startServer([], { maxBufferedBytes, ...options }));
  test.server.addHub(CapHub, "/cap");
  const connections = await connect(test, count);
  const context = test.server.hubContext(CapHub);
  for (const { handle } of connections) await context.groups.add(handle.connectionId, "g");
  return { test, context, connections };
}

describe("slow-consumer cap, checked where it costs nothing on healthy sockets", () => {
  it("a group send reads each healthy socket's buffered amount once, at its one write; a socket that held bytes at its last write is checked against the cap", async () => {
    const { context, connections } = await capServer(10_000, 3);

    for (const { transport } of connections) transport.reads = 0;
    for (let i = 0; i < 5; i++) void context.clients.group("g").send("M", i);
    // Five sends to three healthy connections read nothing when made, and once per connection
    // at the end of the turn, where the five go out as one write.
    expect(connections.map(({ transport }) => transport.reads)).toEqual([0, 0, 0]);
    await turn();
    expect(connections.map(({ transport }) => transport.reads)).toEqual([1, 1, 1]);
    expect(connections.every(({ transport }) => transport.written.filter((text) => text.includes('"M"')).length === 5)).toBe(true);

    // The first connection's socket now holds bytes when it is written to: its sends are checked.
    connections[0]!.transport.buffered = 100;
    void context.clients.group("g").send("M", 5);
    await turn(); // the write that finds the socket backed up
    for (const { transport } of connections) transport.reads = 0;
    void context.clients.group("g").send("M", 6);
    await turn();
    // Queued against the cap (1), checked again at the flush (1) and when written (1).
    expect(connections.map(({ transport }) => transport.reads)).toEqual([3, 1, 1]);
    expect(connections.every(({ transport }) => transport.written.filter((text) => text.includes('"M"')).length === 7)).toBe(true);
  });

  it("a socket that backed up during its last write is caught at the next flush: the queued sends are dropped, a Close goes out", async () => {
    const maxBufferedBytes = 10_000;
    const { test, context, connections } = await capServer(maxBufferedBytes, 2);
    const [slow, healthy] = connections;
    void context.clients.group("g").send("M", "first");
    await turn();
    // Bytes pile up after that write (the client stopped reading): the connection was not flagged.
    slow!.transport.buffered = maxBufferedBytes - 100;
    const big = "x".repeat(300);
    for (let i = 0; i < 3; i++) void context.clients.group("g").send("M", big);
    await turn();
    expect(slow!.transport.written.filter((text) => text.includes(big))).toEqual([]);
    expect(slow!.transport.written.at(-1)).toBe(`{"type":7,"error":"Connection closed with an error. The client did not read its messages fast enough.","allowReconnect":true}${RS}`);
    expect(slow!.transport.closed).toBe(true);
    expect(test.logger.entries.filter((entry) => entry.level === "warn")).toEqual([expect.objectContaining({ message: "Closing a slow consumer.", fields: expect.objectContaining({ connectionId: slow!.handle.connectionId, maxBufferedBytes }) })]);
    // The other member got everything.
    expect(healthy!.transport.written.filter((text) => text.includes(big))).toHaveLength(3);
    expect(healthy!.transport.closed).toBe(false);
    expect(context.groups.count("g")).toBe(1);
  });

  it("a group send that finds a backed-up member past the cap closes it with the slow-consumer Close, also when the hub closes that member in the same turn", async () => {
    const maxBufferedBytes = 10_000;
    const { test, context, connections } = await capServer(maxBufferedBytes, 2);
    const [slow, healthy] = connections;
    // A write that finds the socket holding bytes: the connection is backed up, its sends are checked.
    slow!.transport.buffered = 100;
    void context.clients.group("g").send("M", "first");
    await turn();
    slow!.transport.buffered = maxBufferedBytes - 100;
    const big = "x".repeat(300);
    // The slow member's own method sends to its group (past its cap), then ends its connection.
    slow!.handle.receive(new TextEncoder().encode(`{"type":1,"target":"postAndLeave","arguments":["${big}"]}${RS}`));
    await until(() => slow!.transport.closed);
    await turn();
    expect(slow!.transport.written.filter((text) => text.includes(big))).toEqual([]);
    expect(slow!.transport.written.at(-1)).toBe(`{"type":7,"error":"Connection closed with an error. The client did not read its messages fast enough.","allowReconnect":true}${RS}`);
    expect(test.logger.entries.filter((entry) => entry.level === "warn")).toEqual([expect.objectContaining({ message: "Closing a slow consumer." })]);
    expect(healthy!.transport.written.filter((text) => text.includes(big))).toHaveLength(1);
    expect(healthy!.transport.closed).toBe(false);
  });

  it("an observer that sends to the group while a slow consumer is closed during a delivery loses and repeats nothing", async () => {
    const maxBufferedBytes = 10_000;
    let onEnded = (): void => {};
    const { context, connections } = await capServer(maxBufferedBytes, 3, { observer: { connectionEnded: () => onEnded() } });
    const [slow, ...healthy] = connections;
    void context.clients.group("g").send("M", "warm");
    await turn();
    slow!.transport.buffered = 100; // held bytes at this write: its next sends are checked as they are delivered
    void context.clients.group("g").send("M", "G1");
    await turn();
    onEnded = () => void context.clients.group("g").send("M", "from-observer");
    slow!.transport.buffered = maxBufferedBytes; // now full: the deferred delivery closes it
    void context.clients.group("g").send("M", "G2");
    void context.clients.group("g").send("M", "G3");
    await turn();
    await turn();
    expect(slow!.transport.closed).toBe(true);
    for (const { transport } of healthy) {
      const got = transport.written.flatMap((text) => [...text.matchAll(/"arguments":\["([^"]+)"\]/g)].map((match) => match[1]));
      expect(got.filter((text) => text === "from-observer")).toHaveLength(1);
      expect(got.filter((text) => text !== "from-observer")).toEqual(["warm", "G1", "G2", "G3"]);
    }
  });
});
