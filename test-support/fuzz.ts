/**
 * Shared pieces of the property-based (fuzz) tests: hub message arbitraries, random chunking and
 * byte mutations. `npm test` runs a bounded number of cases; `npm run fuzz` sets FUZZ_RUNS higher.
 */
import fc from "fast-check";
import { expect, it } from "vitest";
import { SwitchboardError, type HubMessage, type HubProtocol } from "@switchboard/core";

/** Cases per property: small in `npm test`, large under `npm run fuzz`. */
export const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
/**
 * `npm test` explores the same cases every run (a fixed seed), so CI never fails by the luck of the
 * draw; `npm run fuzz` (FUZZ_RUNS set) draws a new seed each run, and FUZZ_SEED replays one.
 */
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : process.env.FUZZ_RUNS === undefined ? 20261204 : undefined;
export const fuzzParameters = { numRuns: RUNS, seed: SEED };

/**
 * A JSON value as it survives an encode/decode: no -0, no undefined, and no `__proto__` key (the
 * MessagePack parser refuses those by design; their handling has tests of its own).
 */
const value = fc
  .jsonValue({ maxDepth: 4 })
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown)
  .filter((v) => !JSON.stringify(v).includes('"__proto__"'));
const id = fc.string({ minLength: 1, maxLength: 12 });
const headers = fc.option(fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== "__proto__"), fc.string({ maxLength: 8 }), { minKeys: 1, maxKeys: 3 }), { nil: undefined }); // the writers omit empty headers

function withoutUndefined<T extends object>(message: T): T {
  return Object.fromEntries(Object.entries(message).filter(([, v]) => v !== undefined)) as T;
}

/** Every message type a client sends (what the server's parsers must read back exactly). */
export const hubMessage: fc.Arbitrary<HubMessage> = fc
  .oneof(
    fc.record({ type: fc.constant(1 as const), headers, invocationId: fc.option(id, { nil: undefined }), target: id, arguments: fc.array(value, { maxLength: 4 }), streamIds: fc.option(fc.array(id, { minLength: 1, maxLength: 2 }), { nil: undefined }) }),
    fc.record({ type: fc.constant(2 as const), headers, invocationId: id, item: value }),
    fc.record({ type: fc.constant(3 as const), headers, invocationId: id, error: fc.string({ maxLength: 20 }) }),
    fc.record({ type: fc.constant(3 as const), headers, invocationId: id, hasResult: fc.constant(true), result: value }),
    fc.record({ type: fc.constant(3 as const), headers, invocationId: id }),
    fc.record({ type: fc.constant(4 as const), headers, invocationId: id, target: id, arguments: fc.array(value, { maxLength: 4 }) }),
    fc.record({ type: fc.constant(5 as const), headers, invocationId: id }),
    fc.constant({ type: 6 as const }),
    fc.record({ type: fc.constant(7 as const), error: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), allowReconnect: fc.option(fc.constant(true), { nil: undefined }) }),
    fc.record({ type: fc.constant(8 as const), sequenceId: fc.nat() }),
    fc.record({ type: fc.constant(9 as const), sequenceId: fc.nat() }),
  )
  .map((message) => withoutUndefined(message) as HubMessage);

/** Splits `bytes` at the given cut points (each taken modulo its length), keeping every byte. */
export function chunk(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => (bytes.length === 0 ? 0 : cut % bytes.length)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    if (point <= start) continue;
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  pieces.push(bytes.subarray(start));
  return pieces;
}

/** One edit of a byte string: flip, overwrite, insert, delete or truncate. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
);

export type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;
export const mutations = fc.array(mutation, { minLength: 1, maxLength: 6 });

export function mutate(input: Uint8Array, edits: readonly Mutation[]): Uint8Array {
  let bytes = Buffer.from(input);
  for (const edit of edits) {
    const at = bytes.length === 0 ? 0 : edit.at % bytes.length;
    switch (edit.kind) {
      case "set":
        if (bytes.length > 0) bytes[at] = edit.byte;
        break;
      case "flip":
        if (bytes.length > 0) bytes[at]! ^= 1 << edit.bit;
        break;
      case "insert":
        bytes = Buffer.concat([bytes.subarray(0, at), edit.bytes, bytes.subarray(at)]);
        break;
      case "delete":
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + edit.count)]);
        break;
      case "truncate":
        bytes = bytes.subarray(0, at);
        break;
    }
  }
  return bytes;
}

/** Hex string (spaces allowed) → bytes, for the captured vectors of signalr-protocol.md §10. */
export function hex(text: string): Uint8Array {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

/**
 * Feeds `pieces` to `parse` and returns what came out, or the error it threw, which must be one of
 * the documented parser errors (a `SwitchboardError`: InvalidMessageError, MessageTooLargeError,
 * NestingTooDeepError). Anything else (TypeError, RangeError…) fails the property.
 */
export function feed(pieces: readonly Uint8Array[], parse: (data: Uint8Array, out: HubMessage[]) => void): { messages: HubMessage[]; error?: SwitchboardError } {
  const messages: HubMessage[] = [];
  try {
    for (const piece of pieces) parse(piece, messages);
  } catch (error) {
    if (!(error instanceof SwitchboardError)) throw new Error(`The parser threw an undocumented error: ${String(error)}`, { cause: error });
    return { messages, error };
  }
  return { messages };
}

/**
 * The two properties every hub protocol parser shares: it reads back exactly what its encoder
 * wrote however the stream is cut, and it throws nothing but the documented errors on mutated
 * captured frames (`vectors`). Call inside a `describe`.
 */
export function itHasTheParserProperties(protocol: HubProtocol, vectors: readonly Uint8Array[]): void {
  const parseWith = () => {
    const parser = protocol.createParser({ maxMessageSize: 32 * 1024, maxDepth: 64 });
    return (data: Uint8Array, out: unknown[]) => parser.parse(data, (message) => out.push(message));
  };

  it("reads back exactly what the encoder wrote, however the stream is cut", () => {
    fc.assert(
      fc.property(fc.array(hubMessage, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (messages, cuts) => {
        const bytes = Buffer.concat(messages.map((message) => protocol.write(message)));
        const { messages: read, error } = feed(chunk(bytes, cuts), parseWith());
        expect(error).toBeUndefined();
        expect(read).toEqual(messages);
      }),
      fuzzParameters,
    );
  });

  it("never throws anything but the documented errors on mutated captured frames", () => {
    fc.assert(
      fc.property(fc.constantFrom(...vectors), mutations, fc.array(fc.nat(), { maxLength: 6 }), (vector, edits, cuts) => {
        feed(chunk(mutate(vector, edits), cuts), parseWith());
      }),
      fuzzParameters,
    );
  });
}
