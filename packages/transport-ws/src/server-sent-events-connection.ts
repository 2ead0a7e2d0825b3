import type { ServerResponse } from "node:http";
import type { SerializedRecord, TransferFormat, TransportType } from "@switchboard/core";
import { HttpConnection, type HttpConnectionHost } from "./http-connection.js";
import { joinRecords } from "./record-batch.js";

const FORMATS: readonly TransferFormat[] = Object.freeze(["text"]);
/**
 * Events by record. Not the record's own cache slot: WebSocket connections of the same group use
 * that one for their frame, and sharing it would rebuild both per recipient in a mixed group.
 */
const events = new WeakMap<SerializedRecord, Buffer>();
const COMMENT = Buffer.from(":\r\n");
const DATA = Buffer.from("data: ");
const CRLF = Buffer.from("\r\n");
const CR = 0x0d;
const LF = 0x0a;

/**
 * One Server-Sent Events message carrying `payload` (§2.4): every line as `data: <line>\r\n`, then
 * an empty line. CR, LF and CRLF all end a line in SSE, so each becomes a line break (the client
 * joins the lines with `\n`); JSON records hold none and take the one-copy path.
 */
export function sseEvent(payload: Uint8Array): Buffer {
  if (!payload.includes(LF) && !payload.includes(CR)) {
    const event = Buffer.allocUnsafe(DATA.length + payload.length + 4);
    DATA.copy(event, 0);
    event.set(payload, DATA.length);
    event.write("\r\n\r\n", DATA.length + payload.length, "latin1");
    return event;
  }
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= payload.length; i++) {
    const byte = payload[i];
    if (i < payload.length && byte !== LF && byte !== CR) continue;
    parts.push(DATA, payload.subarray(start, i), CRLF);
    if (byte === CR && payload[i + 1] === LF) i++;
    start = i + 1;
  }
  parts.push(CRLF);
  return Buffer.concat(parts);
}

/** The event of one record, built once and shared by every recipient of a fan-out. */
function recordEvent(record: SerializedRecord): Buffer {
  let event = events.get(record);
  if (event === undefined) {
    event = sseEvent(record.bytes);
    events.set(record, event);
  }
  return event;
}

/**
 * Server → client over one `text/event-stream` response; client → server over POSTs. Each
 * `write` is one event (records are never split across events); a record sent alone to many
 * connections is formatted once.
 */
export class ServerSentEventsConnection extends HttpConnection {
  readonly transport: TransportType = "ServerSentEvents";
  readonly transferFormats = FORMATS;
  readonly #res: ServerResponse;
  lastWriteAt = Date.now();

  constructor(token: string, host: HttpConnectionHost, res: ServerResponse) {
    super(token, host);
    this.#res = res;
    // The client stops by closing its EventSource (§2.4): a normal end.
    res.once("close", () => this.finish());
  }

  /** Sends the headers and a first comment at once: EventSource opens only when data arrives (§11.1 #15). */
  open(): void {
    const res = this.#res;
    res.writeHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache, no-store",
      Pragma: "no-cache",
      "Content-Encoding": "identity",
      "X-Accel-Buffering": "no", // nginx: do not buffer the stream
    });
    res.flushHeaders();
    res.write(COMMENT);
  }

  get bufferedAmount(): number {
    return this.#res.writableLength;
  }

  write(records: readonly SerializedRecord[], count: number): void {
    const res = this.#res;
    if (this.ended || res.destroyed || res.writableEnded) return;
    res.write(count === 1 ? recordEvent(records[0]!) : sseEvent(joinRecords(records, count)));
    this.lastWriteAt = Date.now();
  }

  /** A comment line when nothing was written for `interval`: keeps proxies from timing the stream out. */
  keepAlive(now: number, interval: number): void {
    if (this.ended || now - this.lastWriteAt < interval || this.#res.writableEnded) return;
    this.#res.write(COMMENT);
    this.lastWriteAt = now;
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    // What was written goes out first; the client's EventSource then errors and the client closes.
    this.#res.end();
  }

  shutdown(): void {
    this.close();
  }

  override abort(): void {
    this.#res.destroy();
    super.abort();
  }
}
