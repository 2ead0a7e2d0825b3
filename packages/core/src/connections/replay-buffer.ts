import type { SerializedRecord } from "../contracts/transport.js";

/** Compact the record array once this many acknowledged slots lead it. */
const COMPACT_AFTER = 1024;

/**
 * Stateful reconnect bookkeeping of one connection (../shared/signalr-protocol.md §8.2): the
 * trackable records sent but not yet acknowledged by the client, the sequence counters of both
 * directions, and the times the reconnect window and the first-frame hold began. Records are kept by reference: a fan-out's record is shared by all its recipients
 * and is never copied per connection.
 *
 * Ids are implicit and consecutive from 1 in each direction, so the oldest unacknowledged record
 * is always `acked + 1`.
 */
export class ReplayBuffer {
  readonly #limit: number;
  /** Unacknowledged records, oldest first, starting at `#head`. */
  #records: (SerializedRecord | undefined)[] = [];
  #head = 0;
  /** Bytes of the unacknowledged records. */
  bytes = 0;
  /** Id of the last trackable message sent (or parked for replay while the client is away). */
  sent = 0;
  /** Highest id the client acknowledged. */
  acked = 0;
  /** Highest id of a client message processed. */
  received = 0;
  /** The id last acknowledged to the client. */
  ackSent = 0;
  /** After a reattach: everything but the client's Sequence is ignored until it arrives (§8.4). */
  awaitingSequence = false;
  /**
   * When the transport was lost (ms since the epoch; 0 while one is attached): the reconnect
   * window runs from here. Kept here, not on the connection: only stateful connections need it.
   */
  detachedAt = 0;
  /** When the wait for the client's first frame after the handshake began (§8.4). */
  heldSince = 0;
  /** The id the next trackable message from the client gets (rewound by its Sequence). */
  #nextReceiving = 1;

  /** `limit`: bytes of unacknowledged records above which sends wait (as the client, one record may pass it). */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** True while another record may be sent; false means back-pressure until an Ack frees space. */
  get hasRoom(): boolean {
    return this.bytes < this.#limit;
  }

  /** Records one sent trackable message. */
  push(record: SerializedRecord): void {
    this.#records.push(record);
    this.bytes += record.bytes.length;
    this.sent++;
  }

  /** Drops the records up to and including `id`; false when `id` was never sent. */
  ack(id: number): boolean {
    if (id > this.sent) return false;
    const records = this.#records;
    while (this.acked < id) {
      this.bytes -= records[this.#head]!.bytes.length;
      records[this.#head++] = undefined;
      this.acked++;
    }
    if (this.#head === records.length) {
      records.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= records.length) {
      this.#records = records.slice(this.#head);
      this.#head = 0;
    }
    return true;
  }

  /** The unacknowledged records, oldest first, for a replay. */
  unacknowledged(): SerializedRecord[] {
    return this.#records.slice(this.#head) as SerializedRecord[];
  }

  /**
   * Counts one trackable message from the client; false for a duplicate, i.e. a message it
   * re-sent after a reattach that was already processed before the transport was lost.
   */
  receive(): boolean {
    const id = this.#nextReceiving++;
    if (id <= this.received) return false;
    this.received = id;
    return true;
  }

  /** The client's Sequence: its next message has id `id`. False when `id` skips messages never received. */
  sequence(id: number): boolean {
    if (id < 1 || id > this.received + 1) return false;
    this.#nextReceiving = id;
    return true;
  }
}
