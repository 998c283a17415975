// What of a valid chat request this server cannot honour. The design rule: refuse loudly (400
// naming the parameter) rather than drop, and accept only what changes nothing.
//
// Harmless, accepted without a word (see chat-request.ts for where each is declared):
// - metadata, safety_identifier, prompt_cache_key, prompt_cache_retention, prompt_cache_options,
//   content-part prompt_cache_breakpoint, stream_options.include_obfuscation: they feed OpenAI's
//   stored completions, abuse monitoring, prompt cache and side-channel padding; the generated
//   output is the same with or without them.
// - the values below in HARMLESS_VALUES: each is what OpenAI does when the parameter is absent.
// - `null` for any of them: OpenAI reads null as "not set".
// Refused whenever set to anything else: the rest of UNSUPPORTED_CHAT_PARAMS. `store: true` is
// refused because the client would later look for a stored completion that does not exist.
// Not refused here: reasoning_effort (a local model whose template has a switch for it takes
// it, others answer 400: the provider decides), parallel_tool_calls (passed on; a provider that makes at most one call per
// turn already satisfies `false`), user (used for sticky experiment assignment), logit_bias and
// logprobs (the provider decides and answers 400 if its model can't).
//
// Upstream models get every parameter as sent, and the upstream judges it (its 400 comes back
// as it was). Refused for them is only what Roundhouse could not relay back: audio output,
// web search annotations and the deprecated function_call replies (UPSTREAM_UNSUPPORTED).

import type { ChatCompletionRequest } from "./chat-request.ts";
import { type ApiError, unsupportedParameter, unsupportedValue } from "./errors.ts";

export const UNSUPPORTED_CHAT_PARAMS = [
  "audio",
  "modalities",
  "prediction",
  "web_search_options",
  "service_tier",
  "store",
  "verbosity",
  "moderation",
  "functions",
  "function_call",
] as const;

export type UnsupportedChatParam = (typeof UNSUPPORTED_CHAT_PARAMS)[number];

/** Parameters accepted and ignored because they never change the output (documented above). */
export const NOOP_CHAT_PARAMS = [
  "metadata",
  "safety_identifier",
  "prompt_cache_key",
  "prompt_cache_retention",
  "prompt_cache_options",
] as const;

const HARMLESS_VALUES: Partial<Record<UnsupportedChatParam, (value: unknown) => boolean>> = {
  store: (v) => v === false,
  service_tier: (v) => v === "auto" || v === "default",
  modalities: (v) => Array.isArray(v) && v.every((m) => m === "text"),
};

/** Where a request is served: by the local engine, or relayed to an upstream server. */
export type Serving = "local" | "upstream";

/** What an upstream may answer that provider events cannot carry back to the client. */
export const UPSTREAM_UNSUPPORTED = [
  "audio",
  "modalities",
  "web_search_options",
  "functions",
  "function_call",
] as const satisfies readonly UnsupportedChatParam[];

/** Names of the unsupported parameters present in `body` with a value that would change the output. */
export function unsupportedParams(
  body: Readonly<Record<string, unknown>>,
  serving: Serving = "local",
): UnsupportedChatParam[] {
  const names: readonly UnsupportedChatParam[] = serving === "local" ? UNSUPPORTED_CHAT_PARAMS : UPSTREAM_UNSUPPORTED;
  return names.filter((name) => {
    const value = body[name];
    if (value === undefined || value === null) return false;
    return !(HARMLESS_VALUES[name]?.(value) ?? false);
  });
}

export interface UnsupportedContent {
  /** Dotted path of the offending part or field, e.g. `messages[1].content[0]`. */
  param: string;
  /** What it is: `image_url`, `input_audio`, `file`, `audio`, `function_call`. */
  kind: string;
}

/** Message content this server cannot read: non-text parts (local models only), and audio/function_call history. */
export function unsupportedContent(req: ChatCompletionRequest, serving: Serving = "local"): UnsupportedContent[] {
  const found: UnsupportedContent[] = [];
  req.messages.forEach((message, i) => {
    if (serving === "local" && Array.isArray(message.content)) {
      message.content.forEach((part, j) => {
        if (part.type !== "text" && part.type !== "refusal") {
          found.push({ param: `messages[${i}].content[${j}]`, kind: part.type });
        }
      });
    }
    if (message.role === "assistant") {
      for (const kind of ["audio", "function_call"] as const) {
        if (message[kind] !== undefined && message[kind] !== null) {
          found.push({ param: `messages[${i}].${kind}`, kind });
        }
      }
    }
  });
  return found;
}

/** The first thing in a parsed request that this server cannot honour, as the 400 to send. */
export function checkSupported(req: ChatCompletionRequest, serving: Serving = "local"): ApiError | undefined {
  const param = unsupportedParams(req, serving)[0];
  if (param !== undefined) {
    return unsupportedParameter(param, serving === "local" ? REASONS[param] : UPSTREAM_REASON);
  }
  const content = unsupportedContent(req, serving)[0];
  if (content !== undefined) {
    return unsupportedValue(
      content.param,
      `'${content.kind}' content is not supported by this server; only text content is.`,
    );
  }
  return undefined;
}

const UPSTREAM_REASON =
  "is not supported for upstream models: Roundhouse relays their text, refusals and tool calls, and nothing else";

const REASONS: Record<UnsupportedChatParam, string> = {
  audio: "is not supported by this server: it generates text only",
  modalities: 'is not supported by this server: it generates text only, so only ["text"] is accepted',
  prediction: "(Predicted Outputs) is not supported by this server",
  web_search_options: "is not supported by this server: it has no web search",
  service_tier: 'is not supported by this server: only "auto" and "default" are accepted',
  store: "is not supported by this server: it does not store completions, so only false is accepted",
  verbosity: "is not supported by this server",
  moderation: "is not supported by this server: it has no moderation model",
  functions: "is deprecated and not supported by this server; use 'tools' instead",
  function_call: "is deprecated and not supported by this server; use 'tool_choice' instead",
};
