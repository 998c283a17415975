// POST /v1/chat/completions: validate, resolve the model, run it, answer as JSON or SSE.
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import { stream } from "hono/streaming";
import { ChatCompletionRequest, checkSupported } from "../src/openai/chat.ts";
import { type CompletionMeta, collect, toChunks, usageChunk } from "../src/openai/completion.ts";
import { fromZodError, modelNotFound } from "../src/openai/errors.ts";
import { SSE_DONE, SSE_HEADERS, sseError, sseEvent } from "../src/openai/sse.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse, toHttpError } from "./errors.ts";
import { readJson } from "./json.ts";

export function chatRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    // reportInput lets the error say what was sent ("got \"hot\"") and tell a wrong type from a missing one.
    const parsed = ChatCompletionRequest.safeParse(await readJson(c), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const req = parsed.data;
    const refused = checkSupported(req);
    if (refused) throw refused;
    const target = services.catalog.resolve(req.model);
    if (!target) throw modelNotFound(req.model);

    // Generation stops as soon as the client goes away, streaming or not.
    const abort = new AbortController();
    c.req.raw.signal.addEventListener("abort", () => abort.abort(), { once: true });
    const provider = services.providers[target.provider];
    const result = await provider.chat(target.id, req, { signal: abort.signal });

    const meta: CompletionMeta = {
      id: `chatcmpl-${randomBytes(12).toString("base64url")}`,
      created: Math.floor(Date.now() / 1000),
      model: target.id,
      systemFingerprint: services.fingerprint(target.id),
    };
    c.header("x-switchyard-model", target.id);

    if (!req.stream) {
      try {
        return c.json(await collect(result.events, meta, result.usage));
      } finally {
        abort.abort();
      }
    }

    for (const [name, value] of Object.entries(SSE_HEADERS)) c.header(name, value);
    const includeUsage = req.stream_options?.include_usage === true;
    return stream(c, async (out) => {
      out.onAbort(() => abort.abort());
      try {
        for await (const chunk of toChunks(result.events, meta, includeUsage)) {
          await out.write(sseEvent(chunk));
        }
        if (includeUsage) await out.write(sseEvent(usageChunk(meta, result.usage())));
        await out.write(SSE_DONE);
      } catch (err) {
        // The status line is gone; OpenAI's SDKs raise on a data event holding `error`.
        if (!out.aborted) await out.write(sseError(toHttpError(err)));
      } finally {
        abort.abort();
      }
    });
  });

  app.onError((err, c) => errorResponse(c, err));
  return app;
}
