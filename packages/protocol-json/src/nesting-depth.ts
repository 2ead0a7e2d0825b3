const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }

/**
 * Tells whether the JSON text in `bytes` nests arrays and objects deeper than `maxDepth`, in one
 * linear pass and without parsing, so a deep payload is refused before `JSON.parse` builds it.
 *
 * Depth counts open containers: the top-level message object is depth 1, its `arguments` array
 * depth 2, an array passed as an argument depth 3 (the System.Text.Json convention, where the
 * default limit 64 admits 64 nested containers and refuses 65). Brackets inside strings are not
 * counted; the structural bytes are ASCII, so they never occur inside a multi-byte UTF-8 sequence.
 * On malformed JSON the count may be off, but `JSON.parse` refuses such text anyway.
 */
export function exceedsNestingDepth(bytes: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === BACKSLASH) i++; // skips the escaped byte, e.g. \" or \\
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
      if (++depth > maxDepth) return true;
    } else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}
