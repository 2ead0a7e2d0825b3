import type { ServerResponse } from "node:http";
import type { SerializedRecord, TransferFormat, TransportType } from "@switchboard/core";
import { HttpConnection, type HttpConnectionHost } from "./http-connection.js";

const FORMATS: readonly TransferFormat[] = Object.freeze(["text", "binary"]);

/** Timing of long polling, in milliseconds. */
export interface LongPollingTimes {
  /** A held poll is answered 200 with no body after this long (ASP.NET `PollTimeout`, below the client's 100 s). */
  readonly pollTimeout: number;
  /** A connection with no poll held for this long is ended (ASP.NET `DisconnectTimeout`). */
  readonly disconnectTimeout: number;
}

function noContent(res: ServerResponse): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(204, { "Content-Type": "text/plain", "Cache-Control": "no-cache, no-store" });
  res.end();
}

/**
 * Server → client over successive GETs (§2.5); client → server over POSTs. Records written while
 * no poll is held wait, whole, for the next one; those waiting bytes are the `bufferedAmount` the
 * slow-consumer cap reads. One poll is held at a time: a new one completes the older with 204,
 * as ASP.NET does. 204 also tells the client that the connection has ended.
 */
export class LongPollingConnection extends HttpConnection {
  readonly transport: TransportType = "LongPolling";
  readonly transferFormats = FORMATS;
  readonly #times: LongPollingTimes;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #poll: ServerResponse | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  /** The last answer with data, until its bytes are on the network. */
  #inFlight: ServerResponse | undefined;

  constructor(token: string, host: HttpConnectionHost, times: LongPollingTimes) {
    super(token, host);
    this.#times = times;
  }

  /** Answers the first poll at once: it only starts the connection (§2.5). */
  open(res: ServerResponse): void {
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": 0, "Cache-Control": "no-cache, no-store" });
    res.end();
    this.#idle();
  }

  get bufferedAmount(): number {
    const inFlight = this.#inFlight;
    return this.#pendingBytes + (inFlight !== undefined && !inFlight.writableFinished ? inFlight.writableLength : 0);
  }

  write(records: readonly SerializedRecord[], count: number): void {
    if (this.ended) return;
    for (let i = 0; i < count; i++) {
      const bytes = records[i]!.bytes;
      this.#pending.push(bytes);
      this.#pendingBytes += bytes.length;
    }
    if (this.#poll !== undefined) this.#answer(this.#take());
  }

  /** `GET {path}?id=…` after the first: a poll. */
  poll(res: ServerResponse): void {
    const previous = this.#poll;
    if (previous !== undefined) {
      this.#take();
      noContent(previous);
    }
    clearTimeout(this.#idleTimer);
    if (this.#pendingBytes > 0) {
      // Data still goes out after close(): the Close message must reach the client.
      this.#poll = res;
      this.#answer(res);
      return;
    }
    if (this.ended) {
      noContent(res);
      this.finish();
      return;
    }
    this.#poll = res;
    this.#pollTimer = setTimeout(() => {
      if (this.#poll !== res) return;
      this.#take();
      res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": 0, "Cache-Control": "no-cache, no-store" });
      res.end();
      this.#idle();
    }, this.#times.pollTimeout);
    this.#pollTimer.unref();
    res.once("close", () => {
      // The client went away (or the answer is done): nothing is held any more.
      if (this.#poll !== res) return;
      this.#take();
      this.#idle();
    });
  }

  /** Takes the held poll: its timer stops. */
  #take(): ServerResponse | undefined {
    const poll = this.#poll;
    this.#poll = undefined;
    clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    return poll;
  }

  /** Answers `res` with every waiting record, in one body. */
  #answer(res: ServerResponse | undefined): void {
    if (res === undefined) return;
    this.#take();
    const body = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (res.destroyed) {
      // The poll died under us: a long-polling client that lost a poll has lost its connection.
      this.finish(new Error("A long poll was lost with data in it."));
      return;
    }
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": body.length, "Cache-Control": "no-cache, no-store" });
    res.end(body);
    this.#inFlight = res;
    this.#idle();
  }

  /** No poll is held: the client has `disconnectTimeout` to send the next one. */
  #idle(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#poll !== undefined) return;
      this.finish(this.ended ? undefined : new Error("The long-polling client stopped polling."));
    }, this.#times.disconnectTimeout);
    this.#idleTimer.unref();
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    const poll = this.#poll;
    if (poll === undefined) return; // the next poll collects what waits, then gets 204
    if (this.#pendingBytes > 0) return this.#answer(poll);
    this.#take();
    noContent(poll);
    this.finish();
  }

  /** `DELETE`: the client stops (202); a held poll gets 204 (§2.5). */
  override delete(res: ServerResponse): void {
    res.writeHead(202, { "Content-Type": "text/plain", "Content-Length": 0 });
    res.end();
    this.ended = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.finish(); // a held poll gets its 204 there
  }

  shutdown(): void {
    this.close();
  }

  protected override finish(error?: Error): void {
    clearTimeout(this.#idleTimer);
    const poll = this.#take();
    if (poll !== undefined) noContent(poll);
    this.#pending = [];
    this.#pendingBytes = 0;
    super.finish(error);
  }
}
