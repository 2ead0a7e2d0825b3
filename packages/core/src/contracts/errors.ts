/** Error codes are stable across versions; match on `code`, not on the message. */
export type ErrorCode =
  | "SB_ERR_INVALID_MESSAGE"
  | "SB_ERR_LIMIT_MESSAGE_TOO_LARGE"
  | "SB_ERR_LIMIT_DEPTH"
  | "SB_ERR_LIMIT_BUFFERED_BYTES"
  | "SB_ERR_HANDSHAKE"
  | "SB_ERR_HUB_METHOD_NOT_FOUND"
  | "SB_ERR_HUB_ARGUMENTS"
  | "SB_ERR_HUB"
  | "SB_ERR_HUB_DEFINITION"
  | "SB_ERR_DI"
  | "SB_ERR_OPTIONS"
  | "SB_ERR_GROUP_NAME"
  | "SB_ERR_SERVER_CLOSED"
  | "SB_ERR_CORE_MISMATCH"
  | "SB_ERR_TIMEOUT"
  | "SB_ERR_GROUP_PERSIST"
  | "SB_ERR_REJOIN_KEY"
  | "SB_ERR_LIMIT_STREAMS"
  | "SB_ERR_STREAM_CANCELED"
  | "SB_ERR_CONNECTION_CLOSED"
  | "SB_ERR_CLIENT_RESULT"
  | "SB_ERR_BACKPLANE";

/** Base of every Switchboard error. The inner error, if any, is kept as ES `cause`. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A framing or syntax error in data from a client: the connection is closed. */
export class InvalidMessageError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SB_ERR_INVALID_MESSAGE", message, options);
  }
}

/** A client sent a record larger than `maxMessageSize`: the connection is closed. */
export class MessageTooLargeError extends SwitchboardError {
  readonly limit: number;
  constructor(limit: number) {
    super("SB_ERR_LIMIT_MESSAGE_TOO_LARGE", `The maximum message size of ${limit}B was exceeded.`);
    this.limit = limit;
  }
}

/** A client sent data nested deeper than `maxDepth`: the connection is closed. */
export class NestingTooDeepError extends SwitchboardError {
  constructor(limit: number) {
    super("SB_ERR_LIMIT_DEPTH", `The maximum nesting depth of ${limit} was exceeded.`);
  }
}

/**
 * Thrown by a hub method to send its message to the caller as the invocation error, verbatim.
 * Any other error reaches the client only as a generic text (unless `detailedErrors` is on).
 */
export class HubError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SB_ERR_HUB", message, options);
  }
}

/** A hub class or method is declared in a way the server cannot serve (found at startup). */
export class HubDefinitionError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SB_ERR_HUB_DEFINITION", message, options);
  }
}

/** A hub or service could not be constructed by the DI container. */
export class DependencyResolutionError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SB_ERR_DI", message, options);
  }
}

/** Invalid server options, found at construction. */
export class OptionsError extends SwitchboardError {
  constructor(message: string) {
    super("SB_ERR_OPTIONS", message);
  }
}

/** A connection ended because its client went silent past `clientTimeout` or `disconnectTimeout`. */
export class ConnectionTimeoutError extends SwitchboardError {
  constructor(message: string) {
    super("SB_ERR_TIMEOUT", message);
  }
}

/** A group name that is not a non-empty string. */
export class GroupNameError extends SwitchboardError {
  constructor() {
    super("SB_ERR_GROUP_NAME", "A group name must be a non-empty string.");
  }
}

/**
 * Two different copies of `@switchboard/core` met in one process (e.g. a transport built against
 * another core than the server's): found when the plugin is set up, never at the first request.
 */
export class CoreMismatchError extends SwitchboardError {
  constructor(message: string) {
    super("SB_ERR_CORE_MISMATCH", message);
  }
}

/** `groups.add/remove(…, { persist: true })` for a connection that is not here or has no user. */
export class GroupPersistError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SB_ERR_GROUP_PERSIST", message, options);
  }
}

/** The `rejoin` option is on without a usable key (none, or one shorter than 32 bytes); found at construction. */
export class RejoinKeyError extends SwitchboardError {
  constructor(message: string) {
    super("SB_ERR_REJOIN_KEY", message);
  }
}

/** A send could not be handed to the other servers (the backplane is down or unreachable). Local recipients got it. */
export class BackplaneError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SB_ERR_BACKPLANE", message, options);
  }
}
