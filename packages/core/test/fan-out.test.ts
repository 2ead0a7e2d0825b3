import "reflect-metadata";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { MessagePackHubProtocol as ClientMessagePackProtocol } from "@microsoft/signalr-protocol-msgpack";
import {
  Hub,
  MessageType,
  Refusal,
  type ConnectionHandle,
  type ConnectionRequest,
  type HubMessage,
  type HubMessageParser,
  type HubProtocol,
  type ParserLimits,
  type SerializedRecord,
  type TransferFormat,
  type TransportConnection,
} from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { closeAll, connectClient, RawClient, record, RS, settle, signalR, startServer, until, type ClientProtocol, type TestServer } from "../../../test-support/harness.js";

afterEach(closeAll);

interface FanOutClient {
  Seq(n: number): void;
  Chunk(n: number, data: string): void;
}

@Hub("/hubs/fan-out")
class FanOutHub extends Hub<FanOutClient> {
  async Join(group: string): Promise<string> {
    await this.groups.add(this.context.connectionId, group);
    return this.context.connectionId;
  }

  async Leave(group: string): Promise<void> {
    await this.groups.remove(this.context.connectionId, group);
  }

  /** `count` sends in one synchronous loop. */
  Burst(count: number): void {
    for (let i = 0; i < count; i++) void this.clients.caller.send("Seq", i);
  }

  SendToGroup(group: string, n: number): Promise<void> {
    return this.clients.group(group).send("Seq", n);
  }

  /** `count` messages of `size` characters to `group`, yielding to the event loop every few sends. */
  async Flood(group: string, count: number, size: number): Promise<number> {
    const data = "x".repeat(size);
    for (let i = 0; i < count; i++) {
      await this.clients.group(group).send("Chunk", i, data);
      if (i % 4 === 3) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return count;
  }
}

/** A hub protocol that delegates to a real one and counts how often it encodes an Invocation. */
class CountingProtocol implements HubProtocol {
  invocationWrites = 0;
  readonly #inner: HubProtocol;

  constructor(inner: HubProtocol) {
    this.#inner = inner;
  }
  get name(): string {
    return this.#inner.name;
  }
  get version(): number {
    return this.#inner.version;
  }
  get transferFormat(): TransferFormat {
    return this.#inner.transferFormat;
  }
  createParser(limits: ParserLimits): HubMessageParser {
    return this.#inner.createParser(limits);
  }
  write(message: HubMessage): Uint8Array {
    if (message.type === MessageType.Invocation) this.invocationWrites++;
    return this.#inner.write(message);
  }
}

async function connectMany(server: TestServer, path: string, protocol: ClientProtocol, count: number): Promise<signalR.HubConnection[]> {
  const connections: signalR.HubConnection[] = [];
  for (let i = 0; i < count; i += 25) {
    const batch = Array.from({ length: Math.min(25, count - i) }, () => connectClient(server.url(path), protocol));
    connections.push(...(await Promise.all(batch)));
  }
  return connections;
}

describe("encode once per protocol per send", () => {
  it.each([
    ["JSON members only", 100, 0, 1, 0],
    ["JSON and MessagePack members", 50, 50, 1, 1],
    ["MessagePack members only", 0, 100, 0, 1],
  ] as const)("a 100-member group with %s", async (_name, jsonMembers, msgpackMembers, jsonPerSend, msgpackPerSend) => {
    const json = new CountingProtocol(new JsonHubProtocol());
    const msgpack = new CountingProtocol(new MessagePackHubProtocol());
    const server = await startServer([FanOutHub], { protocols: [json, msgpack] });
    const context = server.server.hubContext(FanOutHub);
    const members = [
      ...(await connectMany(server, "/hubs/fan-out", "json", jsonMembers)),
      ...(await connectMany(server, "/hubs/fan-out", "messagepack", msgpackMembers)),
    ];
    // Bystanders of both protocols, outside the group: their protocols must not be encoded for it.
    const bystanders = [await connectClient(server.url("/hubs/fan-out"), "json"), await connectClient(server.url("/hubs/fan-out"), "messagepack")];
    const bystanderCalls = bystanders.map((connection) => record(connection, "Seq"));
    const calls = members.map((connection) => record(connection, "Seq"));
    for (const connection of members) await context.groups.add(connection.connectionId!, "hundred");
    expect(context.groups.count("hundred")).toBe(100);

    json.invocationWrites = 0;
    msgpack.invocationWrites = 0;
    const sends = 5;
    await context.clients.group("hundred").send("Seq", 0);
    await context.clients.group("hundred").send("Seq", 1);
    await settle(10);
    await context.clients.group("hundred").send("Seq", 2);
    await members[0]!.invoke("SendToGroup", "hundred", 3); // from a hub method too
    await members[members.length - 1]!.invoke("SendToGroup", "hundred", 4);

    await until(() => calls.every((list) => list.length === sends), 10_000, "every member to get every message");
    await settle(50);
    expect(calls.map((list) => list.map((args) => args[0]))).toEqual(members.map(() => [0, 1, 2, 3, 4]));
    expect(bystanderCalls).toEqual([[], []]);
    expect(json.invocationWrites).toBe(jsonPerSend * sends);
    expect(msgpack.invocationWrites).toBe(msgpackPerSend * sends);
  });
});

describe("coalescing", () => {
  const jsonCodec = new signalR.JsonHubProtocol();
  const msgpackCodec = new ClientMessagePackProtocol();

  function messagesOf(frame: { data: Buffer; binary: boolean }, protocol: ClientProtocol): signalR.HubMessage[] {
    if (protocol === "json") return jsonCodec.parseMessages(frame.data.toString("utf8"), signalR.NullLogger.instance);
    const bytes = frame.data.buffer.slice(frame.data.byteOffset, frame.data.byteOffset + frame.data.byteLength) as ArrayBuffer;
    return msgpackCodec.parseMessages(bytes, signalR.NullLogger.instance);
  }

  function sendInvocation(raw: RawClient, protocol: ClientProtocol, target: string, args: unknown[], invocationId?: string): void {
    const message = { type: signalR.MessageType.Invocation, target, arguments: args, ...(invocationId === undefined ? {} : { invocationId }) } as signalR.InvocationMessage;
    if (protocol === "json") raw.sendText(jsonCodec.writeMessage(message));
    else raw.sendBinary(new Uint8Array(msgpackCodec.writeMessage(message)));
  }

  it.each<ClientProtocol>(["json", "messagepack"])("50 sends in one synchronous loop arrive as one WebSocket message of 50 records, in order (%s)", async (protocol) => {
    const server = await startServer([FanOutHub]);
    const raw = await RawClient.connect(server, "/hubs/fan-out", protocol);
    expect(raw.frames).toHaveLength(1); // the handshake response
    sendInvocation(raw, protocol, "Burst", [50]); // no invocation id: no Completion joins the frame
    const frame = await raw.frame(1);
    await settle(100);
    expect(raw.frames).toHaveLength(2);
    expect(frame.binary).toBe(protocol === "messagepack");
    const messages = messagesOf(frame, protocol);
    expect(messages).toHaveLength(50);
    expect(messages.map((message) => (message as signalR.InvocationMessage).arguments[0])).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(messages.every((message) => message.type === signalR.MessageType.Invocation && message.target === "Seq")).toBe(true);
    if (protocol === "json") expect(frame.data.toString("utf8").split(RS)).toHaveLength(51);
  });

  it("sends from outside a hub in one turn reach every group member as one WebSocket message", async () => {
    const server = await startServer([FanOutHub]);
    const context = server.server.hubContext(FanOutHub);
    const raws = [await RawClient.connect(server, "/hubs/fan-out", "json"), await RawClient.connect(server, "/hubs/fan-out", "messagepack"), await RawClient.connect(server, "/hubs/fan-out", "json")];
    const protocols: ClientProtocol[] = ["json", "messagepack", "json"];
    for (const [i, raw] of raws.entries()) {
      sendInvocation(raw, protocols[i]!, "Join", ["turn"], "1");
      await raw.frame(1);
    }
    expect(context.groups.count("turn")).toBe(3);
    for (let i = 0; i < 50; i++) void context.clients.group("turn").send("Seq", i);
    for (const raw of raws) await raw.frame(2);
    await settle(100);
    for (const [i, raw] of raws.entries()) {
      expect(raw.frames).toHaveLength(3);
      const messages = messagesOf(raw.frames[2]!, protocols[i]!);
      expect(messages.map((message) => (message as signalR.InvocationMessage).arguments[0])).toEqual(Array.from({ length: 50 }, (_, n) => n));
    }
  });
});

describe("ordering", () => {
  it("keeps per-connection order through a burst of 1,000 sends in mixed address forms to 10 clients", async () => {
    const server = await startServer([FanOutHub]);
    const context = server.server.hubContext(FanOutHub);
    const clients = [...(await connectMany(server, "/hubs/fan-out", "json", 5)), ...(await connectMany(server, "/hubs/fan-out", "messagepack", 5))];
    const ids = clients.map((client) => client.connectionId!);
    const calls = clients.map((client) => record(client, "Seq"));
    for (const id of ids) await context.groups.add(id, "burst");
    for (const id of ids) await context.groups.add(id, `solo-${id}`);
    const soloGroups = ids.map((id) => `solo-${id}`);

    const pending: Promise<void>[] = [];
    for (let n = 0; n < 1_000; n++) {
      // Different targets queue into the same per-connection outbox, so their order is kept too.
      switch (n % 5) {
        case 0: pending.push(context.clients.all.send("Seq", n)); break;
        case 1: pending.push(context.clients.group("burst").send("Seq", n)); break;
        case 2: pending.push(context.clients.clients(ids).send("Seq", n)); break;
        case 3: pending.push(context.clients.groups(soloGroups).send("Seq", n)); break;
        default: pending.push(context.clients.groupExcept("burst", []).send("Seq", n));
      }
      // The first half goes out in one turn, the rest spread over turns.
      if (n >= 500 && n % 50 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(pending);
    await until(() => calls.every((list) => list.length >= 1_000), 15_000, "every client to get 1,000 messages");
    await settle(50);
    const expected = Array.from({ length: 1_000 }, (_, n) => n);
    for (const list of calls) expect(list.map((args) => args[0])).toEqual(expected);
  });
});

describe("slow consumers", () => {
  it("T30 closes a client that stops reading, with a Close and a warning, while the others get everything", async () => {
    const maxBufferedBytes = 64 * 1024;
    const server = await startServer([FanOutHub], { maxBufferedBytes });
    const context = server.server.hubContext(FanOutHub);
    const healthy = [...(await connectMany(server, "/hubs/fan-out", "json", 3)), ...(await connectMany(server, "/hubs/fan-out", "messagepack", 2))];
    const chunks = healthy.map((client) => record(client, "Chunk"));
    for (const client of healthy) await client.invoke("Join", "flood");

    const slow = await RawClient.connect(server, "/hubs/fan-out", "json");
    slow.sendText(`{"type":1,"invocationId":"1","target":"Join","arguments":["flood"]}${RS}`);
    const slowId = (JSON.parse((await slow.frame(1)).data.toString("utf8").split(RS)[0]!) as { result: string }).result;
    expect(context.groups.has("flood", slowId)).toBe(true);
    const tcp = (slow.socket as unknown as { _socket: { pause(): void; resume(): void; isPaused(): boolean } })._socket;
    tcp.pause();

    // 1,200 × 8 KiB: far more than loopback socket buffers hold for a reader that stopped.
    const count = 1_200;
    const size = 8 * 1024;
    const returned = await healthy[0]!.invoke("Flood", "flood", count, size);
    // The sending method finished while the slow client was still not reading: it never waited for it.
    expect(returned).toBe(count);
    expect(tcp.isPaused()).toBe(true);

    await until(() => chunks.every((list) => list.length === count), 20_000, "the healthy clients to get every chunk");
    for (const list of chunks) {
      expect(list.map((args) => args[0])).toEqual(Array.from({ length: count }, (_, i) => i));
      expect(list.every((args) => (args[1] as string).length === size)).toBe(true);
    }
    const warnings = server.logger.entries.filter((entry) => entry.level === "warn");
    expect(warnings).toEqual([expect.objectContaining({ message: "Closing a slow consumer.", fields: expect.objectContaining({ connectionId: slowId, maxBufferedBytes }) })]);
    expect(context.groups.has("flood", slowId)).toBe(false);
    expect(context.groups.count("flood")).toBe(5);
    expect(server.server.endpoint("/hubs/fan-out")!.lifetimeManager.connections.has(slowId)).toBe(false);
    for (const client of healthy) expect(client.state).toBe(signalR.HubConnectionState.Connected);

    // Once the slow client reads again it finds a Close with an error after what was sent before.
    tcp.resume();
    expect(await slow.closed(10_000)).toBe(1000);
    const records = slow.text().split(RS).filter((text) => text.length > 0);
    const close = JSON.parse(records[records.length - 1]!) as { type: number; error?: string; allowReconnect?: boolean };
    expect(close).toEqual({ type: 7, error: "Connection closed with an error. The client did not read its messages fast enough.", allowReconnect: true });
  });
});

// ---- membership cleanup, without sockets ---------------------------------------------------

/** A transport that keeps nothing but counts: the core's whole contract, in memory. */
class MemoryTransport implements TransportConnection {
  readonly transferFormats: readonly TransferFormat[] = ["text", "binary"];
  readonly bufferedAmount = 0;
  writes = 0;
  closed = false;
  write(_records: readonly SerializedRecord[], count: number): void {
    this.writes += count;
  }
  close(): void {
    this.closed = true;
  }
  pause(): void {}
  resume(): void {}
}

const encoder = new TextEncoder();
const HANDSHAKE = encoder.encode(`{"protocol":"json","version":1}${RS}`);
const JOIN_LOBBY = encoder.encode(`{"type":1,"target":"Join","arguments":["lobby"]}${RS}`);
const CLIENT_CLOSE = encoder.encode(`{"type":7}${RS}`);

function collectGarbage(): (() => void) | undefined {
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
}

describe("membership cleanup", () => {
  it("T33 leaves nothing behind after 10,000 connect, join and disconnect cycles", async () => {
    const server = await startServer([FanOutHub], { userIdProvider: ({ request }) => request.query.get("user") ?? null });
    const endpoint = server.server.endpoint("/hubs/fan-out")!;
    const manager = endpoint.lifetimeManager;
    const groups = server.server.hubContext(FanOutHub).groups;
    const gc = collectGarbage();

    async function cycles(total: number, batch: number): Promise<void> {
      for (let start = 0; start < total; start += batch) {
        const open: { handle: ConnectionHandle; transport: MemoryTransport }[] = [];
        for (let i = start; i < start + batch; i++) {
          const query = new Map([["user", `user-${i % 7}`], ["negotiateVersion", "1"]]);
          const request: ConnectionRequest = { query, headers: {}, remoteAddress: "127.0.0.1" };
          let token: string | undefined;
          if (i % 2 === 0) {
            const negotiated = await endpoint.negotiate(request, []);
            if (negotiated instanceof Refusal || "error" in negotiated) throw new Error("negotiate failed");
            token = negotiated.connectionToken;
          }
          const pending = await endpoint.admit(request, token);
          if (pending instanceof Refusal) throw new Error(`admit refused: ${pending.status}`);
          const transport = new MemoryTransport();
          const handle = endpoint.connect(pending, transport, request);
          handle.receive(HANDSHAKE);
          handle.receive(JOIN_LOBBY); // through a hub method
          await groups.add(handle.connectionId, `own-${i}`); // and from outside
          await groups.add(handle.connectionId, `shared-${i % 10}`);
          open.push({ handle, transport });
        }
        await until(() => groups.count("lobby") === batch, 5_000, "every connection to join the lobby");
        expect(manager.connections.size).toBe(batch);
        expect(groups.count("shared-3")).toBe(batch / 10);
        for (const [n, { handle }] of open.entries()) {
          // Connections end every way they can: the transport drops, the client says Close, the server closes.
          if (n % 3 === 0) handle.transportClosed();
          else if (n % 3 === 1) handle.receive(CLIENT_CLOSE);
          else manager.connections.get(handle.connectionId)!.close({ type: MessageType.Close, error: "Server says bye." });
        }
        expect(open.every(({ transport }) => transport.writes > 0)).toBe(true);
      }
      await endpoint.drained();
    }

    await cycles(1_000, 100); // warm-up: JIT, caches
    gc?.();
    const before = process.memoryUsage().heapUsed;

    await cycles(10_000, 100);
    expect(manager.connections.size).toBe(0);
    expect(manager.groups.size).toBe(0);
    expect([...groups.list()]).toEqual([]);
    expect(groups.count("lobby")).toBe(0);
    expect(endpoint.connections.size).toBe(0);
    expect(endpoint.store.size).toBe(0);
    for (let u = 0; u < 7; u++) expect(manager.userConnections(`user-${u}`)).toBeUndefined();

    gc?.();
    await settle(10);
    gc?.();
    const growth = process.memoryUsage().heapUsed - before;
    expect(growth).toBeLessThan(20 * 1024 * 1024);
  });
});
