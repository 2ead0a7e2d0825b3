/**
 * contracts/ — what plugins implement and what travels on the wire: the SignalR hub messages, the
 * `HubProtocol` a codec implements, the `TransportConnection` a transport implements (and the
 * shared `SerializedRecord` it writes), the `HubLifetimeManager` a backplane implements (and the
 * `Recipient` it delivers to), the `Backplane` and `GroupDirectory` of scale-out, the
 * `MembershipStore` persisted groups live in, the `UsedTokenStore` of single-use rejoin tokens, the
 * `SendTarget` a send is addressed to, errors and `Logger`.
 *
 * Owns no behaviour beyond small value types. Must not know any other folder of the core, any
 * codec (JSON, MessagePack) or any transport library (`ws`): everything else builds on it.
 */
export * from "./hub-messages.js";
export * from "./hub-protocol.js";
export * from "./transport.js";
export * from "./send-target.js";
export * from "./hub-lifetime-manager.js";
export * from "./backplane.js";
export * from "./membership-store.js";
export * from "./used-token-store.js";
export * from "./errors.js";
export * from "./logger.js";
export * from "./server-observer.js";
