/**
 * Open connections per remote address, for `maxConnectionsPerAddress`. A connection holds its slot
 * from the moment it is accepted for processing until its socket or stream ends.
 */
export class AddressLimit {
  readonly #max: number;
  readonly #counts = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  /** Takes a slot for `address`; false (nothing taken) when it already holds the maximum. */
  acquire(address: string | undefined): boolean {
    const key = address ?? "";
    const count = this.#counts.get(key) ?? 0;
    if (count >= this.#max) return false;
    this.#counts.set(key, count + 1);
    return true;
  }

  release(address: string | undefined): void {
    const key = address ?? "";
    const count = this.#counts.get(key);
    if (count === undefined) return;
    if (count <= 1) this.#counts.delete(key);
    else this.#counts.set(key, count - 1);
  }

  /** Addresses holding at least one slot. */
  get size(): number {
    return this.#counts.size;
  }
}
