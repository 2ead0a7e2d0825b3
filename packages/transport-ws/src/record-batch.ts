import type { SerializedRecord } from "@switchboard/core";

/**
 * The bytes of the last multi-record message joined in this flush pass. Members of a group that
 * got a burst flush one after another with the very same records, so the message is joined once
 * per pass, not once per recipient. Dropped when the pass ends.
 */
let last: { readonly records: SerializedRecord[]; readonly bytes: Buffer } | undefined;
let dropQueued = false;
function drop(): void {
  last = undefined;
  dropQueued = false;
}

/** Records `[0, count)` joined into one buffer (shared with other recipients of the same burst: never mutate it). */
export function joinRecords(records: readonly SerializedRecord[], count: number): Buffer {
  const batch = last;
  if (batch !== undefined && batch.records.length === count) {
    let same = true;
    for (let i = 0; i < count && same; i++) same = batch.records[i] === records[i];
    if (same) return batch.bytes;
  }
  let size = 0;
  for (let i = 0; i < count; i++) size += records[i]!.bytes.length;
  const bytes = Buffer.allocUnsafe(size);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    bytes.set(records[i]!.bytes, offset);
    offset += records[i]!.bytes.length;
  }
  last = { records: records.slice(0, count), bytes };
  if (!dropQueued) {
    dropQueued = true;
    queueMicrotask(drop);
  }
  return bytes;
}
