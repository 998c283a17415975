// Where the llama.cpp command-line tools (trainer, quantizer, server) live, and how
// they are built from the llama.cpp source that node-llama-cpp ships. Everything that
// runs one of these tools finds it through this module, so the server, the scripts
// and the tests always agree on which binary they use.
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export const LLAMA_TOOLS = ["llama-finetune", "llama-quantize", "llama-server"] as const;
export type LlamaTool = (typeof LLAMA_TOOLS)[number];

/** Portable flags: -DGGML_NATIVE=OFF so binaries built here run on any x86-64 CPU,
 * and every option that would download something (the web UI) turned off. */
export const CMAKE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DGGML_NATIVE=OFF",
  "-DBUILD_SHARED_LIBS=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=ON",
  "-DLLAMA_BUILD_TOOLS=ON",
  "-DLLAMA_BUILD_SERVER=ON",
  "-DLLAMA_USE_PREBUILT_UI=OFF",
  "-DLLAMA_BUILD_UI=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DLLAMA_CURL=OFF",
] as const;

/** Our patches on the bundled source, applied in name order. The one we carry makes
 * llama-finetune parse special tokens in its training text, so `<|user|>` trains as
 * the same control token the chat template produces at inference. */
const PATCH_DIR = fileURLToPath(new URL("../../scripts/llama-patches/", import.meta.url));

function patches(): string[] {
  return readdirSync(PATCH_DIR)
    .filter((f) => f.endsWith(".patch"))
    .sort()
    .map((f) => join(PATCH_DIR, f));
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.ROUNDHOUSE_CACHE_DIR ?? join(homedir(), ".cache", "roundhouse");
}

export function llamaBundlePath(): string {
  // The package's exports hide package.json, so walk up from its entry point.
  let dir = dirname(createRequire(import.meta.url).resolve("node-llama-cpp"));
  while (!existsSync(join(dir, "llama", "gitRelease.bundle"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("node-llama-cpp's llama/gitRelease.bundle not found; run `npm ci`");
    dir = parent;
  }
  return join(dir, "llama", "gitRelease.bundle");
}

/** The commit the bundle holds: the first field of `git bundle list-heads`. */
export async function bundleCommit(bundle = llamaBundlePath()): Promise<string> {
  const { stdout } = await run("git", ["bundle", "list-heads", bundle]);
  const commit = stdout.trim().split(/\s+/)[0];
  if (!commit || !/^[0-9a-f]{40}$/.test(commit)) throw new Error(`cannot read the llama.cpp commit from ${bundle}`);
  return commit;
}

async function compilerId(): Promise<string> {
  const { stdout } = await run("c++", ["--version"]);
  return stdout.split("\n")[0] ?? "unknown";
}

/** Build folder keyed on what changes the binaries: commit, compiler, flags. */
export async function toolsDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.ROUNDHOUSE_LLAMA_BIN) return env.ROUNDHOUSE_LLAMA_BIN;
  const commit = await bundleCommit();
  const key = createHash("sha256")
    .update([commit, await compilerId(), ...CMAKE_FLAGS, ...patches().map((p) => readFileSync(p, "utf8"))].join("\n"))
    .digest("hex")
    .slice(0, 12);
  return join(cacheRoot(env), "llama.cpp", `${commit.slice(0, 7)}-${key}`, "bin");
}

/** Path of a built tool; throws a one-line, actionable error when it is missing. */
export async function toolPath(tool: LlamaTool, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = join(await toolsDir(env), tool);
  if (!existsSync(path)) throw new Error(`${tool} is not built (looked for ${path}); run \`npm run tools\``);
  return path;
}

export async function toolsBuilt(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const dir = await toolsDir(env);
  return LLAMA_TOOLS.every((t) => existsSync(join(dir, t)));
}

async function has(cmd: string): Promise<boolean> {
  try {
    await run("sh", ["-c", `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** The build tools that are absent: cmake, a generator (ninja or make), a C++ compiler, git. */
export async function missingBuildTools(): Promise<string[]> {
  const missing: string[] = [];
  if (!(await has("cmake"))) missing.push("cmake");
  if (!(await has("ninja")) && !(await has("make"))) missing.push("ninja (or make)");
  if (!(await has("g++")) && !(await has("c++"))) missing.push("g++");
  if (!(await has("git"))) missing.push("git");
  return missing;
}

function step(cmd: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}`))));
  });
}

/** Builds the tools unless the cache already has them; returns the bin folder. */
export async function buildTools(opts: { jobs?: number; log?: (line: string) => void } = {}): Promise<string> {
  const log = opts.log ?? (() => {});
  const bin = await toolsDir();
  if (await toolsBuilt()) return bin;
  mkdirSync(dirname(dirname(bin)), { recursive: true });
  const release = await buildLock(`${dirname(bin)}.lock`, log);
  try {
    // Another process may have finished the build while this one waited.
    if (await toolsBuilt()) return bin;
    await build(bin, opts.jobs, log);
    return bin;
  } finally {
    release();
  }
}

/**
 * One build at a time per cache folder: two test runs starting together would
 * otherwise delete each other's source tree mid-build. The lock file holds the
 * builder's pid, so a lock left by a killed build is taken over.
 */
async function buildLock(path: string, log: (line: string) => void): Promise<() => void> {
  let announced = false;
  for (;;) {
    try {
      writeFileSync(path, String(process.pid), { flag: "wx" });
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let owner: number;
    try {
      owner = Number(readFileSync(path, "utf8").trim());
    } catch {
      continue; // released between our attempt and the read
    }
    if (!(owner > 0)) {
      await new Promise((resolve) => setTimeout(resolve, 100)); // created, pid not written yet
      continue;
    }
    if (!isAlive(owner)) {
      rmSync(path, { force: true });
      continue;
    }
    if (!announced) log(`waiting for the build of process ${owner} (${path})`);
    announced = true;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function build(bin: string, jobs: number | undefined, log: (line: string) => void): Promise<void> {
  const missing = await missingBuildTools();
  if (missing.length > 0)
    throw new Error(
      `cannot build the llama.cpp tools: missing ${missing.join(", ")} (apt-get install cmake ninja-build g++ git)`,
    );
  const root = dirname(bin);
  const src = join(root, "src");
  const buildDir = join(root, "build");
  rmSync(src, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  log(`cloning ${llamaBundlePath()} into ${src}`);
  await step("git", ["clone", "--quiet", llamaBundlePath(), src]);
  for (const patch of patches()) await step("git", ["apply", patch], src);
  const generator = (await has("ninja")) ? ["-G", "Ninja"] : [];
  await step("cmake", ["-S", src, "-B", buildDir, ...generator, ...CMAKE_FLAGS]);
  const threads = String(jobs ?? Math.max(1, (await import("node:os")).availableParallelism()));
  await step("cmake", ["--build", buildDir, "-j", threads, "--target", ...LLAMA_TOOLS]);
  // Copy into a temporary folder and rename, so a half-finished build never looks cached.
  const tmp = `${bin}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const tool of LLAMA_TOOLS) {
    writeFileSync(join(tmp, tool), readFileSync(join(buildDir, "bin", tool)), { mode: 0o755 });
  }
  rmSync(bin, { recursive: true, force: true });
  renameSync(tmp, bin);
  rmSync(src, { recursive: true, force: true });
}
