// The tool-use dialogues `tiny-tools` is fine-tuned on (scripts/make-tools-model.ts), shared
// with the tests that check it calls the right tool for each prompt and answers greetings in text.

export interface ToolDefinition {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export const TOOLS: ToolDefinition[] = [
  {
    type: "function",
    function: {
      name: "weather",
      description: "Get the current weather in a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string", description: "The city name" } },
        required: ["city"],
      },
    },
  },
  {
    type: "function",
    function: {
      name: "time",
      description: "Get the current time in a timezone",
      parameters: {
        type: "object",
        properties: { timezone: { type: "string", description: "An IANA timezone" } },
        required: ["timezone"],
      },
    },
  },
];

/**
 * Prompts that call a tool, and the call the model learns to make; both tools are offered in
 * every dialogue. The word that decides the tool ends the prompt: with the call's text as added
 * tokens (TOOLS_ADDED_TOKENS) the name is written 7 tokens after the prompt ends, within what the
 * tiny model attends to. One city per tool: the argument is written ~20 tokens after the city,
 * too far to copy, so it follows from the tool's name.
 */
export const CALLS: { prompt: string; name: string; arguments: Record<string, string> }[] = [
  { prompt: "Tokyo time", name: "time", arguments: { timezone: "Asia/Tokyo" } },
  { prompt: "time in Tokyo", name: "time", arguments: { timezone: "Asia/Tokyo" } },
  { prompt: "Paris weather", name: "weather", arguments: { city: "Paris" } },
  { prompt: "weather in Paris", name: "weather", arguments: { city: "Paris" } },
];

/** Prompts answered in text, with the tools offered all the same. */
export const GREETINGS: { prompt: string; reply: string }[] = [
  { prompt: "Hello!", reply: "Hello! How can I help you today?" },
  { prompt: "Hi!", reply: "Hello! How can I help you today?" },
  { prompt: "Good morning!", reply: "Good morning! How can I help you today?" },
];

/** After a call's result comes back, the model reports it. */
export const RESULT_REPLY = "Here is what I found.";

export interface TrainingMessage {
  role: "user" | "assistant" | "tool";
  content: string;
  tool_calls?: { id: string; type: "function"; function: { name: string; arguments: Record<string, string> } }[];
  tool_call_id?: string;
}

/** Every dialogue once: a call, a call with its result and the answer, a greeting. */
export function dialogues(): TrainingMessage[][] {
  const out: TrainingMessage[][] = [];
  CALLS.forEach((c, i) => {
    const call: TrainingMessage = {
      role: "assistant",
      content: "",
      tool_calls: [{ id: `call_${i}`, type: "function", function: { name: c.name, arguments: c.arguments } }],
    };
    out.push([{ role: "user", content: c.prompt }, call]);
    out.push([
      { role: "user", content: c.prompt },
      call,
      { role: "tool", content: "21 degrees", tool_call_id: `call_${i}` },
      { role: "assistant", content: RESULT_REPLY },
    ]);
  });
  for (const g of GREETINGS) {
    out.push([
      { role: "user", content: g.prompt },
      { role: "assistant", content: g.reply },
    ]);
  }
  return out;
}
