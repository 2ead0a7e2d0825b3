/**
 * The client process: every benchmark connection of one system, on raw `ws` sockets, pinned to
 * its own core. Driven by the runner over IPC: `connect`, `join`, `arm`, `measure-begin`,
 * `measure-end`, `close`; it reports each completed round with a `round` event.
 */
import { emit, serveCommands } from "../ipc.js";
import type { SystemName } from "../results.js";
import { RawDialect, SignalRDialect, SocketIoDialect, type BenchSocket, type Dialect } from "./client-dialects.js";
import { arm, beginMeasurement, endMeasurement } from "./delivery-counter.js";

function argument(name: string): string {
  const index = process.argv.indexOf(name);
  const value = index === -1 ? undefined : process.argv[index + 1];
  if (value === undefined) throw new Error(`missing ${name}`);
  return value;
}

const system = argument("--system") as SystemName;
const protocol = argument("--protocol");
/** `--port a,b`: connection i goes to the i-th port modulo their number (scale-out: spread evenly). */
const ports = argument("--port").split(",").map(Number);
if (ports.some((port) => !Number.isInteger(port) || port <= 0)) throw new Error(`bad --port ${argument("--port")}`);

function dialectFor(): Dialect {
  switch (system) {
    case "switchboard":
      return new SignalRDialect(ports, protocol === "messagepack" || protocol === "json+stateful" ? protocol : "json");
    case "socket.io":
      return new SocketIoDialect(ports);
    case "raw-ws":
      return new RawDialect(ports);
  }
  throw new Error(`unknown system '${system}'`);
}

const dialect = dialectFor();
const sockets: BenchSocket[] = [];

/** Connections opened at once: enough to keep the server busy, few enough not to trip backlogs. */
const OPEN_CONCURRENCY = 64;
const JOIN_CONCURRENCY = 256;

/** Runs `task(i)` for i in [from, to) with at most `concurrency` in flight. */
async function pool(from: number, to: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < to) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(0, to - from)) }, worker));
}

let tick = 0;
const keepAlive = setInterval(() => dialect.keepAlive?.(sockets, tick++), 1_000);

serveCommands({
  /** Opens `count` more connections; resolves with the total. */
  async connect({ count }: { count: number }) {
    const from = sockets.length;
    await pool(from, from + count, OPEN_CONCURRENCY, async (index) => {
      sockets[index] = await dialect.open(index);
    });
    dialect.idle?.();
    return sockets.length;
  },
  /** Connections [from, to) join `group`; resolves once every join is acknowledged. */
  async join({ group, from, to }: { group: string; from: number; to: number }) {
    if (to > sockets.length) throw new Error(`only ${sockets.length} connections are open`);
    await pool(from, to, JOIN_CONCURRENCY, (index) => dialect.join(sockets[index]!, group));
    return to - from;
  },
  arm({ deliveriesPerRound }: { deliveriesPerRound: number }) {
    arm(deliveriesPerRound);
  },
  "measure-begin"() {
    beginMeasurement();
  },
  "measure-end"() {
    return endMeasurement();
  },
  close() {
    clearInterval(keepAlive);
    for (const socket of sockets) socket.ws.terminate();
    setImmediate(() => process.exit(0));
  },
});

emit("ready", { pid: process.pid });
