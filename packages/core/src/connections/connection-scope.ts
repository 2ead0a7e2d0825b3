import type { DependencyContainer } from "tsyringe";

/**
 * A set that keeps nothing. tsyringe records every instance with a `dispose()` method that a
 * container constructs, for that container's `dispose()`; the server never disposes connection
 * scopes (that would also dispose singletons first resolved through them), so the record would
 * only grow: one entry per hub invocation with a transient disposable dependency.
 */
class KeepsNothing<T> extends Set<T> {
  override add(): this {
    return this;
  }
}
const KEEPS_NOTHING = new KeepsNothing<unknown>();

/** The DI scope of one connection: a child container that does not accumulate disposables. */
export function createConnectionScope(parent: DependencyContainer): DependencyContainer {
  const scope = parent.createChildContainer();
  const internal = scope as unknown as { disposables?: unknown };
  if (internal.disposables instanceof Set) internal.disposables = KEEPS_NOTHING;
  return scope;
}
