// Writes models.schema.json (the JSON Schema editors use to check and complete models.yaml)
// from the zod schema, which stays the single source. A unit test fails when the committed file
// is stale: run `npx tsx scripts/config-schema.ts` after changing src/config/schema.ts.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configJsonSchema } from "../src/config/schema.ts";

export const SCHEMA_FILE = fileURLToPath(new URL("../models.schema.json", import.meta.url));

export function renderConfigSchema(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_FILE, renderConfigSchema());
  console.log(`wrote ${SCHEMA_FILE}`);
}
