// Native tool calls end to end, through the openai package: the tiny model served with a
// Hermes-style template (scripts/model/tools-chat-template.ts), so its format resolves to
// "hermes"; calls are parsed from the model's own output and streamed as they are generated.
// tool_choice required / named constrain the reply from its first token, so even the base tiny
// model (never trained on tools) makes calls that parse and match the tools' schemas.
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOOLS_CHAT_TEMPLATE } from "../../scripts/model/tools-chat-template.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  // The tools' descriptions take ~600 of the tiny tokenizer's tokens.
  const config = [
    "models:",
    "  - id: roundhouse-tiny",
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    context_size: 2048",
    "    parallel: 2",
    "    threads: 1",
    "    preload: true",
    `    chat_template: ${JSON.stringify(TOOLS_CHAT_TEMPLATE)}`,
  ].join("\n");
  s = await startServer({ config });
});
afterAll(async () => {
  await s?.close();
});

const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The weather in a city",
      parameters: {
        type: "object",
        properties: {
          city: { type: "string", maxLength: 12 },
          unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        },
        required: ["city", "unit"],
        additionalProperties: false,
      },
      strict: true,
    },
  },
  {
    type: "function",
    function: {
      name: "get_time",
      parameters: {
        type: "object",
        properties: { timezone: { type: "string", maxLength: 12 } },
        required: ["timezone"],
        additionalProperties: false,
      },
      strict: true,
    },
  },
];
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "What is the weather in Paris?" }];

function checkArguments(name: string, args: string): void {
  const parsed = JSON.parse(args) as Record<string, unknown>;
  if (name === "get_weather") {
    expect(Object.keys(parsed).sort()).toEqual(["city", "unit"]);
    expect(["celsius", "fahrenheit"]).toContain(parsed.unit);
  } else {
    expect(name).toBe("get_time");
    expect(Object.keys(parsed)).toEqual(["timezone"]);
  }
}

describe("a model whose template has its own tool-call format", () => {
  it("GET /v1/models/{id} says which format it got", async () => {
    const res = await fetch(`${s.url}/v1/models/roundhouse-tiny`);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      id: "roundhouse-tiny",
      tool_format: "hermes",
      tool_format_source: "template",
      reasoning: "auto",
      reasoning_efforts: [],
    });
  });

  it("a named tool_choice makes that call, parsed from the model's <tool_call> output", async () => {
    const res = await s.client.chat.completions.create({
      model: "roundhouse-tiny",
      messages,
      tools,
      tool_choice: { type: "function", function: { name: "get_time" } },
      temperature: 0,
      max_tokens: 120,
    });
    const choice = res.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    expect(choice?.message.content).toBeNull();
    const calls = choice?.message.tool_calls ?? [];
    expect(calls).toHaveLength(1);
    const call = calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^call_/);
    expect(call.function.name).toBe("get_time");
    checkArguments(call.function.name, call.function.arguments);
  });

  it("streams the call: name and id first, then the arguments in several deltas", async () => {
    const stream = await s.client.chat.completions.create({
      model: "roundhouse-tiny",
      messages,
      tools,
      tool_choice: "required",
      temperature: 0,
      max_tokens: 120,
      stream: true,
    });
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let content = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        deltas.push(...(c.delta.tool_calls ?? []));
        content += c.delta.content ?? "";
        finish = c.finish_reason ?? finish;
      }
    }
    expect(content).toBe("");
    expect(finish).toBe("tool_calls");
    const first = deltas[0];
    expect(first).toMatchObject({ index: 0, type: "function" });
    expect(first?.id).toMatch(/^call_/);
    expect(["get_weather", "get_time"]).toContain(first?.function?.name);
    const argumentDeltas = deltas.slice(1).filter((d) => d.function?.arguments);
    expect(argumentDeltas.length).toBeGreaterThan(2);
    for (const d of deltas.slice(1)) {
      expect(d.index).toBe(0);
      expect(d.id).toBeUndefined();
    }
    const args = deltas.map((d) => d.function?.arguments ?? "").join("");
    checkArguments(first?.function?.name as string, args);
  });

  it("a round trip: the call and its result go back through the template", async () => {
    const first = await s.client.chat.completions.create({
      model: "roundhouse-tiny",
      messages,
      tools,
      tool_choice: { type: "function", function: { name: "get_weather" } },
      temperature: 0,
      max_tokens: 120,
    });
    const message = first.choices[0]?.message as OpenAI.ChatCompletionMessage;
    const call = message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    const second = await s.client.chat.completions.create({
      model: "roundhouse-tiny",
      messages: [...messages, message, { role: "tool", tool_call_id: call.id, content: "Sunny, 21 degrees" }],
      tools,
      tool_choice: "none",
      temperature: 0,
      max_tokens: 16,
    });
    expect(second.choices[0]?.message.tool_calls).toBeUndefined();
    expect(second.choices[0]?.finish_reason).not.toBe("tool_calls");
    // The call and its result are in the prompt (rendered by the template, not as plain text).
    const bare = await s.client.chat.completions.create({ model: "roundhouse-tiny", messages, max_tokens: 1 });
    expect(second.usage?.prompt_tokens).toBeGreaterThan((bare.usage?.prompt_tokens ?? 0) + 20);
  });

  it("parallel_tool_calls: false stops after one call", async () => {
    const res = await s.client.chat.completions.create({
      model: "roundhouse-tiny",
      messages,
      tools,
      tool_choice: "required",
      parallel_tool_calls: false,
      temperature: 0,
      max_tokens: 120,
    });
    expect(res.choices[0]?.message.tool_calls).toHaveLength(1);
  });

  it("tools with response_format: a call, or an answer in the format", async () => {
    const res = await s.client.chat.completions.create({
      model: "roundhouse-tiny",
      messages: [{ role: "user", content: "Hello!" }],
      tools,
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "answer",
          strict: true,
          schema: {
            type: "object",
            properties: { answer: { type: "string", maxLength: 20 } },
            required: ["answer"],
            additionalProperties: false,
          },
        },
      },
      temperature: 0,
      max_tokens: 120,
    });
    const choice = res.choices[0];
    if (choice?.finish_reason === "tool_calls") {
      const call = choice.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
      checkArguments(call.function.name, call.function.arguments);
    } else {
      expect(choice?.finish_reason).toBe("stop");
      expect(Object.keys(JSON.parse(choice?.message.content ?? ""))).toEqual(["answer"]);
    }
  });

  it("reasoning_effort is a 400 for a template without a thinking switch", async () => {
    await expect(
      s.client.chat.completions.create({
        model: "roundhouse-tiny",
        messages,
        reasoning_effort: "low",
        max_tokens: 4,
      }),
    ).rejects.toMatchObject({ status: 400, param: "reasoning_effort" });
  });

  it("a call cut by max_tokens never comes back as content", async () => {
    for (const max_tokens of [1, 3, 6, 10]) {
      const res = await s.client.chat.completions.create({
        model: "roundhouse-tiny",
        messages,
        tools,
        tool_choice: "required",
        temperature: 0,
        max_tokens,
      });
      const choice = res.choices[0];
      expect(choice?.finish_reason).toBe("length");
      expect(choice?.message.content ?? "").not.toContain("<tool");
      expect(choice?.message.content ?? "").not.toContain("{");
    }
  });
});
