import { Agent, request } from "node:http";
import { WebSocket } from "ws";
import { attach } from "./delivery-counter.js";

/**
 * How a lean client speaks to each system while connecting and joining groups. Only setup frames
 * and control frames (pings, acks) reach a dialect; the measured messages are counted by the
 * client process without being parsed (see client-main.ts).
 */

export const WS_OPTIONS = { perMessageDeflate: false, skipUTF8Validation: true } as const;

const SETUP = 0;
const READY = 1;

/** One client connection of the benchmark. */
export class BenchSocket {
  readonly index: number;
  readonly ws: WebSocket;
  readonly dialect: Dialect;
  /** SETUP: frames go to the dialect's setup handler; READY: measured traffic may flow. */
  state = SETUP;
  /** Ids of acknowledged requests (joins). */
  nextId = 0;
  /** Stateful reconnect: trackable messages received, and the count last acknowledged. */
  trackable = 0;
  acked = 0;
  #resolve: ((frame: Buffer) => void) | undefined;
  #reject: ((error: Error) => void) | undefined;

  constructor(index: number, ws: WebSocket, dialect: Dialect) {
    this.index = index;
    this.ws = ws;
    this.dialect = dialect;
    attach(ws, this);
  }

  get ready(): boolean {
    return this.state === READY;
  }

  markReady(): void {
    this.state = READY;
  }

  /** Waits for the next frame the dialect hands to `settle` (one at a time per socket). */
  wait(timeoutMs = 30_000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`connection ${this.index}: no answer within ${timeoutMs} ms`)), timeoutMs);
      this.#resolve = (frame) => {
        clearTimeout(timer);
        resolve(frame);
      };
      this.#reject = (error) => {
        clearTimeout(timer);
        reject(error);
      };
    });
  }

  settle(frame: Buffer): void {
    const resolve = this.#resolve;
    this.#resolve = this.#reject = undefined;
    resolve?.(frame);
  }

  fail(error: Error): void {
    const reject = this.#reject;
    this.#resolve = this.#reject = undefined;
    reject?.(error);
  }
}

export interface Dialect {
  /** Opens connection number `index` and completes its handshake. */
  open(index: number): Promise<BenchSocket>;
  /** Joins `group` and resolves once the server has acknowledged it. */
  join(socket: BenchSocket, group: string): Promise<void>;
  /** A frame without stamps on a ready connection: pings, acks, closes. */
  control(socket: BenchSocket, data: Buffer, binary: boolean): void;
  /** A frame during setup. */
  setup(socket: BenchSocket, data: Buffer, binary: boolean): void;
  /** Called every second with a tick counter (client keep-alive). */
  keepAlive?(sockets: readonly BenchSocket[], tick: number): void;
  /** Releases helper resources (HTTP agents) so they do not count as server connections. */
  idle?(): void;
}

/** The server of connection `index`: round robin over `ports`, so a group's members spread evenly. */
function portOf(ports: readonly number[], index: number): number {
  return ports[index % ports.length]!;
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode} on upgrade`)));
  });
}

// ---- Switchboard: SignalR over raw ws ------------------------------------------------------------

const RS = "\u001e";
/** The SignalR flavour a {@link SignalRDialect} speaks; `json+stateful` is JSON with stateful reconnect. */
export type SignalRProtocol = "json" | "messagepack" | "json+stateful";
/** Client keep-alive like the official client's (a Ping every 15 s per connection). */
const KEEP_ALIVE_TICKS = 15;
const JSON_PING = Buffer.from(`{"type":6}${RS}`);
const MSGPACK_PING = Buffer.from([0x02, 0x91, 0x06]);

/** A MessagePack Invocation `[1, {}, id, "Join", [group]]` with its VarInt prefix (short strings only). */
function msgpackInvocation(id: string, target: string, argument: string): Buffer {
  const str = (text: string): number[] => {
    const bytes = [...Buffer.from(text)];
    if (bytes.length > 255) throw new Error("string too long for this encoder");
    return bytes.length < 32 ? [0xa0 | bytes.length, ...bytes] : [0xd9, bytes.length, ...bytes];
  };
  const body = [0x95, 0x01, 0x80, ...str(id), ...str(target), 0x91, ...str(argument)];
  if (body.length > 127) throw new Error("invocation too long for a one-byte prefix");
  return Buffer.from([body.length, ...body]);
}

/**
 * SignalR over raw `ws`. With stateful reconnect (`json+stateful`) it negotiates the feature,
 * handshakes version 2, sends the post-handshake Ping and acknowledges what it received once a
 * second, as the official client does; the server then keeps every message until it is acked.
 */
export class SignalRDialect implements Dialect {
  readonly #ports: readonly number[];
  readonly #protocol: "json" | "messagepack";
  readonly #stateful: boolean;
  #agent: Agent | undefined;

  constructor(ports: readonly number[], protocol: SignalRProtocol) {
    this.#ports = ports;
    this.#protocol = protocol === "messagepack" ? "messagepack" : "json";
    this.#stateful = protocol === "json+stateful";
  }

  #negotiate(port: number): Promise<string> {
    this.#agent ??= new Agent({ keepAlive: true, maxSockets: 16 });
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: `/bench/negotiate?negotiateVersion=1${this.#stateful ? "&useStatefulReconnect=true" : ""}`, method: "POST", agent: this.#agent, headers: { "content-length": "0" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`negotiate answered ${res.statusCode}`));
          resolve((JSON.parse(Buffer.concat(chunks).toString("utf8")) as { connectionToken: string }).connectionToken);
        });
      });
      req.on("error", reject);
      req.end();
    });
  }

  async open(index: number): Promise<BenchSocket> {
    const port = portOf(this.#ports, index);
    const token = await this.#negotiate(port);
    const socket = new BenchSocket(index, new WebSocket(`ws://127.0.0.1:${port}/bench?id=${encodeURIComponent(token)}`, WS_OPTIONS), this);
    await opened(socket.ws);
    const answer = socket.wait();
    socket.ws.send(`{"protocol":"${this.#protocol}","version":${this.#stateful ? 2 : 1}}${RS}`);
    const frame = (await answer).toString("utf8");
    if (!frame.startsWith("{}")) throw new Error(`handshake refused: ${frame}`);
    if (this.#stateful) socket.ws.send(JSON_PING); // the official client's first frame after the handshake
    socket.markReady();
    return socket;
  }

  async join(socket: BenchSocket, group: string): Promise<void> {
    const id = String(++socket.nextId);
    const answer = socket.wait();
    if (this.#protocol === "json") socket.ws.send(`{"type":1,"invocationId":"${id}","target":"Join","arguments":[${JSON.stringify(group)}]}${RS}`);
    else socket.ws.send(msgpackInvocation(id, "Join", group));
    const completion = await answer;
    if (this.#protocol === "json" ? completion.includes('"error"') : msgpackCompletionFailed(completion)) {
      throw new Error(`Join(${group}) failed on connection ${socket.index}`);
    }
    socket.trackable++; // the Completion
  }

  setup(socket: BenchSocket, data: Buffer): void {
    socket.settle(data); // the handshake response (text for JSON, a binary frame for MessagePack)
  }

  control(socket: BenchSocket, data: Buffer, binary: boolean): void {
    if (binary) {
      // Records: VarInt prefix + [type, ...]; a Completion (3) answers our Join.
      for (let offset = 0; offset < data.length; ) {
        let length = 0;
        let shift = 0;
        let byte: number;
        do {
          byte = data[offset++]!;
          length |= (byte & 0x7f) << shift;
          shift += 7;
        } while ((byte & 0x80) !== 0 && offset < data.length);
        const body = data.subarray(offset, offset + length);
        offset += length;
        if (body[1] === 3) socket.settle(body);
        else if (body[1] === 7) process.stderr.write(`connection ${socket.index} was closed by the server\n`);
      }
      return;
    }
    if (data.includes('"type":3')) socket.settle(data);
    else if (data.includes('"type":7')) process.stderr.write(`connection ${socket.index} was closed by the server: ${data.toString("utf8")}\n`);
  }

  keepAlive(sockets: readonly BenchSocket[], tick: number): void {
    if (this.#stateful) {
      for (const socket of sockets) {
        if (socket === undefined || socket.trackable === socket.acked || socket.ws.readyState !== WebSocket.OPEN) continue;
        socket.acked = socket.trackable;
        socket.ws.send(`{"type":8,"sequenceId":${socket.acked}}${RS}`);
      }
    }
    const ping = this.#protocol === "json" ? JSON_PING : MSGPACK_PING;
    for (let i = tick % KEEP_ALIVE_TICKS; i < sockets.length; i += KEEP_ALIVE_TICKS) {
      const socket = sockets[i];
      if (socket !== undefined && socket.ready && socket.ws.readyState === WebSocket.OPEN) socket.ws.send(ping);
    }
  }

  idle(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }
}

/** A MessagePack Completion body `[3, headers, id, resultKind, ...]`: resultKind 1 is an error. */
function msgpackCompletionFailed(body: Buffer): boolean {
  let offset = 3; // fixarray, type, empty headers map
  const header = body[offset]!;
  if ((header & 0xe0) === 0xa0) offset += 1 + (header & 0x1f);
  else if (header === 0xd9) offset += 2 + body[offset + 1]!;
  return body[offset] === 1;
}

// ---- Socket.IO: engine.io v4 over raw ws ---------------------------------------------------------

export class SocketIoDialect implements Dialect {
  readonly #ports: readonly number[];

  constructor(ports: readonly number[]) {
    this.#ports = ports;
  }

  async open(index: number): Promise<BenchSocket> {
    const socket = new BenchSocket(index, new WebSocket(`ws://127.0.0.1:${portOf(this.#ports, index)}/socket.io/?EIO=4&transport=websocket`, WS_OPTIONS), this);
    const handshake = socket.wait(); // engine.io "0{...}" open packet
    await opened(socket.ws);
    if ((await handshake)[0] !== 0x30) throw new Error("no engine.io open packet");
    const connected = socket.wait();
    socket.ws.send("40"); // socket.io CONNECT to the main namespace
    if (!(await connected).toString("latin1").startsWith("40")) throw new Error("socket.io did not connect");
    socket.markReady();
    return socket;
  }

  async join(socket: BenchSocket, group: string): Promise<void> {
    const id = ++socket.nextId;
    const answer = socket.wait();
    socket.ws.send(`42${id}${JSON.stringify(["join", group])}`);
    const ack = (await answer).toString("latin1");
    if (!ack.startsWith(`43${id}`)) throw new Error(`unexpected answer to join: ${ack}`);
  }

  setup(socket: BenchSocket, data: Buffer): void {
    if (data.length === 1 && data[0] === 0x32) socket.ws.send("3");
    else socket.settle(data);
  }

  control(socket: BenchSocket, data: Buffer): void {
    if (data.length === 1 && data[0] === 0x32) socket.ws.send("3"); // engine.io ping → pong
    else if (data[0] === 0x34 && data[1] === 0x33) socket.settle(data); // "43<id>[...]": an ack
    else if (data[0] === 0x34 && data[1] === 0x31) process.stderr.write(`connection ${socket.index} was disconnected by socket.io\n`);
  }
}

// ---- raw ws floor ------------------------------------------------------------------------------

export class RawDialect implements Dialect {
  readonly #ports: readonly number[];

  constructor(ports: readonly number[]) {
    this.#ports = ports;
  }

  async open(index: number): Promise<BenchSocket> {
    const socket = new BenchSocket(index, new WebSocket(`ws://127.0.0.1:${portOf(this.#ports, index)}/`, WS_OPTIONS), this);
    await opened(socket.ws);
    socket.markReady();
    return socket;
  }

  async join(socket: BenchSocket, group: string): Promise<void> {
    const answer = socket.wait();
    socket.ws.send(`join:${group}`);
    if ((await answer).toString("latin1") !== "ok") throw new Error("join was not acknowledged");
  }

  setup(socket: BenchSocket, data: Buffer): void {
    socket.settle(data);
  }

  control(socket: BenchSocket, data: Buffer): void {
    socket.settle(data);
  }
}
