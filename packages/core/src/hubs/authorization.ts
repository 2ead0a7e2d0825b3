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
 *
 * Inheritance: requirements add up. A hub needs every class-level `@Authorize` of its class and
 * base classes; a method needs every `@Authorize` on any declaration of it in the chain (an
 * override without decorators keeps its base's), plus the hub's unless `@AllowAnonymous()`.
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

/**
 * On a method of an `@Authorize` hub: the hub's (class-level) requirements do not apply to this
 * method. Method-level `@Authorize` still does. Only the most derived declaration counts: an
 * override must repeat `@AllowAnonymous()` to stay open, so a subclass never opens a method by accident.
 */
export function AllowAnonymous(): MethodDecorator {
  return (target, propertyKey) => {
    ownMap<true>(target, kAllowAnonymous).set(propertyKey, true);
  };
}

/** Merges requirements: every policy of every one must pass (the union of their policy names). */
function union(all: readonly AuthorizeData[]): AuthorizeData | undefined {
  if (all.length === 0) return undefined;
  if (all.length === 1) return all[0];
  return { policies: [...new Set(all.flatMap((data) => data.policies))] };
}

/**
 * The class-level `@Authorize` of a hub: the union over the class and every base class up to `Hub`
 * (a subclass cannot drop a base's requirement), or undefined when none declares it.
 */
export function hubAuthorization(hubClass: object): AuthorizeData | undefined {
  const found: AuthorizeData[] = [];
  for (let type: object | null = hubClass; type !== null && type !== Function.prototype; type = Object.getPrototypeOf(type)) {
    if (Object.hasOwn(type, kAuthorize)) found.push((type as Bag)[kAuthorize] as AuthorizeData);
  }
  return union(found);
}

/**
 * Method-level authorization of `key` over a prototype chain (`chain[0]` most derived):
 * `authorize` is the union of every `@Authorize` on any declaration of the method (an override
 * without decorators keeps its base's); `allowAnonymous` is read from the most derived
 * declaration only, so an override that does not repeat `@AllowAnonymous()` is protected again.
 */
export function methodAuthorization(chain: readonly object[], key: string): { authorize?: AuthorizeData; allowAnonymous: boolean } {
  const found: AuthorizeData[] = [];
  let allowAnonymous: boolean | undefined;
  for (const proto of chain) {
    if (!Object.hasOwn(proto, key)) continue;
    const data = Object.hasOwn(proto, kAuthorize) ? ((proto as Bag)[kAuthorize] as Map<string | symbol, AuthorizeData>).get(key) : undefined;
    if (data !== undefined) found.push(data);
    allowAnonymous ??= Object.hasOwn(proto, kAllowAnonymous) && ((proto as Bag)[kAllowAnonymous] as Map<string | symbol, true>).has(key);
  }
  const authorize = union(found);
  return authorize === undefined ? { allowAnonymous: allowAnonymous ?? false } : { authorize, allowAnonymous: allowAnonymous ?? false };
}
