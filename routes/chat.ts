// POST /v1/chat/completions: validate, serve through the pipeline, answer as JSON or SSE.
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import { ChatCompletionRequest } from "../src/openai/chat.ts";
import { type CompletionMeta, collect, toChunks, usageChunk } from "../src/openai/completion.ts";
import { chatOperation } from "../src/serve/operations.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { collectAnswer, parseRequest, servedHeaders, servingContext, streamAnswer } from "./serving.ts";

export function chatRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const req = await parseRequest(c, services, ChatCompletionRequest);

    const serving = servingContext(c, req);
    const served = await services.pipeline.serve(chatOperation, req, serving);
    const result = served.answer;

    const meta: CompletionMeta = {
      // randomUUID draws from a pooled buffer; randomBytes() asks the kernel every call (~20 µs under load).
      id: `chatcmpl-${randomUUID().replaceAll("-", "")}`,
      created: Math.floor(Date.now() / 1000),
      model: served.model.id,
      systemFingerprint: served.description.fingerprint,
    };
    servedHeaders(c, served);

    if (!req.stream) return c.json(await collectAnswer(serving, () => collect(result.events, meta, result.usage)));
    const includeUsage = req.stream_options?.include_usage === true;
    return streamAnswer(c, serving, toChunks(result.events, meta, includeUsage), {
      usageChunk: includeUsage ? () => usageChunk(meta, result.usage()) : undefined,
    });
  });

  return app;
}
