import type { Backplane, BackplaneReceiver, BackplaneScope, CommandAnswer, ConnectionCommand, EncodedMessage, GroupDirectory, Page, PageOptions, SendTarget } from "@switchboard/core";
import type { RedisBackplane } from "@switchboard/redis";

/**
 * A {@link RedisBackplane} that also counts what crosses it: sends this server published, and
 * sends of other servers that Redis brought to this server and the backplane handed on. The
 * counts are two increments per send; everything else is the Redis backplane as applications
 * run it (its group directory included).
 */
export class CountingBackplane implements Backplane, GroupDirectory {
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
      command: (hub: string, command: ConnectionCommand): Promise<CommandAnswer | undefined> => receiver.command(hub, command),
      memberships: () => receiver.memberships(),
    });
  }

  publish(hub: string, target: SendTarget, message: EncodedMessage): Promise<void> {
    this.published++;
    return this.#inner.publish(hub, target, message);
  }

  command(hub: string, command: ConnectionCommand): Promise<CommandAnswer> {
    return this.#inner.command(hub, command);
  }

  track(hub: string, group: string, connectionId: string, joined: boolean): void {
    this.#inner.track(hub, group, connectionId, joined);
  }

  count(hub: string, group: string): Promise<number> {
    return this.#inner.count(hub, group);
  }

  has(hub: string, group: string, connectionId: string): Promise<boolean> {
    return this.#inner.has(hub, group, connectionId);
  }

  groupsOf(hub: string, connectionId: string): Promise<readonly string[]> {
    return this.#inner.groupsOf(hub, connectionId);
  }

  members(hub: string, group: string, page: PageOptions): Promise<Page> {
    return this.#inner.members(hub, group, page);
  }

  groups(hub: string, page: PageOptions): Promise<Page> {
    return this.#inner.groups(hub, page);
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
