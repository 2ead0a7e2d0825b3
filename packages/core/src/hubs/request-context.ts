import type { ConnectionRequest, TransportType } from "../contracts/transport.js";

/**
 * The HTTP request a connection was made with, as hubs and modules see it (ASP.NET's
 * `Context.GetHttpContext()`), read-only. For long polling it is the first poll's request.
 */
export interface RequestContext {
  /**
   * Lower-cased request headers (frozen), without those only the transport uses (`connection`,
   * `upgrade`, `sec-websocket-key`, `sec-websocket-version`, `sec-websocket-extensions`).
   */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Query parameters (the first value of each name); a `ReadonlyMap`, not necessarily a `Map`. */
  readonly query: ReadonlyMap<string, string>;
  /** Cookies of the `Cookie` header, percent-decoded where valid (the first value of each name). */
  readonly cookies: ReadonlyMap<string, string>;
  /** The peer's IP address as the socket saw it (a proxy's, behind one). */
  readonly remoteAddress: string | undefined;
  /** The transport the connection runs on, when the transport says. */
  readonly transport: TransportType | undefined;
}

const NO_COOKIES: ReadonlyMap<string, string> = new Map();

/** Parses a `Cookie` header: `a=1; b=2`. Malformed pairs are skipped; a bad escape keeps the raw value. */
export function parseCookies(header: string | string[] | undefined): ReadonlyMap<string, string> {
  const text = Array.isArray(header) ? header.join("; ") : header;
  if (text === undefined || text.length === 0) return NO_COOKIES;
  const cookies = new Map<string, string>();
  for (const pair of text.split(";")) {
    const equals = pair.indexOf("=");
    if (equals === -1) continue;
    const name = pair.slice(0, equals).trim();
    if (name.length === 0 || cookies.has(name)) continue;
    let value = pair.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value.includes("%")) {
      try {
        value = decodeURIComponent(value);
      } catch {
        // not percent-encoded after all: keep the raw text
      }
    }
    cookies.set(name, value);
  }
  return cookies;
}

/** A {@link RequestContext} over a transport's {@link ConnectionRequest}; cookies are parsed on first use. */
export class ConnectionRequestContext implements RequestContext {
  readonly #request: ConnectionRequest;
  #cookies: ReadonlyMap<string, string> | undefined;

  constructor(request: ConnectionRequest) {
    this.#request = request;
    if (!Object.isFrozen(request.headers)) Object.freeze(request.headers);
  }

  get headers(): Readonly<Record<string, string | string[] | undefined>> {
    return this.#request.headers;
  }
  get query(): ReadonlyMap<string, string> {
    return this.#request.query;
  }
  get cookies(): ReadonlyMap<string, string> {
    return (this.#cookies ??= parseCookies(this.#request.headers.cookie));
  }
  get remoteAddress(): string | undefined {
    return this.#request.remoteAddress;
  }
  get transport(): TransportType | undefined {
    return this.#request.transport;
  }
}
