import type { SerializedRecord } from "../contracts/transport.js";

/** Slots of a new ring; it doubles when full. */
const MIN_SLOTS = 16;
/**
 * A ring that empties with more slots than this is dropped, so a connection that once held many
 * records does not keep their slots; smaller rings are kept and reused.
 */
const KEEP_SLOTS = 1024;
const NO_SIZES = new Uint32Array(0);
const NO_BYTES = new Float64Array(0);

/**
 * Stateful reconnect bookkeeping of one connection (../shared/signalr-protocol.md §8.2): the
 * trackable records sent but not yet acknowledged by the client, the sequence counters of both
 * directions, and the times the reconnect window and the first-frame hold began. Records are kept
 * by reference: a fan-out's record is shared by all its recipients and is never copied per
 * connection, and a group's burst (the one array every member gets) is kept as that array, one
 * entry per member and burst rather than one per record.
 *
 * Ids are implicit and consecutive from 1 in each direction, so the oldest unacknowledged record
 * is always `acked + 1`.
 */
export class ReplayBuffer {
  readonly #limit: number;
  /**
   * Unacknowledged entries, oldest first from `#head`, in a ring whose length is a power of two
   * (empty until the first push): a record, or a burst's array (`#sizes` tells which). A ring, not
   * an array grown by `push` and cut by the Acks: a connection that gets a burst every few
   * milliseconds and an Ack every second would reallocate its array many times a second, and every
   * one of those copies outlives a scavenge.
   */
  #slots: (SerializedRecord | readonly SerializedRecord[] | undefined)[] = [];
  /** Per slot: 0 for a record, else the number of records of the burst (its first ones). */
  #sizes: Uint32Array = NO_SIZES;
  /** Per slot: bytes of its records not yet acknowledged. Numbers, so storing one costs no write barrier. */
  #slotBytes: Float64Array = NO_BYTES;
  #head = 0;
  /** Entries in the ring. */
  #count = 0;
  /** Records of the oldest entry (a burst) acknowledged already. */
  #skip = 0;
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

  /** True when records of `bytes` in all may be sent at once: each of them would find room. */
  hasRoomFor(bytes: number): boolean {
    return this.bytes + bytes < this.#limit;
  }

  /** Records one sent trackable message. */
  push(record: SerializedRecord): void {
    const size = record.bytes.length;
    this.#store(record, 0, size);
    this.bytes += size;
    this.sent++;
  }

  /**
   * Records `records[0, count)` (`count` ≥ 1), sent together, as one entry: `bytes` is their total
   * length. The array is kept as it is, so it must not change afterwards (a group's burst never does).
   */
  pushBurst(records: readonly SerializedRecord[], count: number, bytes: number): void {
    if (count < 1) return; // an entry of size 0 would read as one record
    this.#store(records, count, bytes);
    this.bytes += bytes;
    this.sent += count;
  }

  #store(entry: SerializedRecord | readonly SerializedRecord[], size: number, bytes: number): void {
    if (this.#count === this.#slots.length) this.#grow();
    const slot = (this.#head + this.#count++) & (this.#slots.length - 1);
    this.#slots[slot] = entry;
    this.#sizes[slot] = size;
    this.#slotBytes[slot] = bytes;
    this.#pushed = true;
  }

  /** Drops the records up to and including `id`; false when `id` was never sent. */
  ack(id: number): boolean {
    if (id > this.sent) return false;
    const slots = this.#slots;
    const sizes = this.#sizes;
    const slotBytes = this.#slotBytes;
    const mask = slots.length - 1;
    let head = this.#head;
    while (this.acked < id) {
      const size = sizes[head]!;
      const left = (size === 0 ? 1 : size) - this.#skip;
      if (this.acked + left <= id) {
        this.bytes -= slotBytes[head]!;
        slots[head] = undefined;
        head = (head + 1) & mask;
        this.#count--;
        this.#skip = 0;
        this.acked += left;
      } else {
        // Part of a burst: the client acknowledged up to a record inside it.
        const records = slots[head] as readonly SerializedRecord[];
        const end = this.#skip + (id - this.acked);
        let dropped = 0;
        for (let i = this.#skip; i < end; i++) dropped += records[i]!.bytes.length;
        slotBytes[head]! -= dropped;
        this.bytes -= dropped;
        this.#skip = end;
        this.acked = id;
      }
    }
    this.#head = head;
    if (this.#count === 0 && slots.length > KEEP_SLOTS) this.#release();
    return true;
  }

  /** Slots the ring holds (its memory), whether or not entries fill them. */
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
    this.#sizes = NO_SIZES;
    this.#slotBytes = NO_BYTES;
    this.#head = 0;
  }

  /** The unacknowledged records, oldest first, for a replay. */
  unacknowledged(): SerializedRecord[] {
    const slots = this.#slots;
    const mask = slots.length - 1;
    const records = new Array<SerializedRecord>(this.sent - this.acked);
    let n = 0;
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) & mask;
      const size = this.#sizes[slot]!;
      if (size === 0) {
        records[n++] = slots[slot] as SerializedRecord;
        continue;
      }
      const burst = slots[slot] as readonly SerializedRecord[];
      for (let j = i === 0 ? this.#skip : 0; j < size; j++) records[n++] = burst[j]!;
    }
    return records;
  }

  /** Twice the slots (at least {@link MIN_SLOTS}), the entries moved to the front in order. */
  #grow(): void {
    const old = this.#slots;
    const length = Math.max(MIN_SLOTS, old.length * 2);
    const slots = new Array<SerializedRecord | readonly SerializedRecord[] | undefined>(length).fill(undefined);
    const sizes = new Uint32Array(length);
    const slotBytes = new Float64Array(length);
    for (let i = 0; i < this.#count; i++) {
      const from = (this.#head + i) & (old.length - 1);
      slots[i] = old[from];
      sizes[i] = this.#sizes[from]!;
      slotBytes[i] = this.#slotBytes[from]!;
    }
    this.#slots = slots;
    this.#sizes = sizes;
    this.#slotBytes = slotBytes;
    this.#head = 0;
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
