/**
 * server/ — the composition root: `SwitchboardServer` and its options, and one `HubEndpoint` per
 * hub path, which admits connections (negotiate, authentication, connection tokens), runs their
 * lifecycle hooks, dispatches invocations to hub methods (`hub-dispatcher.ts`) and hands sends to
 * the pipeline and the lifetime manager.
 *
 * The only folder that knows all the others; nothing imports it. Transports reach hubs and raw
 * connection handlers through `server.route(path)` (the `ConnectionEndpoint` contract).
 */
export * from "./options.js";
export * from "./hub-endpoint.js";
export * from "./server.js";
export * from "./rejoin-token.js";
export * from "./memory-membership-store.js";
export * from "./connection-endpoint.js";
export { ConnectionHandlerEndpoint, type ConnectionHandler, type ConnectionHandlerOptions, type RawConnection } from "./connection-handler-endpoint.js";
