/**
 * The end-to-end server process: one system under test, driven over IPC by the runner. It is
 * pinned to its own core; `measure-begin`/`measure-end` bracket a repetition with
 * `process.cpuUsage()`, so every CPU microsecond the server spends (fan-out, socket writes, GC,
 * keep-alive, the control messages themselves) is charged to the deliveries. With `--redis <url>`
 * it is one of the scale-out scenario's servers on that Redis and also counts what Redis brought it.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { emit, serveCommands } from "../ipc.js";
import type { SystemName } from "../results.js";
import type { FanoutServer } from "./fanout-server.js";
import { startRaw } from "./raw-server.js";
import { startSocketIo } from "./socketio-server.js";
import { payloadOf } from "./stamp.js";
import { startSwitchboard } from "./switchboard-server.js";

interface SendArgs {
  readonly group: string;
  readonly burst: number;
  readonly round: number;
  readonly payloadBytes: number;
}

/** What one repetition cost the server process. */
export interface ServerMeasurement {
  readonly userMicros: number;
  readonly systemMicros: number;
  /** Scaled out: sends of other servers that Redis brought to this one during the repetition. */
  readonly receivedFromRedis?: number;
}

/** Process memory after collecting garbage. */
export interface MemorySample {
  readonly heapUsed: number;
  readonly rss: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

function option(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index === -1 ? undefined : process.argv[index + 1];
}

const system = option("--system") as SystemName;
/** `--redis <url>`: one of several servers of the scale-out scenario, on that Redis. */
const redisUrl = option("--redis");
const starters: Record<SystemName, (redisUrl?: string) => Promise<FanoutServer>> = { switchboard: startSwitchboard, "socket.io": startSocketIo, "raw-ws": startRaw };
const starter = starters[system];
if (starter === undefined) throw new Error(`unknown system '${system}'`);
if (redisUrl !== undefined && system === "raw-ws") throw new Error("the raw ws floor has no scale-out");
const server = await starter(redisUrl);

const payloads = new Map<number, string>();

/**
 * Same-process comparison (`paths-begin` … `paths-end`): even rounds go through the system's own
 * send, odd rounds through the floor's loop on the same sockets (`sendFloor`), and each way is
 * charged the CPU from the send to the end of the turn that wrote it.
 */
export interface PathsMeasurement {
  readonly own: Way;
  readonly floor: Way;
}
/** One way's rounds and the CPU charged to them. */
interface Way {
  cpuMicros: number;
  rounds: number;
}
let paths: PathsMeasurement | undefined;
/** Sends go through `sendFloor` (command `floor-loop`). */
let throughFloor = false;

function chargeTurn(to: Way, from: NodeJS.CpuUsage): void {
  // Queued after the send's own end-of-turn work (the flush or the floor's loop), so it runs after it.
  setImmediate(() => {
    const used = process.cpuUsage(from);
    to.cpuMicros += used.user + used.system;
    to.rounds++;
  });
}
let begin = process.cpuUsage();
let receivedBefore = 0;

async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("the server needs --expose-gc for memory samples");
  // Several passes with turns in between: weak callbacks and finalizers release more on later passes.
  for (let i = 0; i < 4; i++) {
    gc();
    await nextTurn();
  }
}

serveCommands({
  send({ group, burst, round, payloadBytes }: SendArgs) {
    let payload = payloads.get(payloadBytes);
    if (payload === undefined) payloads.set(payloadBytes, (payload = payloadOf(payloadBytes)));
    if (paths === undefined) {
      if (throughFloor) server.sendFloor!(group, burst, round, payload);
      else server.send(group, burst, round, payload);
      return;
    }
    const from = process.cpuUsage();
    if (round % 2 === 0) server.send(group, burst, round, payload);
    else server.sendFloor!(group, burst, round, payload);
    chargeTurn(round % 2 === 0 ? paths.own : paths.floor, from);
  },
  /** While on, every send goes through the floor's loop on this server's sockets (the instruction counts' third figure). */
  "floor-loop"({ on }: { on: boolean }) {
    if (server.sendFloor === undefined) throw new Error(`${system} has no floor loop`);
    throughFloor = on;
  },
  "paths-begin"() {
    if (server.sendFloor === undefined) throw new Error(`${system} has no floor loop to compare with`);
    paths = { own: { cpuMicros: 0, rounds: 0 }, floor: { cpuMicros: 0, rounds: 0 } };
  },
  "paths-end"(): PathsMeasurement {
    const measured = paths!;
    paths = undefined;
    return measured;
  },
  "measure-begin"() {
    receivedBefore = server.scaleOut?.received() ?? 0;
    begin = process.cpuUsage();
  },
  "measure-end"(): ServerMeasurement {
    const used = process.cpuUsage(begin);
    const probe = server.scaleOut;
    return probe === undefined ? { userMicros: used.user, systemMicros: used.system } : { userMicros: used.user, systemMicros: used.system, receivedFromRedis: probe.received() - receivedBefore };
  },
  /** Scaled out: resolves once Redis has confirmed this server's subscriptions (after joins). */
  async subscribed() {
    await server.scaleOut?.subscribed();
  },
  async memory(): Promise<MemorySample> {
    await collectGarbage();
    const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage();
    return { heapUsed, rss, external, arrayBuffers };
  },
  stats({ group }: { group?: string }) {
    return { connections: server.connectionCount(), members: group === undefined ? 0 : server.groupSize(group) };
  },
  async close() {
    await server.close();
    setImmediate(() => process.exit(0));
  },
});

emit("ready", { port: server.port });
