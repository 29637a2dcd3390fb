import { defineConfig } from "vitest/config";

// Unit tests are fast and pure; the netns tests (test/netns) build namespaces and run daemons as root and are heavy on a
// 2-core machine, so test files run one at a time and the timeouts leave room for a 50 MB transfer through the bridge.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    fileParallelism: false,
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
