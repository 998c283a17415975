// OpenAI messages → the plain messages a Jinja chat template renders.

import type { TemplateMessage } from "../engine/chat-template.ts";
import type { ChatMessage } from "../openai/chat.ts";
import { contentText } from "../openai/chat.ts";
import { renderToolCall } from "./tool-calls.ts";

export interface PromptOptions {
  /** Extra system text (tool instructions), merged into the first system message. */
  system?: string | undefined;
  /** Whether the template renders a `tool` role itself; otherwise tool results become user turns. */
  templateHasToolRole: boolean;
  /**
   * The template has its own tool-call format: calls and results go to it as structured fields,
   * a call's arguments as an object (most templates apply `tojson`) or as the JSON text
   * (DeepSeek's concatenates them).
   */
  native?: { arguments: "object" | "string" } | undefined;
}

export function toTemplateMessages(messages: readonly ChatMessage[], options: PromptOptions): TemplateMessage[] {
  const toolNames = new Map<string, string>();
  const out: TemplateMessage[] = [];
  for (const m of messages) {
    switch (m.role) {
      case "system":
      case "developer":
        out.push({ role: "system", content: contentText(m.content) });
        break;
      case "user":
        out.push({ role: "user", content: contentText(m.content) });
        break;
      case "assistant": {
        const calls = m.tool_calls ?? [];
        for (const c of calls) toolNames.set(c.id, c.function.name);
        const text = contentText(m.content);
        if (options.native) {
          out.push({
            role: "assistant",
            content: text,
            ...(calls.length > 0
              ? {
                  tool_calls: calls.map((c) => ({
                    id: c.id,
                    type: "function" as const,
                    function: {
                      name: c.function.name,
                      arguments:
                        options.native?.arguments === "string"
                          ? c.function.arguments
                          : parseArguments(c.function.arguments),
                    },
                  })),
                }
              : {}),
          });
        } else out.push({ role: "assistant", content: calls.length > 0 ? renderToolCall(calls) : text });
        break;
      }
      case "tool": {
        const content = contentText(m.content);
        if (options.native) {
          out.push({ role: "tool", content, tool_call_id: m.tool_call_id, name: toolNames.get(m.tool_call_id) });
        } else if (options.templateHasToolRole) out.push({ role: "tool", content });
        else {
          const name = toolNames.get(m.tool_call_id) ?? m.tool_call_id;
          out.push({ role: "user", content: `Result of tool ${name}:\n${content}` });
        }
        break;
      }
    }
  }
  if (options.system) {
    const first = out[0];
    if (first?.role === "system") out[0] = { role: "system", content: `${first.content}\n\n${options.system}` };
    else out.unshift({ role: "system", content: options.system });
  }
  return out;
}

/** A call's arguments as the object templates serialise (`| tojson`); text that is not JSON stays text. */
function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
