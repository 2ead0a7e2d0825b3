import type { RequestContext } from "./request-context.js";

/** Who a request or connection is, as returned by the server's `authenticate` option (claims). */
export type Principal = { readonly [claim: string]: unknown };

/** What a hub method knows about the connection that called it. One object per connection. */
export interface HubCallerContext {
  /** The public id of the calling connection. */
  readonly connectionId: string;
  /** The user this connection belongs to (from `userIdProvider`), or null. */
  readonly userIdentifier: string | null;
  /** The principal from the server's `authenticate` option, or null when anonymous. */
  readonly user: Principal | null;
  /** State kept for the life of the connection. */
  readonly items: Map<unknown, unknown>;
  /** The HTTP request the connection was made with (headers, query, cookies, remote address), read-only. */
  readonly request: RequestContext;
  /** Closes the connection; the client is told not to reconnect. */
  abort(): void;
}
