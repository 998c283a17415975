// The pure parts of the upstream provider: SSE framing, chunk → events, what a failure means,
// retry delays, the request sent, and usage estimates.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.ts";
import { ChatCompletionRequest } from "../../src/openai/chat.ts";
import { collect } from "../../src/openai/completion.ts";
import type { ChatEvent } from "../../src/providers/provider.ts";
import { chunkEvents, parseChunk, parseCompletion, plainTextChunk } from "../../src/providers/upstream/chunks.ts";
import { parseEnvelope, requestFailure, statusFailure } from "../../src/providers/upstream/errors.ts";
import { chatEndpoint, upstreamBody } from "../../src/providers/upstream/request.ts";
import { MAX_RETRY_DELAY_MS, retryAfterMs, retryDelayMs } from "../../src/providers/upstream/retry.ts";
import { type SseMessage, SseParser } from "../../src/providers/upstream/sse.ts";
import { estimateTokens, slices, UsageMeter } from "../../src/providers/upstream/usage.ts";
import { TokenCounter } from "../../src/telemetry/tokens.ts";
import { canFallBack } from "../../src/traffic/fallback.ts";

function parseAll(parts: Buffer[]): SseMessage[] {
  const parser = new SseParser();
  return parts.flatMap((p) => parser.push(p));
}

describe("SseParser", () => {
  it("frames events as the spec says: data lines joined, comments and unknown fields skipped", () => {
    const text =
      ': keep-alive\n\ndata: {"a":1}\n\nevent: error\ndata: one\ndata: two\nid: 7\n\ndata:no-space\n\ndata: [DONE]\n\n';
    expect(parseAll([Buffer.from(text)])).toEqual([
      { event: undefined, data: '{"a":1}' },
      { event: "error", data: "one\ntwo" },
      { event: undefined, data: "no-space" },
      { event: undefined, data: "[DONE]" },
    ]);
  });

  it("gives the same events however the bytes are split, whatever the line ends", () => {
    const payload = fc.string({ unit: fc.constantFrom("a", "é", "€", "😀", " ", ":", "{", "}", '"') });
    fc.assert(
      fc.property(
        fc.array(payload, { minLength: 1, maxLength: 6 }),
        fc.constantFrom("\n", "\r\n", "\r"),
        fc.array(fc.nat(), { maxLength: 8 }),
        (datas, eol, cuts) => {
          const text = datas.map((d) => `data: ${d}${eol}${eol}`).join("");
          const bytes = Buffer.from(text);
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const parts: Buffer[] = [];
          let from = 0;
          for (const p of [...points, bytes.length]) {
            parts.push(bytes.subarray(from, p));
            from = p;
          }
          expect(parseAll(parts)).toEqual(datas.map((data) => ({ event: undefined, data })));
        },
      ),
    );
  });
});

const chunkOf = (choices: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices, ...extra });

describe("parseChunk", () => {
  it("turns deltas into events and skips the role-only opening", () => {
    const parsed = parseChunk(
      chunkOf(
        [
          { index: 0, delta: { role: "assistant", content: "" }, finish_reason: null },
          { index: 1, delta: { content: "Hi" }, finish_reason: null, vendor: true },
          { index: 2, delta: { refusal: "No" }, finish_reason: null },
          { index: 3, delta: { tool_calls: [{ index: 0, function: { arguments: "{" } }] }, finish_reason: null },
          { index: 4, delta: {}, finish_reason: "length" },
        ],
        { system_fingerprint: "fp", vendor_field: { x: 1 } },
      ),
    );
    expect(parsed).toEqual({
      kind: "events",
      usage: undefined,
      events: [
        { type: "content", index: 1, text: "Hi", logprobs: undefined },
        { type: "refusal", index: 2, text: "No" },
        { type: "tool_call_delta", index: 3, delta: { index: 0, function: { arguments: "{" } } },
        { type: "finish", index: 4, reason: "length" },
      ],
    });
  });

  it("reads the usage chunk, error events and garbage", () => {
    expect(parseChunk(chunkOf([], { usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }))).toEqual({
      kind: "events",
      events: [],
      usage: { promptTokens: 3, completionTokens: 2 },
    });
    expect(parseChunk('{"error":{"message":"boom"}}')).toEqual({ kind: "error" });
    expect(parseChunk("not json").kind).toBe("invalid");
    expect(parseChunk('{"choices":"nope"}').kind).toBe("invalid");
  });

  it("reads plain text deltas without the schema, and gives the schema's answer whenever it does", () => {
    const text = JSON.parse(chunkOf([{ index: 0, delta: { content: "Hi" }, logprobs: null, finish_reason: null }]));
    expect(plainTextChunk(text)).toEqual({
      kind: "events",
      events: [{ type: "content", index: 0, text: "Hi" }],
      usage: undefined,
    });
    const last = JSON.parse(chunkOf([{ index: 0, delta: {}, finish_reason: "stop" }], { system_fingerprint: "fp" }));
    expect(plainTextChunk(last)?.events).toEqual([{ type: "finish", index: 0, reason: "stop" }]);
    // Anything else is the schema's to read.
    const tool = JSON.parse(chunkOf([{ index: 0, delta: { tool_calls: [] }, finish_reason: null }]));
    expect(plainTextChunk(tool)).toBeUndefined();

    // Mostly absent (undefined drops out of the JSON), else a value of some type.
    const value = fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 8 },
      fc.constant(null),
      fc.string({ maxLength: 3 }),
      fc.integer(),
      fc.double(),
    );
    // Usually the field a plain chunk has, sometimes anything.
    const mostly = <T>(usual: fc.Arbitrary<T>) => fc.oneof({ arbitrary: usual, weight: 12 }, value);
    const delta = fc.record(
      {
        role: mostly(fc.constantFrom("assistant", "user")),
        content: mostly(fc.string({ maxLength: 4 })),
        refusal: value,
        tool_calls: fc.oneof(
          { arbitrary: fc.constant(undefined), weight: 8 },
          fc.constantFrom([], [{ index: 0 }], "x"),
        ),
        extra: value,
      },
      { requiredKeys: [] },
    );
    const choice = fc.record(
      {
        index: mostly(fc.nat(3)),
        delta: mostly(delta),
        logprobs: fc.oneof(fc.constant({ content: null, refusal: null }), value),
        finish_reason: mostly(fc.constantFrom(null, "stop", "length", "tool_calls", "bogus")),
        vendor: value,
      },
      { requiredKeys: ["index", "delta", "finish_reason"] },
    );
    const chunk = fc.record(
      {
        id: mostly(fc.constant("c")),
        object: mostly(fc.constant("chat.completion.chunk")),
        created: mostly(fc.constant(1)),
        model: mostly(fc.constant("m")),
        choices: mostly(fc.oneof({ arbitrary: fc.tuple(choice), weight: 4 }, fc.array(choice, { maxLength: 2 }))),
        usage: fc.oneof(fc.constant({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }), value),
        system_fingerprint: value,
        service_tier: value,
      },
      { requiredKeys: ["id", "object", "created", "model", "choices"] },
    );
    let taken = 0;
    fc.assert(
      fc.property(chunk, (c) => {
        const json = JSON.parse(JSON.stringify(c)) as unknown;
        const fast = plainTextChunk(json);
        if (fast === undefined) return;
        taken++;
        expect(fast).toEqual(chunkEvents(json));
      }),
      { numRuns: 5000 },
    );
    // The generator reaches the plain shape often enough for the comparison to mean something.
    expect(taken).toBeGreaterThan(40);
  });

  it("reads a whole completion from an upstream that answered a stream with JSON", () => {
    const parsed = parseCompletion(
      JSON.stringify({
        id: "c",
        object: "chat.completion",
        created: 1,
        model: "m",
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: null,
              refusal: null,
              tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{}" } }],
            },
            logprobs: null,
            finish_reason: "tool_calls",
          },
        ],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      }),
    );
    expect(parsed).toEqual({
      kind: "events",
      usage: { promptTokens: 1, completionTokens: 2 },
      events: [
        {
          type: "tool_calls",
          index: 0,
          calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{}" } }],
        },
        { type: "finish", index: 0, reason: "tool_calls" },
      ],
    });
  });
});

describe("collect with streamed tool calls and refusals", () => {
  it("puts fragments back together by index", async () => {
    async function* events(): AsyncGenerator<ChatEvent> {
      yield {
        type: "tool_call_delta",
        index: 0,
        delta: { index: 1, id: "b", type: "function", function: { name: "g", arguments: "" } },
      };
      yield {
        type: "tool_call_delta",
        index: 0,
        delta: { index: 0, id: "a", type: "function", function: { name: "f", arguments: '{"x"' } },
      };
      yield { type: "tool_call_delta", index: 0, delta: { index: 0, function: { arguments: ":1}" } } };
      yield { type: "tool_call_delta", index: 0, delta: { index: 1, function: { arguments: "{}" } } };
      yield { type: "finish", index: 0, reason: "tool_calls" };
      yield { type: "refusal", index: 1, text: "No" };
      yield { type: "finish", index: 1, reason: "stop" };
    }
    const meta = { id: "x", created: 1, model: "m", systemFingerprint: "fp" };
    const res = await collect(events(), meta, () => ({ promptTokens: 1, completionTokens: 1 }));
    expect(res.choices[0]?.message).toEqual({
      role: "assistant",
      content: null,
      refusal: null,
      tool_calls: [
        { id: "a", type: "function", function: { name: "f", arguments: '{"x":1}' } },
        { id: "b", type: "function", function: { name: "g", arguments: "{}" } },
      ],
    });
    expect(res.choices[1]?.message).toEqual({ role: "assistant", content: null, refusal: "No" });
  });
});

describe("upstream failures", () => {
  it("passes 4xx through, maps 5xx to 502, and says which may be retried or fall back", () => {
    const bad = statusFailure(
      "m",
      400,
      '{"error":{"message":"nope","type":"invalid_request_error","param":"x","code":"c"}}',
    );
    expect([bad.status, bad.message, bad.type, bad.param, bad.code]).toEqual([
      400,
      "nope",
      "invalid_request_error",
      "x",
      "c",
    ]);
    expect([bad.retryable, canFallBack(bad)]).toEqual([false, false]);

    const limited = statusFailure("m", 429, '{"error":{"message":"slow down"}}', "2");
    expect([limited.status, limited.retryable, canFallBack(limited), limited.retryAfterSeconds]).toEqual([
      429,
      true,
      true,
      2,
    ]);

    for (const [status, retryable] of [
      [500, false],
      [502, true],
      [503, true],
      [504, true],
    ] as const) {
      const err = statusFailure("m", status, "<html>Bad Gateway</html>");
      expect([err.status, err.retryable, canFallBack(err), err.code]).toEqual([502, retryable, true, "upstream_error"]);
      expect(err.message).toContain(`HTTP ${status}: <html>Bad Gateway</html>`);
    }
    expect(statusFailure("m", 401, "").status).toBe(502);
  });

  it("tells a refused connection (retry) from a timeout waiting for the answer (no retry)", () => {
    const refused = requestFailure("m", Object.assign(new Error("x"), { code: "ECONNREFUSED" }), 1000);
    expect([refused.status, refused.retryable, refused.fallsBack, refused.code]).toEqual([
      502,
      true,
      true,
      "upstream_unreachable",
    ]);
    const slow = requestFailure("m", Object.assign(new Error("x"), { code: "UND_ERR_HEADERS_TIMEOUT" }), 1000);
    expect([slow.status, slow.retryable, slow.fallsBack, slow.code]).toEqual([504, false, true, "upstream_timeout"]);
    const wrapped = requestFailure("m", new TypeError("fetch failed", { cause: { code: "ECONNRESET" } }), 1000);
    expect(wrapped.retryable).toBe(true);
  });

  it("reads OpenAI's envelope, vLLM's top-level one, and nothing else", () => {
    expect(parseEnvelope('{"object":"error","message":"m","type":"BadRequestError","param":null,"code":400}')).toEqual({
      message: "m",
      type: "BadRequestError",
      param: null,
      code: null,
    });
    expect(parseEnvelope('{"error":"plain"}')).toMatchObject({ message: "plain" });
    expect(parseEnvelope("<html>")).toBeUndefined();
    expect(parseEnvelope('{"detail":"x"}')).toBeUndefined();
  });
});

describe("retryDelayMs", () => {
  const input = { retries: 3, backoffMs: 100, now: 0, random: 0.5 };

  it("backs off exponentially with jitter, and stops after the retries", () => {
    expect(retryDelayMs({ ...input, attempt: 1 })).toBe(75);
    expect(retryDelayMs({ ...input, attempt: 2 })).toBe(150);
    expect(retryDelayMs({ ...input, attempt: 3 })).toBe(300);
    expect(retryDelayMs({ ...input, attempt: 4 })).toBeUndefined();
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (attempt, random) => {
          const d = retryDelayMs({ ...input, retries: 30, attempt, random }) as number;
          expect(d).toBeGreaterThanOrEqual(Math.min(MAX_RETRY_DELAY_MS, 100 * 2 ** (attempt - 1)) / 2);
          expect(d).toBeLessThanOrEqual(MAX_RETRY_DELAY_MS);
        },
      ),
    );
  });

  it("follows Retry-After, and gives up when it asks for too long", () => {
    expect(retryDelayMs({ ...input, attempt: 1, retryAfter: "2" })).toBe(2000);
    expect(retryDelayMs({ ...input, attempt: 1, retryAfter: "3600" })).toBeUndefined();
    expect(retryAfterMs("Thu, 01 Jan 1970 00:00:05 GMT", 1000)).toBe(4000);
    expect(retryAfterMs("soon", 0)).toBeUndefined();
  });
});

describe("the upstream request", () => {
  it("forwards every parameter under the upstream's model name; a stream only when asked, then with usage", () => {
    const params = {
      model: "public",
      messages: [{ role: "user", content: "Hi" }],
      temperature: null,
      top_p: 0.5,
      reasoning_effort: "high",
      user: "u",
    };
    const forwarded = {
      model: "private",
      messages: [{ role: "user", content: "Hi" }],
      top_p: 0.5,
      reasoning_effort: "high",
      user: "u",
    };
    const json = ChatCompletionRequest.parse({ ...params, stream: false, stream_options: null });
    expect(JSON.parse(upstreamBody(json, "private"))).toEqual({ ...forwarded, stream: false });
    const plain = ChatCompletionRequest.parse(params);
    expect(JSON.parse(upstreamBody(plain, "private"))).toEqual(forwarded);
    const streamed = ChatCompletionRequest.parse({ ...params, stream: true });
    expect(JSON.parse(upstreamBody(streamed, "private"))).toEqual({
      ...forwarded,
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it("builds the URL and headers once: the key as a bearer token, configured headers kept", () => {
    expect(
      chatEndpoint({ baseUrl: "https://api.example.com/v1/", apiKey: "k", headers: { "OpenAI-Organization": "org" } }),
    ).toEqual({
      origin: "https://api.example.com",
      path: "/v1/chat/completions",
      headers: {
        stream: {
          accept: "text/event-stream",
          "content-type": "application/json",
          "openai-organization": "org",
          authorization: "Bearer k",
        },
        json: {
          accept: "application/json",
          "content-type": "application/json",
          "openai-organization": "org",
          authorization: "Bearer k",
        },
      },
    });
    // A configured Accept is the operator's call.
    const custom = chatEndpoint({ baseUrl: "http://h/v1", apiKey: undefined, headers: { Accept: "*/*" } });
    expect([custom.headers.stream.accept, custom.headers.json.accept]).toEqual(["*/*", "*/*"]);
  });
});

describe("usage estimates", () => {
  const counter = new TokenCounter();
  const messages = [{ role: "user" as const, content: "Count these words, please." }];

  it("prefers what the upstream reported", () => {
    const meter = new UsageMeter(counter, "gpt-4o", messages);
    meter.see({ type: "content", index: 0, text: "Hello there" });
    meter.report({ promptTokens: 5, completionTokens: 6 });
    expect(meter.usage()).toEqual({ promptTokens: 5, completionTokens: 6 });
  });

  it("counts with tiktoken otherwise, as OpenAI bills chat prompts, and says so", () => {
    const meter = new UsageMeter(counter, "gpt-4o", messages);
    meter.see({ type: "content", index: 0, text: "Hello" });
    meter.see({ type: "content", index: 0, text: " there, friend." });
    meter.see({ type: "finish", index: 0, reason: "stop" });
    expect(meter.usage()).toEqual({
      promptTokens: counter.countChatPrompt(messages, "gpt-4o"),
      completionTokens: counter.countTokens("Hello there, friend.", "gpt-4o"),
      estimated: true,
    });
  });

  it("stays close to an exact count on long text and finishes on pathological text", () => {
    const words = Array.from({ length: 40_000 }, (_, i) => `word${i % 97}`).join(" ");
    const exact = counter.countTokens(words, "gpt-4o");
    const estimate = estimateTokens(counter, [words], "gpt-4o");
    expect(Math.abs(estimate - exact) / exact).toBeLessThan(0.05);
    // One 200 000-character "word": tiktoken alone would take minutes on it.
    expect(estimateTokens(counter, ["a".repeat(200_000)], "gpt-4o")).toBeGreaterThan(0);
  });

  it("cuts slices at spaces where it can and loses no text", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom("a", "b", " ") }),
        fc.integer({ min: 2, max: 20 }),
        (text, size) => {
          const parts = slices(text, size);
          expect(parts.join("")).toBe(text);
          for (const p of parts) expect(p.length).toBeLessThanOrEqual(size);
        },
      ),
    );
  });
});

describe("models.yaml", () => {
  const model = (extra: string) =>
    `models:\n  - id: up\n    provider: openai\n    base_url: https://api.example.com/v1/\n${extra}`;

  it("resolves an upstream model: defaults, durations, the key from the environment", () => {
    const config = parseConfig(
      model(
        "    api_key_env: MY_KEY\n    model: gpt-4o-mini\n    timeout: 5s\n    response_timeout: 2m\n    retry_backoff: 100ms\n",
      ),
      "models.yaml",
      { MY_KEY: "sk-1" },
    );
    expect(config.models[0]).toEqual({
      id: "up",
      provider: "openai",
      base_url: "https://api.example.com/v1",
      model: "gpt-4o-mini",
      api_key_env: "MY_KEY",
      api_key: "sk-1",
      headers: {},
      timeout_ms: 5000,
      response_timeout_ms: 120_000,
      retries: 2,
      retry_backoff_ms: 100,
      aliases: [],
      responses: "auto",
    });
    expect(parseConfig(model(""), "models.yaml").models[0]).toMatchObject({
      model: "up",
      api_key: undefined,
      timeout_ms: 60_000,
      response_timeout_ms: 600_000,
    });
  });

  it("refuses a bad URL, a key in the file and headers Roundhouse sets", () => {
    const fail = (text: string) => {
      try {
        parseConfig(text, "models.yaml");
      } catch (err) {
        return (err as Error).message;
      }
      return "";
    };
    expect(fail(model("").replace("https://api.example.com/v1/", "ftp://x"))).toContain(
      "models[0].base_url: expected an http",
    );
    expect(fail(model("    api_key: sk-secret\n"))).toContain("models[0].api_key: unknown field");
    expect(fail(model("    headers: { Host: x }\n"))).toContain(
      "models[0].headers.Host: Host is set by Roundhouse itself",
    );
    expect(fail(model("    api_key_env: K\n    headers: { Authorization: Bearer x }\n"))).toContain(
      "api_key_env already sets Authorization",
    );
  });
});
