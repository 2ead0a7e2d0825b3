import { defineConfig } from "vitest/config";

export default defineConfig({
  // Test files sit outside the packages' tsconfig `include`, so tell the transform what tsc does
  // for `src`: legacy decorators with emitted metadata (tsyringe needs both).
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "benchmarks/test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: "forks",
  },
});
