// POST /v1/embeddings: validate, serve through the pipeline, answer as JSON in the encoding asked for.
import { Hono } from "hono";
import { EmbeddingRequest, embeddingResponse } from "../src/openai/embeddings.ts";
import { fromZodError } from "../src/openai/errors.ts";
import { embeddingsOperation } from "../src/serve/operations.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse } from "./errors.ts";
import { readJson } from "./json.ts";
import { servedHeaders, servingContext } from "./serving.ts";

export function embeddingRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const body = await readJson(c);
    const named = (body as { model?: unknown } | null)?.model;
    c.get("telemetry")?.requested(body, typeof named === "string" ? services.traffic.attribution(named) : undefined);
    const parsed = EmbeddingRequest.safeParse(body);
    if (!parsed.success)
      throw fromZodError(EmbeddingRequest.safeParse(body, { reportInput: true }).error ?? parsed.error);
    const req = parsed.data;
    const served = await services.pipeline.serve(embeddingsOperation, req, servingContext(c, req));
    servedHeaders(c, served);
    const { vectors, usage } = served.answer;
    return c.json(embeddingResponse(served.model.id, vectors, usage.promptTokens, req.encoding_format));
  });

  app.onError((err, c) => errorResponse(c, err));
  return app;
}
