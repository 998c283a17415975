// POST /v1/chat/completions against the real server and the built-in model, driven by
// the official openai package; every body is checked against OpenAI's published spec.
import { getLlama, type Token } from "node-llama-cpp";
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderChat } from "../../scripts/model/chat-template.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s?.close();
});

const ask = (content: string) => [{ role: "user" as const, content }];

async function collectStream(params: OpenAI.ChatCompletionCreateParamsStreaming) {
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of await s.client.chat.completions.create(params)) {
    assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
    chunks.push(chunk);
  }
  return chunks;
}

describe("non-streaming", () => {
  it("answers in OpenAI's exact shape with exact usage", async () => {
    const res = await s.client.chat.completions.create({
      model: "tiny",
      messages: ask("What is the capital of France?"),
      temperature: 0,
    });
    assertMatchesSchema("CreateChatCompletionResponse", res);
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.object).toBe("chat.completion");
    expect(res.model).toBe("roundhouse-tiny");
    expect(Math.abs(res.created - Date.now() / 1000)).toBeLessThan(60);
    const choice = res.choices[0];
    expect(choice?.message.role).toBe("assistant");
    expect(choice?.message.refusal).toBeNull();
    expect(choice?.finish_reason).toBe("stop");
    // What the reply says is the built-in model's business (test/quality); here: real text.
    expect(choice?.message.content?.trim().length).toBeGreaterThan(0);

    // prompt_tokens is the templated prompt, counted by the model's own tokenizer.
    const llama = await getLlama({ gpu: false, build: "never" });
    const model = await llama.loadModel({ modelPath: TINY_MODEL });
    const prompt = renderChat(ask("What is the capital of France?"), { addGenerationPrompt: true });
    const tokens = model.tokenize(prompt, true);
    const bos = model.tokens.bos;
    const expected = tokens.length + (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos ? 1 : 0);
    expect(res.usage?.prompt_tokens).toBe(expected);
    const completion = model.tokenize(choice?.message.content ?? "", false).length;
    expect(Math.abs((res.usage?.completion_tokens ?? 0) - (completion + 1))).toBeLessThanOrEqual(2);
    expect(res.usage?.total_tokens).toBe((res.usage?.prompt_tokens ?? 0) + (res.usage?.completion_tokens ?? 0));
    await model.dispose();
  });

  it("stops at max_tokens with finish_reason length", async () => {
    const res = await s.client.chat.completions.create({ model: "tiny", messages: ask("Hello!"), max_tokens: 3 });
    expect(res.choices[0]?.finish_reason).toBe("length");
    expect(res.usage?.completion_tokens).toBe(3);
  });

  it("applies logit_bias: −100 bans a token, the end token included; a large bias forces one", async () => {
    const params = { model: "tiny", messages: ask("What is the capital of France?"), temperature: 0, max_tokens: 12 };
    const free = await s.client.chat.completions.create({ ...params, logprobs: true });
    const first = free.choices[0]?.logprobs?.content?.[0]?.token ?? "";
    expect(free.choices[0]?.finish_reason).toBe("stop");
    // The first token's id, as the model tokenizes it.
    const model = await (await getLlama({ gpu: false })).loadModel({ modelPath: TINY_MODEL });
    const firstId = model.tokenize(first, false, "trimLeadingSpace")[0] as number;
    const forcedId = model.tokenize("Paris", false, "trimLeadingSpace")[0] as number;
    // Every end-of-generation token of its vocabulary (</s> and <|end|>).
    const vocabulary = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
    const ends = Array.from({ length: vocabulary }, (_, id) => id).filter((id) => model.isEogToken(id as Token));
    expect(ends.length).toBeGreaterThan(0);
    await model.dispose();
    const banned = await s.client.chat.completions.create({ ...params, logit_bias: { [firstId]: -100 } });
    expect(banned.choices[0]?.message.content?.startsWith(first)).toBe(false);
    const forced = await s.client.chat.completions.create({
      ...params,
      max_tokens: 1,
      logit_bias: { [forcedId]: 100 },
    });
    expect(forced.choices[0]?.message.content).toBe("Paris");
    // Without its end tokens the reply cannot finish by itself: it runs to max_tokens.
    const endless = await s.client.chat.completions.create({
      ...params,
      logit_bias: Object.fromEntries(ends.map((t) => [t, -100])),
    });
    expect(endless.choices[0]?.finish_reason).toBe("length");
    expect(endless.usage?.completion_tokens).toBe(12);
  });

  it("repeats itself exactly for the same seed and parameters", async () => {
    const params = { model: "tiny", messages: ask("Tell me something."), temperature: 1.2, seed: 42, max_tokens: 24 };
    const a = await s.client.chat.completions.create(params);
    const b = await s.client.chat.completions.create(params);
    expect(a.choices[0]?.message.content).toBe(b.choices[0]?.message.content);
    const other = await Promise.all([1, 2, 3].map((seed) => s.client.chat.completions.create({ ...params, seed })));
    const texts = new Set([a, ...other].map((r) => r.choices[0]?.message.content));
    expect(texts.size).toBeGreaterThan(1);
  });

  it("never returns a stop sequence and finishes with stop", async () => {
    const free = await s.client.chat.completions.create({
      model: "tiny",
      messages: ask("What is the capital of France?"),
      temperature: 0,
    });
    const text = free.choices[0]?.message.content ?? "";
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
    expect(stop.length).toBe(3);
    const cut = await s.client.chat.completions.create({
      model: "tiny",
      messages: ask("What is the capital of France?"),
      temperature: 0,
      stop: [stop, "zzzz"],
    });
    expect(cut.choices[0]?.message.content).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.choices[0]?.finish_reason).toBe("stop");
  });

  it("returns n choices", async () => {
    const res = await s.client.chat.completions.create({ model: "tiny", messages: ask("Hello!"), n: 2, max_tokens: 8 });
    assertMatchesSchema("CreateChatCompletionResponse", res);
    expect(res.choices.map((c) => c.index)).toEqual([0, 1]);
  });

  it("enforces a JSON schema with a grammar", async () => {
    const schema = {
      type: "object",
      // maxLength bounds the string, so the grammar, not max_tokens, ends the reply.
      properties: { answer: { type: "string", maxLength: 40 }, confident: { type: "boolean" } },
      required: ["answer", "confident"],
      additionalProperties: false,
    };
    const res = await s.client.chat.completions.create({
      model: "tiny",
      messages: ask("Answer in JSON: what is the capital of France?"),
      temperature: 0,
      max_tokens: 200,
      response_format: { type: "json_schema", json_schema: { name: "answer", schema, strict: true } },
    });
    expect(res.choices[0]?.finish_reason).toBe("stop");
    const parsed = JSON.parse(res.choices[0]?.message.content ?? "") as Record<string, unknown>;
    expect(typeof parsed.answer).toBe("string");
    expect((parsed.answer as string).length).toBeLessThanOrEqual(40);
    expect(typeof parsed.confident).toBe("boolean");
  });

  it("returns logprobs with top alternatives", async () => {
    const res = await s.client.chat.completions.create({
      model: "tiny",
      messages: ask("Hello!"),
      max_tokens: 4,
      logprobs: true,
      top_logprobs: 3,
    });
    assertMatchesSchema("CreateChatCompletionResponse", res);
    const content = res.choices[0]?.logprobs?.content ?? [];
    // One entry per generated text token: the end-of-generation token, when it came, is not text.
    const textTokens = (res.usage?.completion_tokens ?? 0) - (res.choices[0]?.finish_reason === "stop" ? 1 : 0);
    expect(content.length).toBeGreaterThan(0);
    expect(content.length).toBe(textTokens);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs.length).toBe(3);
    }
  });
});

describe("tools", () => {
  const tools: OpenAI.ChatCompletionTool[] = [
    {
      type: "function",
      function: {
        name: "get_capital",
        description: "The capital city of a country",
        // An enum keeps the constrained reply short whatever the model prefers to say.
        parameters: {
          type: "object",
          properties: { country: { type: "string", enum: ["France", "Spain", "Italy"] } },
          required: ["country"],
        },
      },
    },
  ];

  it("calls a tool and reads its result back", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = ask("What is the capital of France?");
    const first = await s.client.chat.completions.create({
      model: "tiny",
      messages,
      tools,
      tool_choice: "required",
      temperature: 0,
      max_tokens: 120,
    });
    assertMatchesSchema("CreateChatCompletionResponse", first);
    const choice = first.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    if (!choice) throw new Error("expected a choice");
    const call = choice.message.tool_calls?.[0];
    expect(call?.type).toBe("function");
    if (call?.type !== "function") throw new Error("expected a function call");
    expect(call.function.name).toBe("get_capital");
    expect(["France", "Spain", "Italy"]).toContain(
      (JSON.parse(call.function.arguments) as { country: unknown }).country,
    );
    expect(call.id).toMatch(/^call_/);

    const second = await s.client.chat.completions.create({
      model: "tiny",
      messages: [...messages, choice.message, { role: "tool", tool_call_id: call.id, content: "Paris" }],
      tools,
      tool_choice: "none",
      temperature: 0,
      max_tokens: 40,
    });
    assertMatchesSchema("CreateChatCompletionResponse", second);
    expect(second.choices[0]?.finish_reason).not.toBe("tool_calls");
  });

  it("streams tool calls as deltas", async () => {
    const chunks = await collectStream({
      model: "tiny",
      messages: ask("What is the capital of Spain?"),
      tools,
      tool_choice: { type: "function", function: { name: "get_capital" } },
      max_tokens: 120,
      stream: true,
    });
    const deltas = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
    expect(deltas[0]?.function?.name).toBe("get_capital");
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("tool_calls");
  });

  it("tools with response_format (generic scheme): a call, or an answer in the format", async () => {
    const res = await s.client.chat.completions.create({
      model: "tiny",
      messages: ask("Hello!"),
      tools,
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "greeting",
          strict: true,
          schema: {
            type: "object",
            properties: { text: { type: "string", maxLength: 16 } },
            required: ["text"],
            additionalProperties: false,
          },
        },
      },
      temperature: 0,
      max_tokens: 120,
    });
    const choice = res.choices[0];
    if (choice?.finish_reason === "tool_calls") expect(choice.message.tool_calls?.[0]?.type).toBe("function");
    else expect(Object.keys(JSON.parse(choice?.message.content ?? "") as object)).toEqual(["text"]);
  });

  it("a generic call cut by max_tokens never comes back as raw JSON", async () => {
    const res = await s.client.chat.completions.create({
      model: "tiny",
      messages: ask("What is the capital of France?"),
      tools,
      tool_choice: "required",
      temperature: 0,
      max_tokens: 5,
    });
    expect(res.choices[0]?.finish_reason).toBe("length");
    expect(res.choices[0]?.message.content).toBe("");
  });
});

describe("streaming", () => {
  it("sends role first, content deltas, finish, then [DONE]; usage only when asked", async () => {
    const plain = await collectStream({ model: "tiny", messages: ask("Hello!"), stream: true, max_tokens: 8 });
    expect(plain[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(plain.at(-1)?.choices[0]?.finish_reason).not.toBeNull();
    expect(plain.every((c) => c.usage == null)).toBe(true);
    expect(new Set(plain.map((c) => c.id)).size).toBe(1);

    const withUsage = await collectStream({
      model: "tiny",
      messages: ask("Hello!"),
      stream: true,
      max_tokens: 8,
      stream_options: { include_usage: true },
    });
    const last = withUsage.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage?.completion_tokens).toBeGreaterThan(0);
    expect(withUsage.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it("streams the same text as the non-streaming answer", async () => {
    const params = { model: "tiny", messages: ask("What is the capital of France?"), temperature: 0 };
    const whole = await s.client.chat.completions.create(params);
    const chunks = await collectStream({ ...params, stream: true });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(whole.choices[0]?.message.content);
  });

  it("has SSE headers and ends with data: [DONE]", async () => {
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "test-req-1" },
      body: JSON.stringify({ model: "tiny", messages: ask("Hello!"), stream: true, max_tokens: 4 }),
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("cache-control")).toContain("no-cache");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    expect(res.headers.get("x-request-id")).toBe("test-req-1");
    const body = await res.text();
    const frames = body.split("\n\n").filter((f) => f !== "");
    expect(frames.every((f) => f.startsWith("data: "))).toBe(true);
    expect(frames.at(-1)).toBe("data: [DONE]");
  });

  it("frees the sequence at once when the client aborts", async () => {
    const loaded = s.services.pool.get("roundhouse-tiny");
    if (!loaded) throw new Error("model not loaded");
    const held = loaded.sequences.map((seq) => seq.nextTokenIndex);
    const controller = new AbortController();
    const stream = await s.client.chat.completions.create(
      { model: "tiny", messages: ask("Hello!"), stream: true, max_tokens: 400, temperature: 1 },
      { signal: controller.signal },
    );
    // The openai SDK ends the stream quietly when its own signal aborts.
    let seen = 0;
    for await (const _ of stream) {
      if (++seen === 3) controller.abort();
    }
    expect(seen).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < 100 && loaded.slots.busy > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(loaded.slots.busy).toBe(0);
    expect(loaded.inFlight).toBe(0);
    // Generation stopped at the abort, not at max_tokens: the sequence it used holds the prompt
    // and the few tokens generated before the client left.
    const used = loaded.sequences.filter((seq, i) => seq.nextTokenIndex !== held[i]);
    expect(used).toHaveLength(1);
    expect(used[0]?.nextTokenIndex).toBeLessThan(100);
  });
});
