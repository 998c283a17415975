// An upstream's legacy completion chunks (or whole completion) → provider events. The stream
// and the whole answer share one shape (CreateCompletionResponse), so one reader serves both.
import { z } from "zod";
import type { TokenLogprob } from "../../openai/chat.ts";
import type { ChatEvent } from "../provider.ts";
import { type ChunkEvents, type Invalid, readPayload } from "./chunks.ts";

const LegacyLogprobs = z.looseObject({
  tokens: z.array(z.string()),
  token_logprobs: z.array(z.number().nullable()),
  top_logprobs: z.array(z.record(z.string(), z.number()).nullable()).nullish(),
});

const TextCompletion = z.looseObject({
  choices: z.array(
    z.looseObject({
      index: z.int().min(0),
      text: z.string().nullish(),
      logprobs: LegacyLogprobs.nullish(),
      finish_reason: z.string().nullish(),
    }),
  ),
  usage: z.looseObject({ prompt_tokens: z.int().min(0), completion_tokens: z.int().min(0) }).nullish(),
});

/** One `data:` payload of an upstream stream; `error` when it is an `{"error": ...}` event. */
export function parseTextChunk(data: string): ChunkEvents | Invalid | { kind: "error" } {
  const payload = readPayload(data);
  return payload.kind === "json" ? textEvents(payload.json) : payload;
}

/** A whole JSON answer. */
export function parseTextCompletion(body: string): ChunkEvents | Invalid {
  const parsed = parseTextChunk(body);
  return parsed.kind === "error" ? { kind: "invalid", problem: "an error object with status 200" } : parsed;
}

function textEvents(json: unknown): ChunkEvents | Invalid {
  const parsed = TextCompletion.safeParse(json);
  if (!parsed.success) return { kind: "invalid", problem: "a completion without choices[].index" };
  const events: ChatEvent[] = [];
  for (const choice of parsed.data.choices) {
    const logprobs = choice.logprobs ? chatLogprobs(choice.logprobs) : undefined;
    if (choice.text) events.push({ type: "content", index: choice.index, text: choice.text, logprobs });
    if (choice.finish_reason) {
      const reason =
        choice.finish_reason === "length" || choice.finish_reason === "content_filter" ? choice.finish_reason : "stop";
      events.push({ type: "finish", index: choice.index, reason });
    }
  }
  const usage = parsed.data.usage
    ? { promptTokens: parsed.data.usage.prompt_tokens, completionTokens: parsed.data.usage.completion_tokens }
    : undefined;
  return { kind: "events", events, usage };
}

/** Legacy logprobs in the chat form the events carry (the edge turns them back). */
function chatLogprobs(lp: z.output<typeof LegacyLogprobs>): TokenLogprob[] {
  return lp.tokens.map((token, i) => ({
    token,
    logprob: lp.token_logprobs[i] ?? 0,
    bytes: null,
    top_logprobs: Object.entries(lp.top_logprobs?.[i] ?? {}).map(([t, logprob]) => ({
      token: t,
      logprob,
      bytes: null,
    })),
  }));
}
