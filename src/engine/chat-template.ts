// Renders a conversation into the prompt text a model was trained on, with the
// model's own Jinja chat template (GGUF `tokenizer.chat_template`) or the config's
// override. It is parsed once per model: node-llama-cpp's per-session template
// analysis costs ~1 s of main-thread time per session (ENGINE-NOTES).
import { Template } from "@huggingface/jinja";

export interface TemplateMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** An assistant's calls, as templates with tool support read them (arguments as an object). */
  tool_calls?: TemplateToolCall[] | undefined;
  /** A tool result's call id and function name. */
  tool_call_id?: string | undefined;
  name?: string | undefined;
}

export interface TemplateToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: unknown };
}

/** Variables a template reads besides the messages: `tools`, `enable_thinking`, `reasoning_effort`. */
export type TemplateVariables = Readonly<Record<string, unknown>>;

/**
 * A piece of a rendered prompt. `control` pieces come from the template itself and may contain
 * the model's control tokens (`<|user|>`, `<|end|>`); the others are message content, which is
 * tokenized as plain text so that a message cannot forge a turn.
 */
export interface PromptPart {
  text: string;
  control: boolean;
}

/**
 * Stands in for message i while the template renders. Private-use characters and digits only:
 * no template adds, changes or case-folds them, and no message content can reach the rendered
 * text (it is not rendered at all). The em spaces around it (whitespace to `trim`, and nothing a
 * template writes itself) show whether the template trims the content.
 */
const placeholder = (i: number) => `\u2003\uE000${i}\uE001\u2003`;
const PLACEHOLDER = /(\u2003?)\uE000(\d+)\uE001(\u2003?)/g;

/** ChatML, for GGUFs that carry no template: the most widely trained format. */
const FALLBACK_TEMPLATE =
  "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

export class ChatTemplate {
  private readonly template: Template;
  readonly source: string;
  readonly isFallback: boolean;

  constructor(
    source: string | undefined,
    private readonly specials: { bos: string; eos: string },
  ) {
    this.isFallback = !source;
    this.source = source ?? FALLBACK_TEMPLATE;
    this.template = new Template(this.source);
  }

  /**
   * The prompt as template pieces and content pieces, in order: the template renders with a
   * placeholder for each message's content, and each placeholder becomes that content, trimmed
   * where the template trimmed the placeholder. What a template computes from the content
   * itself (splitting off reasoning, say) sees the placeholder, so it leaves the content whole.
   */
  renderPrompt(
    messages: readonly TemplateMessage[],
    variables: TemplateVariables = {},
    opts: { addGenerationPrompt?: boolean } = {},
  ): PromptPart[] {
    // Empty content renders as it is: templates test it (`{% if message.content %}`).
    const rendered = this.render(
      messages.map((m, i) => ({ ...m, content: m.content === "" ? "" : placeholder(i) })),
      { variables, ...opts },
    );
    const parts: PromptPart[] = [];
    const push = (text: string, control: boolean) => {
      if (text.length === 0) return;
      const last = parts.at(-1);
      if (last && last.control === control) last.text += text;
      else parts.push({ text, control });
    };
    let at = 0;
    for (const match of rendered.matchAll(PLACEHOLDER)) {
      push(rendered.slice(at, match.index), true);
      const [, before, index, after] = match;
      let content = messages[Number(index)]?.content ?? "";
      if (before === "") content = content.trimStart();
      if (after === "") content = content.trimEnd();
      push(content, false);
      at = match.index + match[0].length;
    }
    push(rendered.slice(at), true);
    return parts;
  }

  /** A prompt by default; `addGenerationPrompt: false` renders a finished conversation (training text). */
  render(
    messages: readonly TemplateMessage[],
    opts: { addGenerationPrompt?: boolean; variables?: TemplateVariables } = {},
  ): string {
    return this.template.render({
      ...opts.variables,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.specials.bos,
      eos_token: this.specials.eos,
    });
  }
}
