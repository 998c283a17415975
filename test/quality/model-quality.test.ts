// The built-in model must answer what it was trained on: every other test and the
// quick start rely on it replying with varied, sensible English at temperature 0.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAT_TEMPLATE, renderChat } from "../../scripts/model/chat-template.ts";
import { generateCorpus } from "../../scripts/model/corpus.ts";
import { isRight, spreadOver } from "../../scripts/model/quality.ts";
import { modelFile, SEED } from "../../scripts/model/recipe.ts";
import { type ChatModel, openChatModel } from "../../scripts/model/replies.ts";
import { readGguf } from "../../src/engine/gguf.ts";

const path = modelFile("q8_0");
// Prompts that occur verbatim in the training dialogues, every category in turn.
const prompts = spreadOver(generateCorpus(SEED).evalSet, 20);

describe("built-in model quality", () => {
  let chat: ChatModel;
  const replies: string[] = [];

  beforeAll(async () => {
    chat = await openChatModel(path, { threads: 1 });
    for (const p of prompts) replies.push(await chat.reply(p.messages, 128));
  });
  afterAll(() => chat?.dispose());

  it("carries the chat template the training text was rendered with", async () => {
    expect((await readGguf(path)).metadata.get("tokenizer.chat_template")?.value).toBe(CHAT_TEMPLATE);
  });

  it("is prompted with exactly the tokens the template renders, after BOS", () => {
    const bos = chat.model.tokens.bos;
    for (const p of prompts) {
      const rendered = renderChat(p.messages, { addGenerationPrompt: true });
      expect(chat.promptTokens(p.messages)).toEqual([bos, ...chat.model.tokenize(rendered, true)]);
    }
  });

  it("answers at least 80% of 20 trained prompts right", () => {
    expect(prompts).toHaveLength(20);
    const wrong = prompts
      .map((p, i) => ({ prompt: p.messages.at(-1)?.content, expected: p.expected, reply: replies[i] ?? "" }))
      .filter((r) => !isRight(r.reply, r.expected));
    expect(wrong.length, JSON.stringify(wrong, null, 1)).toBeLessThanOrEqual(4);
  });

  it("replies with text that differs between prompts and ends its turn", () => {
    for (const reply of replies) {
      expect(reply.trim()).not.toBe("");
      expect(reply).not.toMatch(/<\|(user|assistant|system|end)\|>/);
    }
    expect(new Set(replies).size).toBeGreaterThanOrEqual(18);
  });
});
