// GET /v1/models and /v1/models/{id}, in OpenAI's shapes.
import { Hono } from "hono";
import { modelNotFound } from "../src/openai/errors.ts";
import { modelList, modelObject } from "../src/openai/models.ts";
import type { Services } from "../src/services.ts";
import type { ServedModel } from "../src/traffic/catalog.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse } from "./errors.ts";

const toModel = (m: ServedModel) => modelObject(m.id, m.created, m.ownedBy);

export function modelRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", (c) => c.json(modelList(services.catalog.list().map(toModel))));
  // Fine-tuned ids contain ':' (ft:base:suffix:id), so take the rest of the path.
  app.get("/:id{.+}", (c) => {
    const id = c.req.param("id");
    const model = services.catalog.find(id);
    if (!model) throw modelNotFound(id);
    return c.json(toModel(model));
  });
  app.onError((err, c) => errorResponse(c, err));
  return app;
}
