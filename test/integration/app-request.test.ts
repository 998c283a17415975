// The chat route through app.request(), with no node HTTP server underneath: the fallbacks of
// routes/node-http.ts and routes/sse.ts (web Request headers and signal, Hono's c.header() and
// stream helper) that every other suite, running on node's server, never takes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { createServices, type Services } from "../../src/services.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { REPO, testRuntime, tinyConfig } from "../helpers/server.ts";

let services: Services;
let app: ReturnType<typeof createApp>;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "roundhouse-app-request-"));
  services = await createServices({
    config: parseConfig(tinyConfig(), join(REPO, "models.yaml")),
    dataDir,
    llama: await testRuntime(),
    logger: pino({ level: "silent" }),
  });
  await services.preload();
  app = createApp(services);
});

afterAll(async () => {
  await services.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const chat = (body: object, headers: Record<string, string> = {}) =>
  app.request("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "Spell cat." }], ...body }),
  });

describe("chat completions without node's HTTP server", () => {
  it("answers JSON with Roundhouse's headers", async () => {
    const res = await chat({ max_tokens: 8, temperature: 0 }, { "x-request-id": "req-app-1" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("req-app-1");
    expect(res.headers.get("x-roundhouse-model")).toBe("roundhouse-tiny");
    expect(res.headers.get("x-roundhouse-cache")).toBe("miss");
    const body = await res.json();
    assertMatchesSchema("CreateChatCompletionResponse", body);
    expect((body as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0);
  });

  it("streams SSE with the usage chunk and [DONE]", async () => {
    const res = await chat({ max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("x-roundhouse-model")).toBe("roundhouse-tiny");
    const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events.at(-1)).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice("data: ".length)));
    for (const chunk of chunks) assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    expect(chunks.at(-1).usage.completion_tokens).toBeGreaterThan(0);
  });

  it("refuses in OpenAI's envelope", async () => {
    const res = await chat({ temperature: "hot" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error", param: "temperature" } });
  });
});
