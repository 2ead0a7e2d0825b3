import { build, type Histogram } from "hdr-histogram-js";
import type { WebSocket } from "ws";
import { emit } from "../ipc.js";
import type { BenchSocket } from "./client-dialects.js";
import { LAST_FLAG, nowMicros, readDigits, STAMP_LENGTH, STAMP_MARK, stampMicros } from "./stamp.js";

/**
 * Counts delivered messages across every connection of the client process and closes the loop:
 * when a round's deliveries (members × burst) have all arrived, the runner is told, and it starts
 * the next round. Messages are counted, not parsed: a text frame holds as many messages as `~`
 * bytes; a MessagePack frame is walked by its length prefixes. Only the last message of a round
 * (flag `L`) is timed, once per recipient, and the slowest recipient of each round is kept too.
 */

const kSocket = Symbol("benchSocket");
type TrackedWs = WebSocket & { [kSocket]?: BenchSocket };

function newHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
}

let expected = 0;
let received = 0;
let measuredDeliveries = 0;
let slowest = 0;
let unexpectedCloses = 0;
const latency = newHistogram();
const lastRecipient = newHistogram();

function delivered(count: number, data: Buffer, mark: number): void {
  received += count;
  measuredDeliveries += count;
  if (data[mark + 1] === LAST_FLAG) {
    const micros = Math.max(1, nowMicros() - stampMicros(data, mark));
    latency.recordValue(micros);
    if (micros > slowest) slowest = micros;
  }
  if (expected > 0 && received >= expected) {
    // Closed loop: nothing of the next round is on its way before this event, so any surplus
    // is a duplicate delivery and shows up in the runner's count check.
    received -= expected;
    lastRecipient.recordValue(Math.max(1, slowest));
    slowest = 0;
    emit("round", readDigits(data, mark + 2, 10));
  }
}

function onBinary(socket: BenchSocket, data: Buffer): void {
  let count = 0;
  let last = -1;
  let offset = 0;
  let control = false;
  while (offset < data.length) {
    let length = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = data[offset++]!;
      length += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while ((byte & 0x80) !== 0 && offset < data.length);
    const start = offset;
    offset += length;
    if (data[start + 1] !== 1) {
      control = true; // a Ping, a Completion, a Close
      continue;
    }
    const mark = data.indexOf(STAMP_MARK, start);
    if (mark !== -1 && mark < offset) {
      count++;
      last = mark;
    }
  }
  if (control) socket.dialect.control(socket, data, true);
  socket.trackable += count;
  if (count > 0) delivered(count, data, last);
}

function onFrame(this: TrackedWs, data: Buffer, binary: boolean): void {
  const socket = this[kSocket]!;
  if (!socket.ready) return socket.dialect.setup(socket, data, binary);
  if (binary) return onBinary(socket, data);
  let mark = data.indexOf(STAMP_MARK);
  if (mark === -1) return socket.dialect.control(socket, data, false);
  let count = 0;
  let last = mark;
  while (mark !== -1) {
    count++;
    last = mark;
    mark = data.indexOf(STAMP_MARK, mark + STAMP_LENGTH);
  }
  socket.trackable += count;
  delivered(count, data, last);
}

function onError(this: TrackedWs, error: Error): void {
  this[kSocket]!.fail(error);
}

function onClose(this: TrackedWs): void {
  const socket = this[kSocket]!;
  socket.fail(new Error(`connection ${socket.index} closed`));
  if (socket.ready && unexpectedCloses++ === 0) process.stderr.write(`[bench client] connection ${socket.index} closed unexpectedly\n`);
}

/** Routes `ws`'s frames to the counter (listeners are shared functions, not closures). */
export function attach(ws: WebSocket, socket: BenchSocket): void {
  (ws as TrackedWs)[kSocket] = socket;
  ws.on("message", onFrame);
  ws.on("error", onError);
  ws.on("close", onClose);
}

/** Rounds complete every `deliveriesPerRound` messages; 0 disarms. */
export function arm(deliveriesPerRound: number): void {
  expected = deliveriesPerRound;
  received = 0;
  slowest = 0;
}

/** What the client saw during one repetition. */
export interface ClientMeasurement {
  readonly deliveries: number;
  readonly p50Micros: number;
  readonly p99Micros: number;
  readonly lastRecipientMicros: number;
  readonly rounds: number;
  readonly unexpectedCloses: number;
}

export function beginMeasurement(): void {
  measuredDeliveries = 0;
  latency.reset();
  lastRecipient.reset();
}

export function endMeasurement(): ClientMeasurement {
  return {
    deliveries: measuredDeliveries,
    p50Micros: latency.getValueAtPercentile(50),
    p99Micros: latency.getValueAtPercentile(99),
    lastRecipientMicros: lastRecipient.getValueAtPercentile(50),
    rounds: lastRecipient.totalCount,
    unexpectedCloses,
  };
}
