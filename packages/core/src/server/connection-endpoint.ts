import { OptionsError } from "../contracts/errors.js";
import { TRANSPORT_TYPES, type ConnectionHandle, type ConnectionRequest, type TransportConnection, type TransportType } from "../contracts/transport.js";
import type { AvailableTransport, NegotiateResponse, PendingConnection, Refusal } from "./hub-endpoint.js";

/**
 * What an HTTP transport needs from one path it serves, a hub or a raw connection handler:
 * negotiate, admission of a connect request, and starting the connection on its transport.
 * Reached through `server.route(path)`.
 */
export interface ConnectionEndpoint {
  /** The transports this path accepts: negotiate lists only these, and others are refused (404). */
  readonly transports: ReadonlySet<TransportType>;
  /** Answers `POST {path}/negotiate`: a body for HTTP 200, or a refusal. */
  negotiate(request: ConnectionRequest, availableTransports: readonly AvailableTransport[]): Promise<NegotiateResponse | Refusal>;
  /** Admits a connect request with a negotiated `token` (or none: a new connection); reserves it until `connect` or `abandon`. */
  admit(request: ConnectionRequest, token: string | undefined): Promise<PendingConnection | Refusal>;
  /** Starts the admitted connection on its now open transport. */
  connect(pending: PendingConnection, transport: TransportConnection, request: ConnectionRequest): ConnectionHandle;
  /** Gives back a reservation whose transport never opened. */
  abandon(pending: PendingConnection): void;
}

/** Checks a `transports` option: a non-empty list of known transport names, kept in negotiate order. */
export function transportList(value: readonly TransportType[] | undefined, what: string): readonly TransportType[] {
  if (value === undefined) return TRANSPORT_TYPES;
  if (!Array.isArray(value) || value.length === 0 || value.some((name) => !TRANSPORT_TYPES.includes(name))) {
    throw new OptionsError(`${what}: 'transports' must be a non-empty list of ${TRANSPORT_TYPES.map((name) => `'${name}'`).join(", ")}.`);
  }
  return TRANSPORT_TYPES.filter((name) => value.includes(name));
}
