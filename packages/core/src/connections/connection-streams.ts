import { SwitchboardError } from "../contracts/errors.js";
import type { CompletionMessage, StreamItemMessage } from "../contracts/hub-messages.js";
import { UploadStream } from "../hubs/upload-stream.js";

/** The per-connection limits of streams and client results (server options of the same names). */
export interface StreamLimits {
  /** Server → client streams running at once per connection. */
  readonly maxStreams: number;
  /** Upload streams open at once per connection. */
  readonly maxUploadStreams: number;
  /** Items an upload stream buffers before the server stops reading from the client. */
  readonly streamBufferCapacity: number;
  /** Client results a connection may owe at once. */
  readonly maxPendingClientResults: number;
}

/** A server → client invocation waiting for the client's Completion (client results). */
interface PendingResult {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** Thrown when an upload or a client result breaks a per-connection limit. */
export class StreamLimitError extends SwitchboardError {
  constructor(message: string) {
    super("SB_ERR_LIMIT_STREAMS", message);
  }
}

/**
 * A connection's streams and client results, made on first use (an ordinary connection never pays
 * for one): server → client streams by invocation id (cancelled by the client's CancelInvocation),
 * client → server upload streams by stream id, and client results waiting for a Completion.
 */
export class ConnectionStreams {
  readonly #outgoing = new Map<string, AbortController>();
  readonly #uploads = new Map<string, UploadStream>();
  readonly #results = new Map<string, PendingResult>();
  readonly #limits: StreamLimits;
  readonly #readable: () => void;
  #closed: AbortController | undefined;

  /** `readable` is called when a full upload stream has room again (reading may resume). */
  constructor(limits: StreamLimits, readable: () => void) {
    this.#limits = limits;
    this.#readable = readable;
  }

  /** Aborts when the connection ends: the signal of invocations the client cannot cancel. */
  get closed(): AbortSignal {
    return (this.#closed ??= new AbortController()).signal;
  }

  /** True while some upload stream holds more items than its buffer. */
  get uploadsFull(): boolean {
    for (const stream of this.#uploads.values()) if (stream.full) return true;
    return false;
  }

  // ---- server → client streams -------------------------------------------------------------

  /**
   * Registers a stream the client asked for; undefined when its id is already in use. Throws
   * {@link StreamLimitError} when the connection already runs `maxStreams` streams.
   */
  startStream(invocationId: string): AbortController | undefined {
    if (this.#outgoing.has(invocationId) || this.#results.has(invocationId)) return undefined;
    if (this.#outgoing.size >= this.#limits.maxStreams) throw new StreamLimitError(`A connection may have at most ${this.#limits.maxStreams} streams running at once.`);
    const controller = new AbortController();
    this.#outgoing.set(invocationId, controller);
    return controller;
  }

  endStream(invocationId: string, controller: AbortController): void {
    if (this.#outgoing.get(invocationId) === controller) this.#outgoing.delete(invocationId);
  }

  /** The client disposed its subscription (CancelInvocation); unknown ids are ignored (§4.4). */
  cancel(invocationId: string): void {
    const controller = this.#outgoing.get(invocationId);
    if (controller === undefined) return;
    this.#outgoing.delete(invocationId);
    controller.abort(new SwitchboardError("SB_ERR_STREAM_CANCELED", "The client canceled the stream."));
  }

  // ---- client → server upload streams -------------------------------------------------------

  /** Opens one upload stream per id; throws {@link StreamLimitError} for a reused id or past the limit. */
  openUploads(streamIds: readonly string[]): UploadStream[] {
    if (this.#uploads.size + streamIds.length > this.#limits.maxUploadStreams) {
      throw new StreamLimitError(`A connection may have at most ${this.#limits.maxUploadStreams} upload streams open at once.`);
    }
    for (let i = 0; i < streamIds.length; i++) {
      const id = streamIds[i]!;
      if (this.#uploads.has(id) || streamIds.indexOf(id) !== i) throw new StreamLimitError(`Stream ID '${id}' is already in use.`);
    }
    return streamIds.map((id) => {
      const stream = new UploadStream(this.#limits.streamBufferCapacity, this.#readable);
      this.#uploads.set(id, stream);
      return stream;
    });
  }

  /** Ends the upload streams an invocation opened but never read to the end (it finished or failed). */
  releaseUploads(streamIds: readonly string[], streams: readonly UploadStream[]): void {
    for (let i = 0; i < streams.length; i++) {
      const id = streamIds[i]!;
      if (this.#uploads.get(id) === streams[i]) {
        this.#uploads.delete(id);
        streams[i]!.end(new SwitchboardError("SB_ERR_STREAM_CANCELED", "The invocation that received this stream has finished."));
      }
    }
  }

  /** Routes a StreamItem to its upload stream. True when the stream is now over its buffer (stop reading). */
  item(message: StreamItemMessage): boolean {
    const stream = this.#uploads.get(message.invocationId);
    // Items for unknown or completed ids are ignored, as ASP.NET does (§4.4).
    if (stream === undefined) return false;
    stream.push(message.item);
    return stream.full;
  }

  /**
   * Routes a Completion: it ends an upload stream or settles a client result. Completions for
   * unknown ids (a second completion, a late answer after a timeout) are ignored.
   */
  completion(message: CompletionMessage): void {
    const id = message.invocationId;
    const stream = this.#uploads.get(id);
    if (stream !== undefined) {
      this.#uploads.delete(id);
      stream.end(message.error !== undefined ? new Error(message.error) : undefined);
      return;
    }
    const pending = this.#results.get(id);
    if (pending === undefined) return;
    this.#results.delete(id);
    if (message.error !== undefined) pending.reject(new ClientResultError(message.error));
    else pending.resolve(message.result);
  }

  // ---- client results ------------------------------------------------------------------------

  /** Waits for the Completion of server → client invocation `invocationId`. */
  expectResult(invocationId: string, pending: PendingResult): void {
    if (this.#results.size >= this.#limits.maxPendingClientResults) {
      throw new StreamLimitError(`A connection may have at most ${this.#limits.maxPendingClientResults} client results pending.`);
    }
    this.#results.set(invocationId, pending);
  }

  /** Stops waiting (timeout or abort); a late answer is then ignored. */
  forgetResult(invocationId: string): void {
    this.#results.delete(invocationId);
  }

  // ---- end of the connection -----------------------------------------------------------------

  /** The connection has ended: cancels its streams, fails its uploads and rejects its pending results. */
  closeAll(): void {
    const reason = new SwitchboardError("SB_ERR_CONNECTION_CLOSED", "The connection was closed.");
    this.#closed?.abort(reason);
    for (const controller of this.#outgoing.values()) controller.abort(reason);
    this.#outgoing.clear();
    for (const stream of this.#uploads.values()) stream.end(reason);
    this.#uploads.clear();
    const results = [...this.#results.values()];
    this.#results.clear();
    for (const pending of results) pending.reject(new ClientResultError("Connection closed before the client returned a result."));
  }
}

/** The client answered a client-results invocation with an error (its message is the client's text). */
export class ClientResultError extends SwitchboardError {
  constructor(message: string) {
    super("SB_ERR_CLIENT_RESULT", message);
  }
}
