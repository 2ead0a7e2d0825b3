/** Byte-vector plumbing shared by the protocol tests. */
import type { HubMessage, ParserLimits } from "@switchboard/core";
import { frame, MessagePackHubProtocol } from "../src/index.js";

/** The defaults of the reliability test plan: 32 KiB messages, depth 64. */
export const LIMITS: ParserLimits = { maxMessageSize: 32 * 1024, maxDepth: 64 };

/** `"07 95 03"` → bytes. */
export function hex(text: string): Uint8Array {
  const parts = text.trim().split(/\s+/).filter((part) => part !== "");
  return Uint8Array.from(parts, (part) => Number.parseInt(part, 16));
}

/** bytes → `"07 95 03"`. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

/** Frames an unframed body given in hex. */
export function framed(bodyHex: string): Uint8Array {
  return frame(hex(bodyHex));
}

export function concat(...chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Feeds `chunks` to one fresh parser; returns what was delivered and what was thrown, if anything. */
export function collect(
  chunks: readonly Uint8Array[],
  limits: ParserLimits = LIMITS,
  protocol = new MessagePackHubProtocol(),
): { messages: HubMessage[]; error: unknown } {
  const parser = protocol.createParser(limits);
  const messages: HubMessage[] = [];
  try {
    for (const chunk of chunks) parser.parse(chunk, (message) => messages.push(message));
  } catch (error) {
    return { messages, error };
  }
  return { messages, error: undefined };
}

/** Parses chunks that must be valid. */
export function parseAll(chunks: readonly Uint8Array[], limits: ParserLimits = LIMITS, protocol?: MessagePackHubProtocol): HubMessage[] {
  const { messages, error } = collect(chunks, limits, protocol);
  if (error !== undefined) throw error;
  return messages;
}

/** `heapUsed + external` (ArrayBuffers count as external) in bytes. */
export function memoryInUse(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}
