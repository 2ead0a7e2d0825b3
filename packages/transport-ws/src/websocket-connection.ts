import type { Duplex } from "node:stream";
import type { ConnectionHandle, Logger, SerializedRecord, TransferFormat, TransportConnection } from "@switchboard/core";
import * as ws from "ws";
import { WebSocket } from "ws";

/** `ws` private API checked for the frame-once path (the same one engine.io uses for pre-encoded frames). */
interface FrameSender {
  sendFrame(list: readonly (Buffer | Uint8Array)[], cb?: (error?: Error) => void): void;
}
type FrameFunction = (data: Uint8Array, options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean }) => (Buffer | Uint8Array)[];

// ws's ESM entry exports `Sender` by name; only its CommonJS entry also hangs it on `WebSocket`.
const frameOf = ((ws as unknown as { Sender?: { frame?: FrameFunction } }).Sender ?? (WebSocket as unknown as { Sender?: { frame?: FrameFunction } }).Sender)?.frame;
const TEXT = 0x1;
const BINARY = 0x2;
const FORMATS: readonly TransferFormat[] = ["text", "binary"];

// Built once: no options object per write.
const TEXT_FRAME = { fin: true, rsv1: false, opcode: TEXT, mask: false, readOnly: true };
const BINARY_FRAME = { fin: true, rsv1: false, opcode: BINARY, mask: false, readOnly: true };
const SEND_TEXT = { binary: false, compress: false, fin: true };
const SEND_BINARY = { binary: true, compress: false, fin: true };
/** Cache keys of this transport's frames on shared records (text and binary frames differ). */
const kTextFrame = Symbol("switchboard.ws.textFrame");
const kBinaryFrame = Symbol("switchboard.ws.binaryFrame");

/**
 * A complete frame, header and payload in ONE buffer, so each recipient costs one `socket.write`
 * (not a cork, two writes and a writev).
 */
function completeFrame(payload: Uint8Array, binary: boolean): Buffer {
  return Buffer.concat(frameOf!(payload, binary ? BINARY_FRAME : TEXT_FRAME));
}

/**
 * The frame of the last multi-record message built in this flush pass. The members of a group
 * that got a burst flush one after another with the very same records, so the message is
 * concatenated and framed once per pass, not once per recipient. Dropped when the pass ends.
 */
let lastBatch: { readonly records: SerializedRecord[]; readonly binary: boolean; readonly frame: Buffer } | undefined;
let batchDropQueued = false;
function dropBatch(): void {
  lastBatch = undefined;
  batchDropQueued = false;
}

function batchFrame(records: readonly SerializedRecord[], count: number, binary: boolean): Buffer {
  const batch = lastBatch;
  if (batch !== undefined && batch.binary === binary && batch.records.length === count) {
    let same = true;
    for (let i = 0; i < count && same; i++) same = batch.records[i] === records[i];
    if (same) return batch.frame;
  }
  const frame = completeFrame(concatenate(records, count), binary);
  lastBatch = { records: records.slice(0, count), binary, frame };
  if (!batchDropQueued) {
    batchDropQueued = true;
    queueMicrotask(dropBatch);
  }
  return frame;
}

function concatenate(records: readonly SerializedRecord[], count: number): Buffer {
  let size = 0;
  for (let i = 0; i < count; i++) size += records[i]!.bytes.length;
  const message = Buffer.allocUnsafe(size);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const bytes = records[i]!.bytes;
    message.set(bytes, offset);
    offset += bytes.length;
  }
  return message;
}

/**
 * A {@link TransportConnection} over one `ws` WebSocket. A record sent alone is framed once and
 * the same frame bytes are written to every socket that receives it (group fan-out); several
 * records queued in one turn are concatenated into one WebSocket message.
 *
 * Frames go straight to the TCP socket under `ws`, as the raw floor of the benchmark does: `ws`'s
 * Sender would only pass them on (it queues only while compressing, and permessage-deflate is
 * never negotiated here), and skipping it spares a fan-out one object per recipient.
 */
export class WebSocketConnection implements TransportConnection {
  readonly socket: WebSocket;
  /** The TCP socket under `ws`, when the frame-once path is available. */
  readonly #raw: Duplex | undefined;
  readonly logger: Logger;
  /** The core's side of this connection, once it is connected (read by the socket listeners). */
  handle: ConnectionHandle | undefined;
  /** The transport's set of open sockets, which this one leaves when it closes. */
  openSockets: Set<WebSocket> | undefined;

  constructor(socket: WebSocket, logger: Logger) {
    this.socket = socket;
    this.logger = logger;
    // The frame-once path needs ws's framing, its Sender (to be sure the frames are ours to
    // write), and no permessage-deflate (which we never negotiate).
    const internals = socket as unknown as { _sender?: Partial<FrameSender>; _socket?: Partial<Duplex> };
    const raw = internals._socket;
    this.#raw = frameOf !== undefined && typeof internals._sender?.sendFrame === "function" && typeof raw?.write === "function" ? (raw as Duplex) : undefined;
  }

  get transferFormats(): readonly TransferFormat[] {
    return FORMATS;
  }

  get bufferedAmount(): number {
    // ws adds the bytes its Sender queues, which it does only while compressing (never here).
    return this.#raw !== undefined ? this.#raw.writableLength : this.socket.bufferedAmount;
  }

  write(records: readonly SerializedRecord[], count: number, format: TransferFormat): void {
    const socket = this.socket;
    if (socket.readyState !== WebSocket.OPEN) return;
    const binary = format === "binary";
    try {
      const raw = this.#raw;
      if (count === 1) {
        const record = records[0]!;
        if (raw !== undefined) {
          const key = binary ? kBinaryFrame : kTextFrame;
          let frame = record.cached(key) as Buffer | undefined;
          if (frame === undefined) {
            frame = completeFrame(record.bytes, binary);
            record.cache(key, frame);
          }
          raw.write(frame);
          return;
        }
        socket.send(record.bytes, binary ? SEND_BINARY : SEND_TEXT);
        return;
      }
      if (raw !== undefined) raw.write(batchFrame(records, count, binary));
      else socket.send(concatenate(records, count), binary ? SEND_BINARY : SEND_TEXT);
    } catch (error) {
      // A write on a socket that is going away: the close event follows.
      this.logger.debug({ err: error }, "WebSocket write failed.");
    }
  }

  close(): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      // A socket paused for back-pressure must read again, or the client's close frame is never seen
      // and the closing handshake hangs until ws's own timeout.
      this.socket.resume();
      this.socket.close(1000);
    }
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}
