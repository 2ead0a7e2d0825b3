import { expect } from "vitest";
import type { HubMessage, ParserLimits, SwitchboardError } from "@switchboard/core";
import { JsonHubProtocol } from "../src/index.js";

/** The record separator as text. */
export const RS = "\u001e";

/** Defaults of the reliability plan: 32 KiB messages, depth 64. */
export const LIMITS: ParserLimits = { maxMessageSize: 32 * 1024, maxDepth: 64 };

export const protocol = new JsonHubProtocol();

export function bytes(input: string | Uint8Array): Uint8Array {
  return typeof input === "string" ? new Uint8Array(Buffer.from(input, "utf8")) : input;
}

/** A null-prototype copy of `entries`, the shape parsed headers have. */
export function nullProto(entries: Record<string, string>): Record<string, string> {
  const copy = Object.create(null) as Record<string, string>;
  for (const key of Object.keys(entries)) copy[key] = entries[key] as string;
  return copy;
}

export function hex(data: Uint8Array): string {
  return Buffer.from(data).toString("hex");
}

export function fromHex(spaced: string): Uint8Array {
  return new Uint8Array(Buffer.from(spaced.replace(/ /g, ""), "hex"));
}

/** Feeds the chunks to one fresh parser and returns what it handed over, plus the error if any. */
export function feed(
  chunks: ReadonlyArray<string | Uint8Array>,
  limits: ParserLimits = LIMITS,
): { messages: HubMessage[]; error: unknown } {
  const parser = protocol.createParser(limits);
  const messages: HubMessage[] = [];
  try {
    for (const chunk of chunks) parser.parse(bytes(chunk), (message) => messages.push(message));
  } catch (error) {
    return { messages, error };
  }
  return { messages, error: undefined };
}

/** Feeds chunks that must parse cleanly. */
export function parseAll(chunks: ReadonlyArray<string | Uint8Array>, limits: ParserLimits = LIMITS): HubMessage[] {
  const { messages, error } = feed(chunks, limits);
  expect(error).toBeUndefined();
  return messages;
}

/** Feeds chunks that must fail with `errorClass` and `code`; returns what was handed over first. */
export function parseFailing(
  chunks: ReadonlyArray<string | Uint8Array>,
  errorClass: new (...args: never[]) => SwitchboardError,
  code: string,
  limits: ParserLimits = LIMITS,
): { messages: HubMessage[]; error: SwitchboardError } {
  const { messages, error } = feed(chunks, limits);
  expect(error).toBeInstanceOf(errorClass);
  expect((error as SwitchboardError).code).toBe(code);
  return { messages, error: error as SwitchboardError };
}

/** Deterministic PRNG (mulberry32) for the random-split property tests. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts `data` at up to `maxCuts` random positions (duplicates allowed: they give empty chunks). */
export function randomSplit(data: Uint8Array, random: () => number, maxCuts: number): Uint8Array[] {
  const cutCount = Math.floor(random() * (maxCuts + 1));
  const cuts: number[] = [];
  for (let i = 0; i < cutCount; i++) cuts.push(Math.floor(random() * (data.length + 1)));
  cuts.sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const cut of cuts) {
    chunks.push(data.slice(start, cut));
    start = cut;
  }
  chunks.push(data.slice(start));
  return chunks;
}
