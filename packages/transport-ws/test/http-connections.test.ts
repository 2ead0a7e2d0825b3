/**
 * The fan-out guarantees of the Server-Sent Events and long-polling connections, against tiny
 * stand-ins for the HTTP response: an event is formatted once per record for every recipient,
 * a burst is one event or one poll answer with whole records, and waiting bytes count as buffered.
 */
import type { ServerResponse } from "node:http";
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { SerializedRecord, type ConnectionHandle } from "@switchboard/core";
import { LongPollingConnection, ServerSentEventsConnection, type HttpConnection, type HttpConnectionHost } from "../src/index.js";
import { MemoryLogger } from "../../../test-support/harness.js";

/** Records what a connection writes; implements the few `ServerResponse` members the connections use. */
class FakeResponse extends EventEmitter {
  readonly chunks: Buffer[] = [];
  status = 0;
  headersSent = false;
  destroyed = false;
  writableEnded = false;
  writableFinished = false;
  writableLength = 0;
  writeHead(status: number): this {
    this.status = status;
    this.headersSent = true;
    return this;
  }
  flushHeaders(): void {}
  setHeader(): void {}
  write(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }
  end(chunk?: Buffer): void {
    if (chunk !== undefined) this.chunks.push(chunk);
    this.writableEnded = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

class Host implements HttpConnectionHost {
  readonly logger = new MemoryLogger();
  readonly maxPayload = 1024;
  readonly finishedConnections: HttpConnection[] = [];
  finished(connection: HttpConnection): void {
    this.finishedConnections.push(connection);
  }
}

const handle: ConnectionHandle = { connectionId: "c", receive: () => undefined, transportClosed: () => undefined };
const record = (text: string) => new SerializedRecord(Buffer.from(text));
const asResponse = (fake: FakeResponse) => fake as unknown as ServerResponse;

describe("ServerSentEventsConnection", () => {
  it("formats a record sent alone once, and writes the same bytes to every recipient", () => {
    const host = new Host();
    const responses = [new FakeResponse(), new FakeResponse(), new FakeResponse()];
    const connections = responses.map((res, i) => new ServerSentEventsConnection(`t${i}`, host, asResponse(res)));
    const shared = record('{"type":1}\u001e');
    for (const connection of connections) connection.write([shared], 1);
    expect(responses[0]!.chunks[0]!.toString()).toBe('data: {"type":1}\u001e\r\n\r\n');
    expect(responses[1]!.chunks[0]).toBe(responses[0]!.chunks[0]);
    expect(responses[2]!.chunks[0]).toBe(responses[0]!.chunks[0]);
  });

  it("writes a burst as one event and nothing after close()", () => {
    const res = new FakeResponse();
    const connection = new ServerSentEventsConnection("t", new Host(), asResponse(res));
    connection.write([record("a\u001e"), record("b\u001e")], 2);
    connection.close();
    connection.write([record("c\u001e")], 1);
    expect(res.chunks.map(String)).toEqual(["data: a\u001eb\u001e\r\n\r\n"]);
    expect(res.writableEnded).toBe(true);
  });
});

describe("LongPollingConnection", () => {
  const times = { pollTimeout: 60_000, disconnectTimeout: 60_000 };

  it("counts waiting bytes as buffered, and answers the next poll with every waiting record in one body", () => {
    const host = new Host();
    const connection = new LongPollingConnection("t", host, times);
    connection.handle = handle;
    connection.open(asResponse(new FakeResponse()));
    connection.write([record("one\u001e"), record("two\u001e")], 2);
    connection.write([record("three\u001e")], 1);
    expect(connection.bufferedAmount).toBe(14);
    const poll = new FakeResponse();
    connection.poll(asResponse(poll));
    expect([poll.status, Buffer.concat(poll.chunks).toString()]).toEqual([200, "one\u001etwo\u001ethree\u001e"]);
    expect(connection.bufferedAmount).toBe(0);
    connection.abort();
  });

  it("holds a poll until data comes, and a new poll completes the held one with 204", () => {
    const connection = new LongPollingConnection("t", new Host(), times);
    connection.handle = handle;
    connection.open(asResponse(new FakeResponse()));
    const first = new FakeResponse();
    connection.poll(asResponse(first));
    expect(first.status).toBe(0);
    const second = new FakeResponse();
    connection.poll(asResponse(second));
    expect(first.status).toBe(204);
    connection.write([record("x\u001e")], 1);
    expect([second.status, Buffer.concat(second.chunks).toString()]).toEqual([200, "x\u001e"]);
    connection.abort();
  });

  it("after close() hands what waits to the next poll, then answers 204 and finishes once", () => {
    const host = new Host();
    const connection = new LongPollingConnection("t", host, times);
    connection.handle = handle;
    connection.open(asResponse(new FakeResponse()));
    connection.write([record("close\u001e")], 1);
    connection.close();
    const last = new FakeResponse();
    connection.poll(asResponse(last));
    expect(Buffer.concat(last.chunks).toString()).toBe("close\u001e");
    const after = new FakeResponse();
    connection.poll(asResponse(after));
    expect(after.status).toBe(204);
    expect(host.finishedConnections).toEqual([connection]);
  });
});
