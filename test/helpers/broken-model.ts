// A model that passes the start-up checks (a GGUF whose header and metadata read fine) but fails
// every load: the built-in model with its last tensors cut off. Tests of failing canaries use it,
// since a missing file now stops the server at start.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TINY_MODEL } from "./server.ts";

export function brokenModelFile(): string {
  const path = join(mkdtempSync(join(tmpdir(), "roundhouse-broken-")), "roundhouse-broken.gguf");
  const bytes = readFileSync(TINY_MODEL);
  writeFileSync(path, bytes.subarray(0, bytes.length - 100_000));
  return path;
}
