import { describe, expect, it } from "vitest";
import { parseToolReply, planTools, renderToolCall } from "../../src/providers/tool-calls.ts";

const weather = {
  type: "function" as const,
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
};

describe("generic tool calls", () => {
  it("plans nothing without tools or with tool_choice none", () => {
    expect(planTools({})).toBeUndefined();
    expect(planTools({ tools: [weather], tool_choice: "none" })).toBeUndefined();
  });

  it("lets the model answer or call with auto, and only call with required", () => {
    const auto = planTools({ tools: [weather] });
    expect(JSON.stringify(auto?.schema)).toContain('"response"');
    const required = planTools({ tools: [weather], tool_choice: "required" });
    expect(JSON.stringify(required?.schema)).not.toContain('"response"');
    expect(required?.instructions).toContain("get_weather");
  });

  it("parses a call into OpenAI's tool_calls shape", () => {
    const reply = parseToolReply(
      '{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}',
      () => "call_1",
    );
    expect(reply).toEqual({
      kind: "calls",
      calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
    });
  });

  it("parses a direct answer; a reply cut short never comes back as raw JSON", () => {
    expect(parseToolReply('{"response": "hi"}', () => "x")).toEqual({ kind: "text", text: "hi" });
    // Cut by max_tokens: never the raw JSON.
    expect(parseToolReply('{"tool_ca', () => "x")).toEqual({ kind: "text", text: "" });
    expect(parseToolReply('{"tool_call": {"name": "f", "argu', () => "x")).toEqual({ kind: "text", text: "" });
    expect(parseToolReply('{"response": "Hello, wor', () => "x")).toEqual({ kind: "text", text: "Hello, wor" });
    expect(parseToolReply('{"response": "a\\n b\\u00', () => "x")).toEqual({ kind: "text", text: "a\n b" });
    // With response_format the answer is the format's JSON.
    expect(parseToolReply('{"response": {"a": 1}}', () => "x")).toEqual({ kind: "text", text: '{"a":1}' });
  });

  it("renders an earlier call as the JSON the model produced", () => {
    const text = renderToolCall([{ function: { name: "get_weather", arguments: '{"city":"Paris"}' } }]);
    expect(JSON.parse(text)).toEqual({ tool_call: { name: "get_weather", arguments: { city: "Paris" } } });
  });
});
