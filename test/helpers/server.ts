// Starts a real Roundhouse on a random loopback port: real config parsing, real
// node-llama-cpp engine, real HTTP. Tests drive it with the official openai package.

import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Llama } from "node-llama-cpp";
import OpenAI from "openai";
import pino, { type Logger } from "pino";
import { createHttpServer } from "../../routes/http-server.ts";
import { createApp } from "../../src/app.ts";
import { type Env, parseConfig } from "../../src/config/load.ts";
import { openRuntime } from "../../src/engine/runtime.ts";
import { createServices, type Services } from "../../src/services.ts";

export const REPO = join(import.meta.dirname, "..", "..");
export const TINY_MODEL = process.env.ROUNDHOUSE_TEST_MODEL ?? join(REPO, "models", "roundhouse-tiny-q8_0.gguf");

export interface TestServer {
  url: string;
  baseURL: string;
  client: OpenAI;
  services: Services;
  dataDir: string;
  close(): Promise<void>;
}

let shared: Promise<Llama> | undefined;
/** One runtime per test file: getLlama is the slow part, and it is safe to share. */
export function testRuntime(): Promise<Llama> {
  shared ??= openRuntime({ gpu: false });
  return shared;
}

/** One models.yaml entry (indented under `models:`) serving the tiny model (or the GGUF at `path`)
 * as `id`; `extra` lines go under it. */
export function tinyModelEntry(
  id: string,
  o: { path?: string; contextSize?: number; parallel?: number; preload?: boolean; extra?: readonly string[] } = {},
): string {
  return [
    `  - id: ${id}`,
    "    provider: llama",
    `    path: ${o.path ?? TINY_MODEL}`,
    `    context_size: ${o.contextSize ?? 256}`,
    `    parallel: ${o.parallel ?? 1}`,
    "    threads: 1",
    ...(o.preload === false ? [] : ["    preload: true"]),
    ...(o.extra ?? []).map((l) => `    ${l}`),
  ].join("\n");
}

/** models.yaml text serving the built-in tiny model as `tiny`, with overrides appended to the model. */
export function tinyConfig(modelExtra = "", globalExtra = ""): string {
  return [
    globalExtra,
    "models:",
    "  - id: roundhouse-tiny",
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    aliases: [tiny]",
    "    context_size: 512",
    "    parallel: 4",
    "    threads: 1",
    "    preload: true",
    ...modelExtra
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => `    ${l}`),
  ].join("\n");
}

export interface ServerOptions {
  config?: string;
  apiKeys?: string[];
  adminApiKey?: string;
  bodyLimitBytes?: number;
  uploadLimitBytes?: number;
  /** Memory a fine-tuning trainer may use (the machine's when unset). */
  trainerMemoryBytes?: number;
  /** State to start from (a restart); kept on close. A fresh temporary folder otherwise. */
  dataDir?: string;
  /** The environment the config is resolved in (api_key_env); none by default. */
  env?: Env;
  logger?: Logger;
}

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "roundhouse-test-"));
  const config = parseConfig(options.config ?? tinyConfig(), join(REPO, "models.yaml"), options.env);
  const services = await createServices({
    config,
    dataDir,
    llama: await testRuntime(),
    logger: options.logger ?? pino({ level: "silent" }),
    apiKeys: options.apiKeys ?? [],
    adminApiKey: options.adminApiKey,
    ...(options.bodyLimitBytes ? { bodyLimitBytes: options.bodyLimitBytes } : {}),
    ...(options.uploadLimitBytes ? { uploadLimitBytes: options.uploadLimitBytes } : {}),
    ...(options.trainerMemoryBytes ? { trainerMemoryBytes: options.trainerMemoryBytes } : {}),
  });
  await services.preload();
  const app = createApp(services);
  const server = createHttpServer(app, {
    hostname: "127.0.0.1",
    bodyTimeoutMs: services.bodyTimeoutMs,
    logger: services.logger,
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    baseURL: `${url}/v1`,
    client: new OpenAI({ baseURL: `${url}/v1`, apiKey: options.apiKeys?.[0] ?? "unused", maxRetries: 0 }),
    services,
    dataDir,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await services.close();
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
