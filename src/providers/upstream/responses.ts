// An upstream's own /v1/responses, passed through: its JSON response, or its event stream read
// event by event as the client takes them (the events are the upstream's, untouched), with the
// usage its final response reports. The stream is handed on once its first event arrived, so a
// failure before that can still fall back to another model.
import type { Dispatcher } from "undici";
import { AbortedError } from "../../engine/errors.ts";
import type { NativeResponses, TokenUsage } from "../provider.ts";
import { protocolFailure, streamErrorFailure, timeoutFailure, UpstreamError } from "./errors.ts";
import { SseParser } from "./sse.ts";

/** An upstream answers this to a path it does not serve: /v1/responses is not there. */
export const NOT_SERVED_STATUSES: readonly number[] = [404, 405, 501];

/** A Responses event (or the response object of a JSON answer), as the upstream sent it. */
export type UpstreamObject = Record<string, unknown>;

/** The events that end a response; each carries the final response, usage included. */
const FINAL_EVENTS = new Set(["response.completed", "response.incomplete", "response.failed"]);

/** `usage` of a Responses object: input and output tokens; estimated (0) when it has none. */
export function responseUsage(response: unknown): TokenUsage {
  const usage = (response as { usage?: { input_tokens?: unknown; output_tokens?: unknown } } | null)?.usage;
  const input = usage?.input_tokens;
  const output = usage?.output_tokens;
  if (typeof input !== "number" || typeof output !== "number") {
    return { promptTokens: 0, completionTokens: 0, estimated: true };
  }
  return { promptTokens: input, completionTokens: output };
}

/** A JSON answer: the response object. */
export function parseResponseJson(modelId: string, text: string): UpstreamObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw protocolFailure(modelId, "it sent a body that is not JSON");
  }
  if (typeof value !== "object" || value === null || (value as { object?: unknown }).object !== "response") {
    throw protocolFailure(modelId, "it sent something other than a Responses API response object");
  }
  return value as UpstreamObject;
}

/** Reads a streamed answer up to its first event, then hands on the rest as it is read. */
export async function openResponseEvents(
  modelId: string,
  response: Dispatcher.ResponseData,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<NativeResponses> {
  const source = response.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const parser = new SseParser();
  let usage: TokenUsage = { promptTokens: 0, completionTokens: 0, estimated: true };
  const pending: UpstreamObject[] = [];
  let ended = false;

  const failure = (err: unknown): Error => {
    if (signal.aborted) return new AbortedError();
    if (err instanceof UpstreamError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "UND_ERR_BODY_TIMEOUT") return timeoutFailure(modelId, timeoutMs);
    return protocolFailure(modelId, `the connection failed mid-response (${String(code ?? err)})`);
  };
  /** Reads until at least one more event is pending, or the body ended. */
  const pull = async (): Promise<void> => {
    while (pending.length === 0 && !ended) {
      let read: IteratorResult<Buffer>;
      try {
        read = await source.next();
      } catch (err) {
        ended = true;
        throw failure(err);
      }
      if (read.done) {
        ended = true;
        return;
      }
      for (const message of parser.push(read.value)) {
        let event: unknown;
        try {
          event = JSON.parse(message.data);
        } catch {
          throw protocolFailure(modelId, "it sent an event that is not JSON");
        }
        if (typeof event !== "object" || event === null || typeof (event as { type?: unknown }).type !== "string") {
          throw protocolFailure(modelId, "it sent an event without a type");
        }
        const typed = event as UpstreamObject & { type: string; response?: unknown };
        if (FINAL_EVENTS.has(typed.type)) usage = responseUsage(typed.response);
        pending.push(typed);
      }
    }
  };

  try {
    await pull();
  } catch (err) {
    response.body.destroy();
    throw err;
  }
  const first = pending[0] as (UpstreamObject & { type?: unknown }) | undefined;
  if (!first) throw protocolFailure(modelId, "it closed the stream without sending an event");
  // Before the client has anything, an error event is the whole answer (and may fall back).
  if (first.type === "error") {
    response.body.destroy();
    throw streamErrorFailure(modelId, JSON.stringify(first));
  }

  async function* events(): AsyncGenerator<UpstreamObject> {
    try {
      for (;;) {
        const next = pending.shift();
        if (next) {
          yield next;
          continue;
        }
        if (ended) return;
        await pull();
      }
    } finally {
      // Ended, failed, or the client left: either way the download stops here.
      if (!ended) response.body.destroy();
    }
  }
  return { kind: "events", events: events(), usage: () => usage };
}
