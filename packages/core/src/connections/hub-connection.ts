import type { DependencyContainer } from "tsyringe";
import { InvalidMessageError, MessageTooLargeError, SwitchboardError } from "../contracts/errors.js";
import { HandshakeReader, handshakeError, handshakeSuccess, type HandshakeRequest } from "./handshake.js";
import type { HubCallerContext, Principal } from "../hubs/hub-caller-context.js";
import { MessageType, type CloseMessage, type HubMessage, type InvocationMessage, type StreamInvocationMessage } from "../contracts/hub-messages.js";
import type { HubMessageParser, HubProtocol, ParserLimits, TransferFormat } from "../contracts/hub-protocol.js";
import type { FlushScheduler } from "../fan-out/flush-scheduler.js";
import type { Recipient } from "../contracts/hub-lifetime-manager.js";
import type { Logger } from "../contracts/logger.js";
import { SerializedRecord, type ConnectionHandle, type ConnectionRequest, type TransportConnection } from "../contracts/transport.js";

/** The server options a connection reads (the server's resolved options satisfy it); see `ServerOptions`. */
export interface ConnectionOptions extends ParserLimits {
  readonly protocols: readonly HubProtocol[];
  readonly handshakeTimeout: number;
  readonly keepAliveInterval: number;
  readonly clientTimeout: number;
  readonly maxBufferedBytes: number;
  readonly maxInvocationIdLength: number;
  readonly maxParallelInvocations: number;
  readonly maxQueuedInvocations: number;
}

/** What a connection needs from the hub endpoint that owns it. */
export interface ConnectionHost {
  readonly options: ConnectionOptions;
  readonly scheduler: FlushScheduler;
  readonly logger: Logger;
  /** Index of the protocol named `name` in `options.protocols`, or -1. */
  protocolIndex(name: string): number;
  /** The Ping record of the protocol at `index`, encoded once. */
  pingRecord(index: number): SerializedRecord;
  /** The `clients` object of this connection's hubs (asked for once, on first use). */
  callerClients(connection: HubConnection): unknown;
  /**
   * The handshake succeeded: register the connection and run `onConnected`. A returned promise
   * settles when `onConnected` has finished; invocations wait for it.
   */
  connected(connection: HubConnection): void | Promise<void>;
  /** Runs one hub method invocation (including its Completion, if one is due). */
  invoke(connection: HubConnection, message: InvocationMessage | StreamInvocationMessage): Promise<void>;
  /** The connection has ended: unregister it and run `onDisconnected` once. */
  ended(connection: HubConnection, error: Error | undefined): void;
}

/** Outbox slots a connection keeps between flushes; a larger burst's array is released. */
const OUTBOX_SLOTS_KEPT = 1024;
const HANDSHAKING = 0;
const CONNECTED = 1;
const CLOSED = 2;

/** Close text for errors that end a connection (ASP.NET's wording, §4.6). */
export const CONNECTION_ERROR_TEXT = "Connection closed with an error.";
// One record per transfer format: a transport may cache a record's frame, and a record is only
// ever written in one format (a MessagePack client gets its handshake response in a binary frame).
const HANDSHAKE_RECORDS: Readonly<Record<TransferFormat, SerializedRecord>> = {
  text: new SerializedRecord(handshakeSuccess()),
  binary: new SerializedRecord(handshakeSuccess()),
};

/**
 * One client connection to one hub: handshake, parsing, the invocation queue, the coalescing
 * outbox, keep-alive bookkeeping and closing. The transport feeds it through {@link ConnectionHandle}.
 */
export class HubConnection implements ConnectionHandle, Recipient {
  readonly connectionId: string;
  readonly request: ConnectionRequest;
  readonly transport: TransportConnection;
  readonly #parentContainer: DependencyContainer;
  #container: DependencyContainer | undefined;
  #items: Map<unknown, unknown> | undefined;
  #callerClients: unknown;
  /** Names of the groups this connection is in (maintained by the group registry). */
  readonly groups = new Set<string>();
  userIdentifier: string | null = null;
  /** The principal that opened the connection (from `authenticate`), or null. */
  user: Principal | null = null;
  protocol: HubProtocol | undefined;
  protocolIndex = -1;
  /** Set by sends that deduplicate recipients (e.g. several groups); see the lifetime manager. */
  sendStamp = 0;
  lastSentAt = 0;
  lastReceivedAt = 0;
  /** Per-connection objects handed to hubs; created once by the endpoint after the handshake. */
  callerContext!: HubCallerContext;

  readonly #host: ConnectionHost;
  #state = HANDSHAKING;
  #format: TransferFormat = "text";
  #handshake: HandshakeReader | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #parser: HubMessageParser | undefined;
  readonly #outbox: SerializedRecord[] = [];
  #outboxCount = 0;
  #outboxBytes = 0;
  #flushScheduled = false;
  #running = 0;
  readonly #waiting: (InvocationMessage | StreamInvocationMessage)[] = [];
  #paused = false;
  #closeMessageSent = false;
  /** A protocol fault whose Close waits until the invocations read before the bad record have started. */
  #pendingFault: { readonly message: CloseMessage; readonly error: Error | undefined } | undefined;
  readonly #onMessage = (message: HubMessage): void => this.#dispatch(message);
  readonly #onInvocationDone = (): void => this.#invocationDone();
  /** True while an async `onConnected` runs: invocations wait for it, as in ASP.NET. */
  #connecting = false;

  constructor(host: ConnectionHost, connectionId: string, transport: TransportConnection, request: ConnectionRequest, container: DependencyContainer) {
    this.#host = host;
    this.connectionId = connectionId;
    this.transport = transport;
    this.request = request;
    this.#parentContainer = container;
    this.#handshake = new HandshakeReader(host.options.maxMessageSize);
    this.#handshakeTimer = setTimeout(() => this.#handshakeFailed("Handshake was canceled."), host.options.handshakeTimeout);
    this.lastReceivedAt = this.lastSentAt = Date.now();
  }

  /**
   * The connection's DI scope, made on first use (a hub method call or lifecycle hook): an idle
   * connection never pays for one.
   */
  get container(): DependencyContainer {
    return (this.#container ??= this.#parentContainer.createChildContainer());
  }

  /** Per-connection items (`context.items`), made on first use. */
  get items(): Map<unknown, unknown> {
    return (this.#items ??= new Map());
  }

  /** The `clients` of this connection's hub instances, made on first use. */
  get callerClients(): unknown {
    return (this.#callerClients ??= this.#host.callerClients(this));
  }

  get connected(): boolean {
    return this.#state === CONNECTED;
  }

  // ---- receive ---------------------------------------------------------------------------

  receive(data: Uint8Array): void {
    // After a fault the parser's state is unspecified: nothing more is read from this client.
    if (this.#state === CLOSED || this.#pendingFault !== undefined) return;
    try {
      if (this.#state === HANDSHAKING) {
        const done = this.#handshake!.read(data);
        if (done === undefined) return;
        if (!this.#acceptHandshake(done.request)) return;
        if (done.rest.length === 0) return;
        data = done.rest;
      }
      this.#parser!.parse(data, this.#onMessage);
    } catch (error) {
      this.#protocolFault(error);
    }
  }

  #acceptHandshake(request: HandshakeRequest): boolean {
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#handshake = undefined;
    const index = this.#host.protocolIndex(request.protocol);
    if (index === -1) return this.#handshakeFailed(`The protocol '${request.protocol}' is not supported.`);
    const protocol = this.#host.options.protocols[index]!;
    if (request.version < 1 || request.version > protocol.version) {
      return this.#handshakeFailed(`The server does not support version ${request.version} of the '${protocol.name}' protocol.`);
    }
    if (!this.transport.transferFormats.includes(protocol.transferFormat)) {
      const format = protocol.transferFormat === "text" ? "Text" : "Binary";
      return this.#handshakeFailed(`Cannot use the '${protocol.name}' protocol on the current transport. The transport does not support '${format}' transfer format.`);
    }
    this.protocol = protocol;
    this.protocolIndex = index;
    this.#format = protocol.transferFormat;
    this.#parser = protocol.createParser(this.#host.options);
    this.#state = CONNECTED;
    this.lastReceivedAt = Date.now(); // the client timeout is armed here, not at the first Ping
    this.#writeNow(HANDSHAKE_RECORDS[this.#format]);
    const connecting = this.#host.connected(this);
    if (connecting !== undefined) {
      this.#connecting = true;
      const done = (): void => {
        this.#connecting = false;
        this.#invocationDone(false);
      };
      connecting.then(done, done);
    }
    return true;
  }

  #handshakeFailed(text: string): false {
    if (this.#state !== HANDSHAKING) return false;
    clearTimeout(this.#handshakeTimer);
    this.#host.logger.debug({ connectionId: this.connectionId, reason: text }, "Handshake failed.");
    this.transport.write([new SerializedRecord(handshakeError(text))], 1, "text");
    this.#state = CLOSED;
    this.transport.close();
    this.#host.ended(this, undefined);
    return false;
  }

  #protocolFault(error: unknown): void {
    if (this.#state === HANDSHAKING) {
      const tooLarge = error instanceof MessageTooLargeError;
      this.#handshakeFailed(tooLarge ? "Handshake was canceled." : "An unexpected error occurred during connection handshake.");
      return;
    }
    const detail = error instanceof MessageTooLargeError ? ` ${error.message}` : "";
    const known = error instanceof SwitchboardError;
    this.#host.logger[known ? "debug" : "error"]({ connectionId: this.connectionId, err: error }, "Closing a connection after bad data.");
    const close: CloseMessage = { type: MessageType.Close, error: CONNECTION_ERROR_TEXT + detail, allowReconnect: true };
    const cause = error instanceof Error ? error : undefined;
    if (this.#waiting.length > 0) {
      // Like ASP.NET, which reads the next record only once the previous invocation has a slot:
      // invocations before the bad record still start, in order, and the Close follows them.
      this.#pendingFault = { message: close, error: cause };
      return;
    }
    this.close(close, cause);
  }

  #dispatch(message: HubMessage): void {
    if (this.#state !== CONNECTED) return;
    this.lastReceivedAt = Date.now();
    switch (message.type) {
      case MessageType.Invocation:
      case MessageType.StreamInvocation:
        if (message.invocationId !== undefined && message.invocationId.length > this.#host.options.maxInvocationIdLength) {
          throw new InvalidMessageError("The invocation id is too long.");
        }
        this.#enqueueInvocation(message);
        return;
      case MessageType.Close:
        // The client is leaving: no Close is sent back (§4.6).
        this.#closeMessageSent = true;
        this.#end(message.error !== undefined ? new Error(message.error) : undefined);
        return;
      default:
        // Ping only resets the timeout. Completions, stream items and cancellations for ids the
        // server does not know are ignored (§4.4), as are Ack/Sequence outside stateful reconnect.
        return;
    }
  }

  // ---- invocation queue (maxParallelInvocations, receive-side back-pressure) -------------

  #enqueueInvocation(message: InvocationMessage | StreamInvocationMessage): void {
    if (!this.#connecting && this.#running < this.#host.options.maxParallelInvocations) {
      this.#start(message);
      return;
    }
    this.#waiting.push(message);
    if (!this.#paused && this.#waiting.length >= this.#host.options.maxQueuedInvocations) {
      this.#paused = true;
      this.transport.pause();
    }
  }

  #start(message: InvocationMessage | StreamInvocationMessage): void {
    this.#running++;
    this.#host.invoke(this, message).then(this.#onInvocationDone, this.#onInvocationDone);
  }

  /** An invocation finished (`finished`), or `onConnected` did: start what the free slots allow. */
  #invocationDone(finished = true): void {
    if (finished) this.#running--;
    // While reading is paused the client's pings cannot arrive: progress on its queue stands in
    // for them, so a slow but moving queue is not a timeout, and a hung one still is.
    if (this.#paused) this.lastReceivedAt = Date.now();
    if (this.#state === CLOSED) return;
    while (!this.#connecting && this.#running < this.#host.options.maxParallelInvocations && this.#waiting.length > 0) {
      this.#start(this.#waiting.shift()!);
    }
    if (this.#pendingFault !== undefined && this.#waiting.length === 0) {
      this.close(this.#pendingFault.message, this.#pendingFault.error);
      return;
    }
    if (this.#paused && this.#waiting.length < this.#host.options.maxQueuedInvocations / 2) {
      this.#paused = false;
      this.transport.resume();
      this.lastReceivedAt = Date.now(); // the client's pings were unread while paused: not its fault
    }
  }

  // ---- send ------------------------------------------------------------------------------

  /**
   * Queues one record for this connection; queued records go out together at the end of the
   * event-loop turn, in order. A connection whose unsent bytes would pass `maxBufferedBytes` is
   * closed as a slow consumer instead: the send never waits for it.
   */
  enqueue(record: SerializedRecord): void {
    if (this.#state !== CONNECTED) return;
    const size = record.bytes.length;
    // Only a client whose socket is backed up can be slow: while everything written so far has
    // gone out, this turn's sends are queued whatever their size, so one big broadcast does not
    // close every healthy recipient.
    const buffered = this.transport.bufferedAmount;
    if (buffered > 0 && buffered + this.#outboxBytes + size > this.#host.options.maxBufferedBytes) {
      this.#slowConsumer();
      return;
    }
    this.#outbox[this.#outboxCount++] = record;
    this.#outboxBytes += size;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      this.#host.scheduler.schedule(this);
    }
  }

  /** Writes everything queued as one transport message. Called by the flush scheduler. */
  flush(now = Date.now()): void {
    this.#flushScheduled = false;
    const count = this.#outboxCount;
    if (count === 0) return;
    this.#outboxCount = 0;
    this.#outboxBytes = 0;
    if (this.#state !== CLOSED) {
      this.transport.write(this.#outbox, count, this.#format);
      this.lastSentAt = now;
    }
    // Drop the references (records may be large); after an unusual burst, drop the slots too.
    if (count > OUTBOX_SLOTS_KEPT) this.#outbox.length = 0;
    else for (let i = 0; i < count; i++) this.#outbox[i] = undefined as unknown as SerializedRecord;
  }

  #writeNow(record: SerializedRecord): void {
    this.#outbox[this.#outboxCount++] = record;
    this.#outboxBytes += record.bytes.length;
    this.flush();
  }

  #slowConsumer(): void {
    this.#host.logger.warn({ connectionId: this.connectionId, maxBufferedBytes: this.#host.options.maxBufferedBytes }, "Closing a slow consumer.");
    // The Close message goes out even past the cap: it is tiny and tells the client why.
    this.close({ type: MessageType.Close, error: `${CONNECTION_ERROR_TEXT} The client did not read its messages fast enough.`, allowReconnect: true }, new SwitchboardError("SB_ERR_LIMIT_BUFFERED_BYTES", "Slow consumer."));
  }

  /** Sends a Ping when nothing was sent for `keepAliveInterval`; closes a client silent for `clientTimeout`. */
  tick(now: number): void {
    if (this.#state !== CONNECTED) return;
    if (now - this.lastReceivedAt >= this.#host.options.clientTimeout) {
      this.close({ type: MessageType.Close, error: CONNECTION_ERROR_TEXT, allowReconnect: true }, new Error("Client timeout."));
      return;
    }
    if (now - this.lastSentAt >= this.#host.options.keepAliveInterval && this.#outboxCount === 0) {
      this.enqueue(this.#host.pingRecord(this.protocolIndex));
    }
  }

  // ---- close -----------------------------------------------------------------------------

  /**
   * Sends `message` (a Close) after what is already queued, then closes the transport. The
   * connection counts as ended at once; `onDisconnected` runs once.
   */
  close(message: CloseMessage, error?: Error): void {
    if (this.#state === CLOSED) return;
    if (this.#state === CONNECTED && !this.#closeMessageSent && this.protocol !== undefined) {
      this.#closeMessageSent = true;
      let record: SerializedRecord | undefined;
      try {
        record = new SerializedRecord(this.protocol.write(message));
      } catch (cause) {
        this.#host.logger.error({ err: cause }, "The Close message could not be encoded.");
      }
      if (record !== undefined) this.#writeNow(record);
      else this.flush();
    }
    this.#end(error);
  }

  /** The transport reports it has closed. */
  transportClosed(error?: Error): void {
    this.#end(error);
  }

  #end(error: Error | undefined): void {
    if (this.#state === CLOSED) return;
    clearTimeout(this.#handshakeTimer);
    this.#state = CLOSED;
    this.#waiting.length = 0;
    this.#outboxCount = 0;
    this.#outbox.length = 0; // unsent records may be large: do not keep them alive
    this.transport.close(); // a no-op when the transport is the one that closed
    this.#host.ended(this, error);
  }
}
