// POST /v1/feedback {request_id, score, comment?}: a rating of one answer, attached to the
// experiment variant that served it (request ids are remembered for 24 hours).
import { Hono } from "hono";
import { z } from "zod";
import { fromZodError } from "../src/openai/errors.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { readJson } from "./json.ts";

const FeedbackBody = z.strictObject({
  // The x-request-id of the rated response (src/app.ts admits the same alphabet).
  request_id: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, { error: "expected the x-request-id of a response" }),
  score: z.number().min(-1).max(1),
  comment: z.string().max(4096).optional(),
});

export function feedbackRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post("/", async (c) => {
    const parsed = FeedbackBody.safeParse(await readJson(c), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const { request_id, score, comment } = parsed.data;
    const { entry, model } = await services.traffic.feedback(c.get("caller").tenant, request_id, score, comment);
    return c.json({
      object: "feedback",
      request_id,
      experiment: entry.experiment,
      variant: entry.variant,
      model,
      score,
      comment: comment ?? null,
      created_at: Math.floor(entry.at / 1000),
    });
  });
  return app;
}
