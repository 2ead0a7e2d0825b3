export { RedisBackplane, type RedisBackplaneOptions } from "./redis-backplane.js";
export { RedisMembershipStore, type RedisMembershipStoreOptions } from "./redis-membership-store.js";
