// Renders a conversation into the prompt text a model was trained on, with the
// model's own Jinja chat template (GGUF `tokenizer.chat_template`) or the config's
// override. It is parsed once per model: node-llama-cpp's per-session template
// analysis costs ~1 s of main-thread time per session (ENGINE-NOTES).
import { Template } from "@huggingface/jinja";

export interface TemplateMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
}

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

  /** A prompt by default; `addGenerationPrompt: false` renders a finished conversation (training text). */
  render(messages: readonly TemplateMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    return this.template.render({
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.specials.bos,
      eos_token: this.specials.eos,
    });
  }
}
