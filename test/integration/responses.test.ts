// The Responses API end to end on the built-in model: the official openai package (create,
// stream, the stream helper that checks the order of events, tools with function_call_output,
// previous_response_id, retrieve, delete, input items) and the AI SDK's OpenAI provider, whose
// default since AI SDK 5 is /v1/responses. Bodies and events are checked against the spec.
import { createOpenAI } from "@ai-sdk/openai";
import { ChatOpenAI } from "@langchain/openai";
import { Agent, OpenAIProvider, Runner, setTracingDisabled } from "@openai/agents";
import { generateText, jsonSchema, streamText, tool } from "ai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunk, type FakeUpstream, sseData, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { assertMatchesSchema, schemaErrors } from "../helpers/openapi.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

let s: TestServer;
let up: FakeUpstream;

beforeAll(async () => {
  up = await startFakeUpstream();
  const quick = `
  - id: quick-up
    provider: openai
    base_url: ${up.baseUrl}
    timeout: 300ms
    retries: 0`;
  s = await startServer({ config: tinyConfig().concat(quick), apiKeys: ["key-a", "key-b"] });
  // Compiled now: seconds on this event loop would otherwise race the server's keep-alive timer.
  schemaErrors("Response", {});
});

afterAll(async () => {
  await s?.close();
  await up?.close();
});

const client = (key = "key-a") => new OpenAI({ baseURL: s.baseURL, apiKey: key, maxRetries: 0 });

/** The spec's schema of each event type this server sends. */
const EVENT_SCHEMAS: Record<string, string> = {
  "response.created": "ResponseCreatedEvent",
  "response.in_progress": "ResponseInProgressEvent",
  "response.output_item.added": "ResponseOutputItemAddedEvent",
  "response.content_part.added": "ResponseContentPartAddedEvent",
  "response.output_text.delta": "ResponseTextDeltaEvent",
  "response.output_text.done": "ResponseTextDoneEvent",
  "response.content_part.done": "ResponseContentPartDoneEvent",
  "response.output_item.done": "ResponseOutputItemDoneEvent",
  "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
  "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
  "response.completed": "ResponseCompletedEvent",
  "response.incomplete": "ResponseIncompleteEvent",
};

const capitalTool = {
  type: "function" as const,
  name: "capital",
  description: "The capital of a country",
  parameters: { type: "object", properties: { country: { type: "string" } }, required: ["country"] },
  strict: false,
};

describe("POST /v1/responses", () => {
  it("answers a string input with a completed response in the spec's shape", async () => {
    const response = await client().responses.create({
      model: "tiny",
      input: "What is the capital of France?",
      temperature: 0,
    });
    assertMatchesSchema("Response", response);
    expect(response.id).toMatch(/^resp_/);
    expect(response.status).toBe("completed");
    expect(response.output_text).toContain("Paris");
    expect(response.output[0]).toMatchObject({ type: "message", role: "assistant", status: "completed" });
    expect(response.usage?.input_tokens).toBeGreaterThan(0);
    expect(response.usage?.total_tokens).toBe(
      (response.usage?.input_tokens ?? 0) + (response.usage?.output_tokens ?? 0),
    );
  });

  it("says incomplete, with the reason, when max_output_tokens cuts the answer", async () => {
    const response = await client().responses.create({
      model: "tiny",
      input: "Tell me a story.",
      max_output_tokens: 3,
      temperature: 0,
    });
    expect(response.status).toBe("incomplete");
    expect(response.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(response.usage?.output_tokens).toBe(3);
  });

  it("streams events in order, each in the spec's shape, and the stream helper accepts them", async () => {
    const stream = await client().responses.create({
      model: "tiny",
      input: [{ role: "user", content: [{ type: "input_text", text: "What is the capital of Spain?" }] }],
      instructions: "Answer briefly.",
      temperature: 0,
      stream: true,
    });
    const types: string[] = [];
    let text = "";
    let sequence = -1;
    for await (const event of stream) {
      types.push(event.type);
      expect(event.sequence_number).toBe(sequence + 1);
      sequence = event.sequence_number;
      if (event.type === "response.output_text.delta") text += event.delta;
      assertMatchesSchema(EVENT_SCHEMAS[event.type] ?? "ResponseStreamEvent", event);
    }
    expect(types.slice(0, 4)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
    ]);
    expect(types.slice(-4)).toEqual([
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(types.filter((t) => t === "response.output_text.delta").length).toBeGreaterThan(1);
    expect(text).toContain("Madrid");

    const helper = client().responses.stream({ model: "tiny", input: "What is the capital of Spain?", temperature: 0 });
    const final = await helper.finalResponse();
    expect(final.output_text).toBe(text);
  });

  it("calls a function and continues from its output, in one request or through previous_response_id", async () => {
    const first = await client().responses.create({
      model: "tiny",
      input: "What is the capital of France?",
      tools: [capitalTool],
      tool_choice: "required",
      max_output_tokens: 200,
      temperature: 0,
    });
    const call = first.output.find((o) => o.type === "function_call");
    expect(call).toMatchObject({ type: "function_call", name: "capital", status: "completed" });
    if (call?.type !== "function_call") throw new Error("no call");
    expect(call.call_id).toMatch(/^call_/);
    expect(() => JSON.parse(call.arguments)).not.toThrow();

    const second = await client().responses.create({
      model: "tiny",
      previous_response_id: first.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "Paris" }],
      tools: [capitalTool],
      temperature: 0,
    });
    expect(second.status).toBe("completed");
    expect(second.previous_response_id).toBe(first.id);
    // The stored chain was the context: more input tokens than the new item alone could give.
    expect(second.usage?.input_tokens).toBeGreaterThan(first.usage?.input_tokens ?? 0);
  });

  it("streams a function call as events of the spec's shape", async () => {
    const stream = await client().responses.create({
      model: "tiny",
      input: "What is the capital of France?",
      tools: [capitalTool],
      tool_choice: "required",
      max_output_tokens: 200,
      temperature: 0,
      stream: true,
    });
    const types: string[] = [];
    let args = "";
    for await (const event of stream) {
      types.push(event.type);
      assertMatchesSchema(EVENT_SCHEMAS[event.type] ?? "ResponseStreamEvent", event);
      if (event.type === "response.function_call_arguments.done") args = event.arguments;
    }
    expect(types).toContain("response.function_call_arguments.delta");
    expect(types.at(-1)).toBe("response.completed");
    expect(() => JSON.parse(args)).not.toThrow();
  });

  it("ends a stream that fails midway with an error event numbered after the last one", async () => {
    up.script({ kind: "stall", events: [sseData(chunk("quick-up", { content: "so far" }))] });
    const res = await fetch(`${s.baseURL}/responses`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer key-a" },
      body: JSON.stringify({ model: "quick-up", input: "Hi", stream: true }),
    });
    const events = (await res.text())
      .split("\n\n")
      .filter((frame) => frame.includes("data: "))
      .map(
        (frame) => JSON.parse(frame.slice(frame.indexOf("data: ") + 6)) as { type: string; sequence_number: number },
      );
    const last = events.at(-1);
    expect(last?.type).toBe("error");
    expect(events.some((e) => e.type === "response.output_text.delta")).toBe(true);
    expect(last?.sequence_number).toBe((events.at(-2)?.sequence_number ?? -2) + 1);
    expect(events.some((e) => e.type === "response.completed")).toBe(false);
  });

  it("stores responses for their own key: retrieve, input items, delete", async () => {
    const created = await client().responses.create({
      model: "tiny",
      input: [
        { role: "user", content: "My name is Ada." },
        { role: "user", content: "What is my name?" },
      ],
      temperature: 0,
    });
    const retrieved = await client().responses.retrieve(created.id);
    expect(retrieved).toEqual(JSON.parse(JSON.stringify(created)));

    const items = await client().responses.inputItems.list(created.id, { order: "asc" });
    expect(items.data.map((i) => (i.type === "message" ? i.role : i.type))).toEqual(["user", "user"]);
    const page = await fetch(`${s.baseURL}/responses/${created.id}/input_items?limit=1`, {
      headers: { authorization: "Bearer key-a" },
    });
    const body = (await page.json()) as { data: { id: string }[]; has_more: boolean; first_id: string };
    expect(body).toMatchObject({ has_more: true });
    assertMatchesSchema("ResponseItemList", body);

    // Another key does not see it, as if it did not exist.
    await expect(client("key-b").responses.retrieve(created.id)).rejects.toMatchObject({ status: 404 });
    await expect(client("key-b").responses.delete(created.id)).rejects.toMatchObject({ status: 404 });
    await expect(
      client("key-b").responses.create({ model: "tiny", input: "Hi", previous_response_id: created.id }),
    ).rejects.toMatchObject({ status: 404 });

    await client().responses.delete(created.id);
    await expect(client().responses.retrieve(created.id)).rejects.toMatchObject({ status: 404 });

    const unstored = await client().responses.create({ model: "tiny", input: "Hi", store: false, temperature: 0 });
    await expect(client().responses.retrieve(unstored.id)).rejects.toMatchObject({ status: 404 });
  });

  it("refuses what it cannot honour with a 400 naming the parameter", async () => {
    const refused = async (extra: Record<string, unknown>, param: string) => {
      const res = await fetch(`${s.baseURL}/responses`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer key-a" },
        body: JSON.stringify({ model: "tiny", input: "Hi", ...extra }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
    };
    await refused({ tools: [{ type: "web_search" }] }, "tools[0].type");
    await refused({ background: true }, "background");
    // The tiny model's template has no thinking switch.
    await refused({ reasoning: { effort: "high" } }, "reasoning.effort");
    await refused({ reasoning: { summary: "auto" } }, "reasoning.summary");
    await refused(
      { input: [{ role: "user", content: [{ type: "input_image", image_url: "x" }] }] },
      "input[0].content[0]",
    );
    await refused({ include: ["reasoning.encrypted_content"] }, "include[0]");
    await refused({ unknown_field: 1 }, "unknown_field");
  });
});

describe("the Agents SDK (Responses API by default)", () => {
  it("runs one turn of an agent", async () => {
    setTracingDisabled(true);
    const runner = new Runner({
      modelProvider: new OpenAIProvider({ apiKey: "key-a", baseURL: s.baseURL, useResponses: true }),
    });
    const agent = new Agent({
      name: "geographer",
      instructions: "Answer briefly.",
      model: "tiny",
      modelSettings: { temperature: 0 },
    });
    const result = await runner.run(agent, "What is the capital of France?");
    expect(result.finalOutput).toContain("Paris");
  });
});

describe("LangChain's ChatOpenAI on the Responses API", () => {
  it("invokes, and binds a tool", async () => {
    const model = new ChatOpenAI({
      model: "tiny",
      temperature: 0,
      useResponsesApi: true,
      maxTokens: 200,
      maxRetries: 0,
      apiKey: "key-a",
      configuration: { baseURL: s.baseURL },
    });
    const reply = await model.invoke("What is the capital of France?");
    expect(reply.text).toContain("Paris");
    const { name, description, parameters } = capitalTool;
    const withTool = model.bindTools([{ type: "function", function: { name, description, parameters } }], {
      tool_choice: "required",
    });
    const called = await withTool.invoke("What is the capital of France?");
    expect(called.tool_calls?.[0]).toMatchObject({ name: "capital" });
  });
});

describe("the AI SDK's OpenAI provider (Responses API by default)", () => {
  const provider = () => createOpenAI({ baseURL: s.baseURL, apiKey: "key-a" });

  it("generateText and streamText", async () => {
    const { text, usage } = await generateText({
      model: provider()("tiny"),
      prompt: "What is the capital of France?",
      temperature: 0,
      maxRetries: 0,
    });
    expect(text).toContain("Paris");
    expect(usage.inputTokens).toBeGreaterThan(0);

    const streamed = streamText({
      model: provider()("tiny"),
      prompt: "What is the capital of France?",
      temperature: 0,
    });
    let joined = "";
    for await (const piece of streamed.textStream) joined += piece;
    expect(joined).toBe(text);
  });

  it("calls tools", async () => {
    const result = await generateText({
      model: provider()("tiny"),
      prompt: "What is the capital of France?",
      temperature: 0,
      maxRetries: 0,
      toolChoice: "required",
      tools: {
        capital: tool({
          description: "The capital of a country",
          inputSchema: jsonSchema<{ country: string }>({
            type: "object",
            properties: { country: { type: "string" } },
            required: ["country"],
          }),
        }),
      },
    });
    expect(result.toolCalls[0]).toMatchObject({ toolName: "capital" });
  });
});
