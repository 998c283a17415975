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

  it("parses a direct answer, and keeps unparseable text as text", () => {
    expect(parseToolReply('{"response": "hi"}', () => "x")).toEqual({ kind: "text", text: "hi" });
    expect(parseToolReply('{"tool_ca', () => "x")).toEqual({ kind: "text", text: '{"tool_ca' });
  });

  it("renders an earlier call as the JSON the model produced", () => {
    const text = renderToolCall([{ function: { name: "get_weather", arguments: '{"city":"Paris"}' } }]);
    expect(JSON.parse(text)).toEqual({ tool_call: { name: "get_weather", arguments: { city: "Paris" } } });
  });
});
