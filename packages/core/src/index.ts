// tsyringe needs the Reflect metadata polyfill before it loads; every entry point gets it from here.
import "reflect-metadata";

// Layers, lowest first: a folder imports only from the folders listed before it (see
// test/architecture.test.ts). Each folder's index.ts says what it owns and must not know.
export * from "./contracts/index.js";
export * from "./fan-out/index.js";
export * from "./hubs/index.js";
export * from "./connections/index.js";
export * from "./pipeline/index.js";
export * from "./server/index.js";
