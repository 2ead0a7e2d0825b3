import {
  isRefusal,
  SwitchboardServer,
  type ConnectionHandle,
  type ConnectionRequest,
  type HubContext,
  type HubEndpoint,
  type HubMessage,
  type HubMessageParser,
  type HubProtocol,
  type ParserLimits,
  type SerializedRecord,
  type ServerOptions,
  type TransferFormat,
  type TransportConnection,
} from "@switchboard/core";
import { JsonHubProtocol } from "@switchboard/protocol-json";
import { MessagePackHubProtocol } from "@switchboard/protocol-msgpack";
import { BenchHub, QUIET_LOGGER } from "../bench-hub.js";

const BOTH_FORMATS: readonly TransferFormat[] = ["text", "binary"];

/** A transport that goes nowhere: it counts what the core hands it (the core's hot path, no sockets). */
export class SinkTransport implements TransportConnection {
  readonly transferFormats = BOTH_FORMATS;
  readonly bufferedAmount = 0;
  /** `write` calls (transport messages). */
  writes = 0;
  /** Records written (hub messages). */
  records = 0;
  closed = false;

  write(_records: readonly SerializedRecord[], count: number): void {
    this.writes++;
    this.records += count;
  }
  close(): void {
    this.closed = true;
  }
  pause(): void {}
  resume(): void {}
}

/** Wraps a hub protocol and counts its `write` calls: serializations per send. */
export class CountingProtocol implements HubProtocol {
  writes = 0;
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
    this.writes++;
    return this.#inner.write(message);
  }
}

export type SinkProtocol = "json" | "messagepack";

/** One connection of a {@link SinkServer}. */
export interface SinkConnection {
  readonly id: string;
  readonly handle: ConnectionHandle;
  readonly sink: SinkTransport;
}

const REQUEST: ConnectionRequest = { query: new Map(), headers: {}, remoteAddress: "127.0.0.1" };
const HANDSHAKES: Readonly<Record<SinkProtocol, Buffer>> = {
  json: Buffer.from('{"protocol":"json","version":1}\u001e'),
  messagepack: Buffer.from('{"protocol":"messagepack","version":1}\u001e'),
};
/** Long enough that neither keep-alive pings nor client timeouts happen during a benchmark. */
const HOUR = 3_600_000;

/**
 * A Switchboard server with both protocols (wrapped in counters) whose connections are made
 * directly on the hub endpoint, the way a transport makes them: admit → connect → handshake bytes.
 */
export class SinkServer {
  readonly server: SwitchboardServer;
  readonly endpoint: HubEndpoint;
  readonly context: HubContext;
  readonly protocols: readonly CountingProtocol[];

  constructor(extra: Partial<ServerOptions> = {}) {
    this.protocols = [new CountingProtocol(new JsonHubProtocol()), new CountingProtocol(new MessagePackHubProtocol())];
    this.server = new SwitchboardServer({ hubs: [BenchHub], protocols: this.protocols, logger: QUIET_LOGGER, keepAliveInterval: HOUR, clientTimeout: HOUR, ...extra });
    this.endpoint = this.server.endpoint("/bench")!;
    this.context = this.server.hubContext(BenchHub);
  }

  async open(protocol: SinkProtocol): Promise<SinkConnection> {
    const pending = await this.endpoint.admit(REQUEST, undefined);
    if (isRefusal(pending)) throw new Error(`the endpoint refused a connection: ${pending.reason}`);
    const sink = new SinkTransport();
    const handle = this.endpoint.connect(pending, sink, REQUEST);
    handle.receive(HANDSHAKES[protocol]);
    if (sink.records !== 1) throw new Error("the handshake was not answered");
    sink.records = sink.writes = 0;
    return { id: handle.connectionId, handle, sink };
  }

  /** `write` calls of every protocol so far. */
  serializations(): number {
    let total = 0;
    for (const protocol of this.protocols) total += protocol.writes;
    return total;
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

/** Records received by all of `connections`. */
export function recordsOf(connections: readonly SinkConnection[]): number {
  let total = 0;
  for (const connection of connections) total += connection.sink.records;
  return total;
}
