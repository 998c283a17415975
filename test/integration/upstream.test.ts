// Upstream (provider: openai) models against a fake OpenAI-compatible server on loopback: real
// HTTP on both sides, the official openai package as the client. What is checked: parameters
// and credentials reach the upstream, replies come back chunk by chunk, usage is the upstream's
// (or a marked tiktoken estimate), failures come back in OpenAI's envelope with the right
// status, retries and fallbacks happen only where they may, and a slow client holds the
// upstream back instead of filling the proxy's memory.
import { readFileSync } from "node:fs";
import { request as httpRequest, type ServerResponse } from "node:http";
import { createServer } from "node:net";
import OpenAI, { APIError } from "openai";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { ConfigError } from "../../src/config/errors.ts";
import { parseConfig } from "../../src/config/load.ts";
import { createServices } from "../../src/services.ts";
import type { UsageRecord } from "../../src/telemetry/record.ts";
import { TokenCounter } from "../../src/telemetry/tokens.ts";
import {
  chunk,
  DEFAULT_PIECES,
  type FakeUpstream,
  replyJson,
  sseData,
  sseHeaders,
  startFakeUpstream,
} from "../helpers/fake-upstream.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { REPO, startServer, type TestServer, TINY_MODEL, testRuntime } from "../helpers/server.ts";

const API_KEY = "sk-upstream-test-key";
const ask = (content: string) => [{ role: "user" as const, content }];

let up: FakeUpstream;
let s: TestServer;
let deadUrl: string;
const records: UsageRecord[] = [];

/** A loopback port nobody listens on: connections to it are refused at once. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function config(): string {
  return `
cache: { mode: deterministic }
models:
  - id: roundhouse-tiny
    provider: llama
    path: ${TINY_MODEL}
    context_size: 512
    parallel: 2
    threads: 1
    preload: true
  - id: gpt-up
    provider: openai
    base_url: ${up.baseUrl}
    model: upstream-model
    api_key_env: FAKE_UPSTREAM_KEY
    headers: { X-Team: roundhouse-tests }
    timeout: 2s
    retries: 2
    retry_backoff: 5ms
  - id: dead-up
    provider: openai
    base_url: ${deadUrl}
    retries: 1
    retry_backoff: 1ms
  - id: quick-up
    provider: openai
    base_url: ${up.baseUrl}
    timeout: 300ms
    response_timeout: 1s
    retries: 0
experiments:
  - name: assistant
    variants:
      - { name: local, model: roundhouse-tiny, weight: 1 }
      - { name: remote, model: gpt-up, weight: 1 }
      - { name: broken, model: dead-up, weight: 0 }
      - { name: impatient, model: quick-up, weight: 0 }
`;
}

beforeAll(async () => {
  up = await startFakeUpstream();
  deadUrl = `http://127.0.0.1:${await closedPort()}/v1`;
  s = await startServer({ config: config(), env: { FAKE_UPSTREAM_KEY: API_KEY } });
  s.services.telemetry.onRecord((r) => records.push(r));
});
afterAll(async () => {
  await s?.close();
  await up?.close();
});
beforeEach(() => {
  up.requests.length = 0;
});

/** The usage record of the request with this x-request-id, once telemetry has written it. */
async function recordOf(requestId: string | null): Promise<UsageRecord> {
  return vi.waitFor(
    () => {
      const r = records.find((x) => x.request_id === requestId);
      if (!r) throw new Error(`no record for ${requestId} yet`);
      return r;
    },
    { timeout: 10_000, interval: 10 },
  );
}

async function streamed(params: OpenAI.ChatCompletionCreateParamsStreaming, options?: OpenAI.RequestOptions) {
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  const { data, response } = await s.client.chat.completions.create(params, options).withResponse();
  for await (const c of data) {
    assertMatchesSchema("CreateChatCompletionStreamResponse", c);
    chunks.push(c);
  }
  return { chunks, response, text: chunks.map((c) => c.choices[0]?.delta.content ?? "").join("") };
}

describe("passthrough", () => {
  it("forwards the request with the upstream's name, key and headers, and answers in OpenAI's shape", async () => {
    const { data: res, response } = await s.client.chat.completions
      .create({
        model: "gpt-up",
        messages: ask("Hi"),
        temperature: 0.3,
        top_p: 0.9,
        max_completion_tokens: 20,
        stop: ["\n\n"],
        seed: 7,
        user: "u-1",
        metadata: { team: "a" },
        logit_bias: { "42": -5 },
        reasoning_effort: "low",
        tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }],
        tool_choice: "auto",
      })
      .withResponse();
    assertMatchesSchema("CreateChatCompletionResponse", res);
    expect(res.model).toBe("gpt-up");
    expect(res.choices[0]?.message.content).toBe(DEFAULT_PIECES.join(""));
    expect(res.choices[0]?.finish_reason).toBe("stop");
    expect(res.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 });
    expect(response.headers.get("x-roundhouse-model")).toBe("gpt-up");

    const [sent] = up.requests;
    expect(sent?.path).toBe("/v1/chat/completions");
    expect(sent?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(sent?.headers["x-team"]).toBe("roundhouse-tests");
    expect(sent?.headers.accept).toBe("application/json");
    // A JSON client's request goes up as JSON: no stream the client did not ask for.
    expect(sent?.body.stream).toBeUndefined();
    expect(sent?.body.stream_options).toBeUndefined();
    expect(sent?.body).toMatchObject({
      model: "upstream-model",
      temperature: 0.3,
      top_p: 0.9,
      max_completion_tokens: 20,
      stop: ["\n\n"],
      seed: 7,
      user: "u-1",
      metadata: { team: "a" },
      logit_bias: { "42": -5 },
      reasoning_effort: "low",
      tool_choice: "auto",
      tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }],
    });
  });

  it("sends no key when none is configured, and content parts a local model would refuse", async () => {
    const content: OpenAI.ChatCompletionContentPart[] = [
      { type: "text", text: "What is this?" },
      { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
    ];
    await s.client.chat.completions.create({ model: "quick-up", messages: [{ role: "user", content }] });
    expect(up.requests[0]?.headers.authorization).toBeUndefined();
    expect(up.requests[0]?.body.model).toBe("quick-up");
    expect(up.requests[0]?.body.messages).toEqual([{ role: "user", content }]);
  });

  it("refuses what it could not relay back (audio output) without asking the upstream", async () => {
    const err = await s.client.chat.completions
      .create({
        model: "gpt-up",
        messages: ask("Hi"),
        audio: { voice: "alloy", format: "mp3" },
        modalities: ["text", "audio"],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as APIError).code).toBe("unsupported_parameter");
    expect(up.requests).toHaveLength(0);
  });

  it("streams chunk by chunk: the second piece leaves the upstream only after the client saw the first", async () => {
    let firstSeen!: () => void;
    const seen = new Promise<void>((resolve) => {
      firstSeen = resolve;
    });
    up.script({
      kind: "custom",
      handle: (req, res) => {
        sseHeaders(res);
        const model = String(req.body.model);
        res.write(sseData(chunk(model, { role: "assistant", content: "" })));
        res.write(sseData(chunk(model, { content: "first" })));
        // A proxy that buffered the reply would never let the client see "first": this would hang.
        void seen.then(() => {
          res.write(sseData(chunk(model, { content: " second" })));
          res.write(sseData(chunk(model, {}, "stop")));
          res.end("data: [DONE]\n\n");
        });
      },
    });
    const stream = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi"), stream: true });
    const texts: string[] = [];
    for await (const c of stream) {
      const text = c.choices[0]?.delta.content;
      if (text) texts.push(text);
      if (text === "first") firstSeen();
    }
    expect(texts).toEqual(["first", " second"]);
  });

  it("relays streamed tool calls and refusals, and collects them for a JSON answer", async () => {
    const deltas = [
      { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "lookup", arguments: "" } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"q":' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '"x"}' } }] },
    ];
    up.script({ kind: "reply", options: { deltas, finish: "tool_calls" } });
    const tools: OpenAI.ChatCompletionTool[] = [{ type: "function", function: { name: "lookup" } }];
    const res = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Look up x"), tools });
    assertMatchesSchema("CreateChatCompletionResponse", res);
    expect(res.choices[0]?.finish_reason).toBe("tool_calls");
    expect(res.choices[0]?.message.content).toBeNull();
    expect(res.choices[0]?.message.tool_calls).toEqual([
      { id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q":"x"}' } },
    ]);

    up.script({ kind: "reply", options: { deltas, finish: "tool_calls" } });
    const { chunks } = await streamed({ model: "gpt-up", messages: ask("Look up x"), tools, stream: true });
    const fragments = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(fragments.map((f) => f.function?.arguments ?? "").join("")).toBe('{"q":"x"}');

    up.script({ kind: "reply", options: { deltas: [{ refusal: "I can't " }, { refusal: "help with that." }] } });
    const refused = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Something bad") });
    expect(refused.choices[0]?.message.refusal).toBe("I can't help with that.");
    expect(refused.choices[0]?.message.content).toBeNull();
  });

  it("reads JSON answers shaped as llama-server and Ollama send them (no refusal, no logprobs)", async () => {
    const answer = (message: Record<string, unknown>, finish: string) => ({
      kind: "custom" as const,
      handle: (_req: unknown, res: ServerResponse) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            id: "chatcmpl-local",
            object: "chat.completion",
            created: 1_700_000_000,
            model: "llama",
            system_fingerprint: "b5000-local",
            choices: [{ index: 0, message: { role: "assistant", ...message }, finish_reason: finish }],
            usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
          }),
        );
      },
    });
    up.script(answer({ content: "Hi there" }, "stop"));
    const text = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") });
    assertMatchesSchema("CreateChatCompletionResponse", text);
    expect(text.choices[0]?.message).toMatchObject({ content: "Hi there", refusal: null });
    expect(text.choices[0]?.logprobs).toBeNull();
    expect(text.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 2 });

    const call = { id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q":"x"}' } };
    up.script(answer({ tool_calls: [call] }, "tool_calls"));
    const tools = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Look it up") });
    assertMatchesSchema("CreateChatCompletionResponse", tools);
    expect(tools.choices[0]?.message).toMatchObject({ content: null, refusal: null, tool_calls: [call] });
    expect(tools.choices[0]?.finish_reason).toBe("tool_calls");
  });

  it("reuses one pooled keep-alive connection for requests in sequence, JSON or streamed", async () => {
    const before = up.connections();
    for (let i = 0; i < 6; i++) {
      // A stream's reply ends at [DONE]; the body's end is read after it, for the pool.
      if (i % 2 === 1)
        expect((await streamed({ model: "gpt-up", messages: ask(`Hi ${i}`), stream: true })).text).toBe(
          DEFAULT_PIECES.join(""),
        );
      else await s.client.chat.completions.create({ model: "gpt-up", messages: ask(`Hi ${i}`) });
    }
    expect(up.connections() - before).toBeLessThanOrEqual(1);
  });

  it("serves a repeated deterministic request from the cache", async () => {
    const params = { model: "gpt-up", messages: ask("Cache me"), temperature: 0 };
    const first = await s.client.chat.completions.create(params).withResponse();
    const second = await s.client.chat.completions.create(params).withResponse();
    expect(first.response.headers.get("x-roundhouse-cache")).toBe("miss");
    expect(second.response.headers.get("x-roundhouse-cache")).toBe("hit");
    expect(second.data.choices[0]?.message.content).toBe(first.data.choices[0]?.message.content);
    expect(up.requests).toHaveLength(1);
  });

  it("stops the upstream request when the client goes away mid-stream", async () => {
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((resolve) => {
      closed = resolve;
    });
    up.script({
      kind: "custom",
      handle: (req, res) => {
        res.on("close", () => closed());
        sseHeaders(res);
        res.write(sseData(chunk(String(req.body.model), { content: "endless" })));
      },
    });
    const controller = new AbortController();
    const stream = await s.client.chat.completions.create(
      { model: "gpt-up", messages: ask("Go on forever"), stream: true },
      { signal: controller.signal },
    );
    try {
      for await (const c of stream) if (c.choices[0]?.delta.content === "endless") controller.abort();
    } catch {
      // the SDK may raise its abort error or just stop
    }
    await upstreamClosed;
  });

  it("stops the upstream request when the client goes away while a JSON answer is being made", async () => {
    let arrived!: () => void;
    const upstreamHasIt = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((resolve) => {
      closed = resolve;
    });
    // A JSON answer sends nothing until it is complete: this one never is.
    up.script({
      kind: "custom",
      handle: (_req, res) => {
        res.on("close", () => closed());
        arrived();
      },
    });
    const controller = new AbortController();
    const request = s.client.chat.completions
      .create({ model: "gpt-up", messages: ask("Think for a long time") }, { signal: controller.signal })
      .catch(() => undefined);
    await upstreamHasIt;
    controller.abort();
    await request;
    await upstreamClosed;
  });
});

describe("usage", () => {
  it("is the upstream's, sent to the client only when it asked", async () => {
    const asked = await streamed({
      model: "gpt-up",
      messages: ask("Hi"),
      stream: true,
      stream_options: { include_usage: true },
    });
    const last = asked.chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 });
    const record = await recordOf(asked.response.headers.get("x-request-id"));
    expect(record).toMatchObject({ provider: "openai", prompt_tokens: 11, completion_tokens: 4, estimated: false });

    const quiet = await streamed({ model: "gpt-up", messages: ask("Hi"), stream: true });
    expect(quiet.chunks.some((c) => c.usage)).toBe(false);
    expect(quiet.text).toBe(DEFAULT_PIECES.join(""));
    // Asked upstream all the same, so the record has the real counts.
    expect(up.requests.every((r) => (r.body.stream_options as { include_usage?: boolean }).include_usage)).toBe(true);
    const quietRecord = await recordOf(quiet.response.headers.get("x-request-id"));
    expect(quietRecord).toMatchObject({ prompt_tokens: 11, completion_tokens: 4, estimated: false });
  });

  it("comes with a JSON answer, which has no first-token time to claim", async () => {
    // Deterministic, so it passes the cache's recorder on its way (a miss, stored).
    const { data: res, response } = await s.client.chat.completions
      .create({ model: "gpt-up", messages: ask(`No TTFT ${Date.now()}`), temperature: 0 })
      .withResponse();
    expect(response.headers.get("x-roundhouse-cache")).toBe("miss");
    expect(res.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 });
    const record = await recordOf(response.headers.get("x-request-id"));
    expect(record).toMatchObject({ prompt_tokens: 11, completion_tokens: 4, estimated: false });
    expect(record.latency_ms).toBeGreaterThan(0);
    // Every event came at once with the finished answer: a TTFT would only be its latency again.
    expect(record.ttft_ms).toBeUndefined();
    expect(record.tokens_per_second).toBeUndefined();

    const asked = await streamed({ model: "gpt-up", messages: ask("Hi"), stream: true });
    const streamedRecord = await recordOf(asked.response.headers.get("x-request-id"));
    expect(streamedRecord.ttft_ms).toBeGreaterThan(0);
  });

  it("is counted with tiktoken and marked estimated when the upstream reports none", async () => {
    up.script({ kind: "reply", options: { usage: false } });
    const { data: res, response } = await s.client.chat.completions
      .create({ model: "gpt-up", messages: ask("Say hello") })
      .withResponse();
    const counter = new TokenCounter();
    const completion = counter.countTokens(DEFAULT_PIECES.join(""), "upstream-model");
    const prompt = counter.countChatPrompt([{ role: "user", content: "Say hello" }], "upstream-model");
    counter.free();
    expect(res.usage).toMatchObject({ prompt_tokens: prompt, completion_tokens: completion });
    const record = await recordOf(response.headers.get("x-request-id"));
    expect(record).toMatchObject({ prompt_tokens: prompt, completion_tokens: completion, estimated: true });
  });
});

describe("errors", () => {
  async function failure(promise: Promise<unknown>): Promise<APIError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(APIError);
    return err as APIError;
  }

  it("passes an upstream 4xx through with its status and envelope, without retrying", async () => {
    const envelope = {
      error: {
        message: "Invalid 'messages[0]'.",
        type: "invalid_request_error",
        param: "messages[0]",
        code: "bad_msg",
      },
    };
    up.script({ kind: "status", status: 400, body: envelope });
    const err = await failure(s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") }));
    expect(err.status).toBe(400);
    expect(err.error).toEqual(envelope.error);
    expect(up.requests).toHaveLength(1);
  });

  it("reads vLLM's top-level error shape too", async () => {
    up.script({
      kind: "status",
      status: 404,
      body: {
        object: "error",
        message: "The model `x` does not exist.",
        type: "NotFoundError",
        param: null,
        code: 404,
      },
    });
    const err = await failure(s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") }));
    expect(err.status).toBe(404);
    expect(err.error).toEqual({
      message: "The model `x` does not exist.",
      type: "NotFoundError",
      param: null,
      code: null,
    });
  });

  it("maps an upstream 5xx to 502 with the upstream's message", async () => {
    up.script({ kind: "status", status: 500, body: { error: { message: "kaboom", type: "server_error" } } });
    const err = await failure(s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") }));
    expect(err.status).toBe(502);
    expect(err.code).toBe("upstream_error");
    expect(err.message).toContain("gpt-up");
    expect(err.message).toContain("HTTP 500: kaboom");
    expect(up.requests).toHaveLength(1);
  });

  it("does not blame the client's key for the upstream refusing Roundhouse's", async () => {
    up.script({ kind: "status", status: 401, body: { error: { message: "Incorrect API key provided." } } });
    const err = await failure(s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") }));
    expect(err.status).toBe(502);
    expect(err.code).toBe("upstream_auth_failed");
  });

  it("maps a refused connection to 502 once the retries are spent", async () => {
    const err = await failure(s.client.chat.completions.create({ model: "dead-up", messages: ask("Hi") }));
    expect(err.status).toBe(502);
    expect(err.code).toBe("upstream_unreachable");
    expect(err.message).toContain("ECONNREFUSED");
  });

  it("raises an upstream's error event mid-stream in the client", async () => {
    let partialSeen!: () => void;
    const seenByClient = new Promise<void>((resolve) => {
      partialSeen = resolve;
    });
    up.script({
      kind: "custom",
      handle: (req, res) => {
        sseHeaders(res);
        res.write(sseData(chunk(String(req.body.model), { content: "partial" })));
        // Only once the client has the first content: before it, the failure would be a 502 status.
        void seenByClient.then(() =>
          res.end(sseData({ error: { message: "model crashed", type: "server_error", code: null } })),
        );
      },
    });
    const stream = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi"), stream: true });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const c of stream) {
        seen.push(c.choices[0]?.delta.content ?? "");
        if (seen.includes("partial")) partialSeen();
      }
    })().catch((e: unknown) => e);
    expect(seen).toContain("partial");
    expect(err).toBeInstanceOf(APIError);
    expect((err as Error).message).toContain("model crashed");
  });

  it("fails a stream that breaks off without [DONE], so a truncated answer is never cached", async () => {
    up.script({
      kind: "custom",
      handle: (req, res) => {
        sseHeaders(res);
        res.end(sseData(chunk(String(req.body.model), { content: "cut" })));
      },
    });
    const params = { model: "gpt-up", messages: ask("Truncate me"), temperature: 0 };
    const err = await failure(s.client.chat.completions.create(params));
    expect(err.status).toBe(502);
    expect(err.message).toContain("ended before [DONE]");
    const again = await s.client.chat.completions.create(params).withResponse();
    expect(again.response.headers.get("x-roundhouse-cache")).toBe("miss");
  });

  it("answers 502 for events that are not chat completion chunks", async () => {
    up.script({
      kind: "custom",
      handle: (_req, res) => {
        sseHeaders(res);
        res.end(`${sseData({ hello: "world" })}data: [DONE]\n\n`);
      },
    });
    const err = await failure(s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") }));
    expect(err.status).toBe(502);
    expect(err.message).toContain("not a chat.completion.chunk");
  });
});

describe("retries", () => {
  it("retries 503s and dropped connections, then succeeds", async () => {
    up.script({ kind: "status", status: 503, body: { error: { message: "busy" } } }, { kind: "drop" });
    const res = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") });
    expect(res.choices[0]?.message.content).toBe(DEFAULT_PIECES.join(""));
    expect(up.requests).toHaveLength(3);
    // Every attempt sent the same request.
    expect(new Set(up.requests.map((r) => JSON.stringify(r.body))).size).toBe(1);
  });

  it("gives up after `retries` more attempts and passes the last 429 on with Retry-After", async () => {
    const limited = {
      kind: "status" as const,
      status: 429,
      body: { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } },
      headers: { "retry-after": "0" },
    };
    up.script(limited, limited, limited);
    const err = await s.client.chat.completions.create({ model: "gpt-up", messages: ask("Hi") }).then(
      () => undefined,
      (e: unknown) => e as APIError,
    );
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err?.code).toBe("rate_limit_exceeded");
    expect(err?.headers?.get("retry-after")).toBe("1");
    expect(up.requests).toHaveLength(3);
  });
});

describe("timeouts", () => {
  it("answers 504 when the upstream sends nothing within its timeout", async () => {
    up.script({ kind: "hang" });
    const err = await s.client.chat.completions.create({ model: "quick-up", messages: ask("Hi"), stream: true }).then(
      () => undefined,
      (e: unknown) => e as APIError,
    );
    expect(err?.status).toBe(504);
    expect(err?.code).toBe("upstream_timeout");
    expect(err?.message).toContain("sent nothing for 300 ms (its timeout)");
  });

  it("waits up to response_timeout, not timeout, for a whole JSON answer", async () => {
    // Slower than `timeout` (300 ms): a JSON answer begins only once it is complete.
    up.script({
      kind: "custom",
      handle: (req, res) => {
        setTimeout(() => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(replyJson(req, { pieces: ["late"] })));
        }, 600);
      },
    });
    const res = await s.client.chat.completions.create({ model: "quick-up", messages: ask("Hi") });
    expect(res.choices[0]?.message.content).toBe("late");

    up.script({ kind: "hang" });
    const started = Date.now();
    const err = await s.client.chat.completions.create({ model: "quick-up", messages: ask("Hi") }).then(
      () => undefined,
      (e: unknown) => e as APIError,
    );
    expect(err?.status).toBe(504);
    expect(err?.code).toBe("upstream_timeout");
    expect(err?.message).toContain("sent nothing for 1000 ms (its response_timeout)");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it("answers 504 when the headers come but no event follows", async () => {
    up.script({ kind: "stall" });
    const err = await s.client.chat.completions.create({ model: "quick-up", messages: ask("Hi"), stream: true }).then(
      () => undefined,
      (e: unknown) => e as APIError,
    );
    expect(err?.status).toBe(504);
  });

  it("ends a stream that stalls midway with an error event", async () => {
    up.script({ kind: "stall", events: [sseData(chunk("quick-up", { content: "so far" }))] });
    const stream = await s.client.chat.completions.create({ model: "quick-up", messages: ask("Hi"), stream: true });
    const err = await (async () => {
      for await (const _ of stream) {
        // read until it fails
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as Error).message).toContain("sent nothing for 300 ms");
  });
});

describe("fallback", () => {
  const variant = (name: string) => ({ headers: { "x-roundhouse-variant": name } });

  it("falls back to the local model when the variant's upstream is unreachable", async () => {
    const { data: res, response } = await s.client.chat.completions
      .create({ model: "assistant", messages: ask("Hello!"), max_tokens: 8 }, variant("broken"))
      .withResponse();
    expect(response.headers.get("x-roundhouse-variant")).toBe("broken");
    expect(response.headers.get("x-roundhouse-model")).toBe("roundhouse-tiny");
    expect(res.choices[0]?.message.content?.length).toBeGreaterThan(0);
    const record = await recordOf(response.headers.get("x-request-id"));
    expect(record).toMatchObject({ served_model: "roundhouse-tiny", fallbacks: 1, variant: "broken" });
  });

  it("falls back on a 5xx, a timeout and an error event before the first byte", async () => {
    const cases: Parameters<FakeUpstream["script"]>[0][] = [
      { kind: "status", status: 500, body: "internal error" },
      { kind: "hang" },
      { kind: "stall", events: [sseData({ error: { message: "overloaded" } })] },
    ];
    for (const behaviour of cases) {
      up.script(behaviour);
      const { response } = await s.client.chat.completions
        .create({ model: "assistant", messages: ask("Hi"), max_tokens: 4, stream: true }, variant("impatient"))
        .withResponse();
      expect(response.status).toBe(200);
      expect(response.headers.get("x-roundhouse-model")).toBe("roundhouse-tiny");
    }
  });

  it("does not fall back on the upstream's verdict on the request (4xx)", async () => {
    up.script({
      kind: "status",
      status: 400,
      body: { error: { message: "bad request", type: "invalid_request_error" } },
    });
    const err = await s.client.chat.completions
      .create({ model: "assistant", messages: ask("Hi") }, variant("remote"))
      .then(
        () => undefined,
        (e: unknown) => e as APIError,
      );
    expect(err?.status).toBe(400);
    expect(err?.message).toContain("bad request");
  });
});

describe("backpressure", () => {
  /** Bytes the kernel may hold on one loopback connection (send + receive buffers, at most). */
  function socketBufferBound(): number {
    const max = (file: string, fallback: number) => {
      try {
        const fields = readFileSync(file, "utf8").trim().split(/\s+/);
        return Number(fields.at(-1)) || fallback;
      } catch {
        return fallback;
      }
    };
    return max("/proc/sys/net/ipv4/tcp_rmem", 6 * 2 ** 20) + max("/proc/sys/net/ipv4/tcp_wmem", 4 * 2 ** 20);
  }

  it("leaves a slow client's unread reply in the upstream, not in the proxy", async () => {
    // Two connections (upstream → proxy → client) can hold this much in kernel buffers, plus a
    // few MiB of stream buffers in user space: the most a proxy that holds nothing itself lets
    // the upstream run ahead of the client. One that buffered without bound would let it run
    // ahead by almost the whole reply, which is made larger than the bound.
    const bound = 2 * socketBufferBound() + 8 * 2 ** 20;
    const total = 1.5 * bound;
    // The client is slow by construction, not by the clock: it takes at most this much per
    // turn of the event loop, while the upstream writes whatever its socket accepts.
    const perTurn = 64 * 1024;
    const piece = "x".repeat(16 * 1024);
    let sent = 0;
    let received = 0;
    let ahead = 0;
    let blocked = 0;

    up.script({
      kind: "custom",
      handle: (req, res) => {
        sseHeaders(res);
        const model = String(req.body.model);
        const data = sseData(chunk(model, { content: piece }));
        const write = () => {
          while (sent < total) {
            sent += data.length;
            ahead = Math.max(ahead, sent - received);
            if (!res.write(data)) {
              blocked++;
              res.once("drain", write);
              return;
            }
          }
          res.write(sseData(chunk(model, {}, "stop")));
          res.write(
            sseData({
              ...chunk(model, {}),
              choices: [],
              usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
            }),
          );
          res.end("data: [DONE]\n\n");
        };
        write();
      },
    });

    const body = JSON.stringify({ model: "gpt-up", messages: ask("A very long answer, please"), stream: true });
    const tail = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        `${s.url}/v1/chat/completions`,
        { method: "POST", headers: { "content-type": "application/json" }, agent: false },
        (res) => {
          let last = "";
          res.on("error", reject);
          const turn = () => {
            let budget = perTurn;
            while (budget > 0) {
              const piece = res.read(Math.min(budget, res.readableLength || budget)) as Buffer | null;
              if (!piece) break;
              received += piece.length;
              budget -= piece.length;
              last = (last + piece.toString("latin1")).slice(-64);
            }
            if (res.readableEnded) resolve(last);
            else setImmediate(turn);
          };
          setImmediate(turn);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(tail).toContain("data: [DONE]");
    expect(sent).toBeGreaterThanOrEqual(total);
    // The upstream was held back, and never by more than the sockets between it and the client hold.
    expect(blocked).toBeGreaterThan(0);
    expect(ahead).toBeLessThan(bound);
  }, 120_000);
});

describe("configuration", () => {
  it("refuses to start when the API key's environment variable is missing", async () => {
    const parsed = parseConfig(
      `models:\n  - id: up\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n    api_key_env: NOT_SET_ANYWHERE\n`,
      `${REPO}/models.yaml`,
      {},
    );
    const err = await createServices({
      config: parsed,
      dataDir: "/nonexistent",
      llama: await testRuntime(),
      logger: pino({ level: "silent" }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe("models[0].api_key_env");
    expect((err as Error).message).toContain("NOT_SET_ANYWHERE");
  });
});
