// The operations the pipeline serves: for each, which provider call answers it, what of the
// request keys the cache, and what telemetry sees of the answer.
import { cacheKey, completionsCacheKey, embeddingsCacheKey } from "../cache/key.ts";
import { chatCodec, embeddingsCodec } from "../cache/serve.ts";
import { type ChatCompletionRequest, checkSupported } from "../openai/chat.ts";
import type { EmbeddingRequest } from "../openai/embeddings.ts";
import { invalidRequest } from "../openai/errors.ts";
import { type CompletionRequest, completionPrompts } from "../openai/text-completions.ts";
import type { ChatStream, EmbeddingResult } from "../providers/provider.ts";
import type { Operation } from "./pipeline.ts";

/** A hit generated nothing: telemetry counts 0 engine tokens, the client still gets the original usage. */
const NOTHING_GENERATED = { promptTokens: 0, completionTokens: 0 };

export const chatOperation: Operation<ChatCompletionRequest, ChatStream> = {
  name: "chat",
  check(req, model) {
    // Local and upstream models support different things.
    const refused = checkSupported(req, model.provider === "openai" ? "upstream" : "local");
    if (refused) throw refused;
  },
  sampling: (req) => req,
  key: (req, model, description) => cacheKey({ modelId: model.id, modelDigest: description.digest }, req),
  codec: (req, model) => chatCodec({ model: model.id, choices: req.n ?? 1 }),
  run: (provider, modelId, req, ctx) => provider.chat(modelId, req, ctx),
  watch(telemetry, stream, hit) {
    const watched = hit ? { ...stream, usage: () => NOTHING_GENERATED } : stream;
    return { ...telemetry.watch(watched), usage: stream.usage };
  },
};

export const embeddingsOperation: Operation<EmbeddingRequest, EmbeddingResult> = {
  name: "embeddings",
  key: (req, model, description) => embeddingsCacheKey({ modelId: model.id, modelDigest: description.digest }, req),
  codec: (_req, model) => embeddingsCodec(model.id),
  run: (provider, modelId, req, ctx) => provider.embeddings(modelId, req, ctx),
  watch(telemetry, result, hit) {
    telemetry.answered(hit ? NOTHING_GENERATED : result.usage);
    return result;
  },
};

export const completionsOperation: Operation<CompletionRequest, ChatStream> = {
  name: "completions",
  check(req, model) {
    const n = req.n ?? 1;
    // best_of ranks more samples than it returns: there is no ranking here, so it must equal n.
    if (req.best_of != null && req.best_of !== n) {
      throw invalidRequest(
        `best_of must equal n (${n}) on this server: it returns every sample it draws and ranks none.`,
        "best_of",
      );
    }
    if (model.provider === "llama" && req.echo && req.logprobs != null) {
      throw invalidRequest("echo with logprobs is not supported: the prompt's own logprobs are not computed.", "echo");
    }
  },
  sampling: (req) => req,
  key: (req, model, description) => completionsCacheKey({ modelId: model.id, modelDigest: description.digest }, req),
  codec: (req, model) => chatCodec({ model: model.id, choices: completionPrompts(req.prompt).length * (req.n ?? 1) }),
  run: (provider, modelId, req, ctx) => provider.complete(modelId, req, ctx),
  watch: chatOperation.watch,
};

/** The Responses API: a chat under another name (translated at the edge, routes/responses.ts). */
export const responsesOperation: Operation<ChatCompletionRequest, ChatStream> = {
  ...chatOperation,
  name: "responses",
  serves: "chat",
};
