// POST /v1/responses, as OpenAI defines it (CreateResponse in; Response and its stream events
// out), translated at the edge onto chat: the request becomes a chat completion request, the
// chat provider events become output items. Parameters we cannot honour (built-in tools,
// reasoning, background runs) are accepted by the schema only so the client is told which one
// with a 400, never silently ignored.
import { z } from "zod";
import type { ChatEvent, TokenUsage } from "../providers/provider.ts";
import type { ChatCompletionRequest } from "./chat.ts";
import { nullish } from "./chat-request.ts";
import { invalidRequest, unsupportedParameter } from "./errors.ts";

const InputText = z.looseObject({ type: z.literal("input_text"), text: z.string() });
const OutputText = z.looseObject({ type: z.literal("output_text"), text: z.string() });
const Refusal = z.looseObject({ type: z.literal("refusal"), refusal: z.string() });
// Recognised so the error can say they are not supported.
const OtherPart = z.looseObject({ type: z.enum(["input_image", "input_file", "input_audio"]) });

const MessageItem = z.looseObject({
  type: z.literal("message").optional(),
  role: z.enum(["user", "assistant", "system", "developer"]),
  content: z.union([z.string(), z.array(z.union([InputText, OutputText, Refusal, OtherPart]))]),
  id: z.string().optional(),
  status: z.string().optional(),
});

const FunctionCallItem = z.looseObject({
  type: z.literal("function_call"),
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
  id: z.string().optional(),
  status: z.string().optional(),
});

const FunctionCallOutputItem = z.looseObject({
  type: z.literal("function_call_output"),
  call_id: z.string().min(1),
  output: z.union([z.string(), z.array(z.union([InputText, OtherPart]))]),
  id: z.string().optional(),
  status: z.string().optional(),
});

// A model's private reasoning state: handed back by clients, meaningless to another model.
const ReasoningItem = z.looseObject({ type: z.literal("reasoning") });
const ItemReference = z.looseObject({ type: z.literal("item_reference"), id: z.string() });

export const InputItem = z.union([MessageItem, FunctionCallItem, FunctionCallOutputItem, ReasoningItem, ItemReference]);
export type InputItem = z.output<typeof InputItem>;

const FunctionTool = z.looseObject({
  type: z.literal("function"),
  name: z.string(),
  description: nullish(z.string()),
  parameters: nullish(z.record(z.string(), z.unknown())),
  strict: nullish(z.boolean()),
});
const HostedTool = z.looseObject({ type: z.string() });

const TextFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    name: z.string(),
    schema: z.record(z.string(), z.unknown()),
    description: nullish(z.string()),
    strict: nullish(z.boolean()),
  }),
]);

export const ResponseRequest = z.strictObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(InputItem)]),
  instructions: nullish(z.string()),
  max_output_tokens: nullish(z.int().min(1)),
  temperature: nullish(z.number().min(0).max(2)),
  top_p: nullish(z.number().min(0).max(1)),
  top_logprobs: nullish(z.int().min(0).max(20)),
  tools: nullish(z.array(z.union([FunctionTool, HostedTool]))),
  tool_choice: nullish(
    z.union([
      z.enum(["none", "auto", "required"]),
      z.looseObject({ type: z.literal("function"), name: z.string() }),
      z.looseObject({ type: z.string() }),
    ]),
  ),
  parallel_tool_calls: nullish(z.boolean()),
  text: nullish(z.looseObject({ format: nullish(TextFormat), verbosity: nullish(z.string()) })),
  metadata: nullish(z.record(z.string(), z.string())),
  user: nullish(z.string()),
  safety_identifier: nullish(z.string()),
  prompt_cache_key: nullish(z.string()),
  store: nullish(z.boolean()),
  stream: nullish(z.boolean()),
  stream_options: nullish(z.looseObject({ include_obfuscation: nullish(z.boolean()) })),
  previous_response_id: nullish(z.string()),
  service_tier: nullish(z.string()),
  truncation: nullish(z.enum(["auto", "disabled"])),
  include: nullish(z.array(z.string())),
  // Accepted only to be refused by name (unsupportedResponseParams).
  reasoning: nullish(z.looseObject({})),
  background: nullish(z.boolean()),
  conversation: nullish(z.unknown()),
  prompt: nullish(z.unknown()),
  max_tool_calls: nullish(z.int().min(1)),
});
export type ResponseRequest = z.output<typeof ResponseRequest>;

/** What this server cannot hold whoever answers (it keeps the state): a 400 naming it, before anything runs. */
export function checkStateRequest(req: ResponseRequest): void {
  if (req.background)
    throw unsupportedParameter("background", "is not supported: responses run while the request waits");
  if (req.conversation !== undefined)
    throw unsupportedParameter("conversation", "is not supported; use previous_response_id");
}

/** What translation onto chat cannot carry: a 400 naming it (a model serving the Responses API itself may take it). */
export function checkTranslatable(req: ResponseRequest): void {
  if (req.prompt !== undefined) throw unsupportedParameter("prompt", "(stored prompt templates) is not supported");
  if (req.truncation === "auto")
    throw unsupportedParameter("truncation", "`auto` is not supported; a too-long input is a 400");
  // reasoning.effort goes on as the chat request's reasoning_effort (the model decides); a
  // summary of the thoughts is not something these models write.
  for (const [key, value] of Object.entries(req.reasoning ?? {})) {
    if (key !== "effort" && value !== null && value !== undefined) {
      throw unsupportedParameter(`reasoning.${key}`, "is not supported by this server's models");
    }
  }
  for (const [i, include] of (req.include ?? []).entries()) {
    throw unsupportedParameter(`include[${i}]`, `\`${include}\` is not supported`);
  }
  for (const [i, tool] of (req.tools ?? []).entries()) {
    if (tool.type !== "function") {
      throw unsupportedParameter(
        `tools[${i}].type`,
        `\`${tool.type}\`: only function tools are supported (no built-in tools)`,
      );
    }
  }
  const choice = req.tool_choice;
  if (typeof choice === "object" && choice.type !== "function") {
    throw unsupportedParameter(
      "tool_choice",
      `\`${choice.type}\` is not supported; use none, auto, required or a function`,
    );
  }
}

/** The request's own input as items. */
export function inputItems(input: ResponseRequest["input"]): InputItem[] {
  return typeof input === "string" ? [{ type: "message", role: "user", content: input }] : input;
}

type ChatMessage = ChatCompletionRequest["messages"][number];

function partsText(content: z.output<typeof MessageItem>["content"], where: string): string {
  if (typeof content === "string") return content;
  return content
    .map((part, j) => {
      if (part.type === "input_text" || part.type === "output_text") return part.text as string;
      if (part.type === "refusal") return part.refusal as string;
      throw unsupportedParameter(`${where}.content[${j}]`, `\`${part.type}\` parts are not supported (text only)`);
    })
    .join("");
}

/** The conversation items as chat messages: consecutive function calls become one assistant turn. */
export function toChatMessages(items: readonly InputItem[], instructions: string | undefined): ChatMessage[] {
  const messages: ChatMessage[] = instructions ? [{ role: "developer", content: instructions }] : [];
  for (const [i, item] of items.entries()) {
    const where = `input[${i}]`;
    switch (item.type) {
      case "reasoning":
        break;
      case "item_reference":
        throw unsupportedParameter(`${where}`, "item references are not supported; send the item itself");
      case "function_call": {
        const call = {
          id: item.call_id,
          type: "function" as const,
          function: { name: item.name, arguments: item.arguments },
        };
        const last = messages.at(-1);
        if (last?.role === "assistant" && last.tool_calls) last.tool_calls.push(call);
        else messages.push({ role: "assistant", tool_calls: [call] });
        break;
      }
      case "function_call_output": {
        const output = typeof item.output === "string" ? item.output : partsText(item.output, where);
        messages.push({ role: "tool", tool_call_id: item.call_id, content: output });
        break;
      }
      default: {
        const text = partsText(item.content, where);
        messages.push({ role: item.role, content: text } as ChatMessage);
      }
    }
  }
  if (messages.every((m) => m.role === "developer" || m.role === "system")) {
    throw invalidRequest("input has no message for the model to answer.", "input");
  }
  return messages;
}

/** The chat request a Responses request stands for, over the whole conversation. */
export function toChatRequest(req: ResponseRequest, conversation: readonly InputItem[]): unknown {
  const format = req.text?.format;
  const choice = req.tool_choice;
  return {
    model: req.model,
    messages: toChatMessages(conversation, req.instructions),
    max_completion_tokens: req.max_output_tokens,
    temperature: req.temperature,
    top_p: req.top_p,
    ...(req.top_logprobs ? { logprobs: true, top_logprobs: req.top_logprobs } : {}),
    tools: req.tools?.map((t) => ({
      type: "function",
      function: {
        name: t.name,
        ...(t.description ? { description: t.description } : {}),
        ...(t.parameters ? { parameters: t.parameters } : {}),
        ...(t.strict !== undefined ? { strict: t.strict } : {}),
      },
    })),
    tool_choice: typeof choice === "object" ? { type: "function", function: { name: choice.name } } : choice,
    parallel_tool_calls: req.parallel_tool_calls,
    ...(typeof req.reasoning?.effort === "string" ? { reasoning_effort: req.reasoning.effort } : {}),
    response_format:
      format?.type === "json_schema"
        ? {
            type: "json_schema",
            json_schema: {
              name: format.name,
              schema: format.schema,
              ...(format.description ? { description: format.description } : {}),
              ...(format.strict !== undefined ? { strict: format.strict } : {}),
            },
          }
        : format,
    user: req.user,
    safety_identifier: req.safety_identifier,
    stream: req.stream,
  };
}

// ---------------------------------------------------------------- output

export interface OutputMessage {
  type: "message";
  id: string;
  status: "in_progress" | "completed" | "incomplete";
  role: "assistant";
  content: { type: "output_text"; text: string; annotations: []; logprobs: [] }[];
}

export interface FunctionCall {
  type: "function_call";
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: "in_progress" | "completed" | "incomplete";
}

/** A thinking model's thoughts, as OpenAI returns gpt-oss's: the text itself, no summary. */
export interface ReasoningOutput {
  type: "reasoning";
  id: string;
  summary: [];
  content: { type: "reasoning_text"; text: string }[];
  status: "in_progress" | "completed" | "incomplete";
}

export type OutputItem = OutputMessage | FunctionCall | ReasoningOutput;

export interface ResponseObject {
  id: string;
  object: "response";
  created_at: number;
  completed_at: number | null;
  status: "in_progress" | "completed" | "incomplete" | "failed";
  error: { code: string; message: string } | null;
  incomplete_details: { reason: "max_output_tokens" | "content_filter" } | null;
  instructions: string | null;
  max_output_tokens: number | null;
  model: string;
  output: OutputItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: { effort: string | null; summary: null };
  store: boolean;
  temperature: number;
  text: { format: unknown };
  tool_choice: unknown;
  tools: unknown[];
  top_p: number;
  truncation: "disabled";
  /** Once the response is finished. */
  usage?: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number; cache_write_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  };
  user?: string;
  metadata: Record<string, string>;
  background: false;
  service_tier: "default";
}

export interface ResponseMeta {
  id: string;
  createdAt: number;
  model: string;
  newItemId(prefix: "msg" | "fc" | "rs"): string;
}

/** The response object before anything is generated. */
export function responseShell(req: ResponseRequest, meta: ResponseMeta, defaultTemperature: number): ResponseObject {
  return {
    id: meta.id,
    object: "response",
    created_at: meta.createdAt,
    completed_at: null,
    status: "in_progress",
    error: null,
    incomplete_details: null,
    instructions: req.instructions ?? null,
    max_output_tokens: req.max_output_tokens ?? null,
    model: meta.model,
    output: [],
    parallel_tool_calls: req.parallel_tool_calls ?? true,
    previous_response_id: req.previous_response_id ?? null,
    reasoning: { effort: typeof req.reasoning?.effort === "string" ? req.reasoning.effort : null, summary: null },
    store: req.store ?? true,
    temperature: req.temperature ?? defaultTemperature,
    text: { format: req.text?.format ?? { type: "text" } },
    tool_choice: req.tool_choice ?? "auto",
    tools: req.tools ?? [],
    top_p: req.top_p ?? 1,
    truncation: "disabled",
    ...(req.user !== undefined ? { user: req.user } : {}),
    metadata: req.metadata ?? {},
    background: false,
    service_tier: "default",
  };
}

export type ResponseStreamEvent = { type: string; sequence_number: number } & Record<string, unknown>;

/**
 * The stream events of a response, from the chat provider's events of choice 0: the created
 * and in-progress events, each output item added, its text or arguments in deltas, each item
 * done, then completed (or incomplete, with the reason). The last event carries the finished
 * response, which is also the JSON answer.
 */
export async function* responseEvents(
  events: AsyncIterable<ChatEvent>,
  shell: ResponseObject,
  meta: ResponseMeta,
  usage: () => TokenUsage,
): AsyncGenerator<ResponseStreamEvent, ResponseObject> {
  let sequence = 0;
  const event = (type: string, fields: Record<string, unknown>): ResponseStreamEvent => ({
    type,
    sequence_number: sequence++,
    ...fields,
  });
  const response: ResponseObject = { ...shell, output: [] };
  yield event("response.created", { response: { ...response } });
  yield event("response.in_progress", { response: { ...response } });

  let message: { item: OutputMessage; index: number; text: string } | undefined;
  const calls = new Map<number, { item: FunctionCall; index: number }>();
  let finish = "stop";

  let thoughts: { item: ReasoningOutput; index: number; text: string } | undefined;

  function* closeThoughts(status: "completed" | "incomplete"): Generator<ResponseStreamEvent> {
    if (!thoughts) return;
    const { item, index, text } = thoughts;
    yield event("response.reasoning_text.done", { item_id: item.id, output_index: index, content_index: 0, text });
    const done: ReasoningOutput = { ...item, status, content: [{ type: "reasoning_text", text }] };
    response.output[index] = done;
    yield event("response.output_item.done", { output_index: index, item: done });
    thoughts = undefined;
  }

  function* closeMessage(status: "completed" | "incomplete"): Generator<ResponseStreamEvent> {
    yield* closeThoughts(status);
    if (!message) return;
    const { item, index, text } = message;
    const part = { type: "output_text" as const, text, annotations: [] as [], logprobs: [] as [] };
    yield event("response.output_text.done", {
      item_id: item.id,
      output_index: index,
      content_index: 0,
      text,
      logprobs: [],
    });
    yield event("response.content_part.done", { item_id: item.id, output_index: index, content_index: 0, part });
    const done: OutputMessage = { ...item, status, content: [part] };
    response.output[index] = done;
    yield event("response.output_item.done", { output_index: index, item: done });
    message = undefined;
  }

  function* openCall(
    key: number,
    id: string,
    name: string,
  ): Generator<ResponseStreamEvent, { item: FunctionCall; index: number }> {
    const item: FunctionCall = {
      type: "function_call",
      id: meta.newItemId("fc"),
      call_id: id,
      name,
      arguments: "",
      status: "in_progress",
    };
    const open = { item, index: response.output.length };
    response.output.push(item);
    calls.set(key, open);
    yield event("response.output_item.added", { output_index: open.index, item: { ...item } });
    return open;
  }

  function* closeCalls(status: "completed" | "incomplete"): Generator<ResponseStreamEvent> {
    for (const { item, index } of calls.values()) {
      yield event("response.function_call_arguments.done", {
        item_id: item.id,
        output_index: index,
        name: item.name,
        arguments: item.arguments,
      });
      const done: FunctionCall = { ...item, status };
      response.output[index] = done;
      yield event("response.output_item.done", { output_index: index, item: done });
    }
    calls.clear();
  }

  for await (const e of events) {
    if (e.index !== 0) continue;
    switch (e.type) {
      case "reasoning": {
        if (e.text === "") break;
        if (!thoughts) {
          const item: ReasoningOutput = {
            type: "reasoning",
            id: meta.newItemId("rs"),
            summary: [],
            content: [],
            status: "in_progress",
          };
          thoughts = { item, index: response.output.length, text: "" };
          response.output.push(item);
          yield event("response.output_item.added", { output_index: thoughts.index, item: { ...item } });
        }
        thoughts.text += e.text;
        yield event("response.reasoning_text.delta", {
          item_id: thoughts.item.id,
          output_index: thoughts.index,
          content_index: 0,
          delta: e.text,
        });
        break;
      }
      case "content":
      case "refusal": {
        if (e.text === "") break;
        yield* closeThoughts("completed");
        if (!message) {
          const item: OutputMessage = {
            type: "message",
            id: meta.newItemId("msg"),
            status: "in_progress",
            role: "assistant",
            content: [],
          };
          message = { item, index: response.output.length, text: "" };
          response.output.push(item);
          yield event("response.output_item.added", { output_index: message.index, item: { ...item } });
          yield event("response.content_part.added", {
            item_id: item.id,
            output_index: message.index,
            content_index: 0,
            part: { type: "output_text", text: "", annotations: [], logprobs: [] },
          });
        }
        message.text += e.text;
        yield event("response.output_text.delta", {
          item_id: message.item.id,
          output_index: message.index,
          content_index: 0,
          delta: e.text,
          logprobs: [],
        });
        break;
      }
      case "tool_calls":
        yield* closeMessage("completed");
        for (const call of e.calls) {
          // Whole calls (a local model's) get keys of their own, apart from streamed calls' indexes.
          const open = yield* openCall(-1 - calls.size, call.id, call.function.name);
          open.item.arguments = call.function.arguments;
          yield event("response.function_call_arguments.delta", {
            item_id: open.item.id,
            output_index: open.index,
            delta: call.function.arguments,
          });
        }
        break;
      case "tool_call_delta": {
        yield* closeMessage("completed");
        const open =
          calls.get(e.delta.index) ?? (yield* openCall(e.delta.index, e.delta.id ?? "", e.delta.function?.name ?? ""));
        if (e.delta.id) open.item.call_id = e.delta.id;
        if (e.delta.function?.name && !open.item.name) open.item.name = e.delta.function.name;
        const piece = e.delta.function?.arguments ?? "";
        if (piece) {
          open.item.arguments += piece;
          yield event("response.function_call_arguments.delta", {
            item_id: open.item.id,
            output_index: open.index,
            delta: piece,
          });
        }
        break;
      }
      case "finish":
        finish = e.reason;
        break;
    }
  }
  const incomplete = finish === "length" || finish === "content_filter";
  yield* closeMessage(incomplete ? "incomplete" : "completed");
  yield* closeCalls(incomplete ? "incomplete" : "completed");
  const { promptTokens, completionTokens, reasoningTokens, cachedPromptTokens } = usage();
  response.usage = {
    input_tokens: promptTokens,
    input_tokens_details: { cached_tokens: cachedPromptTokens ?? 0, cache_write_tokens: 0 },
    output_tokens: completionTokens,
    output_tokens_details: { reasoning_tokens: reasoningTokens ?? 0 },
    total_tokens: promptTokens + completionTokens,
  };
  response.status = incomplete ? "incomplete" : "completed";
  response.completed_at = Math.floor(Date.now() / 1000);
  if (incomplete)
    response.incomplete_details = { reason: finish === "length" ? "max_output_tokens" : "content_filter" };
  yield event(incomplete ? "response.incomplete" : "response.completed", { response });
  return response;
}

/** The response as it stands when generation failed midway. */
export function failedResponse(shell: ResponseObject, message: string, code: string): ResponseObject {
  return { ...shell, status: "failed", error: { code, message } };
}

/** Items as the input_items list shows them: each with an id and a status, as OpenAI returns them. */
export function listedItem(item: InputItem, id: string): Record<string, unknown> {
  if (item.type === "function_call" || item.type === "function_call_output")
    return { ...item, id: item.id ?? id, status: "completed" };
  if ("role" in item) {
    const content =
      typeof item.content === "string"
        ? [{ type: item.role === "assistant" ? "output_text" : "input_text", text: item.content }]
        : item.content;
    return { type: "message", id: item.id ?? id, status: "completed", role: item.role, content };
  }
  return { ...item, id: (item as { id?: string }).id ?? id };
}
