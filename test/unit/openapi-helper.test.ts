import { describe, expect, it } from "vitest";
import { assertMatchesSchema, schemaErrors } from "../helpers/openapi.ts";

type Loose = Record<string, unknown>;

function completion(): Loose & { choices: Array<Loose & { message: Loose }> } {
  return {
    id: "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    object: "chat.completion",
    created: 1741570283,
    model: "gpt-4o-2024-08-06",
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: "Hello.", refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: "stop",
      },
    ],
    usage: { prompt_tokens: 1117, completion_tokens: 46, total_tokens: 1163 },
    service_tier: "default",
    system_fingerprint: "fp_fc9f1d7035",
  };
}

describe("assertMatchesSchema", () => {
  it("passes a correct chat completion", () => {
    expect(() => assertMatchesSchema("CreateChatCompletionResponse", completion())).not.toThrow();
  });

  it("fails one without `created`, naming the property", () => {
    const body = completion();
    delete body.created;
    expect(() => assertMatchesSchema("CreateChatCompletionResponse", body)).toThrow(
      /CreateChatCompletionResponse:\n {2}\(root\): must have required property 'created'/,
    );
  });

  // The spec lists role, content and refusal as required on ChatCompletionResponseMessage:
  // `refusal: null` must be sent, not left out.
  it("fails one whose message lacks `refusal`, with the path to it", () => {
    const body = completion();
    const message = body.choices[0]?.message;
    if (message !== undefined) delete message.refusal;
    expect(schemaErrors("CreateChatCompletionResponse", body)).toEqual([
      expect.stringMatching(/^\/choices\/0\/message: must have required property 'refusal'/),
    ]);
  });

  it("reads OpenAPI 3.0 `nullable` as allowing null, and nothing else", () => {
    const chunk = {
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta: { content: "x" }, logprobs: null, finish_reason: null }],
      usage: null,
    };
    expect(schemaErrors("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
    expect(schemaErrors("CreateChatCompletionStreamResponse", { ...chunk, usage: 5 }).join("\n")).toMatch(/\/usage/);
  });

  it("reads a boolean exclusiveMinimum as OpenAPI 3.0 meant it", () => {
    // FineTuneSupervisedHyperparameters: learning_rate_multiplier is "auto" or a number > 0.
    const ok = { learning_rate_multiplier: 0.1 };
    expect(schemaErrors("FineTuneSupervisedHyperparameters", ok)).toEqual([]);
    expect(schemaErrors("FineTuneSupervisedHyperparameters", { learning_rate_multiplier: 0 })).not.toEqual([]);
  });

  it("lists every mismatch with its path", () => {
    const body = completion();
    delete body.created;
    body.object = "completion";
    const errors = schemaErrors("CreateChatCompletionResponse", body);
    expect(errors).toContainEqual(expect.stringMatching(/^\(root\): must have required property 'created'/));
    expect(errors).toContainEqual(
      expect.stringMatching(/^\/object: must be equal to one of the allowed values \["chat.completion"\]/),
    );
  });

  it("compiles the schemas other tests rely on", () => {
    for (const name of ["Model", "ListModelsResponse", "OpenAIFile", "FineTuningJob", "ErrorResponse"]) {
      expect(() => schemaErrors(name, {})).not.toThrow();
    }
    expect(schemaErrors("ErrorResponse", { error: { message: "m", type: "t", param: null, code: null } })).toEqual([]);
  });

  it("refuses a schema name the spec does not have", () => {
    expect(() => assertMatchesSchema("ChatCompletionResponse", {})).toThrow(/No schema named "ChatCompletionResponse"/);
  });
});
