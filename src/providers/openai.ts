// Upstream OpenAI-compatible servers (OpenAI, vLLM, llama-server, Ollama, another Roundhouse)
// as a provider: the request goes out over a pooled keep-alive connection, streamed when the
// client asked for a stream, with retries while nothing has been streamed; the upstream's SSE
// is read only as fast as the client takes it, and turned chunk by chunk into provider events
// (a JSON answer into the same events at once), so the cache, telemetry, experiments and stop
// handling treat an upstream model like a local one. Decisions (what a failure means, how long
// to back off, how to read a chunk) live in ./upstream/.
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { Agent, type Dispatcher } from "undici";
import { OPERATIONS } from "../config/schema.ts";
import { AbortedError } from "../engine/errors.ts";
import type { ChatCompletionRequest } from "../openai/chat.ts";
import type { EmbeddingRequest } from "../openai/embeddings.ts";
import type { RerankRequest } from "../openai/rerank.ts";
import { type CompletionRequest, completionPrompts } from "../openai/text-completions.ts";
import type {
  ChatContext,
  ChatEvent,
  ChatProvider,
  ChatStream,
  EmbeddingResult,
  ModelDescription,
  NativeResponses,
  Operation,
  RerankAnswer,
} from "./provider.ts";
import { type ChunkEvents, type Invalid, parseChunk, parseCompletion } from "./upstream/chunks.ts";
import { parseEmbeddings } from "./upstream/embeddings.ts";
import {
  protocolFailure,
  type ResponseWait,
  requestFailure,
  statusFailure,
  streamErrorFailure,
  timeoutFailure,
  UpstreamError,
} from "./upstream/errors.ts";
import { chatEndpoint, type UpstreamEndpoint, upstreamBody, upstreamEndpoint } from "./upstream/request.ts";
import { parseRerank } from "./upstream/rerank.ts";
import { NOT_SERVED_STATUSES, openResponseEvents, parseResponseJson, responseUsage } from "./upstream/responses.ts";
import { retryDelayMs } from "./upstream/retry.ts";
import { SseParser } from "./upstream/sse.ts";
import { parseTextChunk, parseTextCompletion } from "./upstream/text-chunks.ts";
import { type TokenCounting, UsageMeter } from "./upstream/usage.ts";

/** One configured upstream model. */
export interface UpstreamModelSpec {
  id: string;
  /** Up to and including the version, e.g. https://api.openai.com/v1. */
  baseUrl: string;
  /** The name the upstream knows the model by. */
  model: string;
  apiKey: string | undefined;
  headers: Readonly<Record<string, string>>;
  /** Longest wait for a connection, for a stream to begin and between two chunks. */
  timeoutMs: number;
  /** Longest wait for a whole JSON answer (a client that asked for no stream). */
  responseTimeoutMs: number;
  retries: number;
  retryBackoffMs: number;
  /** What clients may ask of it; default: everything (the upstream judges). */
  operations?: readonly Operation[] | undefined;
  /** How /v1/responses reaches it (models.yaml `responses`); default auto. */
  responses?: "auto" | "native" | "chat" | undefined;
}

export interface OpenAIProviderOptions {
  models: readonly UpstreamModelSpec[];
  /** tiktoken, for upstreams that report no usage. */
  tokens: TokenCounting;
  logger: Logger;
  random?: () => number;
}

/** An error body is read this far for its message; the rest is not worth holding. */
const MAX_ERROR_BODY = 64 * 1024;
/** A plain-JSON answer to a streaming request is read whole; past this it is refused. */
const MAX_JSON_BODY = 64 * 1024 * 1024;
/** Idle pooled connections stay open this long, unless the upstream's Keep-Alive says less. */
const KEEP_ALIVE_MS = 30_000;

interface Upstream {
  spec: UpstreamModelSpec;
  endpoint: UpstreamEndpoint;
  embeddings: UpstreamEndpoint;
  completions: UpstreamEndpoint;
  responsesEndpoint: UpstreamEndpoint;
  rerankEndpoint: UpstreamEndpoint;
  agent: Agent;
  description: ModelDescription;
}

export class OpenAIProvider implements ChatProvider {
  private readonly upstreams = new Map<string, Upstream>();
  private readonly agents = new Map<string, Agent>();
  private readonly random: () => number;

  constructor(private readonly options: OpenAIProviderOptions) {
    this.random = options.random ?? Math.random;
    for (const spec of options.models) {
      const endpoint = chatEndpoint(spec);
      // Models on the same server share one pool (the connect timeout is the agent's).
      const key = `${endpoint.origin} ${spec.timeoutMs}`;
      let agent = this.agents.get(key);
      if (!agent) {
        agent = new Agent({
          keepAliveTimeout: KEEP_ALIVE_MS,
          keepAliveMaxTimeout: 10 * KEEP_ALIVE_MS,
          connect: { timeout: spec.timeoutMs },
        });
        this.agents.set(key, agent);
      }
      this.upstreams.set(spec.id, {
        spec,
        endpoint,
        embeddings: upstreamEndpoint(spec, "/embeddings"),
        completions: upstreamEndpoint(spec, "/completions"),
        agent,
        description: {
          // An upstream's weights are its own business: its address and model name stand for them.
          digest: `${spec.baseUrl}|${spec.model}`,
          fingerprint: `fp_${createHash("sha256").update(`${spec.id}\0`).digest("hex").slice(0, 10)}`,
          defaultTemperature: 1,
          operations: spec.operations ?? OPERATIONS,
          responses: spec.responses ?? "auto",
        },
        responsesEndpoint: upstreamEndpoint(spec, "/responses"),
        rerankEndpoint: upstreamEndpoint(spec, "/rerank"),
      });
    }
  }

  describe(modelId: string): ModelDescription {
    return this.upstream(modelId).description;
  }

  async chat(modelId: string, req: ChatCompletionRequest, ctx: ChatContext): Promise<ChatStream> {
    const upstream = this.upstream(modelId);
    const { spec } = upstream;
    const streamed = req.stream === true;
    const response = await this.send(upstream, upstream.endpoint, upstreamBody(req, spec.model), streamed, ctx.signal);
    const meter = new UsageMeter(this.options.tokens, spec.model, req.messages);
    return opened(new UpstreamStream(spec, response, meter, ctx.signal, CHAT_READER), meter);
  }

  /** Legacy completions pass through as sent (streamed with usage when streamed), read back as events. */
  async complete(modelId: string, req: CompletionRequest, ctx: ChatContext): Promise<ChatStream> {
    const upstream = this.upstream(modelId);
    const { spec } = upstream;
    const streamed = req.stream === true;
    const response = await this.send(
      upstream,
      upstream.completions,
      upstreamBody(req, spec.model),
      streamed,
      ctx.signal,
    );
    // Without usage from the upstream, tiktoken estimates the prompts as one user turn each.
    const prompts = completionPrompts(req.prompt).map((p) => ({
      role: "user" as const,
      content: typeof p === "string" ? p : "",
    }));
    const meter = new UsageMeter(this.options.tokens, spec.model, prompts);
    return opened(new UpstreamStream(spec, response, meter, ctx.signal, TEXT_READER), meter);
  }

  /** The request as the client sent it, under the upstream's model name; the vectors read back whatever their encoding. */
  async embeddings(modelId: string, req: EmbeddingRequest, ctx: ChatContext): Promise<EmbeddingResult> {
    const upstream = this.upstream(modelId);
    const { spec } = upstream;
    const body = JSON.stringify({ ...req, model: spec.model });
    const response = await this.send(upstream, upstream.embeddings, body, false, ctx.signal);
    const text = await readWhole(response, spec.id, ctx.signal);
    const parsed = parseEmbeddings(text);
    if (parsed.kind === "invalid") throw protocolFailure(spec.id, `it sent ${parsed.problem}`);
    return { vectors: parsed.vectors, usage: { promptTokens: parsed.promptTokens, completionTokens: 0 } };
  }

  /** The rerank request as the client sent it, under the upstream's model name, to its /rerank. */
  async rerank(modelId: string, req: RerankRequest, ctx: ChatContext): Promise<RerankAnswer> {
    const upstream = this.upstream(modelId);
    const { spec } = upstream;
    const body = JSON.stringify({ ...req, model: spec.model });
    const response = await this.send(upstream, upstream.rerankEndpoint, body, false, ctx.signal);
    const parsed = parseRerank(await readWhole(response, spec.id, ctx.signal));
    if (parsed.kind === "invalid") throw protocolFailure(spec.id, `it sent ${parsed.problem}`);
    // Without usage from the upstream, tiktoken counts the query once per document, as rerankers read them.
    const promptTokens =
      parsed.promptTokens ??
      req.documents.reduce<number>(
        (sum, d) =>
          sum + this.options.tokens.countTokens(`${req.query}\n${typeof d === "string" ? d : d.text}`, spec.model),
        0,
      );
    return {
      results: parsed.results,
      usage: { promptTokens, completionTokens: 0, ...(parsed.promptTokens === undefined ? { estimated: true } : {}) },
    };
  }

  /**
   * The client's Responses request, under the upstream's model name, to its own /v1/responses.
   * With `responses: auto` the first answer tells whether it has one: a 404, 405 or 501 turns
   * this model to translation (chat) for good, and this call answers undefined.
   */
  async responses(
    modelId: string,
    body: Record<string, unknown>,
    ctx: ChatContext,
  ): Promise<NativeResponses | undefined> {
    const upstream = this.upstream(modelId);
    const { spec, description } = upstream;
    if (description.responses === "chat") return undefined;
    const streamed = body.stream === true;
    let response: Dispatcher.ResponseData;
    try {
      response = await this.send(
        upstream,
        upstream.responsesEndpoint,
        JSON.stringify({ ...body, model: spec.model }),
        streamed,
        ctx.signal,
      );
    } catch (err) {
      if (
        description.responses === "auto" &&
        err instanceof UpstreamError &&
        NOT_SERVED_STATUSES.includes(err.upstreamStatus ?? 0)
      ) {
        this.options.logger.info(
          { model: spec.id, status: err.status },
          "upstream has no /v1/responses: translating onto chat",
        );
        description.responses = "chat";
        return undefined;
      }
      throw err;
    }
    description.responses = "native";
    const json = /^application\/json/i.test(header(response.headers, "content-type") ?? "");
    if (streamed && !json) return openResponseEvents(spec.id, response, ctx.signal, spec.timeoutMs);
    const text = await readWhole(response, spec.id, ctx.signal);
    const parsed = parseResponseJson(spec.id, text);
    return { kind: "json", response: parsed, usage: () => responseUsage(parsed) };
  }

  private upstream(modelId: string): Upstream {
    const upstream = this.upstreams.get(modelId);
    if (!upstream) throw new Error(`model ${modelId} is not an upstream model`);
    return upstream;
  }

  /** Closes the pooled connections; requests still running fail. */
  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((agent) => agent.destroy()));
  }

  /** Sends the request, again after a failure that allows it, until a 200 or a final failure. */
  private async send(
    upstream: Upstream,
    endpoint: UpstreamEndpoint,
    body: string,
    streamed: boolean,
    signal: AbortSignal,
  ): Promise<Dispatcher.ResponseData> {
    const { spec, agent } = upstream;
    // A JSON answer's headers come when the whole answer is ready: `timeout` would cut long ones.
    const wait: ResponseWait = streamed
      ? { ms: spec.timeoutMs, setting: "timeout" }
      : { ms: spec.responseTimeoutMs, setting: "response_timeout" };
    const headers = streamed ? endpoint.headers.stream : endpoint.headers.json;
    for (let attempt = 1; ; attempt++) {
      let failure: UpstreamError;
      try {
        const res = await agent.request({
          origin: endpoint.origin,
          path: endpoint.path,
          method: "POST",
          headers,
          body,
          signal,
          headersTimeout: wait.ms,
          bodyTimeout: spec.timeoutMs,
        });
        if (res.statusCode === 200) return res;
        const text = await readCapped(res.body, MAX_ERROR_BODY).catch(() => "");
        failure = statusFailure(spec.id, res.statusCode, text, header(res.headers, "retry-after"));
      } catch (err) {
        if (signal.aborted) throw new AbortedError();
        failure = requestFailure(spec.id, err, spec.timeoutMs, wait);
      }
      const delay = failure.retryable
        ? retryDelayMs({
            attempt,
            retries: spec.retries,
            backoffMs: spec.retryBackoffMs,
            retryAfter: failure.retryAfter,
            now: Date.now(),
            random: this.random(),
          })
        : undefined;
      if (delay === undefined) throw failure;
      this.options.logger.warn(
        { model: spec.id, attempt, status: failure.status, delayMs: Math.round(delay), err: failure.message },
        "upstream request failed; retrying",
      );
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        throw new AbortedError();
      }
    }
  }
}

/**
 * The stream once its first event has arrived: until then the client has nothing, so a
 * failure now may still fall back to another model.
 */
async function opened(stream: UpstreamStream, meter: UsageMeter): Promise<ChatStream> {
  await stream.open();
  return { events: stream, usage: () => meter.usage(), ...(stream.whole ? { arrivedWhole: true } : {}) };
}

/** How an endpoint's answers read: chat completions, or legacy text completions. */
interface Reader {
  chunk(data: string): ChunkEvents | Invalid | { kind: "error" };
  whole(body: string): ChunkEvents | Invalid;
}

const CHAT_READER: Reader = { chunk: parseChunk, whole: parseCompletion };
const TEXT_READER: Reader = { chunk: parseTextChunk, whole: parseTextCompletion };

/**
 * The events of one upstream response. Reads the body only when its consumer asks for the
 * next event, so a slow client leaves the upstream's bytes in the socket (TCP backpressure)
 * rather than in this process.
 */
class UpstreamStream implements AsyncIterable<ChatEvent> {
  private readonly source: AsyncIterator<Buffer>;
  private readonly parser = new SseParser();
  private readonly json: boolean;
  /** Events parsed but not yet taken, from `next` on. */
  private pending: ChatEvent[] = [];
  private next = 0;
  /** The first event (anything but a comment) has arrived. */
  private started = false;
  /** [DONE], or the whole JSON answer, was read. */
  private complete = false;
  private ended = false;
  /** What ended the stream badly; thrown once the events before it have been handed on. */
  private failure: Error | undefined;

  constructor(
    private readonly spec: UpstreamModelSpec,
    private readonly response: Dispatcher.ResponseData,
    private readonly meter: UsageMeter,
    private readonly signal: AbortSignal,
    private readonly reader: Reader,
  ) {
    this.source = response.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.json = /^application\/json/i.test(header(response.headers, "content-type") ?? "");
  }

  /** The answer came as one JSON body: its events all arrived at the end, none before. */
  get whole(): boolean {
    return this.json;
  }

  /** Waits for the first event; a failure before it is thrown here, while fallback is still possible. */
  async open(): Promise<void> {
    try {
      if (this.json) {
        await this.readJson();
        return;
      }
      while (!this.started && !this.ended && !this.failure) await this.pull();
      // Before the client has anything, a failure is the whole answer (and may fall back).
      if (this.failure) throw this.failure;
      if (!this.started) throw protocolFailure(this.spec.id, "it closed the stream without sending an event");
    } catch (err) {
      this.discard();
      throw err;
    }
  }

  // A plain iterator rather than an async generator: it runs once per event, and every
  // generator layer costs several promises per step.
  [Symbol.asyncIterator](): AsyncIterator<ChatEvent> {
    return {
      next: () => this.take(),
      // The consumer stopped early (client gone): stop the download; the connection is not reused.
      return: () => {
        if (!this.ended) this.discard();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  private async take(): Promise<IteratorResult<ChatEvent>> {
    for (;;) {
      if (this.next < this.pending.length) return { done: false, value: this.pending[this.next++] as ChatEvent };
      if (this.failure) {
        if (!this.ended) this.discard();
        throw this.failure;
      }
      if (this.complete) {
        if (!this.ended) this.drainRest();
        return { done: true, value: undefined };
      }
      if (this.ended) throw protocolFailure(this.spec.id, "the stream ended before [DONE]");
      await this.pull();
    }
  }

  /**
   * After [DONE] the answer is whole: the consumer finishes its reply now, in the same write
   * as the last events, rather than one turn later when the body's end arrives. What is left
   * of the body (normally nothing) is read in the background, so the connection goes back to
   * the pool; an upstream that never ends it is cut by bodyTimeout.
   */
  private drainRest(): void {
    this.ended = true;
    const source = this.source;
    void (async () => {
      try {
        while (!(await source.next()).done) {
          // anything after [DONE] is ignored
        }
      } catch {
        // the answer was complete; a connection that fails now is the pool's business
      }
    })();
  }

  /** Reads one piece of the body and parses the events it completes, up to a failure if one comes. */
  private async pull(): Promise<void> {
    let read: IteratorResult<Buffer>;
    try {
      read = await this.source.next();
    } catch (err) {
      this.ended = true;
      this.failure = this.readFailure(err);
      return;
    }
    if (this.pending.length === this.next) {
      this.pending = [];
      this.next = 0;
    }
    if (read.done) {
      this.ended = true;
      return;
    }
    for (const message of this.parser.push(read.value)) {
      this.started = true;
      // Anything after [DONE] is ignored; the body is still read to its end so the
      // connection goes back to the pool.
      if (this.complete) continue;
      if (message.data === "[DONE]") {
        this.complete = true;
        continue;
      }
      const parsed = this.reader.chunk(message.data);
      if (parsed.kind === "error" || message.event === "error") {
        this.failure = streamErrorFailure(this.spec.id, message.data);
        return;
      }
      if (parsed.kind === "invalid") {
        this.failure = protocolFailure(this.spec.id, `it sent ${parsed.problem}`);
        return;
      }
      if (parsed.usage) this.meter.report(parsed.usage);
      for (const event of parsed.events) {
        this.meter.see(event);
        this.queue(event);
      }
    }
  }

  /**
   * Text of one choice that arrived in the same read goes on as one event: nothing waits for it,
   * and each event costs a trip through the cache, telemetry and the response writer.
   */
  private queue(event: ChatEvent): void {
    const last = this.pending.length > this.next ? this.pending[this.pending.length - 1] : undefined;
    if (
      event.type === "content" &&
      last?.type === "content" &&
      last.index === event.index &&
      !last.logprobs === !event.logprobs
    ) {
      // Changed in place: it was made by parseChunk and nobody has seen it yet.
      last.text += event.text;
      if (last.logprobs && event.logprobs) last.logprobs.push(...event.logprobs);
      return;
    }
    this.pending.push(event);
  }

  /** An upstream that ignored `stream: true` and answered with one JSON completion. */
  private async readJson(): Promise<void> {
    let text: string;
    try {
      text = await readCapped(this.response.body, MAX_JSON_BODY, true);
    } catch (err) {
      throw this.readFailure(err);
    } finally {
      this.ended = true;
    }
    const parsed = this.reader.whole(text);
    if (parsed.kind === "invalid") throw protocolFailure(this.spec.id, `it sent ${parsed.problem}`);
    if (parsed.usage) this.meter.report(parsed.usage);
    for (const event of parsed.events) this.meter.see(event);
    this.pending = parsed.events;
    this.started = true;
    this.complete = true;
  }

  private readFailure(err: unknown): Error {
    if (this.signal.aborted) return new AbortedError();
    if (err instanceof UpstreamError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "UND_ERR_BODY_TIMEOUT") return timeoutFailure(this.spec.id, this.spec.timeoutMs);
    return protocolFailure(this.spec.id, `the connection failed mid-response (${String(code ?? err)})`);
  }

  private discard(): void {
    this.ended = true;
    this.response.body.destroy();
  }
}

/** A whole JSON answer's body as text, up to MAX_JSON_BODY; a failed read is the upstream's protocol failure. */
async function readWhole(response: Dispatcher.ResponseData, modelId: string, signal: AbortSignal): Promise<string> {
  try {
    return await readCapped(response.body, MAX_JSON_BODY, true);
  } catch (err) {
    if (signal.aborted) throw new AbortedError();
    throw protocolFailure(modelId, `the connection failed mid-response (${String(err)})`);
  }
}

/** Reads a body as text, up to `limit` characters' worth of bytes; past it, throws or stops reading. */
async function readCapped(body: Dispatcher.ResponseData["body"], limit: number, strict = false): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    parts.push(chunk);
    size += chunk.length;
    if (size >= limit) {
      body.destroy();
      if (strict) throw new Error(`response larger than ${limit} bytes`);
      break;
    }
  }
  return Buffer.concat(parts).subarray(0, limit).toString("utf8");
}

function header(headers: Dispatcher.ResponseData["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
