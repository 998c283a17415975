// POST /v1/completions (legacy): validate, serve through the pipeline, answer as JSON or SSE.
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import {
  CompletionRequest,
  collectCompletion,
  completionUsageChunk,
  type TextCompletionMeta,
  toCompletionChunks,
} from "../src/openai/text-completions.ts";
import { completionsOperation } from "../src/serve/operations.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { collectAnswer, parseRequest, servedHeaders, servingContext, streamAnswer } from "./serving.ts";

export function completionRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const req = await parseRequest(c, services, CompletionRequest);

    const serving = servingContext(c, req);
    const served = await services.pipeline.serve(completionsOperation, req, serving);
    const result = served.answer;
    const meta: TextCompletionMeta = {
      id: `cmpl-${randomUUID().replaceAll("-", "")}`,
      created: Math.floor(Date.now() / 1000),
      model: served.model.id,
      systemFingerprint: served.description.fingerprint,
    };
    servedHeaders(c, served);

    if (!req.stream) {
      return c.json(
        await collectAnswer(serving, () => collectCompletion(result.events, meta, result.usage, req.logprobs != null)),
      );
    }
    const includeUsage = req.stream_options?.include_usage === true;
    return streamAnswer(c, serving, toCompletionChunks(result.events, meta), {
      usageChunk: includeUsage ? () => completionUsageChunk(meta, result.usage()) : undefined,
    });
  });

  return app;
}
