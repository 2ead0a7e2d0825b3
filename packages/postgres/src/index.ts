export * from "./postgres-membership-store.js";
