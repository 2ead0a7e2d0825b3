import "reflect-metadata";
import { HubDefinitionError } from "../contracts/errors.js";
import { Hub, hubPathOf, kMethodName, kNotHubMethod, type HubClass } from "./hub.js";
import { hubAuthorization, methodAuthorization, type AuthorizeData } from "./authorization.js";
import { UploadStream } from "./upload-stream.js";

/** How an argument is checked before the method runs (from emitted `design:paramtypes`). */
export type ParameterKind = "number" | "string" | "boolean" | "array" | "any";

/** Where one parameter of a hub method gets its value. */
export type ParameterSource = "argument" | "stream" | "signal";

/** One invocable hub method, found once at startup. */
export interface HubMethodDescriptor {
  /** The name clients invoke (as declared; matched case-insensitively). */
  readonly name: string;
  readonly invoke: (...args: unknown[]) => unknown;
  /**
   * Exact count of arguments the client sends (`UploadStream` and `AbortSignal` parameters not
   * counted). Without emitted types: the method's declared parameter count, streams included.
   */
  readonly parameterCount: number;
  /** Per-argument checks, when the method was decorated (so TypeScript emitted its types). */
  readonly parameters: readonly ParameterKind[] | undefined;
  /**
   * Where the call's parameters come from, when the method was decorated: a client argument, an
   * upload stream (`UploadStream` parameter) or the invocation's abort signal (`AbortSignal`).
   * Undefined without emitted types: the upload streams then follow the client's arguments.
   */
  readonly layout: readonly ParameterSource[] | undefined;
  /** Authorization every call must pass (the hub's unless `@AllowAnonymous`, then the method's), or none. */
  readonly authorization: readonly AuthorizeData[];
}

/** The dispatch table of a hub class. */
export interface HubDescriptor {
  readonly hubClass: HubClass;
  readonly name: string;
  readonly path: string;
  /** Lower-cased public name → method. A `Map`, so client strings never reach `Object.prototype`. */
  readonly methods: ReadonlyMap<string, HubMethodDescriptor>;
  readonly hasOnConnected: boolean;
  readonly hasOnDisconnected: boolean;
  readonly hasOnReconnected: boolean;
  /** Class-level `@Authorize`: connections must be authenticated. */
  readonly authorize: AuthorizeData | undefined;
}

const LIFECYCLE = new Set(["constructor", "onConnected", "onDisconnected", "onReconnected"]);

function kindOf(type: unknown): ParameterKind {
  if (type === Number) return "number";
  if (type === String) return "string";
  if (type === Boolean) return "boolean";
  if (type === Array) return "array";
  return "any";
}

function sourceOf(type: unknown): ParameterSource {
  if (type === UploadStream) return "stream";
  if (type === AbortSignal) return "signal";
  return "argument";
}

/** What tsyringe records for `@inject(token)` parameters (its reflection-helpers key). */
const INJECTION_TOKENS = "injectionTokens";

/**
 * A hub whose constructor takes parameters is built by the DI container from the parameter types
 * TypeScript emits. Without `emitDecoratorMetadata` there are none and the hub would fail only at
 * its first invocation: say so at startup, with the fix.
 */
function checkConstructorMetadata(hubClass: HubClass): void {
  const count = hubClass.length;
  if (count === 0 || Reflect.getMetadata("design:paramtypes", hubClass) !== undefined) return;
  const tokens = (Reflect.getOwnMetadata(INJECTION_TOKENS, hubClass) ?? {}) as Record<string, unknown>;
  let injected = 0;
  for (let i = 0; i < count; i++) if (Object.hasOwn(tokens, String(i))) injected++;
  if (injected === count) return; // every parameter has @inject(token): nothing to infer
  throw new HubDefinitionError(
    `Hub '${hubClass.name}' has ${count} constructor parameter${count === 1 ? "" : "s"} but no emitted parameter types, so the DI container cannot construct it. ` +
      'Set "experimentalDecorators": true and "emitDecoratorMetadata": true in tsconfig.json (a compiler that ignores them, such as plain esbuild, needs a decorator-metadata plugin), or give every parameter @inject(token).',
  );
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  return typeof value === "object" ? `an instance of ${value.constructor?.name ?? "Object"}` : `a ${typeof value}`;
}

/**
 * Which prototype methods clients may invoke: `"all"` (the default, as ASP.NET: every public method
 * except lifecycle methods and `@NotHubMethod()` ones) or `"decorated"` (only `@HubMethod()` ones).
 */
export type HubMethodExposure = "all" | "decorated";

function ownEntry<V>(proto: object, bag: symbol, key: string): V | undefined {
  return Object.hasOwn(proto, bag) ? (proto as Record<symbol, Map<string | symbol, V>>)[bag]!.get(key) : undefined;
}

/**
 * Builds the dispatch table of a `@Hub` class, walking its prototype chain up to `Hub`. Each method
 * is taken from its most derived declaration, but decorations on any declaration hold: a base's
 * `@NotHubMethod()` keeps an override hidden, a base's `@HubMethod(name)` keeps its name (unless the
 * override renames it) and counts as decorated, and `@Authorize` requirements add up.
 */
export function describeHub(hubClass: HubClass, explicitPath?: string, exposure: HubMethodExposure = "all"): HubDescriptor {
  if (typeof hubClass !== "function") {
    const hint = hubClass === undefined ? " (undefined often means a circular import)" : typeof hubClass === "object" ? " (pass the class, not an instance)" : "";
    throw new HubDefinitionError(`A hub must be a class decorated with @Hub("/path"), got ${describeValue(hubClass)}${hint}.`);
  }
  checkConstructorMetadata(hubClass);
  const path = explicitPath ?? hubPathOf(hubClass);
  if (path === undefined) {
    throw new HubDefinitionError(`Hub '${hubClass.name}' has no path: decorate it with @Hub("/path").`);
  }
  const methods = new Map<string, HubMethodDescriptor>();
  const hubAuthorize = hubAuthorization(hubClass);
  const chain: object[] = [];
  for (let proto = hubClass.prototype; proto && proto !== Hub.prototype && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) chain.push(proto);
  const hidden = new Set<string | symbol>();
  for (const proto of chain) {
    if (Object.hasOwn(proto, kNotHubMethod)) (proto as Record<symbol, Set<string | symbol>>)[kNotHubMethod]!.forEach((key) => hidden.add(key));
  }
  const seen = new Set<string>();
  for (const proto of chain) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (LIFECYCLE.has(key) || seen.has(key)) continue;
      seen.add(key); // a subclass's override shadows the base method
      const property = Object.getOwnPropertyDescriptor(proto, key)!;
      if (typeof property.value !== "function" || hidden.has(key)) continue;
      let renamed: string | undefined;
      let types: unknown[] | undefined;
      for (const declaring of chain) {
        renamed ??= ownEntry<string>(declaring, kMethodName, key);
        if (Object.hasOwn(declaring, key)) types ??= Reflect.getOwnMetadata("design:paramtypes", declaring, key) as unknown[] | undefined;
      }
      if (exposure === "decorated" && renamed === undefined) continue;
      const name = renamed ?? key;
      const lower = name.toLowerCase();
      if (methods.has(lower)) {
        throw new HubDefinitionError(`Hub '${hubClass.name}' has two methods named '${name}' (names are case-insensitive).`);
      }
      const fn = property.value as (...args: unknown[]) => unknown;
      const { authorize, allowAnonymous } = methodAuthorization(chain, key);
      const authorization: AuthorizeData[] = [];
      if (hubAuthorize !== undefined && !allowAnonymous) authorization.push(hubAuthorize);
      if (authorize !== undefined) authorization.push(authorize);
      const layout = types?.map(sourceOf);
      const argumentTypes = types?.filter((_, i) => layout![i] === "argument");
      methods.set(lower, {
        name,
        invoke: fn,
        parameterCount: argumentTypes ? argumentTypes.length : fn.length,
        parameters: argumentTypes?.map(kindOf),
        layout: layout?.includes("stream") || layout?.includes("signal") ? layout : undefined,
        authorization,
      });
    }
  }
  const prototype = hubClass.prototype as Record<string, unknown>;
  return {
    hubClass,
    name: hubClass.name,
    path,
    methods,
    hasOnConnected: typeof prototype.onConnected === "function",
    hasOnDisconnected: typeof prototype.onDisconnected === "function",
    hasOnReconnected: typeof prototype.onReconnected === "function",
    authorize: hubAuthorize,
  };
}

/**
 * Why `args` do not fit the method (for a debug log; never the values, only their types), or
 * undefined when they do. `parameter` is the name from the method's source when it can be read.
 */
export function bindingProblem(method: HubMethodDescriptor, args: readonly unknown[]): { parameter?: string; reason: string } | undefined {
  if (args.length !== method.parameterCount) {
    return { reason: `'${method.name}' takes ${method.parameterCount} argument${method.parameterCount === 1 ? "" : "s"}, the client sent ${args.length}` };
  }
  const kinds = method.parameters ?? [];
  for (let i = 0; i < kinds.length; i++) {
    if (argumentsMatch({ ...method, parameterCount: 1, parameters: [kinds[i]!] }, [args[i]])) continue;
    const value = args[i];
    const got = value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "number" ? "a non-finite number" : typeof value;
    const parameter = parameterNames(method.invoke)[i] ?? `#${i + 1}`;
    return { parameter, reason: `parameter '${parameter}' (#${i + 1}) expects ${kinds[i] === "array" ? "an array" : `a ${kinds[i]}`}, got ${got === "number" ? "a number" : got}` };
  }
  return undefined;
}

/** Best-effort parameter names from a function's source (failure path only: never per call). */
function parameterNames(fn: (...args: unknown[]) => unknown): string[] {
  const source = Function.prototype.toString.call(fn);
  const open = source.indexOf("(");
  if (open === -1) return [];
  const names: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < source.length; i++) {
    const c = source[i]!;
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    if ((c === "," && depth === 1) || depth === 0) {
      const name = /^\s*(?:\.\.\.)?([A-Za-z_$][\w$]*)/.exec(source.slice(start, i))?.[1];
      if (name !== undefined) names.push(name);
      start = i + 1;
      if (depth === 0) break;
    }
  }
  return names;
}

/**
 * The parameter list of one call, from the client's arguments, its upload streams and the
 * invocation's abort signal; undefined when they do not fit the method (count or types).
 */
export function callArguments(method: HubMethodDescriptor, args: readonly unknown[], streams: readonly UploadStream[], signal: AbortSignal): unknown[] | undefined {
  const layout = method.layout;
  if (layout === undefined) {
    if (method.parameters !== undefined) return streams.length === 0 && argumentsMatch(method, args) ? (args as unknown[]) : undefined;
    // No emitted types: the streams follow the arguments, and only the total count is known.
    if (args.length + streams.length !== method.parameterCount) return undefined;
    return streams.length === 0 ? (args as unknown[]) : [...args, ...streams];
  }
  if (!argumentsMatch(method, args)) return undefined;
  const call = new Array<unknown>(layout.length);
  let nextArgument = 0;
  let nextStream = 0;
  for (let i = 0; i < layout.length; i++) {
    const source = layout[i];
    call[i] = source === "argument" ? args[nextArgument++] : source === "stream" ? streams[nextStream++] : signal;
  }
  return nextStream === streams.length ? call : undefined;
}

/** True when `args` fit the method's declared parameters. */
export function argumentsMatch(method: HubMethodDescriptor, args: readonly unknown[]): boolean {
  if (args.length !== method.parameterCount) return false;
  const kinds = method.parameters;
  if (kinds === undefined) return true;
  for (let i = 0; i < kinds.length; i++) {
    const value = args[i];
    switch (kinds[i]) {
      case "number":
        if (typeof value !== "number" || !Number.isFinite(value)) return false;
        break;
      case "string":
        if (typeof value !== "string") return false;
        break;
      case "boolean":
        if (typeof value !== "boolean") return false;
        break;
      case "array":
        if (!Array.isArray(value)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}
