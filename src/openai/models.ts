// GET /v1/models, GET/DELETE /v1/models/{model}: OpenAI's Model, ListModelsResponse and
// DeleteModelResponse.
import { z } from "zod";

export const Model = z.object({
  id: z.string(),
  object: z.literal("model"),
  /** Unix seconds. */
  created: z.int(),
  owned_by: z.string(),
});

export const ModelList = z.object({
  object: z.literal("list"),
  data: z.array(Model),
});

export const DeletedModel = z.object({
  id: z.string(),
  object: z.literal("model"),
  deleted: z.boolean(),
});

export type Model = z.output<typeof Model>;
export type ModelList = z.output<typeof ModelList>;
export type DeletedModel = z.output<typeof DeletedModel>;

export function modelObject(id: string, created: number, ownedBy: string): Model {
  return { id, object: "model", created: Math.floor(created), owned_by: ownedBy };
}

export function modelList(data: Model[]): ModelList {
  return { object: "list", data };
}
