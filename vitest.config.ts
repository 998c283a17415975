import { defineConfig } from "vitest/config";

/** What the built-in model and fine-tuning have learned: part of `npm test`, and on their
 * own with `npm run test:quality` (after `npm run make-model`, say). They hold the model to
 * its model card rather than the server to its contract. */
export const QUALITY_TESTS = ["test/quality/**/*.test.ts"];

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    // Integration tests load real models on a 2-core machine: run files one at a time
    // so they do not fight over the cores, and give model loads room.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
