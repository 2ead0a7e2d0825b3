/**
 * The send stamp every end-to-end message carries as its first argument, so a client can take a
 * latency sample without parsing the message: `~` + flag + round (10 digits) + send time in
 * microseconds (16 digits). The flag is `L` on the last message of a round (burst) and `M` on the
 * others. `~` appears nowhere else in any benchmark message, so counting `~` bytes counts
 * messages in a text frame, however many records it holds.
 *
 * Times come from `process.hrtime()`, CLOCK_MONOTONIC, which every process on the machine shares.
 */
export const STAMP_MARK = 0x7e; // "~"
export const STAMP_LENGTH = 28;
export const LAST_FLAG = 0x4c; // "L"

/** Microseconds on the machine-wide monotonic clock. */
export function nowMicros(): number {
  const [seconds, nanos] = process.hrtime();
  return seconds * 1e6 + Math.floor(nanos / 1e3);
}

export function stamp(last: boolean, round: number, micros: number): string {
  return `~${last ? "L" : "M"}${String(round).padStart(10, "0")}${String(micros).padStart(16, "0")}`;
}

/** Reads `count` ASCII digits at `offset`. */
export function readDigits(bytes: Uint8Array, offset: number, count: number): number {
  let value = 0;
  for (let i = offset; i < offset + count; i++) value = value * 10 + (bytes[i]! - 48);
  return value;
}

/** The send time of the stamp whose `~` is at `mark`. */
export function stampMicros(bytes: Uint8Array, mark: number): number {
  return readDigits(bytes, mark + 12, 16);
}

/** A payload string of `bytes` ASCII bytes (no `~`). */
export function payloadOf(bytes: number): string {
  return "x".repeat(bytes);
}
