/**
 * hubs/ — the hub model: the `Hub` base class and `@Hub` decorator, `@HubMethod`/`@NotHubMethod`,
 * `@Authorize`/`@AllowAnonymous` metadata and policies, the caller context a hub method sees, and
 * the hub descriptor (the dispatch table built once per hub class at startup).
 *
 * Decorators only record metadata; nothing here runs per call. Must not know connections,
 * transports, the pipeline or the server; it knows fan-out only as the `clients` and `groups`
 * interfaces a hub uses.
 */
export * from "./hub.js";
export * from "./hub-caller-context.js";
export * from "./request-context.js";
export * from "./authorization.js";
export { UploadStream } from "./upload-stream.js";
export type { HubDescriptor, HubMethodDescriptor, HubMethodExposure } from "./hub-descriptor.js";
