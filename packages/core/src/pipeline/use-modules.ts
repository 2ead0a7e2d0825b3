import type { HubModuleRegistration } from "./hub-module.js";

export const kModules = Symbol("switchboard.modules");

/** Per-hub pipeline modules; they run after the server's global modules, in this order. */
export function UseModules(...modules: HubModuleRegistration[]): ClassDecorator {
  return (target) => {
    Object.defineProperty(target, kModules, { value: modules, configurable: true });
  };
}

/** The modules a hub class declared with `@UseModules`. */
export function hubModules(hubClass: object): readonly HubModuleRegistration[] {
  return Object.hasOwn(hubClass, kModules) ? ((hubClass as Record<symbol, unknown>)[kModules] as HubModuleRegistration[]) : [];
}
