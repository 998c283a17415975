// The Responses API: POST /v1/responses (JSON or SSE), GET and DELETE /v1/responses/{id}, GET
// /v1/responses/{id}/input_items. A request is translated onto chat at the edge and served by
// the same pipeline (experiments, fallbacks, cache, rate limits, telemetry); stored responses
// carry a conversation on through previous_response_id, and belong to the key that made them.
import { Hono } from "hono";
import { ChatCompletionRequest } from "../src/openai/chat.ts";
import { ApiError, fromZodError, invalidRequest, notFound } from "../src/openai/errors.ts";
import {
  checkResponseRequest,
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
import { responsesOperation } from "../src/serve/operations.ts";
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
    checkResponseRequest(req);
    // A tenant (an API key; everyone without API_KEYS) sees its own responses only.
    const owner = c.get("caller").tenant;
    let previous: StoredResponse | undefined;
    if (req.previous_response_id !== undefined) {
      previous = await store.get(req.previous_response_id, owner);
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
    const chat = ChatCompletionRequest.safeParse(toChatRequest(req, conversation));
    if (!chat.success) throw fromZodError(chat.error);

    const serving = servingContext(c, req);
    const served = await services.pipeline.serve(responsesOperation, chat.data, serving).catch((err: unknown) => {
      // The chat request's reasoning_effort is this request's reasoning.effort.
      if (err instanceof ApiError && err.param === "reasoning_effort") {
        throw new ApiError(err.status, err.message, { type: err.type, param: "reasoning.effort", code: err.code });
      }
      throw err;
    });
    servedHeaders(c, served);
    const meta: ResponseMeta = {
      id: newResponseId(),
      createdAt: Math.floor(Date.now() / 1000),
      model: served.model.id,
      newItemId,
    };
    const shell = responseShell(req, meta, served.description.defaultTemperature);
    const events = responseEvents(served.answer.events, shell, meta, served.answer.usage);
    const keep = async (response: ResponseObject) => {
      if (req.store === false) return;
      // The answer is the client's either way: a store that is down costs the continuation
      // (previous_response_id then finds nothing), not the response.
      await store
        .put({ response, input, conversation, owner, expiresAt: Date.now() + store.ttlMs })
        .catch((err: unknown) => c.get("log").warn({ err, response: response.id }, "storing the response failed"));
    };

    if (!req.stream) {
      const response = await collectAnswer(serving, () => finalResponse(events));
      await keep(response);
      return c.json(response);
    }
    const lastSent: { sequence?: number } = {};
    return streamAnswer(c, serving, storing(events, keep, lastSent), {
      // OpenAI names each event; its Responses streams end without [DONE].
      frame: (event) => `event: ${(event as ResponseStreamEvent).type}\ndata: ${JSON.stringify(event)}\n\n`,
      done: "",
      failure: (err) => {
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
  });

  app.get("/:id", async (c) => {
    const stored = await store.get(c.req.param("id"), c.get("caller").tenant);
    if (!stored) throw responseNotFound(c.req.param("id"));
    return c.json(stored.response);
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await store.delete(id, c.get("caller").tenant))) throw responseNotFound(id);
    return c.json({ id, object: "response", deleted: true });
  });

  app.get("/:id/input_items", async (c) => {
    const stored = await store.get(c.req.param("id"), c.get("caller").tenant);
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
