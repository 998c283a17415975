import { defineConfig } from "vitest/config";
import base from "./vitest.config.ts";

/** The reliability suites at full size (`npm run test:stress`): `npm test` runs the same files
 * shorter. Each prints what it tried and its figures (requests, failures by kind, memory,
 * recovery times); the fuzz and disconnect seeds are printed for replay. */
export const RELIABILITY_TESTS = [
  "test/integration/security.test.ts",
  "test/integration/fuzz.test.ts",
  "test/integration/disconnects.test.ts",
  "test/integration/overload.test.ts",
  "test/integration/outages.test.ts",
  "test/integration/restarts.test.ts",
];

export default defineConfig({
  test: {
    ...base.test,
    include: RELIABILITY_TESTS,
    env: { ROUNDHOUSE_STRESS: "1" },
    testTimeout: 1_800_000,
  },
});
