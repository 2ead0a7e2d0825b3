import type { NegotiateResponse, PendingConnection } from "./hub-endpoint.js";

// What endpoints answer transports with: a Refusal, or an admission (a pending connection or a
// negotiate body) branded by `admitted`. The package exports the checks, not `admitted`.
// Brands of what `negotiate` and `admit` return. `Symbol.for` keys are shared by every copy of
// this package in a process, so a transport recognizes answers of a core it was not built with;
// `instanceof` does not, and a refusal it failed to recognize would have let the request in.
const kRefusal = Symbol.for("switchboard.core.refusal");
const kAdmission = Symbol.for("switchboard.core.admission");
const REFUSAL_STATUSES: ReadonlySet<unknown> = new Set([401, 403, 404, 409, 429, 503]);

/** A request refused before any connection exists: the transport answers with this HTTP status. */
export class Refusal {
  readonly status: 401 | 403 | 404 | 409 | 429 | 503;
  readonly reason: string;
  constructor(status: 401 | 403 | 404 | 409 | 429 | 503, reason: string) {
    this.status = status;
    this.reason = reason;
    Object.defineProperty(this, kRefusal, { value: true });
    Object.freeze(this);
  }
}

/**
 * True for a {@link Refusal} made by any copy of `@switchboard/core` (checked by brand, not
 * `instanceof`), with a status a transport knows. Transports must treat an answer that is neither
 * this nor {@link isAdmission} as a server error and let nothing through.
 */
export function isRefusal(value: unknown): value is Refusal {
  return (
    value !== null &&
    typeof value === "object" &&
    (value as Record<symbol, unknown>)[kRefusal] === true &&
    REFUSAL_STATUSES.has((value as Refusal).status) &&
    typeof (value as Refusal).reason === "string"
  );
}

/**
 * True for a genuine admission: a {@link PendingConnection} from `admit` or a
 * {@link NegotiateResponse} from `negotiate`, made by any copy of `@switchboard/core`. A
 * look-alike object is not one: transports let a request in only on this check.
 */
export function isAdmission(value: unknown): value is PendingConnection | NegotiateResponse {
  return value !== null && typeof value === "object" && (value as Record<symbol, unknown>)[kAdmission] === true;
}

/** Brands `value` as an admission (a non-enumerable key: JSON.stringify never sees it). */
export function admitted<T extends object>(value: T): T {
  return Object.defineProperty(value, kAdmission, { value: true });
}
