import type { HubMessage, MessageHeaders } from "@switchboard/core";
import { payloadJson } from "./net-values.js";
import { RECORD_SEPARATOR_CHAR } from "./text-framing.js";

/*
 * Server output mirrors ASP.NET's JsonHubProtocol (signalr-protocol.md §5 "Recommended server
 * output", §10.1 captured bytes): `type` first, then `headers` (only when non-empty), then the
 * message fields in ASP.NET's order, optional fields omitted. The record is built as one string
 * from JSON.stringify'd pieces: this runs once per protocol per broadcast, so no intermediate
 * message object is built.
 */

const PING_RECORD = `{"type":6}${RECORD_SEPARATOR_CHAR}`;


function hasOwnKeys(headers: MessageHeaders): boolean {
  for (const key in headers) {
    if (Object.hasOwn(headers, key)) return true;
  }
  return false;
}

function headersPart(headers: MessageHeaders | undefined): string {
  return headers !== undefined && hasOwnKeys(headers) ? `,"headers":${JSON.stringify(headers)}` : "";
}

function invocationIdPart(invocationId: string | undefined): string {
  return invocationId !== undefined ? `,"invocationId":${JSON.stringify(invocationId)}` : "";
}

/**
 * Encodes one message as JSON text followed by the record separator.
 *
 * @throws whatever `JSON.stringify` throws for a payload (a `TypeError` for BigInt values or
 * cycles, a `RangeError` for extreme nesting), and a `TypeError` for an unknown message type.
 */
export function writeJsonRecord(message: HubMessage): string {
  switch (message.type) {
    case 1:
    case 4:
      return (
        `{"type":${message.type}${headersPart(message.headers)}${invocationIdPart(message.invocationId)}` +
        `,"target":${JSON.stringify(message.target)},"arguments":${payloadJson(message.arguments)}` +
        (message.streamIds !== undefined && message.streamIds.length > 0
          ? `,"streamIds":${JSON.stringify(message.streamIds)}`
          : "") +
        `}${RECORD_SEPARATOR_CHAR}`
      );
    case 2:
      return (
        `{"type":2${headersPart(message.headers)}${invocationIdPart(message.invocationId)}` +
        `,"item":${payloadJson(message.item)}}${RECORD_SEPARATOR_CHAR}`
      );
    case 3: {
      // Exactly one of error / result / neither, never both (§11.1 gotcha 5).
      let outcome = "";
      if (message.error !== undefined) outcome = `,"error":${JSON.stringify(message.error)}`;
      else if (message.hasResult === true) outcome = `,"result":${payloadJson(message.result)}`;
      return (
        `{"type":3${headersPart(message.headers)}${invocationIdPart(message.invocationId)}` +
        `${outcome}}${RECORD_SEPARATOR_CHAR}`
      );
    }
    case 5:
      return (
        `{"type":5${headersPart(message.headers)}${invocationIdPart(message.invocationId)}}` +
        RECORD_SEPARATOR_CHAR
      );
    case 6:
      return PING_RECORD;
    case 7:
      return (
        `{"type":7${message.error !== undefined ? `,"error":${JSON.stringify(message.error)}` : ""}` +
        `${message.allowReconnect === true ? `,"allowReconnect":true` : ""}}${RECORD_SEPARATOR_CHAR}`
      );
    case 8:
    case 9:
      return `{"type":${message.type},"sequenceId":${JSON.stringify(message.sequenceId)}}${RECORD_SEPARATOR_CHAR}`;
    default:
      throw new TypeError("Cannot write a hub message of unknown type.");
  }
}
