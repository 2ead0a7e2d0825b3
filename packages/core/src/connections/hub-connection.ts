import type { DependencyContainer } from "tsyringe";
import { ConnectionTimeoutError, InvalidMessageError, MessageTooLargeError, SwitchboardError } from "../contracts/errors.js";
import { HandshakeReader, handshakeError, handshakeSuccess, type HandshakeRequest } from "./handshake.js";
import type { HubCallerContext, Principal } from "../hubs/hub-caller-context.js";
import { MessageType, type CloseMessage, type HubMessage, type InvocationMessage, type StreamInvocationMessage } from "../contracts/hub-messages.js";
import { ReplayBuffer } from "./replay-buffer.js";
import { ConnectionStreams, type StreamLimits } from "./connection-streams.js";
import { HubState } from "./hub-state.js";
import type { HubMessageParser, HubProtocol, ParserLimits, TransferFormat } from "../contracts/hub-protocol.js";
import type { FlushScheduler } from "../fan-out/flush-scheduler.js";
import type { Recipient } from "../contracts/hub-lifetime-manager.js";
import type { Logger } from "../contracts/logger.js";
import { SerializedRecord, type ConnectionHandle, type ConnectionRequest, type TransportConnection } from "../contracts/transport.js";

/** The server options a connection reads (the server's resolved options satisfy it); see `ServerOptions`. */
export interface ConnectionOptions extends ParserLimits, StreamLimits {
  readonly protocols: readonly HubProtocol[];
  readonly handshakeTimeout: number;
  readonly keepAliveInterval: number;
  readonly clientTimeout: number;
  readonly maxBufferedBytes: number;
  readonly maxInvocationIdLength: number;
  readonly maxParallelInvocations: number;
  readonly maxQueuedInvocations: number;
  /** Records of one connection handled per event-loop turn; the rest wait for a later turn. */
  readonly maxMessagesPerTurn: number;
  /** Bytes of sent but unacknowledged messages kept for a stateful-reconnect replay; past it, sends wait. */
  readonly statefulReconnectBufferSize: number;
  /** How long a stateful-reconnect connection waits for its client after losing the transport. */
  readonly disconnectTimeout: number;
}

/**
 * The event-loop turn, counted by one shared `setImmediate` scheduled only while connections
 * receive: a connection's record budget is renewed when the turn changes.
 */
let currentTurn = 0;
let turnScheduled = false;
function advanceTurn(): void {
  currentTurn++;
  turnScheduled = false;
}
function turn(): number {
  if (!turnScheduled) {
    turnScheduled = true;
    setImmediate(advanceTurn);
  }
  return currentTurn;
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
  /** The context this connection's hubs see (asked for once, on first use). */
  callerContext(connection: HubConnection): HubCallerContext;
  /** A new DI scope for this connection (asked for once, on first use). */
  connectionScope(): DependencyContainer;
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
// Bits of HubConnection's flags.
/** The connection is in the flush scheduler's list for this turn. */
const FLUSH_SCHEDULED = 1 << 0;
/** The queue has records that could not be written (replay buffer full, held or transport lost). */
const STALLED = 1 << 1;
/**
 * The transport held unsent bytes when it was last written to: only then can the connection be a
 * slow consumer, so only then does `enqueue` read the transport's buffered amount. (A socket that
 * backs up during a write is caught at the next flush, which checks the cap before writing.)
 */
const BACKED_UP = 1 << 2;
/** Something was written since the last tick (`tick` turns it into the time of the last send). */
const SENT = 1 << 3;
/** Hub messages wait for the client's first frame after a stateful handshake (§8.4). */
const HELD = 1 << 4;
/** The client negotiated stateful reconnect. */
const STATEFUL_ALLOWED = 1 << 5;
const REATTACHING = 1 << 6;
/** Reading is paused for the invocation queue. */
const QUEUE_PAUSED = 1 << 7;
/** An upload stream holds more items than its buffer: reading waits for the hub method. */
const UPLOADS_PAUSED = 1 << 8;
/** Reading is paused for the backlog of parsed records. */
const BACKLOG_PAUSED = 1 << 9;
/** Whether the transport was last told to pause. */
const READING_PAUSED = 1 << 10;
const CLOSE_MESSAGE_SENT = 1 << 11;
const DRAIN_SCHEDULED = 1 << 12;
/** An async `onConnected` runs: invocations wait for it, as in ASP.NET. */
const CONNECTING = 1 << 13;
/**
 * Longest wait for the client's first frame after a stateful handshake. The v10 client counts
 * incoming messages only once its post-handshake code ran, which it signals with a Ping; hub
 * messages sent before it would be delivered but not counted (§8.4).
 */
const FIRST_FRAME_WAIT = 1_000;

/** The transport of a connection in its reconnect window: nothing to write to, nothing buffered. */
const LOST: TransportConnection = Object.freeze({
  transferFormats: [],
  bufferedAmount: 0,
  write(): void {},
  close(): void {},
  pause(): void {},
  resume(): void {},
});
/**
 * One-slot array for a record written on its own (a single queued record, a Ping, an Ack), shared
 * by every connection: transports only read `records` during `write`. It keeps the last such
 * record until the next one (clearing it would touch it again after the socket write).
 */
const SINGLE: SerializedRecord[] = [];

/** The inbox of a connection that has none (nothing is ever written to it). */
const NO_MESSAGES: HubMessage[] = [];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Close text for errors that end a connection (ASP.NET's wording, §4.6). */
export const CONNECTION_ERROR_TEXT = "Connection closed with an error.";
// One record per transfer format: a transport may cache a record's frame, and a record is only
// ever written in one format (a MessagePack client gets its handshake response in a binary frame).
const HANDSHAKE_RECORDS: Readonly<Record<TransferFormat, SerializedRecord>> = {
  text: new SerializedRecord(handshakeSuccess()),
  binary: new SerializedRecord(handshakeSuccess()),
};

/**
 * What one transport of a connection that may reattach (stateful reconnect) reports to: once
 * another transport has taken over, the old one's late data and close are ignored.
 */
export class TransportLease implements ConnectionHandle {
  readonly #connection: HubConnection;
  readonly #transport: TransportConnection;
  constructor(connection: HubConnection, transport: TransportConnection) {
    this.#connection = connection;
    this.#transport = transport;
  }
  get connectionId(): string {
    return this.#connection.connectionId;
  }
  receive(data: Uint8Array): void {
    if (this.#connection.transport === this.#transport) this.#connection.receive(data);
  }
  transportClosed(error?: Error): void {
    if (this.#connection.transport === this.#transport) this.#connection.transportClosed(error);
  }
}

/**
 * One client connection to one hub: handshake, parsing, the invocation queue, the coalescing
 * outbox, keep-alive bookkeeping and closing. The transport feeds it through {@link ConnectionHandle}.
 *
 * With stateful reconnect (negotiated, handshake version 2) it also keeps a {@link ReplayBuffer}:
 * the outbox is written only while the buffer has room, a lost transport leaves the connection in
 * its reconnect window (`disconnectTimeout`) instead of ending it, and `reattach` resumes it on a
 * new transport with a Sequence and a replay of what the client has not acknowledged.
 */
export class HubConnection implements ConnectionHandle, Recipient {
  // Read or written for every recipient of a send, so declared first: V8 lays fields out in
  // declaration order, and a fan-out then touches one or two cache lines of each connection.
  #state = HANDSHAKING;
  /** Booleans, as bits (see the flag constants): one field instead of a dozen. */
  #flags = 0;
  /** Records queued for the next flush, and their bytes. */
  #queued = 0;
  #queuedBytes = 0;
  /** The queued record while exactly one is queued (the common case: no array is touched). */
  #head: SerializedRecord | undefined = undefined;
  /** The queued records while two or more are queued; made when first needed. */
  #outbox: SerializedRecord[] | undefined = undefined;
  #transport: TransportConnection;
  readonly #host: ConnectionHost;
  /** Set at a version-2 handshake of a connection that negotiated stateful reconnect. */
  #replay: ReplayBuffer | undefined = undefined;
  protocolIndex = -1;
  /** Set by sends that deduplicate recipients (e.g. several groups); see the lifetime manager. */
  sendStamp = 0;
  #format: TransferFormat = "text";

  readonly connectionId: string;
  /** The secret connection token from negotiate, or undefined when the client skipped negotiation. */
  readonly token: string | undefined;
  readonly request: ConnectionRequest;
  /** What hub code and invocations use, made when first needed: an idle connection has none. */
  #hub: HubState | undefined;
  #groups: Set<string> | undefined;
  userIdentifier: string | null = null;
  /** The principal that opened the connection (from `authenticate`), or null. */
  user: Principal | null = null;
  /**
   * When the user's authentication expires (ms since the epoch), or 0 for never. 0 rather than
   * Infinity: a field that only ever holds small integers stays unboxed, while a double costs
   * every connection a 16-byte box.
   */
  #expiresAt = 0;
  protocol: HubProtocol | undefined;
  /** When something was last written (kept by `tick` from the {@link SENT} bit, and by control writes). */
  #lastSentAt = 0;
  lastReceivedAt = 0;
  /** While handshaking: the request reader and the timer that cancels a handshake taking too long. */
  #handshake: { readonly reader: HandshakeReader; readonly timer: NodeJS.Timeout } | undefined;
  #parser: HubMessageParser | undefined;
  /**
   * Parsed records not handled yet (from `#inboxHead`): a connection handles at most
   * `maxMessagesPerTurn` per event-loop turn, so one frame full of small records cannot hold the
   * loop; reading from its transport pauses until the backlog is handled, which bounds it.
   * Made at the first data after the handshake, like the callbacks below: an idle connection has none.
   */
  #inbox: HubMessage[] | undefined;
  #inboxHead = 0;
  #budget = 0;
  #budgetTurn = -1;
  /** A parse error after the backlog's records: raised once they were handled. */
  #inboxFault: unknown;
  #onMessage: ((message: HubMessage) => void) | undefined;
  #drainLater: (() => void) | undefined;

  /**
   * `token`: the connection token from negotiate, if any. `statefulReconnect`: the client
   * negotiated it; it is active once the handshake asks for version 2.
   */
  constructor(host: ConnectionHost, connectionId: string, transport: TransportConnection, request: ConnectionRequest, token: string | undefined, statefulReconnect = false) {
    this.#host = host;
    this.connectionId = connectionId;
    this.token = token;
    this.#transport = transport;
    if (statefulReconnect) this.#flags = STATEFUL_ALLOWED;
    this.request = request;
    this.#handshake = { reader: new HandshakeReader(host.options.maxMessageSize), timer: setTimeout(() => this.#handshakeFailed("Handshake was canceled."), host.options.handshakeTimeout) };
    this.lastReceivedAt = this.#lastSentAt = Date.now();
  }

  #is(flag: number): boolean {
    return (this.#flags & flag) !== 0;
  }

  #mark(flag: number, on: boolean): void {
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag;
  }

  /** Names of the groups this connection is in (maintained by the group registry); made on first use. */
  get groups(): Set<string> {
    return (this.#groups ??= new Set());
  }

  /** A reattach was admitted and its transport is opening (set by the endpoint). */
  get reattaching(): boolean {
    return this.#is(REATTACHING);
  }

  set reattaching(value: boolean) {
    this.#mark(REATTACHING, value);
  }

  /**
   * The connection's DI scope, made on first use (a hub method call or lifecycle hook): an idle
   * connection never pays for one.
   */
  get container(): DependencyContainer {
    const hub = (this.#hub ??= new HubState());
    return (hub.container ??= this.#host.connectionScope());
  }

  /** Per-connection items (`context.items`), made on first use. */
  get items(): Map<unknown, unknown> {
    const hub = (this.#hub ??= new HubState());
    return (hub.items ??= new Map());
  }

  /** The server options this connection reads. */
  get options(): ConnectionOptions {
    return this.#host.options;
  }

  /** Bytes queued for this connection and not yet on the network (outbox and transport). */
  get pendingBytes(): number {
    return this.#transport.bufferedAmount + this.#queuedBytes;
  }

  /** This connection's streams and client results, made on first use. */
  get streams(): ConnectionStreams {
    const hub = (this.#hub ??= new HubState());
    return (hub.streams ??= new ConnectionStreams(this.#host.options, () => this.#uploadsDrained()));
  }

  /** An upload stream was read below its buffer: read from the client again unless another is still full. */
  #uploadsDrained(): void {
    if (!this.#is(UPLOADS_PAUSED) || this.#hub?.streams?.uploadsFull === true) return;
    this.#mark(UPLOADS_PAUSED, false);
    if (this.#state !== CLOSED) this.#syncReading();
  }

  /** The `clients` of this connection's hub instances, made on first use. */
  get callerClients(): unknown {
    const hub = (this.#hub ??= new HubState());
    return (hub.callerClients ??= this.#host.callerClients(this));
  }

  /** The context handed to this connection's hubs and modules, made on first use. */
  get callerContext(): HubCallerContext {
    const hub = (this.#hub ??= new HubState());
    return (hub.callerContext ??= this.#host.callerContext(this));
  }

  /**
   * When the user's authentication expires (ms since the epoch; `closeOnAuthenticationExpiration`):
   * the connection is closed then. Infinity (the default) for never.
   */
  get authenticationExpiresAt(): number {
    return this.#expiresAt === 0 ? Infinity : this.#expiresAt;
  }

  set authenticationExpiresAt(value: number) {
    this.#expiresAt = value === Infinity ? 0 : value;
  }

  /** True between the handshake and the end, also while in the reconnect window. */
  get connected(): boolean {
    return this.#state === CONNECTED;
  }

  /** The transport in use (a stand-in that writes nothing while in the reconnect window). */
  get transport(): TransportConnection {
    return this.#transport;
  }

  /** True while the transport is lost and the connection waits in its reconnect window. */
  get awaitingReconnect(): boolean {
    return this.#detachedAt !== 0;
  }

  /** When the transport was lost (0 while one is attached, and without stateful reconnect); kept by the replay buffer. */
  get #detachedAt(): number {
    return this.#replay === undefined ? 0 : this.#replay.detachedAt;
  }

  /** True while a new transport may take this connection over: stateful and not ending. */
  get resumable(): boolean {
    return this.#replay !== undefined && this.#state === CONNECTED && !this.#is(CLOSE_MESSAGE_SENT);
  }

  // ---- receive ---------------------------------------------------------------------------

  receive(data: Uint8Array): void {
    // After a fault the parser's state is unspecified: nothing more is read from this client.
    if (this.#state === CLOSED || this.#hub?.pendingFault !== undefined || this.#inboxFault !== undefined) return;
    try {
      if (this.#state === HANDSHAKING) {
        const done = this.#handshake!.reader.read(data);
        if (done === undefined) return;
        if (!this.#acceptHandshake(done.request)) return;
        if (done.rest.length === 0) return;
        data = done.rest;
      }
      if (this.#is(HELD)) this.#releaseHold();
      if (this.#parser === undefined) {
        // Until the client sends anything but Pings (a listen-only client never does), a frame that
        // is exactly this protocol's Ping only resets the timeout: no parser is made for it.
        if (this.#replay === undefined && this.#state === CONNECTED && sameBytes(data, this.#host.pingRecord(this.protocolIndex).bytes)) {
          this.lastReceivedAt = Date.now();
          return;
        }
        // The parser is made at the first other data after the handshake: an idle connection has none.
        this.#parser = this.protocol!.createParser(this.#host.options);
      }
      this.#parser.parse(data, (this.#onMessage ??= (message) => (this.#inbox ??= []).push(message)));
    } catch (error) {
      if (this.#inboxHead === (this.#inbox?.length ?? 0)) {
        this.#protocolFault(error);
        return;
      }
      this.#inboxFault = error; // the records before the bad one are handled first
    }
    this.#drain();
  }

  /** Handles backlogged records within this turn's budget; schedules the rest for a later turn. */
  #drain(): void {
    const now = turn();
    if (this.#budgetTurn !== now) {
      this.#budgetTurn = now;
      this.#budget = this.#host.options.maxMessagesPerTurn;
    }
    const inbox = this.#inbox ?? NO_MESSAGES;
    try {
      while (this.#inboxHead < inbox.length && this.#budget > 0 && this.#state !== CLOSED) {
        const message = inbox[this.#inboxHead]!;
        inbox[this.#inboxHead++] = undefined as never; // released as soon as handled
        this.#budget--;
        this.#dispatch(message);
      }
    } catch (error) {
      this.#inbox = undefined;
      this.#inboxHead = 0;
      this.#inboxFault = undefined;
      this.#protocolFault(error);
      return;
    }
    if (this.#inboxHead < inbox.length && this.#state !== CLOSED) {
      if (!this.#is(BACKLOG_PAUSED)) {
        this.#mark(BACKLOG_PAUSED, true);
        this.#syncReading();
      }
      if (!this.#is(DRAIN_SCHEDULED)) {
        this.#mark(DRAIN_SCHEDULED, true);
        setImmediate(
          (this.#drainLater ??= () => {
            this.#mark(DRAIN_SCHEDULED, false);
            this.#drain();
          }),
        );
      }
      return;
    }
    // Everything was handled: the array goes (the next data makes a new one), so an idle connection keeps none.
    this.#inbox = undefined;
    this.#inboxHead = 0;
    if (this.#inboxFault !== undefined) {
      const fault = this.#inboxFault;
      this.#inboxFault = undefined;
      if (this.#state !== CLOSED) this.#protocolFault(fault);
      return;
    }
    if (this.#is(BACKLOG_PAUSED)) {
      this.#mark(BACKLOG_PAUSED, false);
      if (this.#state !== CLOSED) this.#syncReading();
    }
  }

  #acceptHandshake(request: HandshakeRequest): boolean {
    clearTimeout(this.#handshake?.timer);
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
    this.#state = CONNECTED;
    this.lastReceivedAt = Date.now(); // the client timeout is armed here, not at the first Ping
    this.#writeNow(HANDSHAKE_RECORDS[this.#format]);
    if (this.#is(STATEFUL_ALLOWED) && request.version >= 2) {
      this.#replay = new ReplayBuffer(this.#host.options.statefulReconnectBufferSize);
      this.#flags |= HELD | STALLED;
      this.#replay.heldSince = this.lastReceivedAt;
    }
    const connecting = this.#host.connected(this);
    if (connecting !== undefined) {
      this.#mark(CONNECTING, true);
      const done = (): void => {
        this.#mark(CONNECTING, false);
        this.#invocationDone(false);
      };
      connecting.then(done, done);
    }
    return true;
  }

  #handshakeFailed(text: string): false {
    if (this.#state !== HANDSHAKING) return false;
    clearTimeout(this.#handshake?.timer);
    this.#handshake = undefined;
    this.#host.logger.debug({ connectionId: this.connectionId, reason: text }, "Handshake failed.");
    this.#transport.write([new SerializedRecord(handshakeError(text))], 1, "text");
    this.#state = CLOSED;
    this.#transport.close();
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
    const hub = this.#hub;
    if (hub?.waiting !== undefined && hub.waiting.length > 0) {
      // Like ASP.NET, which reads the next record only once the previous invocation has a slot:
      // invocations before the bad record still start, in order, and the Close follows them.
      hub.pendingFault = { message: close, error: cause };
      return;
    }
    this.close(close, cause);
  }

  #dispatch(message: HubMessage): void {
    if (this.#state !== CONNECTED) return;
    this.lastReceivedAt = Date.now();
    if (this.#replay !== undefined && !this.#sequenced(this.#replay, message)) return;
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
        this.#mark(CLOSE_MESSAGE_SENT, true);
        this.#end(message.error !== undefined ? new Error(message.error) : undefined);
        return;
      case MessageType.StreamItem:
        if (this.#hub?.streams?.item(message) === true && !this.#is(UPLOADS_PAUSED)) {
          this.#mark(UPLOADS_PAUSED, true);
          this.#syncReading();
        }
        return;
      case MessageType.Completion:
        this.#hub?.streams?.completion(message);
        return;
      case MessageType.CancelInvocation:
        this.#hub?.streams?.cancel(message.invocationId);
        return;
      default:
        // Ping only resets the timeout. Stream items, completions and cancellations for ids the
        // server does not know are ignored (§4.4), as are Ack/Sequence outside stateful reconnect.
        return;
    }
  }

  /**
   * Stateful reconnect's view of an incoming message (§8.2–8.4): counts trackable messages and
   * drops the duplicates a client re-sends after a reattach, applies Ack and Sequence, and ignores
   * everything before the client's Sequence after a reattach. True when the message is to be handled.
   */
  #sequenced(replay: ReplayBuffer, message: HubMessage): boolean {
    if (replay.awaitingSequence) {
      if (message.type !== MessageType.Sequence) return false;
      replay.awaitingSequence = false;
    }
    switch (message.type) {
      case MessageType.Invocation:
      case MessageType.StreamItem:
      case MessageType.Completion:
      case MessageType.StreamInvocation:
      case MessageType.CancelInvocation:
        return replay.receive();
      case MessageType.Ack:
        if (!replay.ack(message.sequenceId)) throw new InvalidMessageError("Ack ID greater than the number of messages sent.");
        // Space was freed: the sends waiting for it go out.
        if (this.#queued > 0) this.#scheduleFlush();
        return false;
      case MessageType.Sequence:
        if (!replay.sequence(message.sequenceId)) throw new InvalidMessageError("Sequence ID greater than the number of messages received.");
        return false;
      default:
        return true;
    }
  }

  // ---- invocation queue (maxParallelInvocations, receive-side back-pressure) -------------

  #enqueueInvocation(message: InvocationMessage | StreamInvocationMessage): void {
    const hub = (this.#hub ??= new HubState());
    if (!this.#is(CONNECTING) && hub.running < this.#host.options.maxParallelInvocations) {
      this.#start(hub, message);
      return;
    }
    const waiting = (hub.waiting ??= []);
    waiting.push(message);
    if (!this.#is(QUEUE_PAUSED) && waiting.length >= this.#host.options.maxQueuedInvocations) {
      this.#mark(QUEUE_PAUSED, true);
      this.#syncReading();
    }
  }

  /**
   * Pauses reading from the client while its invocation queue or an upload stream is full or its
   * records wait for a later turn, and resumes it once none is (the transport's pause/resume are
   * not counted, so one place decides).
   */
  #syncReading(): void {
    const pause = this.#is(QUEUE_PAUSED | UPLOADS_PAUSED | BACKLOG_PAUSED);
    if (pause === this.#is(READING_PAUSED)) return;
    this.#mark(READING_PAUSED, pause);
    if (pause) {
      this.#transport.pause();
      return;
    }
    this.#transport.resume();
    this.lastReceivedAt = Date.now(); // the client's pings were unread while paused: not its fault
  }

  #start(hub: HubState, message: InvocationMessage | StreamInvocationMessage): void {
    hub.running++;
    const done = (hub.onInvocationDone ??= () => this.#invocationDone());
    this.#host.invoke(this, message).then(done, done);
  }

  /** An invocation finished (`finished`), or `onConnected` did: start what the free slots allow. */
  #invocationDone(finished = true): void {
    // An invocation made the hub state; onConnected may finish without one (nothing then waits).
    const hub = this.#hub;
    if (finished) hub!.running--;
    // While reading is paused the client's pings cannot arrive: progress on its queue stands in
    // for them, so a slow but moving queue is not a timeout, and a hung one still is.
    if (this.#is(READING_PAUSED)) this.lastReceivedAt = Date.now();
    if (this.#state === CLOSED || hub === undefined) return;
    const waiting = hub.waiting;
    if (waiting !== undefined) {
      while (!this.#is(CONNECTING) && hub.running < this.#host.options.maxParallelInvocations && waiting.length > 0) {
        this.#start(hub, waiting.shift()!);
      }
    }
    if (hub.pendingFault !== undefined && (waiting?.length ?? 0) === 0) {
      this.close(hub.pendingFault.message, hub.pendingFault.error);
      return;
    }
    if (this.#is(QUEUE_PAUSED) && (waiting?.length ?? 0) < this.#host.options.maxQueuedInvocations / 2) {
      this.#mark(QUEUE_PAUSED, false);
      this.#syncReading();
    }
  }

  // ---- send ------------------------------------------------------------------------------

  /**
   * Queues one record for this connection; queued records go out together at the end of the
   * event-loop turn, in order. A connection whose unsent bytes would pass `maxBufferedBytes` is
   * closed as a slow consumer instead: the send never waits for it. With stateful reconnect the
   * same cap bounds what waits for replay-buffer space or for the client to come back.
   */
  enqueue(record: SerializedRecord): void {
    if (this.#state !== CONNECTED) return;
    // A group send deferred to the end of the turn goes first, in order (see FlushScheduler).
    const scheduler = this.#host.scheduler;
    if (scheduler.deferring) scheduler.catchUp(this);
    const size = record.bytes.length;
    const flags = this.#flags;
    // Only a client whose socket is backed up can be slow: while everything written so far has
    // gone out, this turn's sends are queued whatever their size, so one big broadcast does not
    // close every healthy recipient. The transport's buffered amount only grows when we write, so
    // it is read only when the socket held bytes at the last write (BACKED_UP; flush checks the
    // cap again before writing): a fan-out to healthy sockets never reads it.
    if ((flags & (BACKED_UP | STALLED)) !== 0) {
      const buffered = this.#transport.bufferedAmount;
      if ((buffered > 0 || (flags & STALLED) !== 0) && buffered + this.#queuedBytes + size > this.#host.options.maxBufferedBytes) {
        this.#slowConsumer();
        return;
      }
    }
    this.#append(record);
    this.#queuedBytes += size;
    if ((flags & FLUSH_SCHEDULED) === 0) {
      this.#flags = flags | FLUSH_SCHEDULED;
      this.#host.scheduler.schedule(this);
    }
  }

  /**
   * Writes records `[0, count)` as one transport message now when nothing else waits for this
   * connection: nothing queued, not held or stalled, a socket that has drained (with stateful
   * reconnect, through the replay buffer as a flush would). Otherwise they are queued as
   * {@link enqueue} queues them. Fan-out calls it at the end of a turn for a deferred
   * group send, so a member is touched once, by one walk, as the raw floor touches a socket.
   */
  deliverNow(records: readonly SerializedRecord[], count: number, bytes: number): void {
    if (this.#state !== CONNECTED) return;
    if (this.#queued === 0 && (this.#flags & (BACKED_UP | STALLED | FLUSH_SCHEDULED | HELD)) === 0) {
      const transport = this.#transport;
      // Nothing unsent: the cap cannot be passed by this turn's sends (as in `enqueue`).
      if (transport.bufferedAmount === 0) {
        const replay = this.#replay;
        if (replay === undefined) {
          this.#flags = (this.#flags | SENT) & ~BACKED_UP;
          transport.write(records, count, this.#format);
          return;
        }
        this.#deliverTracked(replay, records, count, bytes);
        return;
      }
    }
    for (let i = 0; i < count; i++) this.enqueue(records[i]!);
  }

  /**
   * {@link deliverNow} with stateful reconnect (out of line: the plain path stays small enough for
   * V8 to inline the transport's write into it): what a scheduled flush would do, now and without
   * the outbox: into the replay buffer as far as it has room, written together; the rest is queued
   * for the Acks, in order. Never reached while the transport is lost: losing it sets STALLED, and
   * every later change of that flag keeps it while `#detachedAt` is set.
   */
  #deliverTracked(replay: ReplayBuffer, records: readonly SerializedRecord[], count: number, bytes: number): void {
    if (replay.hasRoomFor(bytes)) {
      // All of it: the burst's array is kept as one entry (it never changes), not record by record.
      replay.pushBurst(records, count, bytes);
      this.#write(records, count);
      return;
    }
    let moved = 0;
    while (moved < count && replay.hasRoom) replay.push(records[moved++]!);
    if (moved > 0) this.#write(records, moved);
    for (let i = moved; i < count; i++) {
      this.#append(records[i]!);
      this.#queuedBytes += records[i]!.bytes.length;
    }
    this.#mark(STALLED, moved < count);
  }

  /** Adds `record` to the queue: the first in `#head`, from the second on all of them in `#outbox`. */
  #append(record: SerializedRecord): void {
    const count = this.#queued++;
    if (count === 0) {
      this.#head = record;
      return;
    }
    const outbox = (this.#outbox ??= []);
    if (count === 1) {
      outbox[0] = this.#head!;
      this.#head = undefined;
    }
    outbox[count] = record;
  }

  /** Schedules a flush of what is queued, unless one is scheduled already. */
  #scheduleFlush(): void {
    if (this.#is(FLUSH_SCHEDULED)) return;
    this.#flags |= FLUSH_SCHEDULED;
    this.#host.scheduler.schedule(this);
  }

  /** Writes everything queued as one transport message. Called by the flush scheduler. */
  flush(): void {
    this.#flags &= ~FLUSH_SCHEDULED;
    // Without stateful reconnect this one check is all the feature costs a flush.
    if (this.#replay !== undefined) {
      this.#flushTracked(this.#replay);
      return;
    }
    if (this.#queued === 0) return;
    // The cap once more, at the write: a socket that backed up during its last write was not
    // flagged yet (BACKED_UP is what the socket held BEFORE a write), so this turn's sends were
    // queued unchecked; they are dropped rather than written past the cap.
    const buffered = this.#transport.bufferedAmount;
    if (buffered > 0 && buffered + this.#queuedBytes > this.#host.options.maxBufferedBytes) {
      this.#clearQueue();
      this.#slowConsumer();
      return;
    }
    this.#writeOutbox();
  }

  #writeOutbox(): void {
    const count = this.#queued;
    if (count === 0) return;
    if (this.#state === CLOSED) {
      this.#clearQueue();
      return;
    }
    this.#queued = 0;
    this.#queuedBytes = 0;
    if (count === 1) {
      SINGLE[0] = this.#head!;
      this.#head = undefined;
      this.#write(SINGLE, 1);
      return;
    }
    const outbox = this.#outbox!;
    this.#write(outbox, count);
    // Drop the references (records may be large); after an unusual burst, drop the slots too.
    if (count > OUTBOX_SLOTS_KEPT) this.#outbox = undefined;
    else for (let i = 0; i < count; i++) outbox[i] = undefined as unknown as SerializedRecord;
  }

  /**
   * Writes records `[0, count)` as one transport message. The transport's buffered amount is read
   * before the write, while its state is warm, and nothing of this connection is touched after
   * it: the socket write is a system call, which on a VM with page-table isolation also empties
   * the TLB, so every object touched afterwards costs a page walk per recipient. (The one-slot
   * array keeps its record until the next single write: one record, not one per connection.)
   */
  #write(records: readonly SerializedRecord[], count: number): void {
    const transport = this.#transport;
    this.#flags = transport.bufferedAmount > 0 ? this.#flags | SENT | BACKED_UP : (this.#flags | SENT) & ~BACKED_UP;
    transport.write(records, count, this.#format);
  }

  /** Forgets what is queued (records may be large: do not keep them alive). */
  #clearQueue(): void {
    this.#queued = 0;
    this.#queuedBytes = 0;
    this.#head = undefined;
    this.#outbox = undefined;
  }

  /**
   * Stateful flush: the queued records move into the replay buffer while it has room and are
   * written together; the rest wait, in order, for Acks (back-pressure). While held (§8.4) nothing
   * moves; in the reconnect window records move without being written and are replayed later.
   */
  #flushTracked(replay: ReplayBuffer): void {
    const count = this.#queued;
    if (this.#is(HELD) || count === 0) return;
    let records: SerializedRecord[];
    if (count === 1) {
      SINGLE[0] = this.#head!;
      records = SINGLE;
    } else {
      records = this.#outbox!;
    }
    let moved = 0;
    let movedBytes = 0;
    while (moved < count && replay.hasRoom) {
      const record = records[moved++]!;
      replay.push(record);
      movedBytes += record.bytes.length;
    }
    if (moved > 0 && this.#detachedAt === 0) this.#write(records, moved);
    const left = count - moved;
    this.#queued = left;
    this.#queuedBytes -= movedBytes;
    if (count === 1) {
      SINGLE[0] = undefined as unknown as SerializedRecord;
      if (left === 0) this.#head = undefined;
    } else {
      if (moved > 0 && left > 0) records.copyWithin(0, moved, count);
      for (let i = left; i < count; i++) records[i] = undefined as unknown as SerializedRecord;
      if (left === 1) {
        // One record left: it moves to #head, as #append expects.
        this.#head = records[0]!;
        records[0] = undefined as unknown as SerializedRecord;
      }
      if (count > OUTBOX_SLOTS_KEPT && left <= 1) this.#outbox = undefined;
    }
    this.#mark(STALLED, left > 0 || this.#detachedAt !== 0);
  }

  /** The client's first frame after a stateful handshake arrived (or the wait ran out): send what waited. */
  #releaseHold(): void {
    this.#mark(HELD, false);
    this.#mark(STALLED, this.#detachedAt !== 0);
    if (this.#queued > 0) this.#scheduleFlush();
  }

  /** Writes a record that is not counted (Ping, Ack) on its own, outside the queue. */
  #writeControl(record: SerializedRecord, now: number): void {
    this.#lastSentAt = now;
    SINGLE[0] = record;
    this.#write(SINGLE, 1);
  }

  /** Queues `record` after everything queued and writes it all now (handshake reply, Close). */
  #writeNow(record: SerializedRecord): void {
    this.#append(record);
    this.#queuedBytes += record.bytes.length;
    this.#writeOutbox();
  }

  /** Bytes queued for this connection or written to its transport but not yet on the network. */
  get bufferedBytes(): number {
    return this.#transport.bufferedAmount + this.#queuedBytes;
  }

  #slowConsumer(): void {
    this.#host.logger.warn({ connectionId: this.connectionId, maxBufferedBytes: this.#host.options.maxBufferedBytes }, "Closing a slow consumer.");
    // The Close message goes out even past the cap: it is tiny and tells the client why.
    this.close({ type: MessageType.Close, error: `${CONNECTION_ERROR_TEXT} The client did not read its messages fast enough.`, allowReconnect: true }, new SwitchboardError("SB_ERR_LIMIT_BUFFERED_BYTES", "Slow consumer."));
  }

  /**
   * Sends a Ping when nothing was sent for `keepAliveInterval`; closes a client silent for
   * `clientTimeout`. With stateful reconnect also: Acks what arrived since the last tick, ends the
   * connection when its reconnect window ran out, and releases a hold that waited too long.
   *
   * A flush only sets the SENT bit (no clock read, no time stored per write); the tick turns it
   * into the time of the last send, so a Ping may go out up to one tick period (at most a quarter
   * of `keepAliveInterval`) later than exactly `keepAliveInterval` after the last send.
   */
  tick(now: number): void {
    if (this.#is(SENT)) {
      this.#flags &= ~SENT;
      this.#lastSentAt = now;
    }
    if (this.#expiresAt !== 0 && now >= this.#expiresAt && this.#state === CONNECTED) {
      this.close({ type: MessageType.Close, error: `${CONNECTION_ERROR_TEXT} The authentication expired.`, allowReconnect: true }, new Error("Authentication expired."));
      return;
    }
    // Long polling has inherent keep-alive (§2.5): no Ping, no client timeout; the transport ends
    // a client that stops polling.
    if (this.#state !== CONNECTED || this.request.transport === "LongPolling") return;
    if (this.#replay !== undefined) {
      this.#tickTracked(this.#replay, now);
      return;
    }
    if (now - this.lastReceivedAt >= this.#host.options.clientTimeout) {
      this.close({ type: MessageType.Close, error: CONNECTION_ERROR_TEXT, allowReconnect: true }, new ConnectionTimeoutError("Client timeout."));
      return;
    }
    if (now - this.#lastSentAt >= this.#host.options.keepAliveInterval && this.#queued === 0) {
      this.enqueue(this.#host.pingRecord(this.protocolIndex));
    }
  }

  #tickTracked(replay: ReplayBuffer, now: number): void {
    const options = this.#host.options;
    replay.trim();
    if (replay.detachedAt !== 0) {
      if (now - replay.detachedAt >= options.disconnectTimeout) this.#end(new ConnectionTimeoutError("The client did not reconnect within the disconnect timeout."));
      return;
    }
    if (now - this.lastReceivedAt >= options.clientTimeout) {
      // A silent client may be behind a dead network path: it gets the reconnect window to come back.
      this.#host.logger.debug({ connectionId: this.connectionId }, "Client timeout; waiting for a reconnect.");
      this.#detach(replay);
      return;
    }
    if (this.#is(HELD)) {
      if (now - replay.heldSince < FIRST_FRAME_WAIT) return;
      this.#releaseHold();
    }
    if (!replay.awaitingSequence && replay.received > replay.ackSent) {
      replay.ackSent = replay.received;
      this.#writeControl(new SerializedRecord(this.protocol!.write({ type: MessageType.Ack, sequenceId: replay.received })), now);
    }
    if (now - this.#lastSentAt >= options.keepAliveInterval) this.#writeControl(this.#host.pingRecord(this.protocolIndex), now);
  }

  // ---- stateful reconnect ------------------------------------------------------------------

  /** The transport is gone but the client may come back: keep everything for `disconnectTimeout`. */
  #detach(replay: ReplayBuffer): void {
    const transport = this.#transport;
    this.#transport = LOST;
    replay.detachedAt = Date.now() || 1;
    this.#flags |= STALLED;
    transport.close(); // a no-op when the transport is the one that closed
    this.#host.logger.debug({ connectionId: this.connectionId }, "Transport lost; the connection waits for a reconnect.");
  }

  /**
   * Resumes the connection on `transport` (a reattach presenting its token): a transport still
   * attached is closed and replaced, the Sequence and every unacknowledged record are written as
   * one message, and the client's messages are ignored until its own Sequence arrives (§8.3–8.4).
   * False when the connection can no longer be resumed.
   */
  reattach(transport: TransportConnection): boolean {
    const replay = this.#replay;
    if (replay === undefined || !this.resumable) return false;
    if (replay.detachedAt === 0) this.#detach(replay);
    this.#transport = transport;
    replay.detachedAt = 0;
    this.#mark(HELD, false);
    replay.awaitingSequence = true;
    // Our last Ack may have died with the old socket: acknowledge again once the client is back.
    replay.ackSent = Math.min(replay.ackSent, replay.received - 1);
    this.lastReceivedAt = this.#lastSentAt = Date.now();
    if (this.#is(READING_PAUSED)) transport.pause();
    const records = replay.unacknowledged();
    records.unshift(new SerializedRecord(this.protocol!.write({ type: MessageType.Sequence, sequenceId: replay.acked + 1 })));
    this.#write(records, records.length);
    this.#mark(STALLED, this.#queued > 0);
    if (this.#queued > 0) this.#scheduleFlush();
    return true;
  }

  // ---- close -----------------------------------------------------------------------------

  /**
   * Sends `message` (a Close) after what is already queued, then closes the transport. The
   * connection counts as ended at once; `onDisconnected` runs once.
   */
  close(message: CloseMessage, error?: Error): void {
    if (this.#state === CLOSED) return;
    if (this.#state === CONNECTED && !this.#is(CLOSE_MESSAGE_SENT) && this.protocol !== undefined) {
      // A group send deferred before the Close goes first (see FlushScheduler). It is queued before
      // the Close is marked as sent: if it closes this connection as a slow consumer, that Close
      // goes out, as when the send queued at once.
      const scheduler = this.#host.scheduler;
      if (scheduler.deferring) {
        scheduler.catchUp(this);
        if (!this.connected) return; // it was closed as a slow consumer, with its own Close
      }
      this.#flags |= CLOSE_MESSAGE_SENT;
      let record: SerializedRecord | undefined;
      try {
        record = new SerializedRecord(this.protocol.write(message));
      } catch (cause) {
        this.#host.logger.error({ err: cause }, "The Close message could not be encoded.");
      }
      if (record !== undefined) this.#writeNow(record);
      else this.#writeOutbox();
    }
    this.#end(error);
  }

  /**
   * The transport reports it has closed. A stateful connection whose transport was lost (`error`:
   * no closing handshake, as a network drop) and that neither sent nor received a Close waits for
   * its client in the reconnect window; any other connection ends, as in ASP.NET, where a graceful
   * WebSocket close (a page navigating away) ends the connection at once.
   */
  transportClosed(error?: Error): void {
    if (error !== undefined && this.#replay !== undefined && this.resumable && this.#replay.detachedAt === 0) {
      this.#detach(this.#replay);
      return;
    }
    this.#end(error);
  }

  #end(error: Error | undefined): void {
    if (this.#state === CLOSED) return;
    clearTimeout(this.#handshake?.timer);
    this.#handshake = undefined;
    this.#state = CLOSED;
    if (this.#hub !== undefined) this.#hub.waiting = undefined;
    this.#clearQueue();
    this.#replay = undefined;
    this.#transport.close(); // a no-op when the transport is the one that closed
    this.#hub?.streams?.closeAll();
    this.#host.ended(this, error);
  }
}
