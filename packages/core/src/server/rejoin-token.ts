import { createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import { OptionsError, RejoinKeyError } from "../contracts/errors.js";
import type { UsedTokenStore } from "../contracts/used-token-store.js";

/** Query parameter a client sets (to `1`) on its connect request to receive rejoin messages. */
export const REJOIN_QUERY = "sb_rejoin";
/** Query parameter carrying a rejoin token on the connect request. */
export const REJOIN_TOKEN_QUERY = "sb_rejoin_token";
/** Client method the server calls with a fresh rejoin token (a string), or null when there is nothing to rejoin. */
export const REJOIN_TOKEN_METHOD = "sb.rejoinToken";
/** Client method the server calls once per connection, first, with the group names restored (an array, maybe empty). */
export const REJOINED_METHOD = "sb.rejoined";

/** Shortest accepted key, in bytes (HMAC-SHA256 gains nothing from more than 64). */
export const MIN_REJOIN_KEY_BYTES = 32;
const VERSION = "v1";
const SIGNATURE_CHARS = 43; // base64url of 32 bytes, unpadded

/** The `rejoin` server option. */
export interface RejoinOptions {
  /**
   * HMAC-SHA256 keys, at least 32 bytes each (a string counts its UTF-8 bytes). The first signs,
   * every one verifies: put a new key first and keep the old one until its tokens expired.
   */
  readonly keys: readonly (string | Uint8Array)[];
  /** How long a token stays valid, in milliseconds. Default 3 600 000 (one hour). */
  readonly ttl?: number;
  /** Most groups a token carries; a connection in more gets no token (logged). Default 100. */
  readonly maxGroups?: number;
  /** Longest token accepted or issued, in characters (it travels in a URL). Default 8 192. */
  readonly maxTokenLength?: number;
  /** Anonymous tokens remembered as used until they expire; past it, anonymous tokens are refused. Default 100 000. */
  readonly maxUsedTokens?: number;
  /**
   * Where every server of a farm records used anonymous tokens (e.g. `RedisUsedTokens`), so one
   * accepted anywhere is refused everywhere, also after a restart. Default: this process only.
   */
  readonly usedTokens?: UsedTokenStore;
}

export const REJOIN_DEFAULTS = { ttl: 3_600_000, maxGroups: 100, maxTokenLength: 8192, maxUsedTokens: 100_000 } as const;

/** Who a token was issued to: a user, or (anonymous) the connection it was issued on. */
export type RejoinPrincipal = { readonly user: string } | { readonly connectionId: string };

/** The verified contents of a token. */
export interface RejoinClaim {
  readonly hub: string;
  readonly principal: RejoinPrincipal;
  readonly groups: readonly string[];
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** Why a token was refused (logged; never the token itself). */
export type RejoinRefusal = "malformed" | "too large" | "bad signature" | "expired" | "other hub" | "other user" | "replayed" | "replay memory full" | "replay check failed";

function keyBytes(key: unknown, index: number): Buffer {
  const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : key instanceof Uint8Array ? Buffer.from(key) : undefined;
  if (bytes === undefined) throw new RejoinKeyError(`rejoin.keys[${index}] must be a string or bytes.`);
  if (bytes.length < MIN_REJOIN_KEY_BYTES) {
    throw new RejoinKeyError(`rejoin.keys[${index}] is ${bytes.length} bytes; a rejoin key needs at least ${MIN_REJOIN_KEY_BYTES} (e.g. 32 random bytes as hex).`);
  }
  return bytes;
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) throw new RejoinKeyError(`rejoin.${name} must be a positive integer, got ${String(value)}.`);
  return value;
}

/**
 * Signs and verifies rejoin tokens: `v1.<payload>.<signature>`, base64url, where the payload is the
 * JSON array `[hub, kind, principal, groups, issuedAt, expiresAt]` (kind `u` for a user id, `c`
 * for an anonymous connection's id) and the signature HMAC-SHA256 over `v1.<payload>`.
 *
 * `verify` never throws: any input gives a claim or a refusal. Size is checked before any work.
 */
export class RejoinTokens {
  readonly ttl: number;
  readonly maxGroups: number;
  readonly maxTokenLength: number;
  readonly #keys: readonly Buffer[];
  readonly #maxUsed: number;
  /** Anonymous tokens used, by the connection id they were issued on → expiry (seconds). */
  readonly #used = new Map<string, number>();
  /** The farm's shared memory of used tokens, when there is one. */
  readonly usedTokens: UsedTokenStore | undefined;

  constructor(options: RejoinOptions) {
    if (options === null || typeof options !== "object" || !Array.isArray(options.keys) || options.keys.length === 0) {
      throw new RejoinKeyError("Option 'rejoin' needs 'keys': at least one secret of 32 bytes or more.");
    }
    this.#keys = options.keys.map(keyBytes);
    this.ttl = positiveInteger("ttl", options.ttl ?? REJOIN_DEFAULTS.ttl);
    this.maxGroups = positiveInteger("maxGroups", options.maxGroups ?? REJOIN_DEFAULTS.maxGroups);
    this.maxTokenLength = positiveInteger("maxTokenLength", options.maxTokenLength ?? REJOIN_DEFAULTS.maxTokenLength);
    this.#maxUsed = positiveInteger("maxUsedTokens", options.maxUsedTokens ?? REJOIN_DEFAULTS.maxUsedTokens);
    if (options.usedTokens !== undefined && typeof options.usedTokens?.claim !== "function") {
      throw new OptionsError("Option 'rejoin.usedTokens' needs a 'claim(hub, id, expiresAt)' function (see the UsedTokenStore contract).");
    }
    this.usedTokens = options.usedTokens;
  }

  #sign(body: string, key: Buffer): string {
    return createHmac("sha256", key).update(body).digest("base64url");
  }

  /** A token for `groups`, or undefined when it would exceed `maxGroups` or `maxTokenLength`. */
  issue(hub: string, principal: RejoinPrincipal, groups: readonly string[], now = Date.now()): string | undefined {
    if (groups.length > this.maxGroups) return undefined;
    const issuedAt = Math.floor(now / 1000);
    const expiresAt = Math.floor((now + this.ttl) / 1000);
    const kind = "user" in principal ? "u" : "c";
    const id = "user" in principal ? principal.user : principal.connectionId;
    const payload = Buffer.from(JSON.stringify([hub, kind, id, groups, issuedAt, expiresAt]), "utf8").toString("base64url");
    const body = `${VERSION}.${payload}`;
    const token = `${body}.${this.#sign(body, this.#keys[0]!)}`;
    return token.length > this.maxTokenLength ? undefined : token;
  }

  /** Checks signature, shape and expiry (not who presents it: see {@link accept}). */
  verify(token: unknown, now = Date.now()): RejoinClaim | RejoinRefusal {
    if (typeof token !== "string") return "malformed";
    if (token.length > this.maxTokenLength) return "too large";
    const first = token.indexOf(".");
    const last = token.lastIndexOf(".");
    if (first === last || token.slice(0, first) !== VERSION) return "malformed";
    const body = token.slice(0, last);
    const signature = token.slice(last + 1);
    if (signature.length !== SIGNATURE_CHARS || !/^[A-Za-z0-9_-]+$/.test(signature)) return "malformed";
    const given = Buffer.from(signature, "base64url");
    let valid = false;
    for (const key of this.#keys) {
      const expected = createHmac("sha256", key).update(body).digest();
      if (given.length === expected.length && timingSafeEqual(given, expected)) valid = true;
    }
    if (!valid) return "bad signature";
    const claim = parsePayload(body.slice(first + 1), this.maxGroups);
    if (claim === undefined) return "malformed";
    if (claim.expiresAt * 1000 <= now) return "expired";
    return claim;
  }

  /**
   * Whether `claim` may restore groups for this connection: same hub, same user (a user's token
   * never serves another user or an anonymous caller, and an anonymous token never a user), and an
   * anonymous token only once.
   */
  accept(claim: RejoinClaim, hub: string, user: string | null, now = Date.now()): RejoinRefusal | undefined {
    if (claim.hub !== hub) return "other hub";
    const principal = claim.principal;
    if ("user" in principal) return principal.user === user ? undefined : "other user";
    if (user !== null) return "other user";
    const id = principal.connectionId;
    if (this.#used.has(id)) return "replayed";
    const seconds = Math.floor(now / 1000);
    if (this.#used.size >= this.#maxUsed) {
      for (const [used, expiry] of this.#used) if (expiry <= seconds) this.#used.delete(used);
      if (this.#used.size >= this.#maxUsed) return "replay memory full";
    }
    this.#used.set(id, claim.expiresAt);
    return undefined;
  }
}

function parsePayload(payload: string, maxGroups: number): RejoinClaim | undefined {
  if (payload.length === 0 || !/^[A-Za-z0-9_-]+$/.test(payload)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 6) return undefined;
  const [hub, kind, id, groups, issuedAt, expiresAt] = value as unknown[];
  if (typeof hub !== "string" || typeof id !== "string" || id.length === 0 || (kind !== "u" && kind !== "c")) return undefined;
  if (!Number.isSafeInteger(issuedAt) || !Number.isSafeInteger(expiresAt)) return undefined;
  if (!Array.isArray(groups) || groups.length > maxGroups) return undefined;
  for (const group of groups) if (typeof group !== "string" || group.length === 0) return undefined;
  const principal: RejoinPrincipal = kind === "u" ? { user: id } : { connectionId: id };
  return { hub, principal, groups: [...new Set(groups as string[])], issuedAt: issuedAt as number, expiresAt: expiresAt as number };
}
