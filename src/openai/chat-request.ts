// POST /v1/chat/completions request body, as OpenAI defines it (CreateChatCompletionRequest).
// Unknown keys are rejected at every level, so a typo fails loudly instead of being ignored.
// Parameters OpenAI has but we cannot honour are accepted here and refused by
// `unsupportedParams` (chat-support.ts), so the client gets 400 unsupported_parameter naming
// them rather than "unknown parameter".
import { z } from "zod";

/** Upper bound on `n`: each choice occupies a sequence slot of the model for the whole request. */
export const MAX_N = 8;

// OpenAI marks most optional parameters `nullable`, and clients do send `null` to mean "not
// set"; normalise it to undefined so downstream code has a single notion of absent.
export function nullish<T extends z.ZodType>(schema: T) {
  return schema
    .nullable()
    .transform((value) => value ?? undefined)
    .optional();
}

const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const functionName = z.string().regex(FUNCTION_NAME, {
  error: "expected 1 to 64 letters, digits, underscores or dashes",
});

// --- content parts -------------------------------------------------------------------------

// Prompt-cache breakpoints only steer OpenAI's prompt cache; they never change the output.
const promptCacheBreakpoint = z.strictObject({ mode: z.literal("explicit") }).optional();

export const TextPart = z.strictObject({
  type: z.literal("text"),
  text: z.string(),
  prompt_cache_breakpoint: promptCacheBreakpoint,
});

export const RefusalPart = z.strictObject({ type: z.literal("refusal"), refusal: z.string() });

// Non-text inputs are recognised (not "invalid") only so the route can say they are not
// supported; their inner shape does not matter to us.
export const ImagePart = z.looseObject({ type: z.literal("image_url"), image_url: z.unknown() });
export const AudioPart = z.looseObject({ type: z.literal("input_audio"), input_audio: z.unknown() });
export const FilePart = z.looseObject({ type: z.literal("file"), file: z.unknown() });

const UserPart = z.discriminatedUnion("type", [TextPart, ImagePart, AudioPart, FilePart]);
const AssistantPart = z.discriminatedUnion("type", [TextPart, RefusalPart]);

const textContent = z.union([z.string(), z.array(TextPart).min(1)]);

// --- messages ------------------------------------------------------------------------------

export const RequestToolCall = z.strictObject({
  id: z.string(),
  type: z.literal("function"),
  function: z.strictObject({ name: z.string(), arguments: z.string() }),
});

export const SystemMessage = z.strictObject({
  role: z.literal("system"),
  content: textContent,
  name: z.string().optional(),
});

export const DeveloperMessage = z.strictObject({
  role: z.literal("developer"),
  content: textContent,
  name: z.string().optional(),
});

export const UserMessage = z.strictObject({
  role: z.literal("user"),
  content: z.union([z.string(), z.array(UserPart).min(1)]),
  name: z.string().optional(),
});

export const AssistantMessage = z
  .strictObject({
    role: z.literal("assistant"),
    content: nullish(z.union([z.string(), z.array(AssistantPart).min(1)])),
    refusal: nullish(z.string()),
    name: z.string().optional(),
    tool_calls: nullish(z.array(RequestToolCall)),
    // Echoed back by clients that append the previous response's message verbatim; `audio`
    // and `function_call` are refused when non-null (chat-support.ts), `annotations` ignored.
    annotations: nullish(z.array(z.unknown())),
    audio: z.unknown().optional(),
    function_call: z.unknown().optional(),
  })
  .superRefine((message, ctx) => {
    // OpenAI's rule: content may be left out only when something else carries the turn.
    const hasOther =
      (message.tool_calls?.length ?? 0) > 0 ||
      (message.function_call ?? null) !== null ||
      (message.audio ?? null) !== null ||
      message.refusal !== undefined;
    if (message.content === undefined && !hasOther) {
      ctx.addIssue({ code: "custom", path: ["content"], message: "required unless tool_calls is set" });
    }
  });

export const ToolMessage = z.strictObject({
  role: z.literal("tool"),
  content: textContent,
  tool_call_id: z.string(),
});

export const ChatMessage = z.discriminatedUnion("role", [
  SystemMessage,
  DeveloperMessage,
  UserMessage,
  AssistantMessage,
  ToolMessage,
]);

// --- tools and formats ---------------------------------------------------------------------

/** A JSON Schema object; checked for well-formedness where it is compiled (grammar, tools). */
const jsonSchemaObject = z.record(z.string(), z.unknown());

export const FunctionDefinition = z.strictObject({
  name: functionName,
  description: z.string().optional(),
  parameters: jsonSchemaObject.optional(),
  strict: nullish(z.boolean()),
});

export const Tool = z.strictObject({ type: z.literal("function"), function: FunctionDefinition });

export const ToolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  z.strictObject({ type: z.literal("function"), function: z.strictObject({ name: z.string() }) }),
]);

export const ResponseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    json_schema: z.strictObject({
      name: functionName,
      description: z.string().optional(),
      schema: jsonSchemaObject.optional(),
      strict: nullish(z.boolean()),
    }),
  }),
]);

export const StreamOptions = z.strictObject({
  include_usage: z.boolean().optional(),
  // Obfuscation pads chunks against a network side channel; the content is the same either
  // way, so we accept it and send no padding.
  include_obfuscation: z.boolean().optional(),
});

// OpenAI limits metadata to 16 keys of ≤64 chars with values ≤512; keep the same contract so a
// request that passes here passes there.
const Metadata = z
  .record(z.string().max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, { error: "expected at most 16 keys" });

// --- the request ---------------------------------------------------------------------------

const samplingRange = (min: number, max: number) => nullish(z.number().min(min).max(max));

export const ChatCompletionRequest = z
  .strictObject({
    model: z.string().min(1),
    messages: z.array(ChatMessage).min(1),

    max_tokens: nullish(z.int().min(1)),
    max_completion_tokens: nullish(z.int().min(1)),
    temperature: samplingRange(0, 2),
    top_p: samplingRange(0, 1),
    n: nullish(z.int().min(1).max(MAX_N)),
    stream: nullish(z.boolean()),
    stream_options: nullish(StreamOptions),
    stop: nullish(z.union([z.string(), z.array(z.string()).max(4)])),
    presence_penalty: samplingRange(-2, 2),
    frequency_penalty: samplingRange(-2, 2),
    logit_bias: nullish(
      z.record(z.string().regex(/^\d+$/, { error: "expected a token id (digits)" }), z.number().min(-100).max(100)),
    ),
    logprobs: nullish(z.boolean()),
    top_logprobs: nullish(z.int().min(0).max(20)),
    seed: nullish(z.int()),
    response_format: nullish(ResponseFormat),
    tools: nullish(z.array(Tool).max(128)),
    tool_choice: nullish(ToolChoice),
    parallel_tool_calls: nullish(z.boolean()),
    // Taken by a local model whose template has a switch for it (llama provider), relayed upstream.
    reasoning_effort: nullish(z.string()),
    user: nullish(z.string()),

    // Accepted and ignored: they only feed OpenAI's abuse detection, prompt cache and stored
    // completions, and never change what the model generates.
    metadata: nullish(Metadata),
    safety_identifier: nullish(z.string().max(64)),
    prompt_cache_key: nullish(z.string()),
    prompt_cache_retention: nullish(z.enum(["in_memory", "24h"])),
    prompt_cache_options: nullish(z.record(z.string(), z.unknown())),

    // Typed because some of their values are harmless defaults (see chat-support.ts).
    store: nullish(z.boolean()),
    service_tier: nullish(z.enum(["auto", "default", "flex", "scale", "priority"])),
    modalities: nullish(z.array(z.enum(["text", "audio"]))),

    // Refused whenever set (chat-support.ts); their shape is OpenAI's business.
    audio: z.unknown().optional(),
    prediction: z.unknown().optional(),
    web_search_options: z.unknown().optional(),
    verbosity: z.unknown().optional(),
    moderation: z.unknown().optional(),
    functions: z.unknown().optional(),
    function_call: z.unknown().optional(),
  })
  .superRefine((req, ctx) => {
    // Both checks are OpenAI's own 400s.
    if (req.top_logprobs !== undefined && req.top_logprobs > 0 && req.logprobs !== true) {
      ctx.addIssue({
        code: "custom",
        path: ["top_logprobs"],
        message: "logprobs must be true when top_logprobs is set",
      });
    }
    if (req.stream_options !== undefined && req.stream !== true) {
      ctx.addIssue({ code: "custom", path: ["stream_options"], message: "only allowed when stream is true" });
    }
    if (req.tool_choice === "required" && (req.tools?.length ?? 0) === 0) {
      ctx.addIssue({ code: "custom", path: ["tool_choice"], message: '"required" needs at least one tool in tools' });
    }
    if (req.tool_choice !== undefined && typeof req.tool_choice === "object") {
      const name = req.tool_choice.function.name;
      if (!(req.tools ?? []).some((t) => t.function.name === name)) {
        ctx.addIssue({
          code: "custom",
          path: ["tool_choice", "function", "name"],
          message: `no tool named "${name}" in tools`,
        });
      }
    }
  });

export type ChatCompletionRequest = z.output<typeof ChatCompletionRequest>;
export type ChatMessage = z.output<typeof ChatMessage>;
export type Tool = z.output<typeof Tool>;
export type ToolChoice = z.output<typeof ToolChoice>;
export type ResponseFormat = z.output<typeof ResponseFormat>;
export type TextPart = z.output<typeof TextPart>;
export type RequestToolCall = z.output<typeof RequestToolCall>;

/** The parameter that carries the token budget, to name in an error. */
export function tokenBudgetParam(req: ChatCompletionRequest): "max_tokens" | "max_completion_tokens" {
  return req.max_completion_tokens !== undefined && req.max_completion_tokens !== null
    ? "max_completion_tokens"
    : "max_tokens";
}

/** The token budget the client asked for: `max_completion_tokens` wins over the deprecated `max_tokens`. */
export function requestedMaxTokens(req: ChatCompletionRequest): number | undefined {
  return req.max_completion_tokens ?? req.max_tokens;
}

/** The text of a message's content, with parts joined; non-text parts contribute nothing. */
export function contentText(content: ChatMessage["content"]): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  return content
    .map((part) => (part.type === "text" ? part.text : part.type === "refusal" ? part.refusal : ""))
    .join("");
}
