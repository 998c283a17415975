// POST /v1/completions (legacy) end to end: the built-in model reads the prompt raw (no chat
// template), through the official openai package, JSON and streamed; an upstream passthrough
// against the fake upstream. Bodies are checked against OpenAI's spec.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderChat } from "../../scripts/model/chat-template.ts";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { assertMatchesSchema, schemaErrors } from "../helpers/openapi.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

let s: TestServer;
let up: FakeUpstream;

beforeAll(async () => {
  up = await startFakeUpstream();
  const config = tinyConfig("", "cache: {mode: deterministic}\n").concat(`
  - id: remote
    provider: openai
    base_url: ${up.baseUrl}
    model: gpt-3.5-turbo-instruct
`);
  s = await startServer({ config });
  // Compiled now: seconds on this event loop would otherwise race the server's keep-alive timer.
  schemaErrors("CreateCompletionResponse", {});
});

afterAll(async () => {
  await s?.close();
  await up?.close();
});

/** The prompt a chat client would have sent, rendered by hand: what a legacy client does. */
const asked = (question: string) => renderChat([{ role: "user", content: question }], { addGenerationPrompt: true });

async function post(body: Record<string, unknown>) {
  const res = await fetch(`${s.baseURL}/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", ...body }),
  });
  return { res, json: (await res.json()) as { error?: { message: string; param: string | null } } };
}

describe("local completions", () => {
  it("completes the prompt as it is, as the chat endpoint answers the same conversation", async () => {
    const question = "What is the capital of France?";
    const completion = await s.client.completions.create({
      model: "tiny",
      prompt: asked(question),
      max_tokens: 24,
      temperature: 0,
    });
    assertMatchesSchema("CreateCompletionResponse", completion);
    expect(completion.object).toBe("text_completion");
    expect(completion.id).toMatch(/^cmpl-/);
    const chat = await s.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: question }],
      max_tokens: 24,
      temperature: 0,
    });
    expect(completion.choices[0]?.text).toBe(chat.choices[0]?.message.content);
    expect(completion.choices[0]?.text).toContain("Paris");
    expect(completion.usage?.prompt_tokens).toBe(chat.usage?.prompt_tokens);
  });

  it("stops at 16 tokens by default, as OpenAI's legacy endpoint does", async () => {
    const completion = await s.client.completions.create({ model: "tiny", prompt: "Once upon a time", temperature: 0 });
    expect(completion.usage?.completion_tokens).toBeLessThanOrEqual(16);
  });

  it("answers n choices per prompt, prompt i's j-th at index i·n + j", async () => {
    const prompts = [asked("What is the capital of France?"), asked("Spell cat.")];
    const completion = await s.client.completions.create({
      model: "tiny",
      prompt: prompts,
      n: 3,
      max_tokens: 16,
      temperature: 0,
    });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5]);
    const texts = completion.choices.map((c) => c.text);
    expect(new Set(texts.slice(0, 3)).size).toBe(1);
    expect(new Set(texts.slice(3)).size).toBe(1);
    expect(texts[0]).toContain("Paris");
    expect(texts[3]).toContain("c-a-t");
  });

  it("echoes the prompt and reports integer logprobs", async () => {
    const prompt = asked("Spell cat.");
    const echoed = await s.client.completions.create({
      model: "tiny",
      prompt,
      echo: true,
      max_tokens: 8,
      temperature: 0,
    });
    expect(echoed.choices[0]?.text.startsWith(prompt)).toBe(true);

    const withLogprobs = await s.client.completions.create({
      model: "tiny",
      prompt,
      logprobs: 2,
      max_tokens: 6,
      temperature: 0,
    });
    assertMatchesSchema("CreateCompletionResponse", withLogprobs);
    const lp = withLogprobs.choices[0]?.logprobs;
    expect(lp?.tokens?.join("")).toBe(withLogprobs.choices[0]?.text);
    expect(lp?.tokens).toHaveLength(withLogprobs.usage?.completion_tokens ?? -1);
    for (const top of lp?.top_logprobs ?? []) expect(Object.keys(top).length).toBeLessThanOrEqual(2);
    const offsets = lp?.text_offset ?? [];
    expect(offsets[0]).toBe(0);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
  });

  it("streams chunks of the same shape, then usage when asked, and they add up to the JSON answer", async () => {
    const body = { model: "tiny", prompt: asked("What sound does a dog make?"), max_tokens: 24, temperature: 0 };
    const whole = await s.client.completions.create(body);
    const stream = await s.client.completions.create({
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let contentChunks = 0;
    let finish: string | null = null;
    let usage: unknown;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("text_completion");
      for (const c of chunk.choices) {
        text += c.text;
        if (c.text) contentChunks++;
        finish = c.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]?.text);
    expect(contentChunks).toBeGreaterThan(1);
    expect(finish).toBe("stop");
    expect(usage).toEqual(whole.usage);
  });

  it("refuses what it cannot do with a 400 naming the parameter", async () => {
    const bestOf = await post({ prompt: "Hi", n: 1, best_of: 3 });
    expect(bestOf.res.status).toBe(400);
    expect(bestOf.json.error?.param).toBe("best_of");
    const suffix = await post({ prompt: "def f(", suffix: "return x" });
    expect(suffix.res.status).toBe(400);
    expect(suffix.json.error?.message).toContain("cannot fill in the middle");
    const echoLogprobs = await post({ prompt: "Hi", echo: true, logprobs: 1 });
    expect(echoLogprobs.res.status).toBe(400);
    expect(echoLogprobs.json.error?.param).toBe("echo");
    const tooLong = await post({ prompt: "word ".repeat(600) });
    expect(tooLong.res.status).toBe(400);
    expect((await post({ prompt: [1, 2, 99_999] })).res.status).toBe(400);
    expect((await post({ prompt: "Hi", logprobs: 6 })).res.status).toBe(400);
    expect((await post({ prompt: "Hi", messages: [] })).res.status).toBe(400);
  });

  it("caches a deterministic completion", async () => {
    const body = { prompt: asked(`Count down from 3. ${Date.now()}`), max_tokens: 8, temperature: 0 };
    const first = await post(body);
    const second = await post(body);
    expect(first.res.headers.get("x-roundhouse-cache")).toBe("miss");
    expect(second.res.headers.get("x-roundhouse-cache")).toBe("hit");
  });
});

describe("upstream completions", () => {
  it("passes the request through under the upstream's name, JSON and streamed", async () => {
    const before = up.requests.length;
    const whole = await s.client.completions.create({ model: "remote", prompt: "Say hi", max_tokens: 5 });
    expect(up.requests[before]?.path).toBe("/v1/completions");
    expect(up.requests[before]?.body).toMatchObject({
      model: "gpt-3.5-turbo-instruct",
      prompt: "Say hi",
      max_tokens: 5,
    });
    expect(whole.choices[0]?.text).toBe("Hello from upstream!");
    expect(whole.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 4 });

    const stream = await s.client.completions.create({ model: "remote", prompt: "Say hi", stream: true });
    let text = "";
    for await (const chunk of stream) for (const c of chunk.choices) text += c.text;
    expect(text).toBe("Hello from upstream!");
    expect(up.requests.at(-1)?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });
});
