import type { SwitchboardServer } from "@switchboard/core";
import { HttpTransport, type HttpTransportOptions } from "./http-transport.js";

/** Options of a {@link WebSocketTransport}: those of {@link HttpTransport}, WebSockets only by default. */
export type WebSocketTransportOptions = HttpTransportOptions;

/**
 * The WebSockets-only edge Switchboard shipped first: an {@link HttpTransport} whose `transports`
 * default to `["WebSockets"]`, so negotiate offers what it always did. Use `HttpTransport` to
 * also serve Server-Sent Events and long polling.
 */
export class WebSocketTransport extends HttpTransport {
  constructor(server: SwitchboardServer, options: WebSocketTransportOptions = {}) {
    super(server, { ...options, transports: options.transports ?? ["WebSockets"] });
  }
}
