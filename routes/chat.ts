// POST /v1/chat/completions: validate, serve through the pipeline, answer as JSON or SSE.
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import { ChatCompletionRequest } from "../src/openai/chat.ts";
import { type CompletionMeta, collect, toChunks, usageChunk } from "../src/openai/completion.ts";
import { fromZodError } from "../src/openai/errors.ts";
import { SSE_DONE, sseError, sseEvent } from "../src/openai/sse.ts";
import { chatOperation } from "../src/serve/operations.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse, toHttpError } from "./errors.ts";
import { readJson } from "./json.ts";
import { clientGone } from "./node-http.ts";
import { CLIENT_GONE, RESPONSE_DONE, servedHeaders, servingContext } from "./serving.ts";
import { sendSse } from "./sse.ts";

export function chatRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const body = await readJson(c);
    const named = (body as { model?: unknown } | null)?.model;
    const telemetry = c.get("telemetry");
    telemetry?.requested(body, typeof named === "string" ? services.traffic.attribution(named) : undefined);
    const parsed = ChatCompletionRequest.safeParse(body);
    // Parsed again to explain a refusal: reportInput lets the error say what was sent ("got
    // \"hot\"") and tell a wrong type from a missing one, and costs every valid request ~2 µs.
    if (!parsed.success)
      throw fromZodError(ChatCompletionRequest.safeParse(body, { reportInput: true }).error ?? parsed.error);
    const req = parsed.data;

    const serving = servingContext(c, req);
    const served = await services.pipeline.serve(chatOperation, req, serving);
    const result = served.answer;
    const abort = serving.controller;

    const meta: CompletionMeta = {
      // randomUUID draws from a pooled buffer; randomBytes() asks the kernel every call (~20 µs under load).
      id: `chatcmpl-${randomUUID().replaceAll("-", "")}`,
      created: Math.floor(Date.now() / 1000),
      model: served.model.id,
      systemFingerprint: served.description.fingerprint,
    };
    servedHeaders(c, served);

    if (!req.stream) {
      try {
        return c.json(await collect(result.events, meta, result.usage));
      } catch (err) {
        // Whatever failed, the provider must not go on generating for nobody.
        abort()?.abort(RESPONSE_DONE);
        throw err;
      }
    }

    const includeUsage = req.stream_options?.include_usage === true;
    telemetry?.respondingLater();
    return sendSse(c, async (out) => {
      let complete = false;
      try {
        for await (const chunk of toChunks(result.events, meta, includeUsage)) {
          await out.write(sseEvent(chunk));
        }
        if (includeUsage) await out.write(sseEvent(usageChunk(meta, result.usage())));
        await out.write(SSE_DONE);
        complete = true;
      } catch (err) {
        // The status line is gone; OpenAI's SDKs raise on a data event holding `error`.
        const api = toHttpError(err);
        telemetry?.failed(api);
        if (!out.closed) await out.write(sseError(api));
      } finally {
        // Gone or failed: the provider stops (a client that went away has aborted it already).
        if (!complete) abort()?.abort(out.closed ? CLIENT_GONE : RESPONSE_DONE);
        telemetry?.end(200, out.closed || clientGone(c));
      }
    });
  });

  app.onError((err, c) => errorResponse(c, err));
  return app;
}
