// Function calling for models whose chat template has no tool-call syntax of its own:
// llama-server's "generic" scheme. The tools are described in a system message and
// the reply is constrained by a JSON grammar to either {"tool_call": {name, arguments}}
// or {"response": "..."}, so any model, however small, produces a call that parses.
import { randomBytes } from "node:crypto";
import type { ChatCompletionRequest, Tool, ToolCall } from "../openai/chat.ts";

export interface ToolPlan {
  /** JSON Schema the reply must match. */
  schema: Record<string, unknown>;
  /** System text that tells the model what it may call and how. */
  instructions: string;
}

/** Undefined when the request asks for no tool use. */
export function planTools(
  req: Pick<ChatCompletionRequest, "tools" | "tool_choice" | "response_format">,
): ToolPlan | undefined {
  const tools = req.tools ?? [];
  const choice = req.tool_choice ?? "auto";
  if (tools.length === 0 || choice === "none") return undefined;
  const callable = typeof choice === "object" ? tools.filter((t) => t.function.name === choice.function.name) : tools;
  const callSchema = {
    type: "object",
    properties: { tool_call: { anyOf: callable.map(callSchemaOf) } },
    required: ["tool_call"],
  };
  const mustCall = choice === "required" || typeof choice === "object";
  // With response_format the answer is the format's JSON, wrapped as the response.
  const format = req.response_format;
  const answer =
    format?.type === "json_schema"
      ? (format.json_schema.schema ?? { type: "object" })
      : format?.type === "json_object"
        ? { type: "object" }
        : { type: "string" };
  const schema = mustCall
    ? callSchema
    : { anyOf: [callSchema, { type: "object", properties: { response: answer }, required: ["response"] }] };
  const described = callable.map((t) => ({
    name: t.function.name,
    description: t.function.description ?? "",
    parameters: t.function.parameters ?? { type: "object", properties: {} },
  }));
  const instructions =
    `You can call these tools:\n${JSON.stringify(described)}\n` +
    (mustCall
      ? 'Reply with JSON: {"tool_call": {"name": <tool name>, "arguments": <arguments>}}.'
      : 'Reply with JSON: {"tool_call": {"name": <tool name>, "arguments": <arguments>}} to call a tool, or {"response": <your answer>} to answer directly.');
  return { schema, instructions };
}

function callSchemaOf(tool: Tool): Record<string, unknown> {
  return {
    type: "object",
    properties: {
      name: { const: tool.function.name },
      arguments: tool.function.parameters ?? { type: "object", properties: {} },
    },
    required: ["name", "arguments"],
  };
}

export type ToolReply = { kind: "calls"; calls: ToolCall[] } | { kind: "text"; text: string };

/**
 * Reads a constrained reply. A reply cut short (max_tokens) never comes back as its raw JSON:
 * a cut `{"response": "…` gives the text written so far, a cut call gives nothing.
 */
export function parseToolReply(text: string, makeId: () => string): ToolReply {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: "text", text: partialResponse(text) };
  }
  if (typeof parsed === "object" && parsed !== null) {
    const record = parsed as Record<string, unknown>;
    const call = record.tool_call as { name?: unknown; arguments?: unknown } | undefined;
    if (call && typeof call.name === "string") {
      return {
        kind: "calls",
        calls: [
          {
            id: makeId(),
            type: "function",
            function: { name: call.name, arguments: JSON.stringify(call.arguments ?? {}) },
          },
        ],
      };
    }
    if (typeof record.response === "string") return { kind: "text", text: record.response };
    if (typeof record.response === "object" && record.response !== null) {
      return { kind: "text", text: JSON.stringify(record.response) };
    }
  }
  return { kind: "text", text };
}

/** The string a cut `{"response": "…` reply had written; "" for anything else (a cut call). */
function partialResponse(text: string): string {
  const m = /^\s*\{\s*"response"\s*:\s*"((?:[^"\\]|\\.)*)/.exec(text);
  if (!m) return "";
  // A cut escape (`\` or `\u12`) at the very end is dropped.
  const body = (m[1] as string).replace(/\\(u[0-9a-fA-F]{0,3})?$/, "");
  try {
    return JSON.parse(`"${body}"`) as string;
  } catch {
    return "";
  }
}

/** How an earlier assistant tool call is shown to the model again: the same JSON it produced. */
export function renderToolCall(calls: readonly { function: { name: string; arguments: string } }[]): string {
  const asJson = calls.map((c) => ({ name: c.function.name, arguments: safeParse(c.function.arguments) }));
  return JSON.stringify(asJson.length === 1 ? { tool_call: asJson[0] } : { tool_calls: asJson });
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A tool call's id, OpenAI's shape: unique per response. */
export function newCallId(): string {
  return `call_${randomBytes(12).toString("hex")}`;
}
