/*
 * Payload values as System.Text.Json writes them, so .NET, Java and JS clients read the same
 * values from Switchboard as from ASP.NET (signalr-protocol.md §5):
 * - a `Uint8Array` (and so a `Buffer`) is a base64 string, as `byte[]` is;
 * - a `Date` is ISO 8601 in UTC with the fraction's trailing zeros dropped, and no fraction at all
 *   when it is zero (`2000-01-01T00:00:00Z`); an invalid Date is `null`, as `JSON.stringify` has it.
 * A replacer makes `JSON.stringify` about 3× slower, so it is used only when a cheap walk finds
 * such a value; the walk costs nothing measurable on ordinary payloads.
 */

/** Deepest level the walk looks at; deeper values are beyond any parser limit anyway. */
const MAX_WALK_DEPTH = 128;

function hasNetValue(value: object, depth: number): boolean {
  if (value instanceof Date || value instanceof Uint8Array) return true;
  if (depth > MAX_WALK_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      if (element !== null && typeof element === "object" && hasNetValue(element, depth + 1)) return true;
    }
    return false;
  }
  for (const key in value) {
    const element: unknown = (value as Record<string, unknown>)[key];
    if (element !== null && typeof element === "object" && hasNetValue(element, depth + 1)) return true;
  }
  return false;
}

/** `2000-01-01T00:00:00.120Z` → `2000-01-01T00:00:00.12Z`; `.000Z` → `Z`. */
export function netDate(date: Date): string | null {
  if (!Number.isFinite(date.getTime())) return null;
  return date.toISOString().replace(/\.?0+Z$/, "Z");
}

function netReplacer(this: unknown, key: string, value: unknown): unknown {
  // `this[key]` is the value before its toJSON ran (Buffer and Date have one).
  const original = (this as Record<string, unknown>)[key];
  if (original instanceof Date) return netDate(original);
  if (original instanceof Uint8Array) return Buffer.from(original.buffer, original.byteOffset, original.byteLength).toString("base64");
  return value;
}

/** JSON for a payload (arguments, a stream item, a result); `undefined` becomes `null`, as in arrays. */
export function payloadJson(payload: unknown): string {
  const special = payload !== null && typeof payload === "object" && hasNetValue(payload, 0);
  return (special ? JSON.stringify(payload, netReplacer) : JSON.stringify(payload)) ?? "null";
}
