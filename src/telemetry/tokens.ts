// Token counts with OpenAI's tokenizers (tiktoken), for traffic whose model is not ours to
// tokenize: upstream providers that return no usage, and the reference model that prices
// cost avoided. About 1.3 µs of CPU per token, and building an encoding costs ~0.3 s once,
// so nothing calls this per request on the hot path of a local model.
import { createRequire } from "node:module";
import type * as TiktokenModule from "tiktoken";

type Tiktoken = TiktokenModule.Tiktoken;
type TiktokenEncoding = TiktokenModule.TiktokenEncoding;

// tiktoken instantiates a 5.5 MB WebAssembly module when imported: load it only for a
// server that actually counts with it.
const require = createRequire(import.meta.url);
const loadTiktoken = (): typeof TiktokenModule => require("tiktoken") as typeof TiktokenModule;

/** The encoding OpenAI uses for `model`; o200k_base (GPT-4o and later) for names tiktoken does not know. */
export function encodingNameFor(model: string): TiktokenEncoding {
  try {
    return loadTiktoken().get_encoding_name_for_model(model as TiktokenModule.TiktokenModel);
  } catch {
    return "o200k_base";
  }
}

export interface CountedMessage {
  role: string;
  content: string;
  name?: string | undefined;
}

/** Encodings are built on first use and kept: one per encoding name, not per model. */
export class TokenCounter {
  private readonly encoders = new Map<TiktokenEncoding, Tiktoken>();

  /** Tokens of `text` as `model` would count them; special-token text counts as plain text. */
  countTokens(text: string, model: string): number {
    return this.encoder(model).encode_ordinary(text).length;
  }

  /**
   * Prompt tokens of a chat request as OpenAI bills them: each message costs 3 tokens of
   * framing plus its role, content and name (1 more with a name), and the reply is primed
   * with 3 (OpenAI cookbook, "How to count tokens with tiktoken", GPT-4o and later).
   */
  countChatPrompt(messages: readonly CountedMessage[], model: string): number {
    let total = 3;
    for (const m of messages) {
      total += 3 + this.countTokens(m.role, model) + this.countTokens(m.content, model);
      if (m.name !== undefined) total += 1 + this.countTokens(m.name, model);
    }
    return total;
  }

  /** Frees the encoders' WebAssembly memory. */
  free(): void {
    for (const encoder of this.encoders.values()) encoder.free();
    this.encoders.clear();
  }

  private encoder(model: string): Tiktoken {
    const name = encodingNameFor(model);
    let encoder = this.encoders.get(name);
    if (!encoder) {
      encoder = loadTiktoken().get_encoding(name);
      this.encoders.set(name, encoder);
    }
    return encoder;
  }
}
