/**
 * pipeline/ — modules around a hub's stages: the `HubModule` and `RejoinModule` contracts and
 * their contexts, `@UseModules`, the `HubPipeline` that composes them in onion order (a stage
 * with no module costs nothing), and the shipped modules (`LoggingModule`, `RateLimitModule`).
 *
 * Must not know connections, transports, the lifetime manager or the server: modules see a hub
 * instance, the caller context and the message, never the socket.
 */
export * from "./hub-module.js";
export * from "./use-modules.js";
export * from "./hub-pipeline.js";
export * from "./logging-module.js";
export * from "./rate-limit-module.js";
