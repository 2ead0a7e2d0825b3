import type { HubCallerContext, Principal } from "./hub-caller-context.js";

/** What a policy sees for a hub method call. */
export interface PolicyContext {
  readonly hubName: string;
  readonly methodName: string;
  readonly arguments: readonly unknown[];
  readonly connection: HubCallerContext;
}

/**
 * A named authorization rule: a plain function of the principal and the invocation. Register it
 * under the server's `policies` option and name it in `@Authorize("name")`.
 */
export type AuthorizationPolicy = (user: Principal, context: PolicyContext) => boolean | Promise<boolean>;

/** Authorization recorded on a hub class or method. */
export interface AuthorizeData {
  /** Policy names that must all pass (empty: being authenticated is enough). */
  readonly policies: readonly string[];
}

export const kAuthorize = Symbol("switchboard.authorize");
export const kAllowAnonymous = Symbol("switchboard.allowAnonymous");

type Bag = Record<symbol, unknown>;

function ownMap<V>(target: object, key: symbol): Map<string | symbol, V> {
  if (!Object.hasOwn(target, key)) Object.defineProperty(target, key, { value: new Map(), configurable: true });
  return (target as Bag)[key] as Map<string | symbol, V>;
}

/**
 * On a hub class: connections must be authenticated (else HTTP 401 at negotiate and connect), and
 * with policies, every method call must pass them (except `@AllowAnonymous()` methods).
 * On a method: calling it needs an authenticated user passing the policies; otherwise the client
 * gets `Failed to invoke 'X' because user is unauthorized` and the connection stays open.
 */
export function Authorize(...policies: string[]): ClassDecorator & MethodDecorator {
  for (const policy of policies) {
    if (typeof policy !== "string" || policy.length === 0) throw new TypeError("@Authorize(policy) needs non-empty policy names.");
  }
  const data: AuthorizeData = { policies };
  return ((target: object, propertyKey?: string | symbol) => {
    if (propertyKey === undefined) Object.defineProperty(target, kAuthorize, { value: data, configurable: true });
    else ownMap<AuthorizeData>(target, kAuthorize).set(propertyKey, data);
  }) as ClassDecorator & MethodDecorator;
}

/** On a method of an `@Authorize` hub: the hub's policies do not apply to this method. */
export function AllowAnonymous(): MethodDecorator {
  return (target, propertyKey) => {
    ownMap<true>(target, kAllowAnonymous).set(propertyKey, true);
  };
}

/** The class-level `@Authorize` data of a hub, if any. */
export function hubAuthorization(hubClass: object): AuthorizeData | undefined {
  return Object.hasOwn(hubClass, kAuthorize) ? ((hubClass as Bag)[kAuthorize] as AuthorizeData) : undefined;
}

/** Method-level authorization recorded on `proto` for `key`: `@Authorize` data and `@AllowAnonymous`. */
export function methodAuthorization(proto: object, key: string): { authorize?: AuthorizeData; allowAnonymous: boolean } {
  const authorize = Object.hasOwn(proto, kAuthorize) ? ((proto as Bag)[kAuthorize] as Map<string | symbol, AuthorizeData>).get(key) : undefined;
  const allowAnonymous = Object.hasOwn(proto, kAllowAnonymous) ? ((proto as Bag)[kAllowAnonymous] as Map<string | symbol, true>).has(key) : false;
  return authorize === undefined ? { allowAnonymous } : { authorize, allowAnonymous };
}
