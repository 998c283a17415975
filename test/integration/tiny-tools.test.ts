// The built-in `tiny-tools` model (npm run make-tools-model) really speaks a native format: with
// tool_choice auto and no grammar until it writes `<tool_call>` itself, it calls the right tool
// for each prompt it was trained on, answers greetings in text, and reports a tool's result.
// Served as the default models.yaml serves it, through the openai package.
import { join } from "node:path";
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CALLS, GREETINGS, RESULT_REPLY, TOOLS } from "../../scripts/model/tools-dataset.ts";
import { REPO, startServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  const config = [
    "models:",
    "  - id: roundhouse-tiny-tools",
    "    provider: llama",
    `    path: ${join(REPO, "models", "roundhouse-tiny-tools-q8_0.gguf")}`,
    "    aliases: [tiny-tools]",
    "    context_size: 2048",
    "    parallel: 2",
    "    threads: 1",
    "    preload: true",
  ].join("\n");
  s = await startServer({ config });
});
afterAll(async () => {
  await s?.close();
});

const tools = TOOLS as OpenAI.ChatCompletionTool[];

/** One request to tiny-tools at temperature 0 with its tools offered; `extra` overrides. */
const ask = (
  messages: OpenAI.ChatCompletionMessageParam[],
  extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {},
) =>
  s.client.chat.completions.create({ model: "tiny-tools", messages, tools, temperature: 0, max_tokens: 80, ...extra });
const user = (content: string): OpenAI.ChatCompletionMessageParam[] => [{ role: "user", content }];

describe("tiny-tools, a model trained on Hermes-style tool calls", () => {
  it("is served with its native format", async () => {
    const body = (await (await fetch(`${s.url}/v1/models/tiny-tools`)).json()) as Record<string, unknown>;
    expect(body).toMatchObject({ tool_format: "hermes", tool_format_source: "template" });
  });

  for (const c of CALLS) {
    it(`calls ${c.name} for "${c.prompt}" on its own (tool_choice auto)`, async () => {
      const res = await ask(user(c.prompt));
      const choice = res.choices[0];
      expect(choice?.finish_reason).toBe("tool_calls");
      expect(choice?.message.content).toBeNull();
      const call = choice?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
      expect(choice?.message.tool_calls).toHaveLength(1);
      expect(call.function.name).toBe(c.name);
      expect(JSON.parse(call.function.arguments)).toEqual(c.arguments);
    });
  }

  it("chooses between its tools: each one offered is called for its own prompts, both in every request", async () => {
    // The per-prompt tests above pass for a model that writes one name whatever it is asked as
    // long as the prompts only ask for that one; this holds the dataset to both tools and the
    // model to telling them apart, in one request's tool list.
    expect(tools.map((t) => (t.type === "function" ? t.function.name : ""))).toEqual(["weather", "time"]);
    const called = new Map<string, string[]>();
    for (const c of CALLS) {
      const res = await ask(user(c.prompt));
      const call = res.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall | undefined;
      called.set(c.prompt, [c.name, call?.function.name ?? "(none)"]);
    }
    const wrong = [...called].filter(([, [want, got]]) => want !== got);
    expect(wrong).toEqual([]);
    expect(new Set([...called.values()].map(([want]) => want))).toEqual(new Set(["weather", "time"]));
  });

  for (const g of GREETINGS) {
    it(`answers "${g.prompt}" in text, tools offered all the same`, async () => {
      const res = await ask(user(g.prompt), { max_tokens: 40 });
      expect(res.choices[0]?.finish_reason).toBe("stop");
      expect(res.choices[0]?.message.tool_calls).toBeUndefined();
      expect(res.choices[0]?.message.content).toBe(g.reply);
    });
  }

  it("streams its call as it writes it: name first, then the arguments in pieces", async () => {
    const c = CALLS[0] as (typeof CALLS)[number];
    const stream = await s.client.chat.completions.create({
      model: "tiny-tools",
      messages: [{ role: "user", content: c.prompt }],
      tools,
      temperature: 0,
      max_tokens: 80,
      stream: true,
    });
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let content = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        deltas.push(...(ch.delta.tool_calls ?? []));
        content += ch.delta.content ?? "";
        finish = ch.finish_reason ?? finish;
      }
    }
    expect(content).toBe("");
    expect(finish).toBe("tool_calls");
    expect(deltas[0]).toMatchObject({ index: 0, type: "function", function: { name: c.name } });
    expect(deltas.slice(1).filter((d) => d.function?.arguments).length).toBeGreaterThan(2);
    expect(JSON.parse(deltas.map((d) => d.function?.arguments ?? "").join(""))).toEqual(c.arguments);
  });

  it("a full round trip: the call, its result as a tool message, then the answer", async () => {
    const c = CALLS[0] as (typeof CALLS)[number];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: c.prompt }];
    const first = await ask(messages);
    const message = first.choices[0]?.message as OpenAI.ChatCompletionMessage;
    const call = message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    const second = await ask([...messages, message, { role: "tool", tool_call_id: call.id, content: "21 degrees" }], {
      max_tokens: 40,
    });
    expect(second.choices[0]?.finish_reason).toBe("stop");
    expect(second.choices[0]?.message.content).toBe(RESULT_REPLY);
  });

  it("tool_choice none: no call, and no marker text in the content", async () => {
    const res = await ask(user((CALLS[0] as (typeof CALLS)[number]).prompt), { tool_choice: "none", max_tokens: 40 });
    expect(res.choices[0]?.message.tool_calls).toBeUndefined();
  });

  it("the lazy grammar holds the call to the tools' schemas once the model starts it", async () => {
    // The model would write "Asia/Tokyo"; offered a time tool whose timezone can only be one of
    // two others, the grammar switched on at its own `<tool_call>` makes the call valid anyway.
    const c = CALLS[0] as (typeof CALLS)[number];
    const restricted = tools.map((t) =>
      t.type === "function" && t.function.name === c.name
        ? {
            ...t,
            function: {
              ...t.function,
              parameters: {
                type: "object",
                properties: { timezone: { type: "string", enum: ["Europe/Berlin", "UTC"] } },
                required: ["timezone"],
              },
            },
          }
        : t,
    );
    const res = await ask(user(c.prompt), { tools: restricted });
    // (What the model writes after a call forced off its habits is its own business.)
    const call = res.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe(c.name);
    expect(["Europe/Berlin", "UTC"]).toContain((JSON.parse(call.function.arguments) as { timezone: string }).timezone);
  });

  it("a named tool_choice overrides what it would call", async () => {
    const res = await ask(user((CALLS[0] as (typeof CALLS)[number]).prompt), {
      tool_choice: { type: "function", function: { name: "weather" } },
    });
    const call = res.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("weather");
    expect(Object.keys(JSON.parse(call.function.arguments) as object)).toEqual(["city"]);
  });
});
