/**
 * Shared memory of used single-use rejoin tokens (the anonymous ones), so a token accepted by one
 * server of a farm is refused by every other, also after a restart. `rejoin.usedTokens` on every
 * server; e.g. `RedisUsedTokens` from `@switchboard/redis`. Without it each server remembers the
 * tokens it accepted itself.
 *
 * For plugin authors: `claim` must be atomic across servers (two servers claiming the same id at
 * once: exactly one gets `true`), keep the id until `expiresAt` (seconds since the epoch) and may
 * forget it after. Reject when the store cannot answer: the server then refuses the token (fails
 * closed) and the connection starts without those groups.
 */
export interface UsedTokenStore {
  /** Records that the token `id` of `hub` is used: `true` the first time, `false` when it already was. */
  claim(hub: string, id: string, expiresAt: number): Promise<boolean>;
}
