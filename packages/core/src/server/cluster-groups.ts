import type { GroupDirectory, Page, PageOptions } from "../contracts/backplane.js";
import { pageLimit, type ClusterGroups } from "../fan-out/group-manager.js";
import { checkGroupName } from "../fan-out/group-registry.js";

/** `groups.cluster` of a hub whose backplane keeps a {@link GroupDirectory}: every server's members. */
export class DirectoryClusterGroups implements ClusterGroups {
  readonly #hub: string;
  readonly #directory: GroupDirectory;

  constructor(hub: string, directory: GroupDirectory) {
    this.#hub = hub;
    this.#directory = directory;
  }

  count(group: string): Promise<number> {
    return checked(() => checkGroupName(group), () => this.#directory.count(this.#hub, group));
  }

  has(group: string, connectionId: string): Promise<boolean> {
    return checked(() => checkGroupName(group), () => this.#directory.has(this.#hub, group, connectionId));
  }

  groupsOf(connectionId: string): Promise<readonly string[]> {
    return this.#directory.groupsOf(this.#hub, connectionId);
  }

  members(group: string, page: PageOptions = {}): Promise<Page> {
    return checked(
      () => (checkGroupName(group), pageLimit(page)),
      (limit) => this.#directory.members(this.#hub, group, { cursor: page.cursor, limit }),
    );
  }

  list(page: PageOptions = {}): Promise<Page> {
    return checked(
      () => pageLimit(page),
      (limit) => this.#directory.groups(this.#hub, { cursor: page.cursor, limit }),
    );
  }
}

/** Runs `check` (which may throw a usage error) and then `query`, as one promise. */
function checked<C, T>(check: () => C, query: (checked: C) => Promise<T>): Promise<T> {
  try {
    return query(check());
  } catch (error) {
    return Promise.reject(error);
  }
}
