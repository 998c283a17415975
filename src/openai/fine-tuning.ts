// Wire schemas of /v1/files and /v1/fine_tuning/jobs requests (OpenAI's shapes). Strict:
// an unknown field is a 400 naming it.
import { z } from "zod";

const Auto = z.literal("auto");

export const Hyperparameters = z.strictObject({
  n_epochs: z.union([Auto, z.int().min(1).max(50)]).optional(),
  // Below 1e-6 nothing is learnt and above 100 training diverges: both are a client's mistake.
  learning_rate_multiplier: z.union([Auto, z.number().min(1e-6).max(100)]).optional(),
  batch_size: z.union([Auto, z.int().min(1).max(256)]).optional(),
});
export type Hyperparameters = z.output<typeof Hyperparameters>;

export const CreateFineTuningJobRequest = z.strictObject({
  model: z.string().min(1),
  training_file: z.string().min(1),
  validation_file: z.string().min(1).nullable().optional(),
  hyperparameters: Hyperparameters.optional(),
  method: z
    .strictObject({
      type: z.enum(["supervised", "dpo", "reinforcement"]),
      supervised: z.strictObject({ hyperparameters: Hyperparameters.optional() }).optional(),
      dpo: z.unknown().optional(),
      reinforcement: z.unknown().optional(),
    })
    .optional(),
  // ':' separates the parts of a fine-tuned model's name, so the suffix cannot hold one.
  suffix: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9._-]+$/, { error: "expected at most 64 letters, digits, '.', '_' or '-'" })
    .nullable()
    .optional(),
  seed: z.int().min(0).max(2_147_483_647).nullable().optional(),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, { error: "at most 16 keys" })
    .nullable()
    .optional(),
  integrations: z.array(z.unknown()).nullable().optional(),
});
export type CreateFineTuningJobRequest = z.output<typeof CreateFineTuningJobRequest>;

const Limit = (max: number, def: number) => z.coerce.number().int().min(1).max(max).default(def);

export const ListJobsQuery = z.object({ after: z.string().optional(), limit: Limit(100, 20) });
export const ListEventsQuery = z.strictObject({ after: z.string().optional(), limit: Limit(100, 20) });
export const ListCheckpointsQuery = z.strictObject({ after: z.string().optional(), limit: Limit(100, 10) });
export const ListFilesQuery = z.strictObject({
  purpose: z.string().optional(),
  after: z.string().optional(),
  limit: Limit(10_000, 10_000),
  order: z.enum(["asc", "desc"]).default("desc"),
});
