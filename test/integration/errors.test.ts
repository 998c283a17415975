// Bad input gets OpenAI's error envelope with the right status, never a 500 or a hang.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ config: tinyConfig("max_tokens: 256"), bodyLimitBytes: 64 * 1024 });
});
afterAll(async () => {
  await s?.close();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.baseURL}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const json = (await res.json()) as {
    error: { message: string; type: string; param: string | null; code: string | null };
  };
  assertMatchesSchema("ErrorResponse", json);
  expect(Object.keys(json.error).sort()).toEqual(["code", "message", "param", "type"]);
  return { status: res.status, error: json.error, headers: res.headers };
}

const chat = (extra: Record<string, unknown>) => ({
  model: "tiny",
  messages: [{ role: "user", content: "Hi" }],
  ...extra,
});

describe("chat completions refuses what it cannot do", () => {
  it.each([
    ["an unknown parameter", chat({ temprature: 0 }), "temprature", "unknown_parameter"],
    [
      "a parameter we cannot honour",
      chat({ audio: { voice: "alloy", format: "mp3" } }),
      "audio",
      "unsupported_parameter",
    ],
    ["a wrong type", chat({ temperature: "hot" }), "temperature", "invalid_type"],
    ["an out-of-range value", chat({ top_p: 3 }), "top_p", "invalid_value"],
    ["a bad role", { model: "tiny", messages: [{ role: "bot", content: "x" }] }, "messages[0].role", null],
    ["too many stops", chat({ stop: ["a", "b", "c", "d", "e"] }), "stop", null],
    ["n beyond the model's sequences", chat({ n: 8 }), "n", null],
    ["max_tokens past the model's cap", chat({ max_tokens: 300 }), "max_tokens", null],
    ["a logit_bias outside the vocabulary", chat({ logit_bias: { "99999999": 5 } }), "logit_bias", null],
  ])("%s → 400", async (_name, body, param, code) => {
    const { status, error } = await post("/chat/completions", body);
    expect(status).toBe(400);
    expect(error.type).toBe("invalid_request_error");
    expect(error.param).toBe(param);
    if (code) expect(error.code).toBe(code);
    expect(error.message.length).toBeGreaterThan(10);
  });

  it("refuses images for a model without vision", async () => {
    const { status, error } = await post("/chat/completions", {
      model: "tiny",
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] }],
    });
    expect(status).toBe(400);
    expect(error.param).toBe("messages[0].content[0]");
    expect(error.message).toContain("image_url");
  });

  it("states the numbers when the request does not fit the context", async () => {
    const long = "word ".repeat(2000);
    const { status, error } = await post("/chat/completions", chat({ messages: [{ role: "user", content: long }] }));
    expect(status).toBe(400);
    expect(error.code).toBe("context_length_exceeded");
    expect(error.message).toMatch(/maximum context length is \d+ tokens/);
  });

  it("answers malformed JSON with 400", async () => {
    const { status, error } = await post("/chat/completions", '{"model": "tiny", ');
    expect(status).toBe(400);
    expect(error.message).toContain("JSON");
  });

  it("answers an unknown model with 404 model_not_found", async () => {
    const { status, error } = await post("/chat/completions", chat({ model: "gpt-9" }));
    expect(status).toBe(404);
    expect(error.code).toBe("model_not_found");
    expect(error.message).toContain("gpt-9");
  });

  it("answers a body over the limit with 413", async () => {
    const { status } = await post(
      "/chat/completions",
      chat({ messages: [{ role: "user", content: "x".repeat(100_000) }] }),
    );
    expect(status).toBe(413);
  });

  it("raises the SDK's own exception classes", async () => {
    await expect(
      s.client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(
      s.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], top_p: 5 }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe("routes", () => {
  it("unknown route → 404, wrong method → 405, both in the envelope", async () => {
    const missing = await fetch(`${s.baseURL}/nothing-here`);
    expect(missing.status).toBe(404);
    assertMatchesSchema("ErrorResponse", await missing.json());
    const wrong = await fetch(`${s.baseURL}/chat/completions`, { method: "GET" });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toContain("POST");
    assertMatchesSchema("ErrorResponse", await wrong.json());
  });

  it("lists and describes models", async () => {
    const list = await s.client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["roundhouse-tiny"]);
    const raw = await (await fetch(`${s.baseURL}/models`)).json();
    assertMatchesSchema("ListModelsResponse", raw);
    const one = await s.client.models.retrieve("roundhouse-tiny");
    assertMatchesSchema("Model", one);
    expect(one.owned_by).toBe("roundhouse");
    await expect(s.client.models.retrieve("nope")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("is healthy once the preloaded model is loaded", async () => {
    const res = await fetch(`${s.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ready: true, models: [{ id: "roundhouse-tiny", loaded: true }] });
  });
});

describe("API keys", () => {
  let locked: TestServer;
  beforeAll(async () => {
    locked = await startServer({ apiKeys: ["sk-right", "sk-other"] });
  });
  afterAll(async () => {
    await locked?.close();
  });

  it("needs a valid bearer key on every /v1 route", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer sk-wrong" },
      { authorization: "Basic sk-right" },
    ];
    for (const headers of attempts) {
      const res = await fetch(`${locked.baseURL}/models`, { headers });
      expect(res.status).toBe(401);
      const body = (await res.json()) as { error: { code: string } };
      expect(["invalid_api_key", "missing_api_key"]).toContain(body.error.code);
    }
    const ok = new OpenAI({ baseURL: locked.baseURL, apiKey: "sk-other", maxRetries: 0 });
    expect((await ok.models.list()).data.length).toBe(1);
    await expect(
      new OpenAI({ baseURL: locked.baseURL, apiKey: "sk-bad", maxRetries: 0 }).models.list(),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});
