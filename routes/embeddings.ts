// POST /v1/embeddings: validate, serve through the pipeline, answer as JSON in the encoding asked for.
import { Hono } from "hono";
import { EmbeddingRequest, embeddingResponse } from "../src/openai/embeddings.ts";
import { embeddingsOperation } from "../src/serve/operations.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { parseRequest, servedHeaders, servingContext } from "./serving.ts";

export function embeddingRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const req = await parseRequest(c, services, EmbeddingRequest);
    const served = await services.pipeline.serve(embeddingsOperation, req, servingContext(c, req));
    servedHeaders(c, served);
    const { vectors, usage } = served.answer;
    return c.json(embeddingResponse(served.model.id, vectors, usage.promptTokens, req.encoding_format));
  });

  return app;
}
