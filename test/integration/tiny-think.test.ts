// The built-in `tiny-think` model (npm run make-think-model) really thinks in Qwen 3's format:
// it writes `<think>\n…\n</think>\n\n` before its answer, and the server, which reads its template
// as the `qwen3` family, returns the thoughts apart from the answer (reasoning_content,
// streamed first, counted in reasoning_tokens), turns them off with reasoning_effort (the
// template's enable_thinking), and drops them or leaves them in the text as `reasoning` says.
// Served as the default models.yaml serves it, through the openai package.
import { join } from "node:path";
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { THOUGHTS } from "../../scripts/model/think-dataset.ts";
import { REPO, startServer, type TestServer, tinyModelEntry } from "../helpers/server.ts";

const PATH = join(REPO, "models", "roundhouse-tiny-think-q8_0.gguf");
const entry = (id: string, o: { preload?: boolean; extra?: string[] } = {}) =>
  tinyModelEntry(id, { path: PATH, contextSize: 512, preload: o.preload ?? false, extra: o.extra ?? [] });

let s: TestServer;
beforeAll(async () => {
  const config = [
    "models:",
    entry("roundhouse-tiny-think", { preload: true, extra: ["aliases: [tiny-think]"] }),
    // The same file with the other two ways of handling thoughts.
    entry("think-hide", { extra: ["reasoning: hide"] }),
    entry("think-none", { extra: ["reasoning: none"] }),
  ].join("\n");
  s = await startServer({ config });
});
afterAll(async () => {
  await s?.close();
});

/** What the server adds to OpenAI's message and delta: the thoughts. */
type Thinking = { reasoning_content?: string };
const MARKERS = /<\/?think>/;
const first = THOUGHTS[0] as (typeof THOUGHTS)[number];

function ask(model: string, prompt: string, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) {
  return s.client.chat.completions.create({
    model,
    messages: [{ role: "user", content: prompt }],
    temperature: 0,
    max_tokens: 40,
    ...extra,
  });
}

describe("tiny-think, a model trained to think in Qwen 3's format", () => {
  it("is served as the qwen3 family, with the template's thinking switch", async () => {
    const body = (await (await fetch(`${s.url}/v1/models/tiny-think`)).json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      tool_format: "qwen3",
      tool_format_source: "template",
      reasoning: "auto",
      reasoning_efforts: ["none", "minimal", "low", "medium", "high"],
    });
  });

  it("thinks, then answers, for every prompt it was trained on: thoughts in reasoning_content, never in content", async () => {
    const got = [];
    for (const t of THOUGHTS) {
      const res = await ask("tiny-think", t.prompt);
      const message = res.choices[0]?.message as OpenAI.ChatCompletionMessage & Thinking;
      got.push({ prompt: t.prompt, reasoning: message.reasoning_content?.trim(), content: message.content });
      expect(res.choices[0]?.finish_reason).toBe("stop");
      expect(message.content ?? "").not.toMatch(MARKERS);
      expect(message.reasoning_content ?? "").not.toMatch(MARKERS);
      const reasoningTokens = res.usage?.completion_tokens_details?.reasoning_tokens ?? 0;
      expect(reasoningTokens).toBeGreaterThan(0);
      expect(reasoningTokens).toBeLessThan(res.usage?.completion_tokens ?? 0);
    }
    expect(got).toEqual(THOUGHTS.map((t) => ({ prompt: t.prompt, reasoning: t.thought, content: t.answer })));
  });

  it("streams its thoughts as delta.reasoning_content before the answer's content", async () => {
    const stream = await s.client.chat.completions.create({
      model: "tiny-think",
      messages: [{ role: "user", content: first.prompt }],
      temperature: 0,
      max_tokens: 40,
      stream: true,
      stream_options: { include_usage: true },
    });
    const kinds: ("reasoning" | "content")[] = [];
    let reasoning = "";
    let content = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      usage = chunk.usage ?? usage;
      for (const ch of chunk.choices) {
        const delta = ch.delta as typeof ch.delta & Thinking;
        if (delta.reasoning_content) {
          kinds.push("reasoning");
          reasoning += delta.reasoning_content;
        }
        if (delta.content) {
          kinds.push("content");
          content += delta.content;
        }
      }
    }
    // Several pieces of each, every thought before the first piece of the answer.
    expect(kinds.filter((k) => k === "reasoning").length).toBeGreaterThan(1);
    expect(kinds.filter((k) => k === "content").length).toBeGreaterThan(1);
    expect(kinds.indexOf("content")).toBe(kinds.lastIndexOf("reasoning") + 1);
    expect(reasoning.trim()).toBe(first.thought);
    expect(content).toBe(first.answer);
    expect(content + reasoning).not.toMatch(MARKERS);
    expect(usage?.completion_tokens_details?.reasoning_tokens).toBeGreaterThan(0);
  });

  it("reasoning_effort none or minimal turns thinking off: the answer at once, no thoughts", async () => {
    for (const effort of ["none", "minimal"] as const) {
      const res = await ask("tiny-think", first.prompt, { reasoning_effort: effort });
      const message = res.choices[0]?.message as OpenAI.ChatCompletionMessage & Thinking;
      expect(message.reasoning_content).toBeUndefined();
      expect(message.content).toBe(first.answer);
      expect(res.usage?.completion_tokens_details?.reasoning_tokens ?? 0).toBe(0);
    }
    // Any other effort leaves it on.
    const low = await ask("tiny-think", first.prompt, { reasoning_effort: "low" });
    expect((low.choices[0]?.message as Thinking | undefined)?.reasoning_content?.trim()).toBe(first.thought);
  });

  it("reasoning: hide parses the thoughts out and drops them", async () => {
    const res = await ask("think-hide", first.prompt);
    const message = res.choices[0]?.message as OpenAI.ChatCompletionMessage & Thinking;
    expect(message.reasoning_content).toBeUndefined();
    expect(message.content).toBe(first.answer);
  });

  it("reasoning: none leaves the thoughts in the content, between their tags", async () => {
    const res = await ask("think-none", first.prompt);
    const message = res.choices[0]?.message as OpenAI.ChatCompletionMessage & Thinking;
    expect(message.reasoning_content).toBeUndefined();
    expect(message.content).toContain(first.thought);
    // Between their tags (the template opened them in the prompt; the content opens them too).
    expect(message.content).toMatch(/^<think>[\s\S]*<\/think>/);
    expect(message.content?.trimEnd().endsWith(first.answer)).toBe(true);
  });

  it("the Responses API returns the thoughts as a reasoning item before the message", async () => {
    const res = await s.client.responses.create({
      model: "tiny-think",
      input: first.prompt,
      temperature: 0,
      max_output_tokens: 40,
    });
    expect(res.output.map((o) => o.type)).toEqual(["reasoning", "message"]);
    const thoughts = res.output[0] as OpenAI.Responses.ResponseReasoningItem;
    expect(
      thoughts.content
        ?.map((c) => c.text)
        .join("")
        .trim(),
    ).toBe(first.thought);
    expect(res.output_text).toBe(first.answer);
    expect(res.usage?.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
  });
});
