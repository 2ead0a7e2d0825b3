/**
 * connections/ — one connection's life: the handshake, parsing what the transport hands in, the
 * per-connection invocation queue (receive back-pressure), the outbox flushed once per turn,
 * keep-alive and client timeout, closing; the store of negotiated connection tokens; and stateful
 * reconnect (the replay buffer, the reconnect window, resuming on a new transport).
 *
 * A connection talks to its transport only through `TransportConnection` and to the rest of the
 * server through `ConnectionHost` (implemented by the hub endpoint). Must not know hub classes,
 * dispatch, the pipeline or server options beyond `ConnectionOptions`.
 */
export { newId } from "./connection-store.js";
export type { HubConnection } from "./hub-connection.js";
