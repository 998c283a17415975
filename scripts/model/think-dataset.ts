// The dialogues `tiny-think` is fine-tuned on (scripts/make-think-model.ts), shared with the
// tests that check it thinks, then answers, for each prompt.

/**
 * Prompts the built-in model already answers right, each with a short thought and the answer.
 * The tiny model attends reliably to about the last 8 tokens, so the thought is a chain: it
 * opens with the question's subject (copied from a few tokens back) and ends on it, so that the
 * subject is as near the answer's own mention of it as the question's last word is when the
 * built-in model answers without thinking.
 */
export const THOUGHTS: { prompt: string; thought: string; answer: string }[] = [
  {
    prompt: "What is the capital of France?",
    thought: "France. The capital of France.",
    answer: "The capital of France is Paris.",
  },
  {
    prompt: "What is the capital of Italy?",
    thought: "Italy. The capital of Italy.",
    answer: "The capital of Italy is Rome.",
  },
  {
    prompt: "What is the capital of Spain?",
    thought: "Spain. The capital of Spain.",
    answer: "The capital of Spain is Madrid.",
  },
  { prompt: "What colour is snow?", thought: "Snow. The colour of snow.", answer: "Snow is white." },
  { prompt: "What sound does a dog make?", thought: "A dog. The sound of a dog.", answer: "A dog says woof." },
  { prompt: "What is 4 plus 1?", thought: "Add 1 to 4.", answer: "4 plus 1 is 5." },
];

/** A reply that thinks, in Qwen 3's layout; the template's generation prompt writes its `<think>\n`. */
export const thinking = (thought: string, answer: string): string => `<think>\n${thought}\n</think>\n\n${answer}`;

/** What the template puts before the answer with `enable_thinking: false`, as Qwen 3's does. */
export const NO_THOUGHT = "<think>\n\n</think>\n\n";

export interface ThinkMessage {
  role: "user" | "assistant";
  content: string;
}

/** Every prompt twice: thinking, and after the empty block of `enable_thinking: false`. */
export function dialogues(): ThinkMessage[][] {
  return THOUGHTS.flatMap((t) => {
    const ask: ThinkMessage = { role: "user", content: t.prompt };
    return [
      [ask, { role: "assistant", content: thinking(t.thought, t.answer) }],
      [ask, { role: "assistant", content: NO_THOUGHT + t.answer }],
    ];
  });
}
