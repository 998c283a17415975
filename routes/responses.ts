// The Responses API: POST /v1/responses (JSON or SSE), GET and DELETE /v1/responses/{id}, GET
// /v1/responses/{id}/input_items. A request is translated onto chat at the edge and served by
// the same pipeline (experiments, fallbacks, cache, rate limits, telemetry); stored responses
// carry a conversation on through previous_response_id, and belong to the key that made them.
import { Hono } from "hono";
import { ChatCompletionRequest } from "../src/openai/chat.ts";
import { ApiError, fromZodError, invalidRequest, notFound } from "../src/openai/errors.ts";
import {
  checkStateRequest,
  checkTranslatable,
  type InputItem,
  inputItems,
  listedItem,
  type ResponseMeta,
  type ResponseObject,
  ResponseRequest,
  type ResponseStreamEvent,
  responseEvents,
  responseShell,
  toChatRequest,
} from "../src/openai/responses.ts";
import { type ResponsesServeRequest, responsesOperation } from "../src/serve/operations.ts";
import type { Services } from "../src/services.ts";
import { newItemId, newResponseId, type StoredResponse } from "../src/storage/responses.ts";
import type { AppEnv } from "./env.ts";
import { collectAnswer, parseRequest, servedHeaders, servingContext, streamAnswer } from "./serving.ts";

const MAX_PAGE = 100;

export function responseRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const store = services.responses;

  app.post("/", async (c) => {
    const req = await parseRequest(c, services, ResponseRequest);
    checkStateRequest(req);
    // A tenant (an API key, a project; everyone without API_KEYS) sees its own responses only.
    const { tenant: owner, viewer } = c.get("caller");
    let previous: StoredResponse | undefined;
    if (req.previous_response_id !== undefined) {
      previous = await store.get(req.previous_response_id, viewer);
      if (!previous) {
        throw notFound(`Previous response with id '${req.previous_response_id}' not found.`, "previous_response_id");
      }
    }
    const input = inputItems(req.input).map(
      (item) =>
        ({ ...item, id: (item.id as string | undefined) ?? newItemId(prefixOf(item)) }) as InputItem & { id: string },
    );
    const conversation: InputItem[] = [
      ...(previous?.conversation ?? []),
      ...((previous?.response.output ?? []) as InputItem[]),
      ...input,
    ];
    let chat: ChatCompletionRequest | undefined;
    const request: ResponsesServeRequest = {
      model: req.model,
      temperature: req.temperature,
      chat: () => {
        if (chat) return chat;
        checkTranslatable(req);
        const parsed = ChatCompletionRequest.safeParse(toChatRequest(req, conversation));
        if (!parsed.success) throw fromZodError(parsed.error);
        chat = parsed.data;
        return chat;
      },
      native: (targetId) => nativeBody(req, previous, conversation, targetId),
    };

    const serving = servingContext(c, req);
    const served = await services.pipeline.serve(responsesOperation, request, serving).catch((err: unknown) => {
      // The chat request's reasoning_effort is this request's reasoning.effort.
      if (err instanceof ApiError && err.param === "reasoning_effort") {
        throw new ApiError(err.status, err.message, { type: err.type, param: "reasoning.effort", code: err.code });
      }
      throw err;
    });
    servedHeaders(c, served);
    const keep = async (response: ResponseObject, native?: string) => {
      if (req.store === false) return;
      // The answer is the client's either way: a store that is down costs the continuation
      // (previous_response_id then finds nothing), not the response.
      await store
        .put({
          response,
          input,
          conversation,
          owner,
          expiresAt: Date.now() + store.ttlMs,
          ...(native ? { native } : {}),
        })
        .catch((err: unknown) => c.get("log").warn({ err, response: response.id }, "storing the response failed"));
    };
    const framing = (lastSent: { sequence?: number }) => ({
      // OpenAI names each event; its Responses streams end without [DONE].
      frame: (event: object) => `event: ${(event as { type: string }).type}\ndata: ${JSON.stringify(event)}\n\n`,
      done: "",
      failure: (err: ApiError) => {
        // Numbered after the last event that went out, as OpenAI numbers its error events.
        const event = {
          type: "error",
          code: err.code,
          message: err.message,
          param: err.param,
          sequence_number: (lastSent.sequence ?? -1) + 1,
        };
        return `event: error\ndata: ${JSON.stringify(event)}\n\n`;
      },
    });

    const { answer } = served;
    if (answer.kind === "native") {
      // The upstream's own answer, as it sent it; stored here too, so GET, input_items and
      // previous_response_id work as for any response.
      const servedBy = served.model.id;
      if (answer.native.kind === "json") {
        const response = answer.native.response as unknown as ResponseObject;
        await keep(response, servedBy);
        return c.json(response);
      }
      const lastSent: { sequence?: number } = {};
      return streamAnswer(
        c,
        serving,
        storingNative(answer.native.events, (r) => keep(r, servedBy), lastSent),
        framing(lastSent),
      );
    }

    const meta: ResponseMeta = {
      id: newResponseId(),
      createdAt: Math.floor(Date.now() / 1000),
      model: served.model.id,
      newItemId,
    };
    const shell = responseShell(req, meta, served.description.defaultTemperature);
    const events = responseEvents(answer.stream.events, shell, meta, answer.stream.usage);
    if (!req.stream) {
      const response = await collectAnswer(serving, () => finalResponse(events));
      await keep(response);
      return c.json(response);
    }
    const lastSent: { sequence?: number } = {};
    return streamAnswer(c, serving, storing(events, keep, lastSent), framing(lastSent));
  });

  app.get("/:id", async (c) => {
    const stored = await store.get(c.req.param("id"), c.get("caller").viewer);
    if (!stored) throw responseNotFound(c.req.param("id"));
    return c.json(stored.response);
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await store.delete(id, c.get("caller").viewer))) throw responseNotFound(id);
    return c.json({ id, object: "response", deleted: true });
  });

  app.get("/:id/input_items", async (c) => {
    const stored = await store.get(c.req.param("id"), c.get("caller").viewer);
    if (!stored) throw responseNotFound(c.req.param("id"));
    const order = c.req.query("order") ?? "desc";
    const limit = Number(c.req.query("limit") ?? 20);
    if (order !== "asc" && order !== "desc") throw invalidRequest("order must be asc or desc.", "order");
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
      throw invalidRequest(`limit must be an integer from 1 to ${MAX_PAGE}.`, "limit");
    }
    let items = stored.input.map((item) => listedItem(item, item.id));
    if (order === "desc") items = items.reverse();
    const after = c.req.query("after");
    if (after !== undefined) items = items.slice(items.findIndex((i) => i.id === after) + 1);
    const page = items.slice(0, limit);
    return c.json({
      object: "list",
      data: page,
      first_id: page[0]?.id ?? null,
      last_id: page.at(-1)?.id ?? null,
      has_more: items.length > page.length,
    });
  });

  return app;
}

function prefixOf(item: InputItem): string {
  return item.type === "function_call" ? "fc" : item.type === "function_call_output" ? "fco" : "msg";
}

function responseNotFound(id: string) {
  return notFound(`Response with id '${id}' not found.`, "response_id");
}

/** Runs the events to their end: the generator's return value is the finished response. */
async function finalResponse(events: AsyncGenerator<ResponseStreamEvent, ResponseObject>): Promise<ResponseObject> {
  for (;;) {
    const next = await events.next();
    if (next.done) return next.value;
  }
}

/** A passed-through stream's events as they go out; its final response is stored before that event leaves. */
async function* storingNative(
  events: AsyncIterable<Record<string, unknown>>,
  keep: (response: ResponseObject) => Promise<void>,
  lastSent: { sequence?: number },
): AsyncGenerator<Record<string, unknown>> {
  for await (const event of events) {
    if (event.type === "response.completed" || event.type === "response.incomplete") {
      await keep(event.response as ResponseObject);
    }
    if (typeof event.sequence_number === "number") lastSent.sequence = event.sequence_number;
    yield event;
  }
}

/**
 * The body for a model's own /v1/responses: the request as sent, when it starts a conversation
 * or continues one that model itself answered (it holds the previous response); otherwise the
 * stored conversation is sent whole as the input, since that model never saw it.
 */
function nativeBody(
  req: ResponseRequest,
  previous: StoredResponse | undefined,
  conversation: readonly InputItem[],
  targetId: string,
): Record<string, unknown> {
  if (previous === undefined || previous.native === targetId) return req;
  const { previous_response_id: _, ...rest } = req;
  // Our item ids mean nothing to it (and an id it does not know is an error there).
  return { ...rest, input: conversation.map(({ id: _id, ...item }) => item) };
}

/** The events as they go out; the finished response is stored before the last one leaves. */
async function* storing(
  events: AsyncGenerator<ResponseStreamEvent, ResponseObject>,
  keep: (response: ResponseObject) => Promise<void>,
  lastSent: { sequence?: number },
): AsyncGenerator<ResponseStreamEvent> {
  for (;;) {
    const next = await events.next();
    if (next.done) return;
    if (next.value.type === "response.completed" || next.value.type === "response.incomplete") {
      await keep(next.value.response as ResponseObject);
    }
    lastSent.sequence = next.value.sequence_number;
    yield next.value;
  }
}
