/**
 * The built-in model's chat format, as a Jinja template for the GGUF and as a
 * TypeScript renderer that produces byte-identical text for building training data.
 *
 *   <|system|>\n{content}<|end|>\n<|user|>\n{content}<|end|>\n<|assistant|>\n{content}<|end|>\n
 */

export interface ChatTextPart {
  type: "text";
  text: string;
}

/** Parts other than text (images, audio) are accepted and ignored: the model reads text only. */
export interface ChatOtherPart {
  type: string;
  [key: string]: unknown;
}

export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant" | "tool";
  content: string | (ChatTextPart | ChatOtherPart)[] | null;
}

export interface RenderChatOptions {
  addGenerationPrompt: boolean;
}

/**
 * Stored as `tokenizer.chat_template`. Kept to plain Jinja (no macros, filters or
 * namespaces) so both @huggingface/jinja (node-llama-cpp) and llama.cpp's minja render
 * it. Literal newlines are emitted as string expressions so whitespace control can
 * trim every line break of the template itself. `tools` is deliberately not read: the
 * model was never trained on tool descriptions. The model has only the system, user
 * and assistant turn tokens, so `developer` renders as system and `tool` (or anything
 * else) as user. No BOS: llama.cpp adds it when tokenizing.
 */
export const CHAT_TEMPLATE = [
  "{%- for message in messages -%}",
  "{%- if message['role'] == 'system' or message['role'] == 'developer' -%}{{- '<|system|>\\n' -}}",
  "{%- elif message['role'] == 'assistant' -%}{{- '<|assistant|>\\n' -}}",
  "{%- else -%}{{- '<|user|>\\n' -}}",
  "{%- endif -%}",
  "{%- if message['content'] is string -%}{{- message['content'] -}}",
  "{%- elif message['content'] is iterable -%}",
  "{%- for part in message['content'] -%}",
  "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}",
  "{%- endfor -%}",
  "{%- endif -%}",
  "{{- '<|end|>\\n' -}}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}",
].join("\n");

function roleToken(role: string): string {
  if (role === "system" || role === "developer") return "<|system|>";
  if (role === "assistant") return "<|assistant|>";
  return "<|user|>";
}

function contentText(content: ChatMessage["content"]): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let text = "";
  for (const part of content) {
    if (part.type === "text" && typeof part.text === "string") text += part.text;
  }
  return text;
}

/** Exactly what CHAT_TEMPLATE renders for `messages`. */
export function renderChat(messages: readonly ChatMessage[], opts: RenderChatOptions): string {
  let out = "";
  for (const message of messages) {
    out += `${roleToken(message.role)}\n${contentText(message.content)}<|end|>\n`;
  }
  if (opts.addGenerationPrompt) out += "<|assistant|>\n";
  return out;
}
