// tsyringe needs the Reflect metadata polyfill before it loads; every entry point gets it from here.
import "reflect-metadata";
export * from "./hub-messages.js";
export * from "./hub-protocol.js";
export * from "./errors.js";
export * from "./transport.js";
export * from "./logger.js";
export * from "./options.js";
export * from "./hub.js";
export * from "./hub-caller-context.js";
export * from "./clients.js";
export * from "./group-manager.js";
export * from "./send-target.js";
export * from "./lifetime-manager.js";
export * from "./hub-endpoint.js";
export * from "./server.js";
export { newId } from "./connection-store.js";
export type { HubConnection } from "./hub-connection.js";
export type { HubDescriptor, HubMethodDescriptor } from "./hub-descriptor.js";
