// Portkey's AI gateway (@portkey-ai/gateway from npm), the reference point of the upstream
// benchmark. Installed at bench time into its own folder, never into this project: its
// streaming breaks with newer hono / @hono/node-server, so both are pinned there.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const PORTKEY_VERSION = "1.15.2";
const PINNED = { hono: "4.9.7", "@hono/node-server": "1.13.5" };

export function portkeyDir(): string {
  const cache = process.env.ROUNDHOUSE_CACHE_DIR ?? join(homedir(), ".cache", "roundhouse");
  return process.env.BENCH_PORTKEY_DIR ?? join(cache, "portkey");
}

/** The gateway's entry script, installing it first if needed; throws with npm's output when that fails. */
export function ensurePortkey(dir: string, log: (line: string) => void): string {
  const entry = join(dir, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js");
  const installed = join(dir, "node_modules", "@portkey-ai", "gateway", "package.json");
  if (existsSync(entry) && existsSync(installed)) {
    const { version } = JSON.parse(readFileSync(installed, "utf8")) as { version?: string };
    if (version === PORTKEY_VERSION) return entry;
  }
  log(`installing @portkey-ai/gateway@${PORTKEY_VERSION} into ${dir} …`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "package.json"),
    `${JSON.stringify(
      {
        name: "roundhouse-bench-portkey",
        private: true,
        version: "0.0.0",
        dependencies: { "@portkey-ai/gateway": PORTKEY_VERSION, ...PINNED },
        overrides: PINNED,
      },
      null,
      2,
    )}\n`,
  );
  const npm = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev"], {
    cwd: dir,
    encoding: "utf8",
    timeout: 300_000,
  });
  if (npm.status !== 0 || !existsSync(entry)) {
    throw new Error(`npm install of @portkey-ai/gateway failed:\n${npm.stdout ?? ""}${npm.stderr ?? ""}`);
  }
  return entry;
}

/** How to run the gateway: `node start-server.js --port=N --headless` (its own CLI). */
export function portkeyCommand(entry: string, port: number): string[] {
  return [entry, `--port=${port}`, "--headless"];
}

/** Headers that make the gateway forward a request to an OpenAI-compatible server at `baseUrl`. */
export function portkeyHeaders(baseUrl: string): Record<string, string> {
  return {
    "x-portkey-provider": "openai",
    "x-portkey-custom-host": baseUrl,
    authorization: "Bearer sk-bench",
  };
}
