import type { IncomingMessage, ServerResponse } from "node:http";
import type { ConnectionHandle, Logger, SerializedRecord, TransferFormat, TransportConnection, TransportType } from "@switchboard/core";
import { respond } from "./http-responses.js";

/** POSTs of one connection that may wait while one is read; the official client sends one at a time. */
const MAX_WAITING_POSTS = 4;
/** How long a connection refused as too large may keep sending before its socket is destroyed. */
const REFUSED_BODY_GRACE = 1_000;

interface Post {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

/** What an HTTP connection needs from the transport that made it. */
export interface HttpConnectionHost {
  readonly logger: Logger;
  /** Largest POST body accepted (the WebSocket `maxPayload`). */
  readonly maxPayload: number;
  /** The connection has ended on the transport's side: forget its token. */
  finished(connection: HttpConnection): void;
}

/**
 * The client → server half shared by Server-Sent Events and long polling (§2.4, §2.5): each POST
 * body is read whole (at most `maxPayload` bytes, else 413) and handed to the core in one piece,
 * POSTs are read one at a time in arrival order, and `pause()` stops reading them (receive-side
 * back-pressure: the client's next send waits).
 */
export abstract class HttpConnection implements TransportConnection {
  abstract readonly transport: TransportType;
  abstract readonly transferFormats: readonly TransferFormat[];
  abstract readonly bufferedAmount: number;
  abstract write(records: readonly SerializedRecord[], count: number, format: TransferFormat): void;
  abstract close(): void;

  /** The secret connection token that routes requests to this connection. */
  readonly token: string;
  handle: ConnectionHandle | undefined;
  protected readonly host: HttpConnectionHost;
  /** No more data either way: POSTs get 404, writes are dropped. */
  protected ended = false;
  #finished = false;
  #paused = false;
  #reading = false;
  readonly #posts: Post[] = [];

  constructor(token: string, host: HttpConnectionHost) {
    this.token = token;
    this.host = host;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#pump();
  }

  /** `POST {path}?id=…`: data from the client. */
  post(req: IncomingMessage, res: ServerResponse): void {
    if (this.ended) {
      req.resume();
      return respond(res, 404, "No Connection with that ID");
    }
    const declared = Number(req.headers["content-length"]);
    if (declared > this.host.maxPayload) return this.#tooLarge(req, res);
    if (this.#posts.length >= MAX_WAITING_POSTS) {
      req.resume();
      return respond(res, 409, "Too many concurrent sends on this connection.");
    }
    this.#posts.push({ req, res });
    this.#pump();
  }

  #pump(): void {
    while (!this.#reading && !this.#paused && this.#posts.length > 0) {
      const post = this.#posts.shift()!;
      if (post.req.destroyed || post.res.destroyed) continue; // the client gave up while it waited
      this.#read(post);
    }
  }

  #read({ req, res }: Post): void {
    this.#reading = true;
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (): void => {
      done = true;
      this.#reading = false;
      req.off("data", onData);
      this.#pump();
    };
    const onData = (chunk: Buffer): void => {
      if (done) return;
      size += chunk.length;
      if (size > this.host.maxPayload) {
        chunks.length = 0;
        finish();
        this.#tooLarge(req, res);
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => {
      if (done) return;
      // Delivered before the next POST is read: a pause() the data causes applies to that one.
      if (this.ended) respond(res, 404, "No Connection with that ID");
      else {
        if (size > 0) this.handle?.receive(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
        respond(res, 200, "");
      }
      finish();
    });
    // A POST the client gave up on: nothing of it was delivered.
    req.once("close", () => {
      if (!done) finish();
    });
  }

  /** 413, and the rest of the body is not read: the socket closes after a short grace. */
  #tooLarge(req: IncomingMessage, res: ServerResponse): void {
    this.host.logger.debug({ connectionId: this.handle?.connectionId, maxPayload: this.host.maxPayload }, "Refused a POST larger than maxPayload.");
    res.setHeader("Connection", "close");
    respond(res, 413, `The request body is larger than ${this.host.maxPayload} bytes.`);
    req.resume();
    const timer = setTimeout(() => req.socket.destroy(), REFUSED_BODY_GRACE);
    timer.unref();
    req.socket.once("close", () => clearTimeout(timer));
  }

  /** `DELETE {path}?id=…`. Only long polling ends this way (ASP.NET answers 400 otherwise). */
  delete(res: ServerResponse): void {
    respond(res, 400, "Cannot terminate this connection using the DELETE endpoint.");
  }

  /** Ends the connection on the transport's side (once) and tells the core. */
  protected finish(error?: Error): void {
    if (this.#finished) return;
    this.#finished = true;
    this.ended = true;
    for (const post of this.#posts.splice(0)) {
      post.req.resume();
      respond(post.res, 404, "No Connection with that ID");
    }
    this.host.finished(this);
    this.handle?.transportClosed(error);
  }

  /** Ends the connection because the transport is stopping; what is queued still goes out. */
  abstract shutdown(): void;

  /** Ends the connection now (the transport has stopped). */
  abort(): void {
    this.finish();
  }
}
