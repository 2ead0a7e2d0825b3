import type { HubMessage } from "../contracts/hub-messages.js";
import type { HubProtocol } from "../contracts/hub-protocol.js";
import type { Logger } from "../contracts/logger.js";
import type { EncodedMessage } from "../contracts/backplane.js";
import { SerializedRecord } from "../contracts/transport.js";

/**
 * One outgoing message and its encodings, one slot per registered protocol. A slot is filled the
 * first time a recipient speaking that protocol needs it, so a send encodes once per protocol
 * present among its recipients and never once per recipient.
 */
export class SerializedMessage {
  readonly message: HubMessage;
  /** `undefined`: not encoded yet; `null`: this protocol could not encode the message. */
  readonly #records: (SerializedRecord | null | undefined)[];
  readonly #protocols: readonly HubProtocol[];
  readonly #logger: Logger;

  constructor(message: HubMessage, protocols: readonly HubProtocol[], logger: Logger) {
    this.message = message;
    this.#protocols = protocols;
    this.#logger = logger;
    this.#records = new Array(protocols.length);
  }

  /** The record for the protocol at `index`, or `null` when the message cannot be encoded in it. */
  recordFor(index: number): SerializedRecord | null {
    return this.encoded(index);
  }

  /** The same as {@link recordFor}, never counted as a delivery (for a backplane's publish). */
  encoded(index: number): SerializedRecord | null {
    const cached = this.#records[index];
    if (cached !== undefined) return cached;
    const protocol = this.#protocols[index]!;
    let record: SerializedRecord | null;
    try {
      record = new SerializedRecord(protocol.write(this.message));
    } catch (error) {
      // E.g. a BigInt for JSON or a value nested too deeply for MessagePack: only the recipients
      // speaking this protocol miss the message; the others still get it.
      this.#logger.error({ protocol: protocol.name, err: error }, "A message could not be encoded and was not sent to that protocol's recipients.");
      record = null;
    }
    this.#records[index] = record;
    return record;
  }

  /** The message encoded by every protocol (reusing what a local delivery encoded), by protocol name, as it crosses a backplane. */
  everyEncoding(): EncodedMessage {
    const encoded = new Map<string, Uint8Array>();
    for (let i = 0; i < this.#protocols.length; i++) {
      const record = this.encoded(i);
      if (record !== null) encoded.set(this.#protocols[i]!.name, record.bytes);
    }
    return encoded;
  }
}

/**
 * A {@link SerializedMessage} that also counts its recipients per protocol. Used only when the
 * server has an observer: without one the send path keeps the plain class and counts nothing.
 */
export class CountedSerializedMessage extends SerializedMessage {
  /** Recipients that got the message, by protocol index. */
  readonly deliveries: number[];

  constructor(message: HubMessage, protocols: readonly HubProtocol[], logger: Logger) {
    super(message, protocols, logger);
    this.deliveries = new Array<number>(protocols.length).fill(0);
  }

  override recordFor(index: number): SerializedRecord | null {
    const record = super.recordFor(index);
    if (record !== null) this.deliveries[index]!++;
    return record;
  }
}

/**
 * A send that another server encoded and a backplane delivered, as records for this server's
 * protocols (matched by name). One record per protocol, made on first use and shared by every
 * local recipient, so transports frame it once here too.
 */
export class ForeignMessage {
  readonly #protocols: readonly HubProtocol[];
  readonly #encoded: ReadonlyMap<string, Uint8Array>;
  readonly #records: (SerializedRecord | null | undefined)[];

  constructor(protocols: readonly HubProtocol[], encoded: ReadonlyMap<string, Uint8Array>) {
    this.#protocols = protocols;
    this.#encoded = encoded;
    this.#records = new Array(protocols.length);
  }

  recordFor(index: number): SerializedRecord | null {
    const cached = this.#records[index];
    if (cached !== undefined) return cached;
    const bytes = this.#encoded.get(this.#protocols[index]!.name);
    return (this.#records[index] = bytes === undefined ? null : new SerializedRecord(bytes));
  }
}
