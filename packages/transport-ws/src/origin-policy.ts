import type { IncomingMessage, ServerResponse } from "node:http";
import { OptionsError } from "@switchboard/core";

/** Origins: exact origins (`https://app.example.com`), `"*"` for any, or a predicate of the request's `Origin`. */
export type OriginList = readonly string[] | "*" | ((origin: string) => boolean);

/** Cross-origin access for browsers to negotiate and the Server-Sent Events and long-polling endpoints. */
export interface CorsOptions {
  /** Origins whose pages may connect. `"*"` needs `credentials: false` (browsers refuse `*` with credentials). */
  readonly origins: OriginList;
  /**
   * Let browsers send cookies and read the answers of credentialed requests
   * (`Access-Control-Allow-Credentials: true`; the official client sends credentials by default).
   * Default true with a list or function, false with `"*"`.
   */
  readonly credentials?: boolean;
  /** Seconds a browser may cache a preflight answer. Default 600. */
  readonly maxAge?: number;
}

type OriginMatcher = (origin: string) => boolean;

function matcher(list: OriginList, name: string): OriginMatcher {
  if (list === "*") return () => true;
  if (typeof list === "function") {
    return (origin) => {
      try {
        return list(origin) === true;
      } catch {
        return false; // fail closed
      }
    };
  }
  if (!Array.isArray(list)) throw new OptionsError(`Option '${name}' must be a list of origins, "*" or a function.`);
  const allowed = new Set<string>();
  for (const entry of list) {
    let origin: string;
    try {
      origin = new URL(entry).origin;
    } catch {
      origin = "";
    }
    if (typeof entry !== "string" || origin === "null" || origin !== entry.toLowerCase().replace(/\/$/, "")) {
      throw new OptionsError(`Option '${name}' holds '${String(entry)}', which is not an origin such as 'https://app.example.com'.`);
    }
    allowed.add(origin);
  }
  return (origin) => allowed.has(origin.toLowerCase());
}

/** True when `origin` is the origin the request was sent to (same host and port; any scheme, for TLS-terminating proxies). */
function sameOrigin(req: IncomingMessage, origin: string): boolean {
  const host = req.headers.host;
  if (host === undefined || origin === "null") return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

const ALLOW_METHODS = "GET, POST, DELETE";
/** What the official client sends cross-origin (§11.2), allowed when a preflight names no headers. */
const DEFAULT_HEADERS = "x-requested-with, x-signalr-user-agent, authorization, content-type";
const MAX_REQUEST_HEADERS_LENGTH = 1024;

/**
 * Who may use the HTTP edge from a browser. Requests without an `Origin` (non-browser clients)
 * and same-origin requests always pass. Cross-origin HTTP requests pass when `cors` lists the
 * origin, and get CORS headers — never `Access-Control-Allow-Origin` reflecting any origin
 * together with credentials. WebSocket upgrades, which browsers do not CORS-check, pass when
 * `allowedOrigins` lists the origin (default: the `cors` origins, unless those are `"*"`).
 */
export class OriginPolicy {
  readonly #cors: OriginMatcher | undefined;
  readonly #corsAny: boolean;
  readonly #credentials: boolean;
  readonly #maxAge: string;
  readonly #upgrades: OriginMatcher | undefined;

  constructor(cors: CorsOptions | undefined, allowedOrigins: OriginList | undefined) {
    if (cors !== undefined) {
      if (cors === null || typeof cors !== "object") throw new OptionsError("Option 'cors' must be an object with 'origins'.");
      this.#cors = matcher(cors.origins, "cors.origins");
      this.#corsAny = cors.origins === "*";
      this.#credentials = cors.credentials ?? !this.#corsAny;
      if (this.#corsAny && this.#credentials) {
        throw new OptionsError("Option 'cors': origins \"*\" cannot be combined with credentials (any site could act with your users' cookies); list the origins instead.");
      }
      const maxAge = cors.maxAge ?? 600;
      if (!Number.isSafeInteger(maxAge) || maxAge < 0) throw new OptionsError("Option 'cors.maxAge' must be a whole number of seconds.");
      this.#maxAge = String(maxAge);
    } else {
      this.#corsAny = false;
      this.#credentials = false;
      this.#maxAge = "600";
    }
    if (allowedOrigins !== undefined) this.#upgrades = matcher(allowedOrigins, "allowedOrigins");
    else if (this.#cors !== undefined && !this.#corsAny) this.#upgrades = this.#cors;
  }

  /** May a WebSocket upgrade with these headers proceed? (Cross-site WebSocket hijacking guard.) */
  upgradeAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || sameOrigin(req, origin)) return true;
    return this.#upgrades?.(origin) ?? false;
  }

  /**
   * Checks a plain HTTP request and sets its CORS response headers. False: the origin is not
   * allowed, and the request must be refused (403).
   */
  allow(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || sameOrigin(req, origin)) return true;
    if (this.#cors === undefined || !this.#cors(origin)) return false;
    if (this.#corsAny) {
      res.setHeader("Access-Control-Allow-Origin", "*");
    } else {
      res.setHeader("Access-Control-Allow-Origin", origin);
      res.setHeader("Vary", "Origin");
      if (this.#credentials) res.setHeader("Access-Control-Allow-Credentials", "true");
    }
    return true;
  }

  /** Answers a CORS preflight (`OPTIONS`): 204 with the allowed methods and headers, or 403. */
  preflight(req: IncomingMessage, res: ServerResponse): number {
    if (req.headers.origin !== undefined && !this.allow(req, res)) return 403;
    const requested = req.headers["access-control-request-headers"];
    // The origin is trusted: the headers its page asks for (custom `headers` of the client included) are allowed.
    const headers = typeof requested === "string" && requested.length > 0 && requested.length <= MAX_REQUEST_HEADERS_LENGTH && /^[\w\-, ]+$/.test(requested) ? requested : DEFAULT_HEADERS;
    res.setHeader("Access-Control-Allow-Methods", ALLOW_METHODS);
    res.setHeader("Access-Control-Allow-Headers", headers);
    res.setHeader("Access-Control-Max-Age", this.#maxAge);
    res.setHeader("Allow", `${ALLOW_METHODS}, OPTIONS`);
    if (!this.#corsAny) res.setHeader("Vary", "Origin, Access-Control-Request-Headers");
    return 204;
  }
}
