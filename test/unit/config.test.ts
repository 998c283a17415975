import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { renderConfigSchema, SCHEMA_FILE } from "../../scripts/config-schema.ts";
import { parseByteSize } from "../../src/config/bytes.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { isLlamaModel, loadConfig, parseConfig } from "../../src/config/load.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NO_ENV = {};

const MINIMAL = `models:
  - id: tiny
    provider: llama
    path: models/tiny.gguf
`;

/** The ConfigError a text raises, named models.yaml so messages read as in the docs. */
function failure(text: string): ConfigError {
  try {
    parseConfig(text, "models.yaml", NO_ENV);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig: defaults and resolution", () => {
  it("applies every default", () => {
    const config = parseConfig(MINIMAL, "/srv/conf/models.yaml", NO_ENV);
    expect(config.file).toBe("/srv/conf/models.yaml");
    expect(config.server).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(config.memory_budget).toBeUndefined();
    expect(config.max_loaded_models).toBe(4);
    expect(config.default_model).toBeUndefined();
    expect(config.models).toEqual([
      {
        id: "tiny",
        provider: "llama",
        path: "/srv/conf/models/tiny.gguf",
        aliases: [],
        context_size: 2048,
        allow_context_overflow: false,
        parallel: 4,
        threads: Math.max(1, availableParallelism() - 1),
        gpu_layers: "auto",
        flash_attention: "auto",
        preload: false,
        sha256: undefined,
        tool_format: "auto",
        reasoning: "auto",
        queue: { max_waiting: 32, timeout_ms: 30_000 },
        prompt_cache: { max_bytes: "2GiB", dir: undefined },
        at: { index: 0, line: expect.any(Function) },
      },
    ]);
  });

  it("resolves model paths against the config file's folder, not the working directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "roundhouse-config-"));
    mkdirSync(join(dir, "conf"));
    const file = join(dir, "conf", "models.yaml");
    writeFileSync(
      file,
      `models:
  - { id: a, provider: llama, path: ../weights/a.gguf, speculative: {method: draft, model: ../weights/d.gguf} }
  - { id: b, provider: llama, path: /opt/b.gguf }
  - { id: c, provider: llama, path: "hf:user/repo/c.gguf" }
`,
    );
    const config = loadConfig(file, NO_ENV);
    expect(config.file).toBe(file);
    const models = config.models.filter(isLlamaModel);
    expect(models.map((m) => m.path)).toEqual([join(dir, "weights", "a.gguf"), "/opt/b.gguf", "hf:user/repo/c.gguf"]);
    expect(models[0]?.speculative).toEqual({
      method: "draft",
      model: join(dir, "weights", "d.gguf"),
      max_tokens: 16,
      min_confidence: 0.6,
    });
  });

  it("keeps explicit values and normalises them", () => {
    const config = parseConfig(
      `server: { host: 0.0.0.0, port: 9000 }
memory_budget: 8GiB
max_loaded_models: 2
default_model: small
models:
  - id: m1
    provider: llama
    path: m.gguf
    aliases: [small]
    context_size: 4096
    parallel: 2
    threads: 3
    batch_size: 512
    gpu_layers: 20
    preload: true
    sha256: ${"AB".repeat(32)}
    sampling: { temperature: 0.7, top_k: 40 }
    chat_template: "{{ messages }}"
    max_tokens: 256
    queue: { max_waiting: 0 }
    owned_by: me
`,
      "/x/models.yaml",
      NO_ENV,
    );
    expect(config.server).toEqual({ host: "0.0.0.0", port: 9000 });
    expect(config.memory_budget).toBe(8 * 2 ** 30);
    expect(config.default_model).toBe("small");
    const [model] = config.models;
    expect(model).toMatchObject({
      threads: 3,
      gpu_layers: 20,
      preload: true,
      sha256: "ab".repeat(32),
      sampling: { temperature: 0.7, top_k: 40 },
      queue: { max_waiting: 0, timeout_ms: 30_000 },
    });
  });

  it("lets HOST and PORT override server", () => {
    const config = parseConfig(MINIMAL, "/x/models.yaml", { HOST: "0.0.0.0", PORT: "3000" });
    expect(config.server).toEqual({ host: "0.0.0.0", port: 3000 });
    expect(() => parseConfig(MINIMAL, "/x/models.yaml", { PORT: "http" })).toThrow(/PORT: expected a port number/);
  });

  it("loads the repository's models.yaml, which points editors at the committed schema", () => {
    const file = join(ROOT, "models.yaml");
    expect(readFileSync(file, "utf8").split("\n")[0]).toBe("# yaml-language-server: $schema=./models.schema.json");
    const config = loadConfig(file, NO_ENV);
    expect(config.models).toHaveLength(5);
    expect(config.models[0]).toMatchObject({
      id: "roundhouse-tiny",
      aliases: ["tiny"],
      path: join(ROOT, "models", "roundhouse-tiny-q8_0.gguf"),
      preload: true,
      parallel: 4,
      context_size: 2048,
    });
    expect(config.models[1]).toMatchObject({
      id: "roundhouse-tiny-embed",
      path: join(ROOT, "models", "roundhouse-tiny-embed-q8_0.gguf"),
      operations: ["embeddings"],
    });
    expect(config.models[2]).toMatchObject({
      id: "roundhouse-tiny-tools",
      aliases: ["tiny-tools"],
      path: join(ROOT, "models", "roundhouse-tiny-tools-q8_0.gguf"),
      tool_format: "auto",
    });
    expect(config.models[3]).toMatchObject({
      id: "roundhouse-tiny-think",
      aliases: ["tiny-think"],
      path: join(ROOT, "models", "roundhouse-tiny-think-q8_0.gguf"),
      reasoning: "auto",
    });
    expect(config.models[4]).toMatchObject({
      id: "roundhouse-tiny-rerank",
      aliases: ["tiny-rerank"],
      path: join(ROOT, "models", "roundhouse-tiny-rerank-f16.gguf"),
      operations: ["rerank"],
    });
  });
});

describe("loadConfig: errors name the file, the line and the field", () => {
  it("reports a wrong type with the value that was given", () => {
    const err = failure(`models:
  - id: tiny
    provider: llama
    path: tiny.gguf
    parallel: four
`);
    expect(err.message).toBe('models.yaml:5: models[0].parallel: expected a number, got "four"');
    expect([err.file, err.line, err.field]).toEqual(["models.yaml", 5, "models[0].parallel"]);
  });

  it("reports an unknown key and suggests the one meant", () => {
    const err = failure(`${MINIMAL}    paralel: 2
`);
    expect(err.message).toBe('models.yaml:5: models[0].paralel: unknown field; did you mean "parallel"?');
  });

  it("reports an unknown top-level key", () => {
    expect(failure(`${MINIMAL}budget: 3\n`).message).toMatch(
      /^models\.yaml:5: budget: unknown field; expected one of server,/,
    );
  });

  it("reports a duplicate id or alias at the second use", () => {
    const err = failure(`${MINIMAL}  - id: other
    provider: llama
    path: o.gguf
    aliases: [tiny]
`);
    expect(err.message).toBe('models.yaml:8: models[1].aliases[0]: "tiny" is already used by models[0] (tiny)');
    expect(failure(`${MINIMAL}${MINIMAL.slice("models:\n".length)}`).message).toBe(
      'models.yaml:5: models[1].id: "tiny" is already used by models[0] (tiny)',
    );
  });

  it("reports a missing required field at its object", () => {
    expect(failure("models:\n  - id: tiny\n    provider: llama\n").message).toBe(
      "models.yaml:2: models[0].path: required, expected a string",
    );
  });

  it("reports invalid ids, providers and sizes", () => {
    expect(failure(MINIMAL.replace("id: tiny", 'id: "tiny model"')).message).toMatch(
      /^models\.yaml:2: models\[0\]\.id: expected only letters, digits/,
    );
    expect(failure(MINIMAL.replace("provider: llama", "provider: vllm")).message).toBe(
      'models.yaml:3: models[0].provider: expected one of llama, openai, got "vllm"',
    );
    expect(failure(`memory_budget: 8G\n${MINIMAL}`).message).toMatch(/^models\.yaml:1: memory_budget: expected a size/);
    expect(failure(`default_model: nope\n${MINIMAL}`).message).toMatch(/^models\.yaml:1: default_model: "nope" is not/);
  });

  it("reports every problem, one per line", () => {
    const err = failure(MINIMAL.replace("path: models/tiny.gguf", "path: 3\n    preload: maybe"));
    expect(err.problems.map((p) => p.field)).toEqual(["models[0].path", "models[0].preload"]);
    expect(err.message.split("\n")).toHaveLength(2);
  });

  it("reports bad YAML at its line", () => {
    const err = failure("models:\n  - id: tiny\n   provider: llama\n");
    expect(err.message).toMatch(/^models\.yaml:3: invalid YAML: /);
    expect(failure("models: [tiny\n").message).toMatch(/^models\.yaml:\d+: invalid YAML/);
    expect(failure(`${MINIMAL}models: []\n`).message).toMatch(/^models\.yaml:5: invalid YAML: .*unique/i);
  });

  it("reports a missing file", () => {
    expect(() => loadConfig("/nonexistent/models.yaml", NO_ENV)).toThrow(
      "/nonexistent/models.yaml: cannot read the configuration: file not found",
    );
  });
});

describe("memory sizes", () => {
  it.each([
    [1024, 1024],
    ["512MB", 512e6],
    ["512 MiB", 512 * 2 ** 20],
    ["8GiB", 8 * 2 ** 30],
    ["8gi", 8 * 2 ** 30],
    ["1.5GB", 1.5e9],
    ["100", 100],
    ["8G", undefined],
    ["lots", undefined],
  ] as const)("%s → %s", (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });
});

describe("models.schema.json", () => {
  it("is what scripts/config-schema.ts generates (run it after changing src/config/schema.ts)", () => {
    expect(readFileSync(SCHEMA_FILE, "utf8")).toBe(renderConfigSchema());
  });
});

describe("reserved model ids", () => {
  it("refuses a configured id or alias in the fine-tuned models' ft: namespace", () => {
    const text = [
      "models:",
      "  - id: ft:tiny:mine:ftjob-1",
      "    provider: llama",
      "    path: m.gguf",
      "    aliases: [ok, 'ft:x']",
    ].join("\n");
    const err = (() => {
      try {
        parseConfig(text, "models.yaml", NO_ENV);
      } catch (e) {
        return e as ConfigError;
      }
      return undefined;
    })();
    expect(err?.problems.map((p) => `${p.line}: ${p.field}: ${p.message}`)).toEqual([
      "2: models[0].id: names beginning with 'ft:' are reserved for fine-tuned models; choose another id",
      "5: models[0].aliases[1]: names beginning with 'ft:' are reserved for fine-tuned models; choose another id",
    ]);
  });
});
