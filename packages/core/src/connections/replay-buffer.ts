import type { SerializedRecord } from "../contracts/transport.js";

/** Slots of a new ring; it doubles when full. */
const MIN_SLOTS = 16;
/**
 * A ring that empties with more slots than this is dropped, so a connection that once held many
 * records does not keep their slots; smaller rings are kept and reused.
 */
const KEEP_SLOTS = 1024;

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
  /**
   * Unacknowledged records, oldest first from `#head`, in a ring whose length is a power of two
   * (empty until the first push). A ring, not an array grown by `push` and cut by the Acks: a
   * connection that gets a burst every few milliseconds and an Ack every second would reallocate
   * its array many times a second, and every one of those copies outlives a scavenge.
   */
  #slots: (SerializedRecord | undefined)[] = [];
  #head = 0;
  #count = 0;
  /** A record was pushed since the last {@link trim}. */
  #pushed = false;
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
    let slots = this.#slots;
    if (this.#count === slots.length) slots = this.#grow();
    slots[(this.#head + this.#count++) & (slots.length - 1)] = record;
    this.#pushed = true;
    this.bytes += record.bytes.length;
    this.sent++;
  }

  /** Drops the records up to and including `id`; false when `id` was never sent. */
  ack(id: number): boolean {
    if (id > this.sent) return false;
    const slots = this.#slots;
    const mask = slots.length - 1;
    let head = this.#head;
    while (this.acked < id) {
      this.bytes -= slots[head]!.bytes.length;
      slots[head] = undefined;
      head = (head + 1) & mask;
      this.#count--;
      this.acked++;
    }
    this.#head = head;
    if (this.#count === 0 && slots.length > KEEP_SLOTS) this.#release();
    return true;
  }

  /** Slots the ring holds (its memory), whether or not records fill them. */
  get capacity(): number {
    return this.#slots.length;
  }

  /**
   * Called periodically (the connection's keep-alive tick): an empty ring that nothing was pushed
   * into since the last call is released, so an idle connection keeps no slots; a busy one keeps
   * its ring between the Acks that empty it.
   */
  trim(): void {
    if (this.#count === 0 && !this.#pushed) this.#release();
    this.#pushed = false;
  }

  /** Gives the empty ring's memory back; the next push starts a new one. */
  #release(): void {
    this.#slots = [];
    this.#head = 0;
  }

  /** The unacknowledged records, oldest first, for a replay. */
  unacknowledged(): SerializedRecord[] {
    const slots = this.#slots;
    const records = new Array<SerializedRecord>(this.#count);
    for (let i = 0; i < this.#count; i++) records[i] = slots[(this.#head + i) & (slots.length - 1)]!;
    return records;
  }

  /** Twice the slots (at least {@link MIN_SLOTS}), the records moved to the front in order. */
  #grow(): (SerializedRecord | undefined)[] {
    const old = this.#slots;
    const slots = new Array<SerializedRecord | undefined>(Math.max(MIN_SLOTS, old.length * 2)).fill(undefined);
    for (let i = 0; i < this.#count; i++) slots[i] = old[(this.#head + i) & (old.length - 1)];
    this.#slots = slots;
    this.#head = 0;
    return slots;
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
