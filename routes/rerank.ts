// POST /v1/rerank (mounted also at /v1/reranking and /rerank, where llama-server, Jina and
// Cohere clients look): validate, serve through the pipeline, answer with the scored documents.
import { Hono } from "hono";
import { RerankRequest, rerankResponse } from "../src/openai/rerank.ts";
import { rerankOperation } from "../src/serve/operations.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { parseRequest, servedHeaders, servingContext } from "./serving.ts";

export function rerankRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const req = await parseRequest(c, services, RerankRequest);
    const served = await services.pipeline.serve(rerankOperation, req, servingContext(c, {}));
    servedHeaders(c, served);
    const { results, usage } = served.answer;
    return c.json(rerankResponse(served.model.id, results, usage.promptTokens));
  });

  return app;
}
