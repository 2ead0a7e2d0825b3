import type { Duplex } from "node:stream";
import type { ConnectionHandle, Logger, SerializedRecord, TransferFormat, TransportConnection } from "@switchboard/core";
import * as ws from "ws";
import { WebSocket } from "ws";

/** `ws` private API checked for the frame-once path (the same one engine.io uses for pre-encoded frames). */
interface FrameSender {
  sendFrame(list: readonly (Buffer | Uint8Array)[], cb?: (error?: Error) => void): void;
}
type FrameFunction = (data: Uint8Array, options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean }) => (Buffer | Uint8Array)[];
interface SenderStatics {
  readonly frame?: FrameFunction;
  readonly prototype?: Partial<FrameSender>;
}
/** The parts of ws's WebSocket internals this class reads (the same ones its own methods use). */
interface Internals {
  readonly _socket: Duplex | null;
  readonly _closeFrameReceived: boolean;
}

// ws's ESM entry exports `Sender` by name; only its CommonJS entry also hangs it on `WebSocket`.
const SenderClass = (ws as unknown as { Sender?: SenderStatics }).Sender ?? (WebSocket as unknown as { Sender?: SenderStatics }).Sender;
/**
 * The frame-once path needs ws's framing and its Sender's `sendFrame` (to be sure that the frames
 * are ours to write); permessage-deflate, the one case where the Sender queues, is never negotiated.
 */
const frameOf = typeof SenderClass?.prototype?.sendFrame === "function" ? SenderClass.frame : undefined;
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
let lastBatch: LastBatch | undefined;
interface LastBatch {
  readonly records: SerializedRecord[];
  readonly binary: boolean;
  readonly frame: Buffer;
  /** The array the records came in, when it is frozen: the same array again holds the same records. */
  readonly frozen: readonly SerializedRecord[] | undefined;
}
let batchDropQueued = false;
function dropBatch(): void {
  lastBatch = undefined;
  batchDropQueued = false;
}

/** Builds the frame of a record sent alone and keeps it on the record (out of line: see `batchFrame`). */
function cacheSingleFrame(record: SerializedRecord, binary: boolean): Buffer {
  const frame = completeFrame(record.bytes, binary);
  record.cache(binary ? kBinaryFrame : kTextFrame, frame);
  return frame;
}

/**
 * The frame of `count` records as one message. Only the hit of a group burst (the same frozen
 * array as the previous member's) is in this function; the comparison record by record and the
 * build are in `buildBatchFrame`, so that a caller inlining this one stays small enough for V8 to
 * inline `socket.write` into it too.
 */
function batchFrame(records: readonly SerializedRecord[], count: number, binary: boolean): Buffer {
  const batch = lastBatch;
  // A group burst hands every member one frozen array: one comparison instead of one per record.
  if (batch !== undefined && batch.frozen === records && batch.records.length === count && batch.binary === binary) return batch.frame;
  return buildBatchFrame(records, count, binary);
}

function buildBatchFrame(records: readonly SerializedRecord[], count: number, binary: boolean): Buffer {
  const batch = lastBatch;
  if (batch !== undefined && batch.binary === binary && batch.records.length === count) {
    let same = true;
    for (let i = 0; i < count && same; i++) same = batch.records[i] === records[i];
    if (same) return batch.frame;
  }
  const frame = completeFrame(concatenate(records, count), binary);
  lastBatch = { records: records.slice(0, count), binary, frame, frozen: Object.isFrozen(records) ? records : undefined };
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
 * A {@link TransportConnection} that is the `ws` WebSocket itself: the transport's
 * `WebSocketServer` makes its sockets with this class (ws's `WebSocket` option), so a write touches
 * the socket object it needs anyway and no wrapper per connection. A record sent alone is framed
 * once and the same frame bytes are written to every socket that receives it (group fan-out);
 * several records queued in one turn are concatenated into one WebSocket message.
 *
 * Frames go straight to the TCP socket under `ws`, as the raw floor of the benchmark does: `ws`'s
 * Sender would only pass them on (it queues only while compressing, and permessage-deflate is
 * never negotiated here).
 */
export class WebSocketConnection extends WebSocket implements TransportConnection {
  /** The core's side of this connection, once it is connected (read by the socket listeners). */
  handle: ConnectionHandle | undefined = undefined;
  /** Where write failures and socket errors are logged (debug level); set when the transport accepts the socket. */
  logger: Logger | undefined = undefined;
  /** The transport's set of open sockets, which this one leaves when it closes. */
  openSockets: Set<WebSocketConnection> | undefined = undefined;

  get transferFormats(): readonly TransferFormat[] {
    return FORMATS;
  }

  write(records: readonly SerializedRecord[], count: number, format: TransferFormat): void {
    // 1 is `WebSocket.OPEN` (fixed by the WebSocket standard): read through the import, it cost
    // every write a load and its checks.
    if (this.readyState !== 1) return;
    const binary = format === "binary";
    try {
      const raw = frameOf !== undefined ? (this as unknown as Internals)._socket : null;
      // One `socket.write` call site, and the frames' builds out of line (`cacheSingleFrame`,
      // `buildBatchFrame`): small enough that V8 inlines Node's `Writable.write` here, or into the
      // group walk that inlines this method. Called instead, its state load took V8's generic path.
      if (raw !== null) {
        // A record sent alone is framed once and the frame kept on the record: every member of a
        // group that gets it writes the very same bytes.
        const frame = count === 1 ? ((records[0]!.cached(binary ? kBinaryFrame : kTextFrame) as Buffer | undefined) ?? cacheSingleFrame(records[0]!, binary)) : batchFrame(records, count, binary);
        raw.write(frame);
      } else this.send(count === 1 ? records[0]!.bytes : concatenate(records, count), binary ? SEND_BINARY : SEND_TEXT);
    } catch (error) {
      // A write on a socket that is going away: the close event follows.
      this.logger?.debug({ err: error }, "WebSocket write failed.");
    }
  }

  /**
   * With no arguments (the core's {@link TransportConnection.close}): closes normally (1000), once,
   * after resuming a socket paused for back-pressure (or the client's close frame would never be
   * read and the closing handshake would hang until ws's own timeout); does nothing once closing.
   * With arguments, or when ws echoes a peer's close frame, it is ws's own `close`.
   */
  override close(code?: number, data?: string | Buffer): void {
    if (code !== undefined || data !== undefined || (this as unknown as Internals)._closeFrameReceived) {
      super.close(code, data);
      return;
    }
    if (this.readyState === WebSocket.OPEN || this.readyState === WebSocket.CONNECTING) {
      this.resume();
      super.close(1000);
    }
  }
}

// ws declares `bufferedAmount` as a property; its getter adds the Sender's queued bytes, which it
// has only while compressing (never here). On the frame-once path the TCP socket's count alone is
// read, so the slow-consumer check touches no Sender.
if (frameOf !== undefined) {
  Object.defineProperty(WebSocketConnection.prototype, "bufferedAmount", {
    configurable: true,
    get(this: WebSocketConnection & Internals): number {
      const raw = this._socket;
      return raw === null ? 0 : raw.writableLength;
    },
  });
}
