// The operations the pipeline serves: for each, which provider call answers it, what of the
// request keys the cache, and what telemetry sees of the answer.
import { cacheKey, completionsCacheKey, embeddingsCacheKey } from "../cache/key.ts";
import { chatCodec, embeddingsCodec } from "../cache/serve.ts";
import { type ChatCompletionRequest, checkSupported } from "../openai/chat.ts";
import type { EmbeddingRequest } from "../openai/embeddings.ts";
import { invalidRequest } from "../openai/errors.ts";
import type { RerankRequest } from "../openai/rerank.ts";
import { type CompletionRequest, completionPrompts } from "../openai/text-completions.ts";
import type {
  ChatStream,
  EmbeddingResult,
  ModelDescription,
  NativeResponses,
  RerankAnswer,
} from "../providers/provider.ts";
import type { ServedModel } from "../traffic/catalog.ts";
import type { Operation } from "./pipeline.ts";

/** A hit generated nothing: telemetry counts 0 engine tokens, the client still gets the original usage. */
const NOTHING_GENERATED = { promptTokens: 0, completionTokens: 0 };

/** A chat's cache key and codec: chat's own, and the Responses API's when it is translated onto chat. */
const chatKey = (req: ChatCompletionRequest, model: ServedModel, description: ModelDescription) =>
  cacheKey({ modelId: model.id, modelDigest: description.digest }, req);
const chatStreamCodec = (req: ChatCompletionRequest, model: ServedModel) =>
  chatCodec({ model: model.id, choices: req.n ?? 1 });

export const chatOperation: Operation<ChatCompletionRequest, ChatStream> = {
  name: "chat",
  check(req, model) {
    // Local and upstream models support different things.
    const refused = checkSupported(req, model.provider === "openai" ? "upstream" : "local");
    if (refused) throw refused;
  },
  sampling: (req) => req,
  key: chatKey,
  codec: chatStreamCodec,
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

/** Reranking: a local reranker GGUF's scores, or an upstream reranker's passed through; not cached (no key or codec: a key would hash every document). */
export const rerankOperation: Operation<RerankRequest, RerankAnswer> = {
  name: "rerank",
  run(provider, modelId, req, ctx) {
    if (!provider.rerank) throw new Error(`model ${modelId}'s provider cannot rerank`);
    return provider.rerank(modelId, req, ctx);
  },
  watch(telemetry, answer) {
    telemetry.answered(answer.usage);
    return answer;
  },
};

/**
 * A Responses API request as the pipeline serves it: passed through to a model that serves the
 * Responses API itself (an upstream's own /v1/responses), translated onto chat for any other.
 * Which one is known only once the target is chosen, so both forms are made on demand.
 */
export interface ResponsesServeRequest {
  model: string;
  temperature?: number | null | undefined;
  /** The chat request it translates to (made once); throws a 400 for what translation cannot carry. */
  chat(): ChatCompletionRequest;
  /** The body for the target's own /v1/responses. */
  native(targetId: string): Record<string, unknown>;
}

export type ResponsesAnswer = { kind: "chat"; stream: ChatStream } | { kind: "native"; native: NativeResponses };

/** Whether the model answers the Responses API by translation onto chat (known to; auto is not yet). */
const translates = (description: ModelDescription) => (description.responses ?? "chat") === "chat";

export const responsesOperation: Operation<ResponsesServeRequest, ResponsesAnswer> = {
  name: "responses",
  serves: "chat",
  // A model that serves the Responses API itself judges the request; one that may (auto) is
  // judged once it turned out not to (run, below).
  check(req, model, description) {
    if (translates(description)) chatOperation.check?.(req.chat(), model, description);
  },
  // A passed-through answer is the upstream's own events, which the cache does not record.
  cacheable: (_req, _model, description) => translates(description),
  sampling: (req) => ({ temperature: req.temperature }),
  key: (req, model, description) => chatKey(req.chat(), model, description),
  codec(req, model) {
    let chat: ReturnType<typeof chatStreamCodec> | undefined;
    const codec = () => {
      chat ??= chatStreamCodec(req.chat(), model);
      return chat;
    };
    return {
      record: (answer, store) =>
        answer.kind === "chat" ? { kind: "chat", stream: codec().record(answer.stream, store) } : answer,
      replay: (entry) => ({ kind: "chat", stream: codec().replay(entry) }),
    };
  },
  async run(provider, modelId, req, ctx) {
    if (provider.responses && !translates(provider.describe(modelId))) {
      const native = await provider.responses(modelId, req.native(modelId), ctx);
      if (native) return { kind: "native", native };
      // It has no /v1/responses after all: translated from now on, and refused as translation refuses.
      const refused = checkSupported(req.chat(), "upstream");
      if (refused) throw refused;
    }
    return { kind: "chat", stream: await provider.chat(modelId, req.chat(), ctx) };
  },
  watch(telemetry, answer, hit) {
    if (answer.kind === "native") return { kind: "native", native: telemetry.watchNative(answer.native) };
    return { kind: "chat", stream: chatOperation.watch(telemetry, answer.stream, hit) };
  },
};
