// A thinking model's reply as the provider turns it into events (NativeReply), and those events
// as the wire shapes: chat's reasoning_content (whole and streamed) with usage's reasoning_tokens,
// and the Responses API's reasoning output item.
import type { LlamaModel } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import type { ReasoningSetting, ToolFamily } from "../../src/engine/tool-formats/families.ts";
import { collect, toChunks } from "../../src/openai/completion.ts";
import { ResponseRequest, responseEvents, responseShell } from "../../src/openai/responses.ts";
import { NativeReply } from "../../src/providers/native-tools.ts";
import type { ChatEvent } from "../../src/providers/provider.ts";

function run(
  family: ToolFamily,
  pieces: string[],
  opts: { reasoning?: ReasoningSetting; parallel?: boolean; reason?: "stop" | "length" } = {},
) {
  const events: ChatEvent[] = [];
  const reply = new NativeReply({
    family,
    index: 0,
    tools: true,
    startInReasoning: false,
    reasoning: opts.reasoning ?? "auto",
    parallel: opts.parallel ?? true,
    grammars: undefined,
    // Used only for grammars and token bans, none of which this test builds.
    model: {} as LlamaModel,
    vocabularySize: 0,
    push: (e) => events.push(e),
  });
  let stopped = false;
  for (const p of pieces) {
    if (reply.text(p) === "stop") {
      stopped = true;
      break;
    }
  }
  reply.end(opts.reason ?? "stop");
  return { events, stopped, reasoningTokens: reply.reasoningTokens };
}

const QWEN3 = [
  "<think>",
  "\nThe user",
  " wants Paris.\n",
  "</think>\n\n",
  "<tool_call>\n",
  '{"name": "get_weather", ',
  '"arguments": {"city": ',
  '"Paris"}}\n</tool_call>',
  "\n<tool_call>\n",
  '{"name": "get_time", "arguments": {"timezone": "UTC"}}\n</tool_call>',
];

async function* from<T>(items: T[]): AsyncGenerator<T> {
  for (const i of items) yield i;
}

describe("a thinking model's reply", () => {
  it("thoughts become reasoning events, calls tool_call_delta events, and the finish is tool_calls", () => {
    const { events, reasoningTokens } = run("qwen3", QWEN3);
    const reasoning = events.filter((e) => e.type === "reasoning").map((e) => (e as { text: string }).text);
    expect(reasoning.join("")).toBe("\nThe user wants Paris.\n");
    // The pieces that carried thoughts (the markers themselves are not counted).
    expect(reasoningTokens).toBe(2);
    expect(events.some((e) => e.type === "content")).toBe(false);
    const deltas = events.flatMap((e) => (e.type === "tool_call_delta" ? [e.delta] : []));
    expect(deltas[0]).toMatchObject({ index: 0, type: "function", function: { name: "get_weather", arguments: "" } });
    expect(deltas.filter((d) => d.index === 1)[0]).toMatchObject({ type: "function", function: { name: "get_time" } });
    expect(new Set(deltas.filter((d) => d.id).map((d) => d.id)).size).toBe(2);
    expect(events.at(-1)).toEqual({ type: "finish", index: 0, reason: "tool_calls" });
  });

  it("reasoning: hide drops the thoughts, none leaves them in the content", () => {
    expect(run("qwen3", ["<think>hmm</think>Hi"], { reasoning: "hide" }).events).toEqual([
      { type: "content", index: 0, text: "Hi", logprobs: undefined },
      { type: "finish", index: 0, reason: "stop" },
    ]);
    const none = run("qwen3", ["<think>hmm</think>Hi"], { reasoning: "none" }).events;
    // Between their tags, as written, so a client that reads <think> finds them.
    expect(none.filter((e) => e.type === "content").map((e) => (e as { text: string }).text)).toEqual([
      "<think>hmm",
      "</think>",
      "Hi",
    ]);
  });

  it("parallel_tool_calls: false ends the reply after its first call", () => {
    const { events, stopped } = run("qwen3", QWEN3, { parallel: false });
    expect(stopped).toBe(true);
    const names = events.flatMap((e) =>
      e.type === "tool_call_delta" && e.delta.function?.name ? [e.delta.function.name] : [],
    );
    expect(names).toEqual(["get_weather"]);
  });

  it("a call cut by max_tokens finishes with length and leaves nothing in content", () => {
    const { events } = run("hermes", ['Let me see.\n<tool_call>\n{"name": "get_weather", "argu'], { reason: "length" });
    expect(
      events
        .filter((e) => e.type === "content")
        .map((e) => (e as { text: string }).text)
        .join(""),
    ).toBe("Let me see.\n");
    expect(events.at(-1)).toEqual({ type: "finish", index: 0, reason: "length" });
  });

  it("Mistral calls get the 9-character ids its template requires", () => {
    const { events } = run("mistral", ['[TOOL_CALLS][{"name": "f", "arguments": {}}]']);
    const id = events.flatMap((e) => (e.type === "tool_call_delta" && e.delta.id ? [e.delta.id] : []))[0];
    expect(id).toMatch(/^[A-Za-z0-9]{9}$/);
  });

  it("chat: message.reasoning_content, delta.reasoning_content and usage's reasoning_tokens", async () => {
    const { events } = run("qwen3", ["<think>Easy.</think>\n\nHello!"]);
    const meta = { id: "chatcmpl-1", created: 1, model: "m", systemFingerprint: "fp" };
    const usage = () => ({ promptTokens: 5, completionTokens: 7, reasoningTokens: 2 });
    const whole = await collect(from(events), meta, usage);
    expect(whole.choices[0]?.message).toMatchObject({ content: "Hello!", reasoning_content: "Easy." });
    expect(whole.usage?.completion_tokens_details).toEqual({ reasoning_tokens: 2 });
    const chunks = [];
    for await (const c of toChunks(from(events), meta, false)) chunks.push(c);
    const streamed = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.reasoning_content ?? "")).join("");
    expect(streamed).toBe("Easy.");
    expect(chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("")).toBe("Hello!");
  });

  it("Responses: the thoughts are a reasoning output item before the message", async () => {
    const { events } = run("qwen3", ["<think>Easy.</think>\n\nHello!"]);
    const req = ResponseRequest.parse({ model: "m", input: "Hi", reasoning: { effort: "low" } });
    let n = 0;
    const meta = { id: "resp_1", createdAt: 1, model: "m", newItemId: (p: string) => `${p}_${n++}` };
    const shell = responseShell(req, meta, 1);
    expect(shell.reasoning.effort).toBe("low");
    const stream = responseEvents(from(events), shell, meta, () => ({
      promptTokens: 5,
      completionTokens: 7,
      reasoningTokens: 2,
    }));
    const types: string[] = [];
    let final: Awaited<ReturnType<typeof stream.next>>;
    for (final = await stream.next(); !final.done; final = await stream.next()) types.push(final.value.type);
    const response = final.value;
    expect(response.output.map((o) => o.type)).toEqual(["reasoning", "message"]);
    expect(response.output[0]).toMatchObject({
      type: "reasoning",
      status: "completed",
      content: [{ type: "reasoning_text", text: "Easy." }],
    });
    expect(response.usage?.output_tokens_details.reasoning_tokens).toBe(2);
    expect(types).toContain("response.reasoning_text.delta");
    expect(types.indexOf("response.reasoning_text.done")).toBeLessThan(types.indexOf("response.output_text.delta"));
  });
});
