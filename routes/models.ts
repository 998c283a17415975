// GET /v1/models and /v1/models/{id}, in OpenAI's shapes.
import { Hono } from "hono";
import { modelNotFound, permissionDenied } from "../src/openai/errors.ts";
import { modelList, modelObject } from "../src/openai/models.ts";
import type { Services } from "../src/services.ts";
import type { ServedModel } from "../src/traffic/catalog.ts";
import type { AppEnv } from "./env.ts";

const toModel = (m: ServedModel) => modelObject(m.id, m.created, m.ownedBy);

export function modelRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", async (c) => {
    // Picks up models that fine-tuning workers registered in a shared DATA_DIR.
    await services.fineTuning.models.sync();
    const viewer = c.get("caller").viewer;
    const all = services.catalog.list();
    const visible = await Promise.all(all.map((m) => services.fineTuning.modelVisible(m.id, viewer)));
    return c.json(modelList(all.filter((_, i) => visible[i]).map(toModel)));
  });
  // Fine-tuned ids contain ':' (ft:base:suffix:id), so take the rest of the path.
  app.get("/:id{.+}", async (c) => {
    const id = c.req.param("id");
    if (!services.catalog.find(id)) await services.fineTuning.ensureServed(id);
    const model = services.catalog.find(id);
    // Another tenant's fine-tuned model does not exist for this one.
    if (!model || !(await services.fineTuning.modelVisible(model.id, c.get("caller").viewer))) throw modelNotFound(id);
    // A local model also says how it writes tool calls and thoughts (README, "Tool calls").
    const format = await services.providers[model.provider].toolFormat?.(model.id);
    return c.json({ ...toModel(model), ...format });
  });
  // Only fine-tuned models can be deleted; configured ones belong to models.yaml.
  app.delete("/:id{.+}", async (c) => {
    const id = c.req.param("id");
    if (!(await services.fineTuning.modelVisible(id, c.get("caller").viewer))) throw modelNotFound(id);
    if (await services.fineTuning.models.delete(id)) return c.json({ id, object: "model", deleted: true });
    if (services.catalog.find(id)) {
      throw permissionDenied(`Model ${id} is configured in models.yaml; only fine-tuned models can be deleted.`);
    }
    throw modelNotFound(id);
  });
  return app;
}
