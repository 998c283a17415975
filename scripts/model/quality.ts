// How well a built model answers the prompts it was trained on, judged the same way
// by the model card and the quality test.
import type { ChatMessage } from "./chat-template.ts";
import type { EvalItem } from "./corpus.ts";
import { openChatModel } from "./replies.ts";

export interface Judged {
  messages: ChatMessage[];
  expected: string;
  category: string;
  reply: string;
  right: boolean;
}

export interface Evaluation {
  items: Judged[];
  right: number;
  seconds: number;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** `expected` appears in the reply as a whole word: "4" is not found in "24",
 * "Paris" not in "Parisian", "c-a-t" not in "c-a-t-s", so a wrong number or word
 * does not pass by accident. */
export function isRight(reply: string, expected: string): boolean {
  const word = "[\\p{L}\\p{N}]";
  return new RegExp(`(?<!${word}-?)${escapeRegExp(expected)}(?!-?${word})`, "u").test(reply);
}

/** Up to `n` items taking each category in turn, so every kind of reply is tested. */
export function spreadOver<T extends { category: string }>(items: readonly T[], n: number): T[] {
  const queues = new Map<string, T[]>();
  for (const item of items) queues.set(item.category, [...(queues.get(item.category) ?? []), item]);
  const out: T[] = [];
  while (out.length < n && [...queues.values()].some((q) => q.length > 0)) {
    for (const q of queues.values()) {
      const item = q.shift();
      if (item && out.length < n) out.push(item);
    }
  }
  return out;
}

export async function evaluate(modelPath: string, items: readonly EvalItem[], maxTokens = 128): Promise<Evaluation> {
  const chat = await openChatModel(modelPath, { threads: 1 });
  const started = performance.now();
  try {
    const judged: Judged[] = [];
    for (const item of items) {
      const reply = await chat.reply(item.messages, maxTokens);
      judged.push({ ...item, reply, right: isRight(reply, item.expected) });
    }
    return {
      items: judged,
      right: judged.filter((j) => j.right).length,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await chat.dispose();
  }
}
