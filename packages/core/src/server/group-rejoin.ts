import { MessageType, type InvocationMessage } from "../contracts/hub-messages.js";
import type { MembershipStore } from "../contracts/membership-store.js";
import type { HubConnection } from "../connections/hub-connection.js";
import { REJOINED_METHOD, REJOIN_QUERY, REJOIN_TOKEN_METHOD, REJOIN_TOKEN_QUERY, type RejoinRefusal, type RejoinTokens } from "./rejoin-token.js";
import type { UsedTokenStore } from "../contracts/used-token-store.js";
import type { HubEndpoint } from "./hub-endpoint.js";

/**
 * Puts a new connection back in its groups, and keeps rejoin clients supplied with tokens.
 *
 * At connect, the groups claimed by a rejoin token (`sb_rejoin_token` query parameter) and the
 * user's persisted groups pass through the `rejoiningGroups` module hook and are joined before the
 * connection's `onConnected` and first invocation. A client that asked for it (`sb_rejoin=1`) then
 * gets `sb.rejoined(groups)` first, and `sb.rejoinToken(token)` whenever its groups change (at most
 * once per event-loop turn). Plain clients get neither message, so they never see an unknown method.
 */
export class GroupRejoin {
  readonly #endpoint: HubEndpoint;
  readonly #tokens: RejoinTokens | undefined;
  readonly #store: MembershipStore;
  readonly #timeout: number;
  /** Connections that asked for rejoin messages. */
  readonly #optedIn = new Set<HubConnection>();
  /** Connections whose groups changed this turn. */
  readonly #changed = new Set<HubConnection>();
  #scheduled = false;

  constructor(endpoint: HubEndpoint) {
    this.#endpoint = endpoint;
    this.#tokens = endpoint.options.rejoin;
    this.#store = endpoint.options.membershipStore;
    this.#timeout = endpoint.options.membershipTimeout;
  }

  /** Runs at connect; undefined (nothing to wait for) when there is no token, no user and no opt-in. */
  restore(connection: HubConnection): Promise<void> | undefined {
    const query = connection.request.query;
    const optedIn = query.get(REJOIN_QUERY) === "1";
    const token = query.get(REJOIN_TOKEN_QUERY);
    const user = connection.userIdentifier;
    if (!optedIn && token === undefined && user === null) return undefined;
    if (optedIn) this.#optedIn.add(connection);
    return this.#restore(connection, optedIn, token, user).catch((error: unknown) => {
      this.#endpoint.logger.error({ hub: this.#endpoint.descriptor.name, connectionId: connection.connectionId, err: error }, "Restoring groups failed.");
    });
  }

  /** Forgets an ended connection. */
  ended(connection: HubConnection): void {
    this.#optedIn.delete(connection);
    this.#changed.delete(connection);
  }

  /** A group of `connectionId` changed: schedule a fresh token when that connection wants one. */
  changed(connectionId: string): void {
    if (this.#tokens === undefined || this.#optedIn.size === 0) return;
    const connection = this.#endpoint.lifetimeManager.connections.get(connectionId);
    if (connection === undefined || !this.#optedIn.has(connection)) return;
    this.#changed.add(connection);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#issueTokens());
  }

  async #restore(connection: HubConnection, optedIn: boolean, token: string | undefined, user: string | null): Promise<void> {
    const claimed = new Set<string>();
    if (token !== undefined && token.length > 0) await this.#claimFromToken(connection, token, user, claimed);
    if (user !== null) await this.#claimFromStore(connection, user, claimed);
    const restored: string[] = [];
    if (claimed.size > 0 && connection.connected) {
      for (const group of await this.#kept(connection, [...claimed])) {
        if (!connection.connected) break;
        try {
          this.#endpoint.lifetimeManager.addToGroup(connection.connectionId, group);
        } catch {
          break; // maxGroupsPerConnection reached: the remaining groups are not restored
        }
        restored.push(group);
      }
    }
    if (!optedIn || !connection.connected) return;
    this.#send(connection, REJOINED_METHOD, restored);
    if (restored.length > 0) this.changed(connection.connectionId);
  }

  async #claimFromToken(connection: HubConnection, token: string, user: string | null, claimed: Set<string>): Promise<void> {
    const hub = this.#endpoint.descriptor.name;
    const fields = { hub, connectionId: connection.connectionId };
    const tokens = this.#tokens;
    if (tokens === undefined) {
      this.#endpoint.logger.warn(fields, "A rejoin token was presented but the server has no 'rejoin' option; ignored.");
      return;
    }
    const claim = tokens.verify(token);
    let refusal = typeof claim === "string" ? claim : tokens.accept(claim, hub, user);
    if (refusal === undefined && typeof claim !== "string" && "connectionId" in claim.principal && tokens.usedTokens !== undefined) {
      refusal = await this.#claimShared(tokens.usedTokens, hub, claim.principal.connectionId, claim.expiresAt);
    }
    if (refusal !== undefined) {
      // The reason only: the token itself is a credential and never logged.
      this.#endpoint.logger.warn({ ...fields, reason: refusal }, "A rejoin token was refused; the connection starts without its groups.");
      return;
    }
    if (typeof claim !== "string") for (const group of claim.groups) claimed.add(group);
  }

  /** Marks a single-use token used in the farm's shared memory; refuses it when used already or when the memory cannot answer (fail closed). */
  async #claimShared(store: UsedTokenStore, hub: string, id: string, expiresAt: number): Promise<RejoinRefusal | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`rejoin.usedTokens.claim did not answer within ${this.#timeout} ms.`)), this.#timeout);
      });
      return (await Promise.race([store.claim(hub, id, expiresAt), expired])) === true ? undefined : "replayed";
    } catch (error) {
      this.#endpoint.logger.error({ hub, err: error }, "The shared memory of used rejoin tokens did not answer; the token is refused.");
      return "replay check failed";
    } finally {
      clearTimeout(timer);
    }
  }

  async #claimFromStore(connection: HubConnection, user: string, claimed: Set<string>): Promise<void> {
    const hub = this.#endpoint.descriptor.name;
    let timer: NodeJS.Timeout | undefined;
    try {
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`membershipStore.groupsOf did not answer within ${this.#timeout} ms.`)), this.#timeout);
      });
      const groups = await Promise.race([this.#store.groupsOf(hub, user), expired]);
      if (!Array.isArray(groups)) throw new TypeError("membershipStore.groupsOf did not return an array.");
      for (const group of groups) if (typeof group === "string" && group.length > 0) claimed.add(group);
    } catch (error) {
      this.#endpoint.logger.error({ hub, connectionId: connection.connectionId, err: error }, "Reading persisted groups failed; the connection starts without them.");
    } finally {
      clearTimeout(timer);
    }
  }

  /** The claimed groups the modules keep (all without a module); none when a module throws. */
  async #kept(connection: HubConnection, claimed: readonly string[]): Promise<readonly string[]> {
    if (!this.#endpoint.pipeline.hasRejoiningGroups) return claimed;
    try {
      const kept = new Set(await this.#endpoint.rejoiningGroups(connection, claimed));
      return claimed.filter((group) => kept.has(group));
    } catch (error) {
      const hubName = this.#endpoint.descriptor.name;
      this.#endpoint.logger.error({ hub: hubName, connectionId: connection.connectionId, err: error }, "rejoiningGroups failed; the connection starts without its groups.");
      this.#endpoint.pipeline.reportError({ hubName, stage: "rejoining", connection: connection.callerContext }, error);
      return [];
    }
  }

  #issueTokens(): void {
    this.#scheduled = false;
    const tokens = this.#tokens!;
    const hub = this.#endpoint.descriptor.name;
    for (const connection of this.#changed) {
      if (!connection.connected) continue;
      const groups = [...connection.groups];
      const user = connection.userIdentifier;
      const token = groups.length === 0 ? undefined : tokens.issue(hub, user === null ? { connectionId: connection.connectionId } : { user }, groups);
      if (groups.length > 0 && token === undefined) {
        this.#endpoint.logger.warn({ hub, connectionId: connection.connectionId, groups: groups.length }, "The connection's groups do not fit in a rejoin token (maxGroups, maxTokenLength); its client gets none.");
      }
      this.#send(connection, REJOIN_TOKEN_METHOD, token ?? null);
    }
    this.#changed.clear();
  }

  /** Infrastructure messages go straight to the lifetime manager: `outgoing` modules never see them. */
  #send(connection: HubConnection, target: string, argument: unknown): void {
    const message: InvocationMessage = { type: MessageType.Invocation, target, arguments: [argument] };
    this.#endpoint.lifetimeManager.send({ kind: "connection", connectionId: connection.connectionId }, message);
  }
}
