import "reflect-metadata";
import { describe, expect, it } from "vitest";
import { container as globalContainer, type DependencyContainer } from "tsyringe";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { HubConnection, type ConnectionHost } from "../src/connections/hub-connection.js";
import { FlushScheduler } from "../src/fan-out/flush-scheduler.js";
import { resolveOptions } from "../src/server/options.js";
import { PING_MESSAGE, type InvocationMessage, type StreamInvocationMessage } from "../src/contracts/hub-messages.js";
import { SerializedRecord, type TransportConnection } from "../src/contracts/transport.js";
import type { TransferFormat } from "../src/contracts/hub-protocol.js";
import type { HubCallerContext } from "../src/hubs/hub-caller-context.js";
import type { Logger } from "../src/contracts/logger.js";

const RS = "\x1e";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A transport that records what is written. */
class RecordingTransport implements TransportConnection {
  readonly transferFormats: readonly TransferFormat[] = ["text", "binary"];
  readonly bufferedAmount = 0;
  readonly written: string[] = [];
  closed = false;
  write(records: readonly SerializedRecord[], count: number): void {
    for (let i = 0; i < count; i++) this.written.push(decoder.decode(records[i]!.bytes));
  }
  close(): void {
    this.closed = true;
  }
  pause(): void {}
  resume(): void {}
}

/** A host that counts what the connection asks of it; `connected` returns `onConnected`. */
class CountingHost implements ConnectionHost {
  readonly options = resolveOptions({ protocols: [new JsonHubProtocol()], logger: SILENT });
  readonly scheduler = new FlushScheduler();
  readonly logger = SILENT;
  readonly asked = { scope: 0, context: 0, clients: 0 };
  readonly invoked: string[] = [];
  onConnected: Promise<void> | undefined = undefined;
  ended = (): void => {};
  readonly #ping = new SerializedRecord(new JsonHubProtocol().write(PING_MESSAGE));
  protocolIndex(name: string): number {
    return name === "json" ? 0 : -1;
  }
  pingRecord(): SerializedRecord {
    return this.#ping;
  }
  callerClients(): unknown {
    this.asked.clients++;
    return {};
  }
  callerContext(connection: HubConnection): HubCallerContext {
    this.asked.context++;
    return { connectionId: connection.connectionId } as HubCallerContext;
  }
  connectionScope(): DependencyContainer {
    this.asked.scope++;
    return globalContainer.createChildContainer();
  }
  connected(): void | Promise<void> {
    return this.onConnected;
  }
  async invoke(_connection: HubConnection, message: InvocationMessage | StreamInvocationMessage): Promise<void> {
    this.invoked.push(message.target);
  }
}

function open(host: CountingHost): { connection: HubConnection; transport: RecordingTransport } {
  const transport = new RecordingTransport();
  const connection = new HubConnection(host, "id-1", transport, { query: new Map(), headers: {}, remoteAddress: undefined }, "token-1");
  connection.receive(encoder.encode(`{"protocol":"json","version":1}${RS}`));
  return { connection, transport };
}

const invocation = (target: string): Uint8Array => encoder.encode(`{"type":1,"target":"${target}","arguments":[]}${RS}`);
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("HubConnection state made on first use", () => {
  it("asks for nothing hub code uses until it is used, then makes each once and keeps it", () => {
    const host = new CountingHost();
    const { connection, transport } = open(host);
    expect(connection.connected).toBe(true);
    expect(transport.written).toEqual([`{}${RS}`]);
    expect(connection.token).toBe("token-1");
    expect(host.asked).toEqual({ scope: 0, context: 0, clients: 0 });
    const context = connection.callerContext;
    const scope = connection.container;
    const items = connection.items;
    const clients = connection.callerClients;
    const streams = connection.streams;
    expect([connection.callerContext, connection.container, connection.items, connection.callerClients, connection.streams]).toEqual([context, scope, items, clients, streams]);
    expect(connection.callerContext).toBe(context);
    expect(connection.container).toBe(scope);
    expect(connection.items).toBe(items);
    expect(connection.streams).toBe(streams);
    expect(host.asked).toEqual({ scope: 1, context: 1, clients: 1 });
  });

  it("starts invocations that waited for an async onConnected, also when nothing made the hub state before it finished", async () => {
    const host = new CountingHost();
    let finish!: () => void;
    host.onConnected = new Promise<void>((resolve) => (finish = resolve));
    const { connection } = open(host);
    finish(); // onConnected finishes before any invocation: nothing waits
    await turn();
    connection.receive(invocation("First"));
    await turn();
    expect(host.invoked).toEqual(["First"]);

    const second = new CountingHost();
    let release!: () => void;
    second.onConnected = new Promise<void>((resolve) => (release = resolve));
    const other = open(second).connection;
    other.receive(invocation("A"));
    other.receive(invocation("B"));
    await turn();
    expect(second.invoked).toEqual([]); // invocations wait for onConnected, as in ASP.NET
    release();
    await turn();
    await turn();
    expect(second.invoked).toEqual(["A", "B"]);
  });

  it("keeps no authentication expiry by default (Infinity) and closes the connection at the one it is given", () => {
    const host = new CountingHost();
    const { connection, transport } = open(host);
    expect(connection.authenticationExpiresAt).toBe(Infinity);
    const now = Date.now();
    connection.tick(now + 500);
    expect(connection.connected).toBe(true);
    connection.authenticationExpiresAt = now + 1_000;
    expect(connection.authenticationExpiresAt).toBe(now + 1_000);
    connection.tick(now + 999);
    expect(connection.connected).toBe(true);
    connection.authenticationExpiresAt = Infinity;
    expect(connection.authenticationExpiresAt).toBe(Infinity);
    connection.tick(now + 1_000);
    expect(connection.connected).toBe(true);
    connection.authenticationExpiresAt = now + 1_000;
    connection.tick(now + 1_000);
    expect(connection.connected).toBe(false);
    expect(transport.written.at(-1)).toContain("The authentication expired.");
    expect(transport.closed).toBe(true);
  });

  it("fails a handshake that does not come within handshakeTimeout, once", async () => {
    const host = new CountingHost();
    (host as { options: unknown }).options = resolveOptions({ protocols: [new JsonHubProtocol()], logger: SILENT, handshakeTimeout: 20 });
    let ended = 0;
    host.ended = () => void ended++;
    const transport = new RecordingTransport();
    const connection = new HubConnection(host, "id-2", transport, { query: new Map(), headers: {}, remoteAddress: undefined }, undefined);
    expect(connection.token).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(transport.written).toEqual([`{"error":"Handshake was canceled."}${RS}`]);
    expect([transport.closed, ended, connection.connected]).toEqual([true, 1, false]);
    connection.receive(encoder.encode(`{"protocol":"json","version":1}${RS}`)); // too late: ignored
    expect(transport.written).toHaveLength(1);
  });

  it("reads bare Pings without making a parser until the client sends something else", async () => {
    let parsers = 0;
    class CountingJson extends JsonHubProtocol {
      override createParser(...args: Parameters<JsonHubProtocol["createParser"]>): ReturnType<JsonHubProtocol["createParser"]> {
        parsers++;
        return super.createParser(...args);
      }
    }
    const host = new CountingHost();
    (host as { options: unknown }).options = resolveOptions({ protocols: [new CountingJson()], logger: SILENT });
    const { connection } = open(host);
    const ping = encoder.encode(`{"type":6}${RS}`);
    connection.lastReceivedAt = 0;
    connection.receive(ping);
    connection.receive(ping);
    expect(parsers).toBe(0);
    expect(connection.lastReceivedAt).toBeGreaterThan(0); // the client timeout was reset
    // A Ping split over two frames is not the Ping record: the parser reads it, as any data.
    connection.receive(ping.subarray(0, 4));
    connection.receive(ping.subarray(4));
    expect(parsers).toBe(1);
    connection.receive(invocation("Hello"));
    await turn();
    expect(host.invoked).toEqual(["Hello"]);
    expect(parsers).toBe(1);
    expect(connection.connected).toBe(true);
  });

  it("hands a Ping glued to another record to the parser, which reads both", async () => {
    const host = new CountingHost();
    const { connection } = open(host);
    connection.receive(encoder.encode(`{"type":6}${RS}{"type":1,"target":"Glued","arguments":[]}${RS}`));
    await turn();
    expect(host.invoked).toEqual(["Glued"]);
  });
});
