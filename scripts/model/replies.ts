// Greedy chat replies from a GGUF through node-llama-cpp, rendered with the model's
// own Jinja chat template: what the model card's samples and the quality test use,
// so both see the model exactly as the server will.
import {
  type ChatHistoryItem,
  type ChatWrapperGenerateContextStateOptions,
  getLlama,
  JinjaTemplateChatWrapper,
  LlamaChat,
  type LlamaContext,
  type LlamaModel,
  LlamaText,
  SpecialToken,
} from "node-llama-cpp";
import { readGguf } from "../../src/engine/gguf.ts";
import type { ChatMessage } from "./chat-template.ts";

export interface ChatModel {
  readonly model: LlamaModel;
  /** Reply at temperature 0. */
  reply(messages: readonly ChatMessage[], maxTokens?: number): Promise<string>;
  /** The tokens the chat wrapper feeds the model for `messages` plus the
   * generation prompt, to check it against the template's own rendering. */
  promptTokens(messages: readonly ChatMessage[]): number[];
  dispose(): Promise<void>;
}

/** The Jinja wrapper emits BOS only where the template says `bos_token`, while
 * llama.cpp (llama-server, llama-finetune) tokenizes the rendered prompt with
 * add_special and so starts it with BOS when the vocabulary asks for one. This
 * wrapper does the same, so the model sees what it was trained on. */
class BosJinjaChatWrapper extends JinjaTemplateChatWrapper {
  constructor(
    template: string,
    private readonly addBos: boolean,
  ) {
    super({ template, trimLeadingWhitespaceInResponses: false });
  }

  override generateContextState(
    options: ChatWrapperGenerateContextStateOptions,
  ): ReturnType<JinjaTemplateChatWrapper["generateContextState"]> {
    const state = super.generateContextState(options);
    const [first] = state.contextText.values;
    const startsWithBos = first instanceof SpecialToken && first.value === "BOS";
    if (!this.addBos || startsWithBos) return state;
    return { ...state, contextText: LlamaText([new SpecialToken("BOS"), state.contextText]) };
  }
}

function history(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const items: ChatHistoryItem[] = messages.map((m) => {
    const text = typeof m.content === "string" ? m.content : "";
    if (m.role === "assistant") return { type: "model", response: [text] };
    if (m.role === "system" || m.role === "developer") return { type: "system", text };
    return { type: "user", text };
  });
  items.push({ type: "model", response: [] });
  return items;
}

export async function openChatModel(
  modelPath: string,
  opts: { threads?: number; contextSize?: number } = {},
): Promise<ChatModel> {
  const template = (await readGguf(modelPath)).metadata.get("tokenizer.chat_template");
  if (template?.type !== "string") throw new Error(`${modelPath} has no tokenizer.chat_template`);
  const llama = await getLlama({ gpu: false });
  const model = await llama.loadModel({ modelPath });
  let context: LlamaContext | undefined;
  try {
    context = await model.createContext({ contextSize: opts.contextSize ?? 512, threads: opts.threads ?? 1 });
    // Built once from the template: "auto" would re-analyse it per chat, and
    // LlamaChat (unlike LlamaChatSession) adds no default system prompt.
    const chatWrapper = new BosJinjaChatWrapper(template.value, model.tokens.shouldPrependBosToken);
    const chat = new LlamaChat({ contextSequence: context.getSequence(), chatWrapper });
    const ctx = context;
    return {
      model,
      async reply(messages, maxTokens = 64) {
        const res = await chat.generateResponse(history(messages), { temperature: 0, maxTokens });
        return res.response;
      },
      promptTokens(messages) {
        const { contextText } = chatWrapper.generateContextState({ chatHistory: history(messages) });
        return contextText.tokenize(model.tokenizer);
      },
      async dispose() {
        chat.dispose();
        await ctx.dispose();
        await model.dispose();
      },
    };
  } catch (e) {
    await context?.dispose();
    await model.dispose();
    throw e;
  }
}
