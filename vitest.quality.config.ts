import { defineConfig } from "vitest/config";
import base, { QUALITY_TESTS } from "./vitest.config.ts";

export default defineConfig({
  test: { ...base.test, include: QUALITY_TESTS, exclude: ["**/node_modules/**"], testTimeout: 300_000 },
});
