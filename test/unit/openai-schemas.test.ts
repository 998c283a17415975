import { describe, expect, it } from "vitest";
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  ChatCompletionRequest,
  checkSupported,
  contentText,
  requestedMaxTokens,
  UNSUPPORTED_CHAT_PARAMS,
  unsupportedContent,
  unsupportedParams,
} from "../../src/openai/chat.ts";
import {
  ApiError,
  contextLengthExceeded,
  errorBody,
  fromZodError,
  internal,
  invalidApiKey,
  invalidRequest,
  methodNotAllowed,
  modelNotFound,
  payloadTooLarge,
  rateLimited,
  routeNotFound,
  serviceUnavailable,
  toApiError,
  unsupportedParameter,
} from "../../src/openai/errors.ts";
import { modelList, modelObject } from "../../src/openai/models.ts";
import { SSE_DONE, sseError, sseEvent } from "../../src/openai/sse.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";

const user = { role: "user", content: "Hello" };

function parse(body: unknown): ChatCompletionRequest {
  const result = ChatCompletionRequest.safeParse(body, { reportInput: true });
  if (!result.success) throw fromZodError(result.error);
  return result.data;
}

/** The 400 a body gets, as the client would see it. */
function rejection(body: unknown): ApiError {
  const result = ChatCompletionRequest.safeParse(body, { reportInput: true });
  if (result.success) throw new Error(`expected ${JSON.stringify(body)} to be rejected`);
  return fromZodError(result.error);
}

describe("ChatCompletionRequest: valid requests", () => {
  it("parses the minimal request", () => {
    const req = parse({ model: "tiny", messages: [user] });
    expect(req.model).toBe("tiny");
    expect(req.messages).toEqual([user]);
    expect(req.stream).toBeUndefined();
  });

  it("parses every supported parameter", () => {
    const req = parse({
      model: "tiny",
      messages: [
        { role: "system", content: "Be brief.", name: "sys" },
        { role: "developer", content: [{ type: "text", text: "Only JSON." }] },
        { role: "user", content: [{ type: "text", text: "Weather?" }], name: "ann" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } },
          ],
        },
        { role: "tool", tool_call_id: "call_1", content: "12°C" },
        { role: "assistant", content: [{ type: "refusal", refusal: "No." }], refusal: "No." },
      ],
      max_tokens: 16,
      max_completion_tokens: 32,
      temperature: 0,
      top_p: 1,
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
      stop: ["\n", "END"],
      presence_penalty: -2,
      frequency_penalty: 2,
      logit_bias: { "50256": -100 },
      logprobs: true,
      top_logprobs: 20,
      seed: 42,
      response_format: {
        type: "json_schema",
        json_schema: { name: "weather", description: "d", schema: { type: "object" }, strict: true },
      },
      tools: [
        {
          type: "function",
          function: { name: "get_weather", description: "d", parameters: { type: "object" }, strict: false },
        },
      ],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      user: "u-1",
      metadata: { team: "a" },
      store: false,
      service_tier: "auto",
      prompt_cache_key: "k",
      safety_identifier: "s",
    });
    expect(req.messages).toHaveLength(6);
    expect(req.response_format?.type).toBe("json_schema");
    expect(requestedMaxTokens(req)).toBe(32);
    expect(checkSupported(req)).toBeUndefined();
  });

  it("reads null as absent, as OpenAI does", () => {
    const req = parse({
      model: "m",
      messages: [user],
      temperature: null,
      stop: null,
      tools: null,
      stream_options: null,
    });
    expect(req.temperature).toBeUndefined();
    expect(req.stop).toBeUndefined();
    expect("tools" in req ? req.tools : undefined).toBeUndefined();
  });

  it("accepts the response message echoed back as history", () => {
    const req = parse({
      model: "m",
      messages: [
        user,
        { role: "assistant", content: "Hi", refusal: null, annotations: [], audio: null, function_call: null },
      ],
    });
    expect(checkSupported(req)).toBeUndefined();
    expect(contentText(req.messages[1]?.content)).toBe("Hi");
  });

  it("accepts each tool_choice mode and response_format type", () => {
    for (const tool_choice of ["none", "auto"]) parse({ model: "m", messages: [user], tool_choice });
    for (const type of ["text", "json_object"]) parse({ model: "m", messages: [user], response_format: { type } });
  });
});

describe("ChatCompletionRequest: each bad input names its parameter", () => {
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    [
      "unknown role",
      { messages: [{ role: "bot", content: "x" }] },
      "messages[0].role",
      /^messages\[0\]\.role: expected one of system, developer, user, assistant, tool, got "bot"$/,
    ],
    ["missing role", { messages: [{ content: "x" }] }, "messages[0].role", /required, expected one of system/],
    ["temperature above 2", { temperature: 2.5 }, "temperature", /^temperature: expected a number <= 2, got 2.5$/],
    ["temperature as text", { temperature: "hot" }, "temperature", /expected a number, got "hot"/],
    ["top_p above 1", { top_p: 1.5 }, "top_p", /<= 1/],
    ["negative penalty", { presence_penalty: -3 }, "presence_penalty", />= -2/],
    ["fractional n", { n: 1.5 }, "n", /expected an integer, got 1.5/],
    ["n too large", { n: 9 }, "n", /<= 8/],
    ["five stop sequences", { stop: ["a", "b", "c", "d", "e"] }, "stop", /expected at most 4 items, got 5 items/],
    ["stop as a number", { stop: 5 }, "stop", /expected a string or an array, got 5/],
    ["logit_bias out of range", { logit_bias: { "12": 300 } }, "logit_bias.12", /<= 100/],
    ["logit_bias key not a token id", { logit_bias: { hello: 1 } }, "logit_bias.hello", /token id/],
    ["top_logprobs above 20", { top_logprobs: 21, logprobs: true }, "top_logprobs", /<= 20/],
    ["top_logprobs without logprobs", { top_logprobs: 2 }, "top_logprobs", /logprobs must be true/],
    ["stream_options without stream", { stream_options: { include_usage: true } }, "stream_options", /stream is true/],
    ["seed not an integer", { seed: 1.5 }, "seed", /integer/],
    ["unknown tool_choice mode", { tool_choice: "sometimes" }, "tool_choice", /one of none, auto, required/],
    [
      "unknown response_format type",
      { response_format: { type: "yaml" } },
      "response_format.type",
      /one of text, json_object, json_schema/,
    ],
    [
      "json_schema without a name",
      { response_format: { type: "json_schema", json_schema: { schema: {} } } },
      "response_format.json_schema.name",
      /required/,
    ],
    [
      "bad function name",
      { tools: [{ type: "function", function: { name: "get weather" } }] },
      "tools[0].function.name",
      /letters, digits, underscores or dashes, got "get weather"/,
    ],
    [
      "tool_choice naming no tool",
      {
        tools: [{ type: "function", function: { name: "a" } }],
        tool_choice: { type: "function", function: { name: "b" } },
      },
      "tool_choice.function.name",
      /no tool named "b"/,
    ],
    ["required tool_choice without tools", { tool_choice: "required" }, "tool_choice", /at least one tool/],
    [
      "assistant without content or tool_calls",
      { messages: [{ role: "assistant" }] },
      "messages[0].content",
      /required unless tool_calls/,
    ],
    ["tool message without id", { messages: [{ role: "tool", content: "x" }] }, "messages[0].tool_call_id", /required/],
    ["empty messages", { messages: [] }, "messages", /at least 1 item, got 0 items/],
    [
      "unknown content part",
      { messages: [{ role: "user", content: [{ type: "video" }] }] },
      "messages[0].content[0].type",
      /one of text, image_url, input_audio, file/,
    ],
  ];

  it.each(cases)("%s", (_name, patch, param, message) => {
    const err = rejection({ model: "m", messages: [user], ...patch });
    expect(err.status).toBe(400);
    expect(err.type).toBe("invalid_request_error");
    expect(err.param).toBe(param);
    expect(err.message).toMatch(message);
  });

  it("names a missing model with OpenAI's code", () => {
    const err = rejection({ messages: [user] });
    expect(err.param).toBe("model");
    expect(err.code).toBe("missing_required_parameter");
  });

  it("rejects an unknown top-level parameter by name", () => {
    const err = rejection({ model: "m", messages: [user], temprature: 0.5 });
    expect(err.code).toBe("unknown_parameter");
    expect(err.param).toBe("temprature");
    expect(err.message).toBe("Unrecognized request argument supplied: temprature");
  });

  it("rejects an unknown key inside a message", () => {
    const err = rejection({ model: "m", messages: [{ role: "user", content: "x", colour: "red" }] });
    expect(err.code).toBe("unknown_parameter");
    expect(err.param).toBe("messages[0].colour");
    expect(err.message).toMatch(/colour/);
  });

  it("rejects a body that is not an object", () => {
    for (const body of ["hello", [], null, 3]) {
      const err = rejection(body);
      expect(err.param).toBeNull();
      expect(err.message).toMatch(/JSON object/);
    }
  });
});

describe("unsupported parameters and content", () => {
  it("lists what cannot be honoured", () => {
    const body = {
      model: "m",
      messages: [user],
      audio: { voice: "alloy", format: "mp3" },
      modalities: ["text", "audio"],
      functions: [{ name: "f" }],
      store: true,
      reasoning_effort: "low",
      service_tier: "flex",
    };
    expect(unsupportedParams(body)).toEqual(["audio", "modalities", "service_tier", "store", "functions"]);
    const err = checkSupported(parse(body));
    expect(err?.status).toBe(400);
    expect(err?.code).toBe("unsupported_parameter");
    expect(err?.param).toBe("audio");
    expect(err?.message).toMatch(/^Unsupported parameter: 'audio'/);
  });

  it("treats OpenAI's defaults and null as no-ops", () => {
    const body = {
      model: "m",
      messages: [user],
      store: false,
      service_tier: "default",
      modalities: ["text"],
      metadata: { a: "b" },
      prompt_cache_retention: "24h",
      audio: null,
      prediction: null,
      function_call: null,
    };
    expect(unsupportedParams(body)).toEqual([]);
    expect(checkSupported(parse(body))).toBeUndefined();
  });

  it("refuses every listed parameter when set", () => {
    for (const name of UNSUPPORTED_CHAT_PARAMS) {
      const value =
        name === "store" ? true : name === "service_tier" ? "priority" : name === "modalities" ? ["audio"] : {};
      expect(unsupportedParams({ [name]: value })).toEqual([name]);
    }
  });

  it("finds non-text parts and audio history, and refuses them with the part's path", () => {
    const req = parse({
      model: "m",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image_url", image_url: { url: "https://example.com/a.png", detail: "low" } },
            { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } },
            { type: "file", file: { file_id: "file-1" } },
          ],
        },
        { role: "assistant", content: null, audio: { id: "audio_1" } },
      ],
    });
    expect(unsupportedContent(req)).toEqual([
      { param: "messages[0].content[1]", kind: "image_url" },
      { param: "messages[0].content[2]", kind: "input_audio" },
      { param: "messages[0].content[3]", kind: "file" },
      { param: "messages[1].audio", kind: "audio" },
    ]);
    const err = checkSupported(req);
    expect(err?.param).toBe("messages[0].content[1]");
    expect(err?.message).toMatch(/'image_url' content is not supported/);
  });
});

describe("error envelope", () => {
  it("always has the four keys, null when absent", () => {
    expect(errorBody(internal())).toEqual({
      error: { message: expect.any(String), type: "server_error", param: null, code: null },
    });
    expect(errorBody(invalidRequest("bad", "temperature", "invalid_value"))).toEqual({
      error: { message: "bad", type: "invalid_request_error", param: "temperature", code: "invalid_value" },
    });
  });

  it("gives each common case OpenAI's status, type and code", () => {
    const cases: Array<[ApiError, number, string, string | null]> = [
      [modelNotFound("gpt-9"), 404, "invalid_request_error", "model_not_found"],
      [unsupportedParameter("audio"), 400, "invalid_request_error", "unsupported_parameter"],
      [invalidApiKey(), 401, "invalid_request_error", "invalid_api_key"],
      [rateLimited(2.5), 429, "requests", "rate_limit_exceeded"],
      [serviceUnavailable(), 503, "server_error", "overloaded"],
      [payloadTooLarge(1024), 413, "invalid_request_error", "request_too_large"],
      [methodNotAllowed("get", "/v1/chat/completions"), 405, "invalid_request_error", "method_not_allowed"],
      [routeNotFound("POST", "/v1/nope"), 404, "invalid_request_error", null],
      [contextLengthExceeded(2048, 4000), 400, "invalid_request_error", "context_length_exceeded"],
      [internal(), 500, "server_error", null],
    ];
    for (const [err, status, type, code] of cases) {
      expect(err).toBeInstanceOf(ApiError);
      expect([err.status, err.type, err.code]).toEqual([status, type, code]);
      assertMatchesSchema("ErrorResponse", errorBody(err));
    }
    expect(modelNotFound("gpt-9").message).toContain("`gpt-9`");
    expect(routeNotFound("post", "/v1/nope").message).toBe("Invalid URL (POST /v1/nope)");
    expect(rateLimited(2.5).retryAfterSeconds).toBe(3);
  });

  it("hides unexpected errors behind a 500", () => {
    const err = toApiError(new Error("secret path /etc/x"));
    expect(err.status).toBe(500);
    expect(err.message).not.toContain("secret");
    const known = modelNotFound("x");
    expect(toApiError(known)).toBe(known);
  });
});

describe("SSE framing", () => {
  it("frames data events and the terminator as OpenAI does", () => {
    expect(sseEvent({ a: "line1\nline2" })).toBe('data: {"a":"line1\\nline2"}\n\n');
    expect(SSE_DONE).toBe("data: [DONE]\n\n");
  });

  it("sends an error after the stream began as a data event with the envelope", () => {
    const frame = sseError(serviceUnavailable("gone"));
    expect(frame.startsWith("data: ")).toBe(true);
    expect(frame.endsWith("\n\n")).toBe(true);
    const payload: unknown = JSON.parse(frame.slice("data: ".length));
    assertMatchesSchema("ErrorResponse", payload);
    expect(payload).toEqual({ error: { message: "gone", type: "server_error", param: null, code: "overloaded" } });
  });
});

describe("response types match OpenAI's spec", () => {
  it("ChatCompletion", () => {
    const completion: ChatCompletion = {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1_700_000_000,
      model: "roundhouse-tiny",
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: null,
            refusal: null,
            tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }],
          },
          logprobs: {
            content: [
              { token: "a", logprob: -0.1, bytes: [97], top_logprobs: [{ token: "a", logprob: -0.1, bytes: [97] }] },
            ],
            refusal: null,
          },
          finish_reason: "tool_calls",
        },
      ],
      usage: {
        prompt_tokens: 3,
        completion_tokens: 2,
        total_tokens: 5,
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0 },
      },
      system_fingerprint: "fp_roundhouse",
    };
    assertMatchesSchema("CreateChatCompletionResponse", completion);
  });

  it("ChatCompletionChunk, including the usage-only last chunk", () => {
    const chunks: ChatCompletionChunk[] = [
      {
        id: "chatcmpl-1",
        object: "chat.completion.chunk",
        created: 1,
        model: "m",
        choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
        usage: null,
      },
      {
        id: "chatcmpl-1",
        object: "chat.completion.chunk",
        created: 1,
        model: "m",
        choices: [
          {
            index: 0,
            delta: {
              tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } }],
            },
            finish_reason: "tool_calls",
          },
        ],
      },
      {
        id: "chatcmpl-1",
        object: "chat.completion.chunk",
        created: 1,
        model: "m",
        choices: [],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      },
    ];
    for (const chunk of chunks) assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
  });

  it("Model and its list", () => {
    const model = modelObject("roundhouse-tiny", 1_700_000_000.7, "roundhouse");
    expect(model.created).toBe(1_700_000_000);
    assertMatchesSchema("Model", model);
    assertMatchesSchema("ListModelsResponse", modelList([model]));
  });
});
