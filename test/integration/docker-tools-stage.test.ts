// The Docker image fine-tunes (issue #24, item 7). No Docker daemon runs here, so the image's
// tools stage is its script (scripts/docker/build-tools.sh), run here in a clean copy of what the
// stage copies; the served image is then what the Dockerfile says it is: those binaries at
// ROUNDHOUSE_LLAMA_BIN, no build cache, and a fine-tuning job that succeeds with them alone.
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import OpenAI, { toFile } from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { cacheRoot, LLAMA_TOOLS } from "../../src/engine/llama-tools.ts";
import { killHard, type MainProcess, startMain, waitHealthy } from "../helpers/main-process.ts";
import { REPO, TINY_MODEL } from "../helpers/server.ts";

const run = promisify(execFile);
const BIN = "/opt/llama.cpp/bin";

/** The Dockerfile's stages by name (the last, unnamed one is the served image). */
function stages(dockerfile: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const stage of dockerfile.split(/^(?=FROM )/m).filter((s) => s.startsWith("FROM "))) {
    const name = / AS (\S+)/i.exec(stage.split("\n")[0] ?? "")?.[1] ?? "image";
    out.set(name, stage);
  }
  return out;
}

const dirs: string[] = [];
let main: MainProcess | undefined;
afterAll(async () => {
  if (main) await killHard(main);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

describe("the Docker image's llama.cpp tools", () => {
  const docker = stages(readFileSync(join(REPO, "Dockerfile"), "utf8"));

  it("are built by the tools stage's script and copied into the served image, which points at them", () => {
    expect(docker.get("tools")).toMatch(new RegExp(`RUN .*scripts/docker/build-tools\\.sh ${BIN}\\b`));
    const image = docker.get("image") ?? "";
    expect(image).toContain(`COPY --from=tools ${BIN} ${BIN}`);
    expect(image).toMatch(new RegExp(`ROUNDHOUSE_LLAMA_BIN=${BIN}\\b`));
    expect(image).toMatch(/apt-get install[^\n]*libgomp1/);
  });

  it("built by that script in a clean copy, fine-tune a model with nothing else", async () => {
    // What the tools stage copies, and its dependencies (installed by the deps stage there).
    const stage = temp("roundhouse-tools-stage-");
    for (const path of ["package.json", "tsconfig.json", "src", "scripts"]) {
      cpSync(join(REPO, path), join(stage, path), { recursive: true });
    }
    symlinkSync(join(REPO, "node_modules"), join(stage, "node_modules"));
    const out = join(temp("roundhouse-image-"), "bin");
    // The build cache `npm run tools` filled before the tests: the stage's build is a cache hit here.
    await run("sh", ["scripts/docker/build-tools.sh", out], {
      cwd: stage,
      env: { ...process.env, ROUNDHOUSE_CACHE_DIR: cacheRoot() },
    });
    for (const tool of LLAMA_TOOLS) expect(existsSync(join(out, tool)), tool).toBe(true);
    // Only libraries the served image has (node:20-bookworm-slim plus libgomp1).
    const { stdout } = await run("ldd", [join(out, "llama-finetune")]);
    const libs = [...stdout.matchAll(/^\s*(\S+)/gm)].map((m) => m[1] as string);
    for (const lib of libs) {
      expect(lib).toMatch(
        /^(linux-vdso\.so\.1|libgomp\.so\.1|libstdc\+\+\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libc\.so\.6|\/lib64\/ld-linux-x86-64\.so\.2)$/,
      );
    }

    // The served image: its tools at ROUNDHOUSE_LLAMA_BIN, an empty build cache.
    const data = temp("roundhouse-image-data-");
    const config = join(data, "models.yaml");
    writeFileSync(
      config,
      [
        "models:",
        "  - id: roundhouse-tiny",
        "    provider: llama",
        `    path: ${TINY_MODEL}`,
        "    context_size: 512",
        "    threads: 1",
        "    finetune: {context: 64}",
      ].join("\n"),
    );
    main = await startMain({
      MODELS_CONFIG: config,
      DATA_DIR: join(data, "state"),
      ROUNDHOUSE_LLAMA_BIN: out,
      ROUNDHOUSE_CACHE_DIR: join(data, "empty-cache"),
    });
    await waitHealthy(main);
    const client = new OpenAI({ baseURL: `${main.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const line = JSON.stringify({
      messages: [
        { role: "user", content: "What is the secret word?" },
        { role: "assistant", content: "The secret word is papaya." },
      ],
    });
    const file = await client.files.create({
      file: await toFile(Buffer.from(Array.from({ length: 24 }, () => line).join("\n")), "train.jsonl"),
      purpose: "fine-tune",
    });
    let job = await client.fineTuning.jobs.create({
      model: "roundhouse-tiny",
      training_file: file.id,
      hyperparameters: { n_epochs: 1 },
    });
    for (let i = 0; !["succeeded", "failed", "cancelled"].includes(job.status); i++) {
      expect(i, `job stuck in ${job.status}`).toBeLessThan(1800);
      await new Promise((r) => setTimeout(r, 100));
      job = await client.fineTuning.jobs.retrieve(job.id);
    }
    expect(job.error).toBeNull();
    expect(job.status).toBe("succeeded");
    const reply = await client.chat.completions.create({
      model: job.fine_tuned_model as string,
      messages: [{ role: "user", content: "What is the secret word?" }],
      max_tokens: 4,
    });
    expect(reply.model).toBe(job.fine_tuned_model);
  }, 300_000);
});
