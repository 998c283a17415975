// A fake OpenAI-compatible upstream on a random loopback port: real HTTP (node:http), real SSE.
// Each request is answered by the next scripted behaviour, else by the default one (a short
// reply: streamed, with usage when asked for, to a request with `stream: true`; one JSON
// completion with usage otherwise, as OpenAI and vLLM answer). It records what it received and how many
// connections it accepted, so tests can check forwarding and connection reuse.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export interface ReplyOptions {
  /** Content pieces, one chunk each. */
  pieces?: string[];
  /** Sent last when the request asked for include_usage (always in a JSON reply); false leaves it out. */
  usage?: { prompt_tokens: number; completion_tokens: number } | false;
  finish?: "stop" | "length" | "tool_calls";
  /** Chunks to send instead of `pieces` (already shaped deltas). */
  deltas?: Record<string, unknown>[];
  /** Extra keys for every chunk (vendor fields). */
  extra?: Record<string, unknown>;
}

export type Behaviour =
  | { kind: "reply"; options?: ReplyOptions }
  | { kind: "status"; status: number; body: unknown; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: "hang" }
  /** Sends the headers and `events` data lines, then stalls without ending. */
  | { kind: "stall"; events?: string[] }
  /** Closes the connection without a response. */
  | { kind: "drop" }
  | { kind: "custom"; handle: (req: ReceivedRequest, res: ServerResponse) => void };

export interface FakeUpstream {
  /** Base URL up to /v1, as models.yaml's base_url. */
  baseUrl: string;
  requests: ReceivedRequest[];
  /** TCP connections accepted so far. */
  connections(): number;
  /** Queues behaviours for the next requests, in order. */
  script(...behaviours: Behaviour[]): void;
  close(): Promise<void>;
}

export const DEFAULT_PIECES = ["Hello", " from", " upstream", "!"];

/** `data: …` framing of one SSE event. */
export function sseData(payload: unknown): string {
  return `data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`;
}

export function chunk(
  model: string,
  delta: Record<string, unknown>,
  finish: string | null = null,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: "chatcmpl-upstream",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...extra,
  };
}

/** The SSE events of a whole streamed reply. */
export function replyEvents(req: ReceivedRequest, options: ReplyOptions = {}): string[] {
  const model = String(req.body.model);
  const extra = options.extra ?? {};
  const deltas = options.deltas ?? (options.pieces ?? DEFAULT_PIECES).map((content) => ({ content }));
  const events = [
    sseData(chunk(model, { role: "assistant", content: "" }, null, extra)),
    ...deltas.map((delta) => sseData(chunk(model, delta, null, extra))),
    sseData(chunk(model, {}, options.finish ?? "stop", extra)),
  ];
  const asked = (req.body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  if (asked && options.usage !== false) {
    const usage = options.usage ?? { prompt_tokens: 11, completion_tokens: deltas.length };
    events.push(
      sseData({
        id: "chatcmpl-upstream",
        object: "chat.completion.chunk",
        created: 1_700_000_000,
        model,
        choices: [],
        usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
      }),
    );
  }
  events.push("data: [DONE]\n\n");
  return events;
}

/** The JSON completion a server answers a request without `stream: true` with: the deltas, collected. */
export function replyJson(req: ReceivedRequest, options: ReplyOptions = {}): Record<string, unknown> {
  const deltas: Record<string, unknown>[] =
    options.deltas ?? (options.pieces ?? DEFAULT_PIECES).map((content) => ({ content }));
  let content: string | null = null;
  let refusal: string | null = null;
  const calls: { id: string; type: string; function: { name: string; arguments: string } }[] = [];
  for (const delta of deltas) {
    if (typeof delta.content === "string") content = (content ?? "") + delta.content;
    if (typeof delta.refusal === "string") refusal = (refusal ?? "") + delta.refusal;
    const fragments = (delta.tool_calls ?? []) as {
      index: number;
      id?: string;
      function?: { name?: string; arguments?: string };
    }[];
    for (const f of fragments) {
      const call = calls[f.index] ?? { id: "", type: "function", function: { name: "", arguments: "" } };
      calls[f.index] = call;
      if (f.id) call.id = f.id;
      if (f.function?.name) call.function.name = f.function.name;
      if (f.function?.arguments) call.function.arguments += f.function.arguments;
    }
  }
  const usage = options.usage ?? { prompt_tokens: 11, completion_tokens: deltas.length };
  return {
    id: "chatcmpl-upstream",
    object: "chat.completion",
    created: 1_700_000_000,
    model: String(req.body.model),
    choices: [
      {
        index: 0,
        message: { role: "assistant", content, refusal, ...(calls.length > 0 ? { tool_calls: calls } : {}) },
        logprobs: null,
        finish_reason: options.finish ?? "stop",
      },
    ],
    ...(usage === false ? {} : { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } }),
    ...options.extra,
  };
}

export function sseHeaders(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
}

/** The text an upstream's own Responses API answers with, one delta per piece. */
export const RESPONSES_PIECES = ["Hello", " from", " upstream", " responses"];

/**
 * An upstream's own Responses API answer to `req` (OpenAI's shapes and event order): the
 * response object, and the events of the same answer streamed. `n` makes the response's id.
 */
export function nativeResponse(
  req: ReceivedRequest,
  n: number,
): { response: Record<string, unknown>; events: Record<string, unknown>[] } {
  const id = `resp_${n.toString(16).padStart(32, "0")}`;
  const itemId = `msg_${n.toString(16).padStart(32, "0")}`;
  const text = RESPONSES_PIECES.join("");
  const base = {
    id,
    object: "response",
    created_at: 1_700_000_000,
    model: String(req.body.model),
    error: null,
    incomplete_details: null,
    instructions: req.body.instructions ?? null,
    metadata: req.body.metadata ?? {},
    parallel_tool_calls: true,
    temperature: req.body.temperature ?? 1,
    tool_choice: "auto",
    tools: req.body.tools ?? [],
    top_p: 1,
    previous_response_id: req.body.previous_response_id ?? null,
  };
  const part = { type: "output_text", text, annotations: [] };
  const item = { id: itemId, type: "message", status: "completed", role: "assistant", content: [part] };
  const usage = {
    input_tokens: 13,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: RESPONSES_PIECES.length,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 13 + RESPONSES_PIECES.length,
  };
  const response = { ...base, status: "completed", output: [item], usage };
  const started = { ...base, status: "in_progress", output: [], usage: null };
  const shapes: Record<string, unknown>[] = [
    { type: "response.created", response: started },
    { type: "response.in_progress", response: started },
    { type: "response.output_item.added", output_index: 0, item: { ...item, status: "in_progress", content: [] } },
    {
      type: "response.content_part.added",
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      part: { ...part, text: "" },
    },
    ...RESPONSES_PIECES.map((delta) => ({
      type: "response.output_text.delta",
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      delta,
      logprobs: [],
    })),
    { type: "response.output_text.done", item_id: itemId, output_index: 0, content_index: 0, text, logprobs: [] },
    { type: "response.content_part.done", item_id: itemId, output_index: 0, content_index: 0, part },
    { type: "response.output_item.done", output_index: 0, item },
    { type: "response.completed", response },
  ];
  return { response, events: shapes.map((e, i) => ({ ...e, sequence_number: i })) };
}

export interface FakeUpstreamOptions {
  /** It serves /v1/responses itself; without, that path is a 404 (it is a chat-only server). */
  responses?: boolean;
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const requests: ReceivedRequest[] = [];
  let responsesServed = 0;
  const queue: Behaviour[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;

  const server: Server = createServer((incoming, res) => {
    const parts: Buffer[] = [];
    incoming.on("data", (b: Buffer) => parts.push(b));
    incoming.on("end", () => {
      const text = Buffer.concat(parts).toString("utf8");
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // recorded as empty: the test will see it
      }
      const req: ReceivedRequest = {
        method: incoming.method ?? "",
        path: incoming.url ?? "",
        headers: incoming.headers,
        body,
      };
      requests.push(req);
      if (req.path.endsWith("/responses")) {
        if (!options.responses) {
          // A chat-only server: scripted behaviours are for the requests it does serve.
          res.writeHead(404, { "content-type": "application/json" });
          res.end(
            JSON.stringify({ error: { message: "Not Found", type: "invalid_request_error", param: null, code: null } }),
          );
          return;
        }
        const behaviour = queue.shift() ?? { kind: "reply" };
        if (behaviour.kind === "reply") {
          const { response, events } = nativeResponse(req, ++responsesServed);
          if (req.body.stream !== true) {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(JSON.stringify(response));
            return;
          }
          sseHeaders(res);
          for (const event of events) res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
          res.end();
          return;
        }
        answer(behaviour, req, res);
        return;
      }
      answer(queue.shift() ?? { kind: "reply" }, req, res);
    });
  });
  server.on("connection", (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    connections: () => accepted,
    script: (...behaviours) => queue.push(...behaviours),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An upstream's embeddings: input i's vector is [i + 1, 0.5, -0.25], in the encoding asked for. */
export function embeddingsJson(req: ReceivedRequest): Record<string, unknown> {
  const input = req.body.input;
  const count = Array.isArray(input) && typeof input[0] !== "number" ? input.length : 1;
  const data = Array.from({ length: count }, (_, index) => {
    const vector = [index + 1, 0.5, -0.25];
    const base64 = Buffer.from(new Float32Array(vector).buffer).toString("base64");
    return { object: "embedding", index, embedding: req.body.encoding_format === "base64" ? base64 : vector };
  });
  return { object: "list", data, model: req.body.model, usage: { prompt_tokens: 7 * count, total_tokens: 7 * count } };
}

/**
 * An upstream reranker's answer: each document scored by the share of the query's words it
 * holds, most relevant first, cut to top_n, with the documents when asked; 5 tokens a document.
 */
export function rerankJson(req: ReceivedRequest): Record<string, unknown> {
  const query = String(req.body.query).toLowerCase().split(/\W+/).filter(Boolean);
  const documents = (req.body.documents as (string | { text: string })[]).map((d) =>
    typeof d === "string" ? d : d.text,
  );
  const scored = documents.map((text, index) => {
    const words = new Set(text.toLowerCase().split(/\W+/));
    const score = query.filter((w) => words.has(w)).length / Math.max(1, query.length);
    return { index, relevance_score: score, ...(req.body.return_documents ? { document: { text } } : {}) };
  });
  scored.sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index);
  const topN = typeof req.body.top_n === "number" ? req.body.top_n : scored.length;
  return {
    id: "rerank-up",
    model: req.body.model,
    results: scored.slice(0, topN),
    usage: { prompt_tokens: 5 * documents.length, total_tokens: 5 * documents.length },
  };
}

/** An upstream's legacy completion: DEFAULT_PIECES as one text (JSON) or one chunk each (stream). */
export function textCompletionReply(req: ReceivedRequest, res: ServerResponse): void {
  const base = { id: "cmpl-up", object: "text_completion", created: 1, model: req.body.model };
  const usage = { prompt_tokens: 5, completion_tokens: DEFAULT_PIECES.length, total_tokens: 5 + DEFAULT_PIECES.length };
  if (req.body.stream !== true) {
    res.writeHead(200, { "content-type": "application/json" });
    const choice = { index: 0, text: DEFAULT_PIECES.join(""), logprobs: null, finish_reason: "stop" };
    res.end(JSON.stringify({ ...base, choices: [choice], usage }));
    return;
  }
  sseHeaders(res);
  for (const text of DEFAULT_PIECES) {
    res.write(sseData({ ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: null }] }));
  }
  res.write(sseData({ ...base, choices: [{ index: 0, text: "", logprobs: null, finish_reason: "stop" }] }));
  res.write(sseData({ ...base, choices: [], usage }));
  res.end("data: [DONE]\n\n");
}

function answer(behaviour: Behaviour, req: ReceivedRequest, res: ServerResponse): void {
  switch (behaviour.kind) {
    case "reply":
      if (req.path.endsWith("/completions") && !req.path.endsWith("/chat/completions")) {
        textCompletionReply(req, res);
        return;
      }
      if (req.path.endsWith("/embeddings")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(embeddingsJson(req)));
        return;
      }
      if (req.path.endsWith("/rerank")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(rerankJson(req)));
        return;
      }
      if (req.body.stream !== true) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(replyJson(req, behaviour.options)));
        return;
      }
      sseHeaders(res);
      for (const event of replyEvents(req, behaviour.options)) res.write(event);
      res.end();
      return;
    case "status":
      res.writeHead(behaviour.status, { "content-type": "application/json", ...behaviour.headers });
      res.end(typeof behaviour.body === "string" ? behaviour.body : JSON.stringify(behaviour.body));
      return;
    case "hang":
      return;
    case "stall":
      sseHeaders(res);
      for (const event of behaviour.events ?? []) res.write(event);
      return;
    case "drop":
      res.socket?.destroy();
      return;
    case "custom":
      behaviour.handle(req, res);
      return;
  }
}
