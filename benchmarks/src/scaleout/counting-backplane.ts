import type { Backplane, BackplaneReceiver, BackplaneScope, EncodedMessage, GroupCommand, SendTarget } from "@switchboard/core";
import type { RedisBackplane } from "@switchboard/redis";

/**
 * A {@link RedisBackplane} that also counts what crosses it: sends this server published, and
 * sends of other servers that Redis brought to this server and the backplane handed on. The
 * counts are two increments per send; everything else is the Redis backplane as applications
 * run it.
 */
export class CountingBackplane implements Backplane {
  readonly #inner: RedisBackplane;
  /** `publish` calls (one per send that may have recipients elsewhere). */
  published = 0;
  /** Sends of other servers delivered to this one (its own, echoed by Redis, are dropped before). */
  received = 0;

  constructor(inner: RedisBackplane) {
    this.#inner = inner;
  }

  start(receiver: BackplaneReceiver): Promise<void> {
    return this.#inner.start({
      deliver: (hub: string, target: SendTarget, message: EncodedMessage): void => {
        this.received++;
        receiver.deliver(hub, target, message);
      },
      groupCommand: (hub: string, command: GroupCommand): Promise<boolean> => receiver.groupCommand(hub, command),
    });
  }

  publish(hub: string, target: SendTarget, message: EncodedMessage): Promise<void> {
    this.published++;
    return this.#inner.publish(hub, target, message);
  }

  groupCommand(hub: string, command: GroupCommand): Promise<void> {
    return this.#inner.groupCommand(hub, command);
  }

  subscribe(hub: string, scope: BackplaneScope, key: string): void {
    this.#inner.subscribe(hub, scope, key);
  }

  unsubscribe(hub: string, scope: BackplaneScope, key: string): void {
    this.#inner.unsubscribe(hub, scope, key);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  /** Settles once Redis has confirmed every subscription so far (joins subscribe asynchronously). */
  subscribed(): Promise<void> {
    return this.#inner.subscribed();
  }
}
