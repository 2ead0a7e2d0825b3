/**
 * fan-out/ — from an address to queued bytes: the client proxies hubs send through
 * (`clients.group(x).send(…)`), the group manager and group registry (groups indexed both ways),
 * the in-memory `HubLifetimeManager` that walks only a send's recipients, the per-send
 * `SerializedMessage` (one encode per protocol) and the `FlushScheduler` that writes each
 * connection's queue once per event-loop turn, after the group sends it deferred (one walk of the
 * group that writes to each member).
 *
 * This is the hot path: no allocation per recipient, no scan of all connections. It sees a
 * connection only as a `Recipient` (id, groups, user, protocol index, `enqueue`, `deliverNow`). Must not know
 * hubs, the pipeline, transports or how a connection is read or closed.
 */
export * from "./clients.js";
export * from "./group-manager.js";
export * from "./lifetime-manager.js";
