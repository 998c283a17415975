// Each family's parser fed text exactly as those models write it (the samples follow the formats
// their chat templates and model cards document: Qwen 2.5 / Hermes 2 Pro, Qwen 3, Llama 3.1-3.3,
// Mistral v3 and v11 tokenizers, gpt-oss Harmony, DeepSeek R1 and V3.1), whole and split at
// every kind of chunk boundary.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ToolFamily } from "../../src/engine/tool-formats/families.ts";
import { type ParseEvent, ToolOutputParser } from "../../src/engine/tool-formats/parser.ts";

interface Reply {
  content: string;
  reasoning: string;
  calls: { name: string; arguments: string }[];
  /** Every call was closed by a call_end. */
  closed: boolean;
}

function collect(events: ParseEvent[]): Reply {
  const reply: Reply = { content: "", reasoning: "", calls: [], closed: true };
  const open = new Set<number>();
  for (const e of events) {
    if (e.type === "content") reply.content += e.text;
    else if (e.type === "reasoning") reply.reasoning += e.text;
    else if (e.type === "call") {
      expect(e.index).toBe(reply.calls.length);
      reply.calls.push({ name: e.name, arguments: "" });
      open.add(e.index);
    } else if (e.type === "arguments") {
      expect(open.has(e.index)).toBe(true);
      (reply.calls[e.index] as { arguments: string }).arguments += e.text;
    } else if (e.type === "call_end") open.delete(e.index);
  }
  reply.closed = open.size === 0;
  return reply;
}

function parse(
  family: ToolFamily,
  chunks: string[],
  opts: { startInReasoning?: boolean; cut?: boolean } = {},
): ParseEvent[] {
  const parser = new ToolOutputParser(family, { tools: true, startInReasoning: opts.startInReasoning ?? false });
  const events: ParseEvent[] = [];
  for (const c of chunks) events.push(...parser.push(c));
  events.push(...parser.finish(opts.cut ?? false));
  return events;
}

const args = (calls: Reply["calls"]) => calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) }));

const DS = {
  callsBegin: "<\uFF5Ctool\u2581calls\u2581begin\uFF5C>",
  callsEnd: "<\uFF5Ctool\u2581calls\u2581end\uFF5C>",
  callBegin: "<\uFF5Ctool\u2581call\u2581begin\uFF5C>",
  callEnd: "<\uFF5Ctool\u2581call\u2581end\uFF5C>",
  sep: "<\uFF5Ctool\u2581sep\uFF5C>",
};

interface Sample {
  name: string;
  family: ToolFamily;
  text: string;
  startInReasoning?: boolean;
  expected: { content: string; reasoning?: string; calls: { name: string; arguments: unknown }[] };
}

const weather = { name: "get_weather", arguments: { city: "Paris", unit: "celsius" } };
const time = { name: "get_time", arguments: { timezone: "Europe/Paris" } };

const SAMPLES: Sample[] = [
  {
    name: "Qwen 2.5 single call",
    family: "hermes",
    text: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>',
    expected: { content: "", calls: [weather] },
  },
  {
    name: "Qwen 2.5 parallel calls",
    family: "hermes",
    text:
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Europe/Paris"}}\n</tool_call>',
    expected: { content: "", calls: [weather, time] },
  },
  {
    name: "Hermes 2 Pro call after text, arguments before name",
    family: "hermes",
    text: 'Let me check that.\n<tool_call>\n{"arguments": {"city": "Paris", "unit": "celsius"}, "name": "get_weather"}\n</tool_call>',
    expected: { content: "Let me check that.\n", calls: [weather] },
  },
  {
    name: "Qwen 2.5 plain answer with angle brackets",
    family: "hermes",
    text: "Use <b>bold</b> and a < b, or <tool without a call.",
    expected: { content: "Use <b>bold</b> and a < b, or <tool without a call.", calls: [] },
  },
  {
    name: "Qwen 3 thinking then a call",
    family: "qwen3",
    text:
      "<think>\nThe user wants the weather in Paris. I should call get_weather.\n</think>\n\n" +
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>',
    expected: {
      content: "",
      reasoning: "\nThe user wants the weather in Paris. I should call get_weather.\n",
      calls: [weather],
    },
  },
  {
    name: "Qwen 3 with thinking switched off (empty think block) then text",
    family: "qwen3",
    text: "<think>\n\n</think>\n\nHello! How can I help you today?",
    expected: { content: "Hello! How can I help you today?", reasoning: "\n\n", calls: [] },
  },
  {
    name: "Llama 3.1 JSON call (custom tool)",
    family: "llama3",
    text: '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}',
    expected: { content: "", calls: [weather] },
  },
  {
    name: "Llama 3.1 python_tag call",
    family: "llama3",
    text: '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}',
    expected: { content: "", calls: [weather] },
  },
  {
    name: "Llama 3.2 parallel calls separated by ;",
    family: "llama3",
    text:
      '{"type": "function", "name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}; ' +
      '{"type": "function", "name": "get_time", "parameters": {"timezone": "Europe/Paris"}}',
    expected: { content: "", calls: [weather, time] },
  },
  {
    name: "Llama 3.1 JSON that is not a call",
    family: "llama3",
    text: '{"answer": 42}',
    expected: { content: '{"answer": 42}', calls: [] },
  },
  {
    name: "Llama 3.1 plain text",
    family: "llama3",
    text: "The weather in Paris is mild.",
    expected: { content: "The weather in Paris is mild.", calls: [] },
  },
  {
    name: "Mistral v3 (7B Instruct v0.3, Nemo) parallel calls",
    family: "mistral",
    text:
      '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}, "id": "a1b2c3d4e"}, ' +
      '{"name": "get_time", "arguments": {"timezone": "Europe/Paris"}, "id": "f5g6h7i8j"}]',
    expected: { content: "", calls: [weather, time] },
  },
  {
    name: "Mistral v11 (Small 3.2, Magistral) name[ARGS] calls",
    family: "mistral",
    text:
      'I will look it up.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "unit": "celsius"}' +
      '[TOOL_CALLS]get_time[ARGS]{"timezone": "Europe/Paris"}',
    expected: { content: "I will look it up.", calls: [weather, time] },
  },
  {
    name: "gpt-oss analysis then a call",
    family: "harmony",
    text:
      "<|channel|>analysis<|message|>User asks weather in Paris. Use get_weather.<|end|>" +
      '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris","unit":"celsius"}',
    expected: { content: "", reasoning: "User asks weather in Paris. Use get_weather.", calls: [weather] },
  },
  {
    name: "gpt-oss recipient in the start header, then <|call|>",
    family: "harmony",
    text: '<|start|>assistant to=functions.get_time<|channel|>commentary json<|message|>{"timezone": "Europe/Paris"}<|call|>',
    expected: { content: "", calls: [time] },
  },
  {
    name: "gpt-oss analysis then final answer",
    family: "harmony",
    text: "<|channel|>analysis<|message|>Simple greeting.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!",
    expected: { content: "Hello there!", reasoning: "Simple greeting.", calls: [] },
  },
  {
    name: "DeepSeek R1 think then a call",
    family: "deepseek-r1",
    startInReasoning: true,
    text:
      "Okay, the user wants the weather.\n</think>\n\n" +
      `${DS.callsBegin}${DS.callBegin}function${DS.sep}get_weather\n\`\`\`json\n{"city": "Paris", "unit": "celsius"}\n\`\`\`${DS.callEnd}` +
      `\n${DS.callBegin}function${DS.sep}get_time\n\`\`\`json\n{"timezone": "Europe/Paris"}\n\`\`\`${DS.callEnd}${DS.callsEnd}`,
    expected: { content: "", reasoning: "Okay, the user wants the weather.\n", calls: [weather, time] },
  },
  {
    name: "DeepSeek V3.1 call after text",
    family: "deepseek-r1",
    text: `Checking.${DS.callsBegin}${DS.callBegin}get_weather${DS.sep}{"city": "Paris", "unit": "celsius"}${DS.callEnd}${DS.callsEnd}`,
    expected: { content: "Checking.", calls: [weather] },
  },
  {
    name: "DeepSeek R1 reasoning then answer",
    family: "deepseek-r1",
    text: "<think>\nHi there.\n</think>\n\nHello!",
    expected: { content: "Hello!", reasoning: "\nHi there.\n", calls: [] },
  },
];

/** Cuts `text` at the given (sorted, deduplicated) offsets. */
function cut(text: string, offsets: number[]): string[] {
  const points = [...new Set(offsets.map((o) => o % (text.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let at = 0;
  for (const p of points) {
    out.push(text.slice(at, p));
    at = p;
  }
  out.push(text.slice(at));
  return out;
}

describe("tool-call parsers, one per family", () => {
  for (const s of SAMPLES) {
    it(`${s.name}: whole`, () => {
      const reply = collect(parse(s.family, [s.text], { startInReasoning: s.startInReasoning ?? false }));
      expect(reply.content).toBe(s.expected.content);
      expect(reply.reasoning).toBe(s.expected.reasoning ?? "");
      expect(args(reply.calls)).toEqual(s.expected.calls);
      expect(reply.closed).toBe(true);
    });

    it(`${s.name}: split at any chunk boundaries gives the same reply`, () => {
      const whole = collect(parse(s.family, [s.text], { startInReasoning: s.startInReasoning ?? false }));
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 12 }), (offsets) => {
          const chunks = cut(s.text, offsets);
          const events = parse(s.family, chunks, { startInReasoning: s.startInReasoning ?? false });
          const reply = collect(events);
          expect(reply).toEqual(whole);
          // No marker text ever reaches content.
          for (const e of events) {
            if (e.type === "content")
              expect(e.text).not.toMatch(/<tool_call>|\[TOOL_CALLS\]|<\|channel\|>|<\|python_tag\|>|tool\u2581call/);
          }
        }),
        { numRuns: 150 },
      );
    });
  }

  it("streams arguments in several pieces as they arrive, after the call's name", () => {
    const text =
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>';
    const parser = new ToolOutputParser("hermes", { tools: true });
    const events: ParseEvent[] = [];
    for (const ch of text) events.push(...parser.push(ch));
    events.push(...parser.finish());
    const kinds = events.filter((e) => e.type !== "constrain" && e.type !== "release").map((e) => e.type);
    expect(kinds[0]).toBe("call");
    expect(kinds.filter((k) => k === "arguments").length).toBeGreaterThan(5);
    expect(kinds.at(-1)).toBe("call_end");
  });

  it("a call cut short (max_tokens) never comes back as content", () => {
    for (const s of SAMPLES.filter((x) => x.expected.calls.length > 0)) {
      const markerAt = s.text.search(/<tool_call>|\[TOOL_CALLS\]|to=functions|\{"|<\|python_tag\|>|<\uFF5Ctool/);
      for (let end = markerAt + 1; end < s.text.length; end += 3) {
        const reply = collect(
          parse(s.family, [s.text.slice(0, end)], { startInReasoning: s.startInReasoning ?? false, cut: true }),
        );
        expect(reply.content).toBe(s.expected.content.slice(0, reply.content.length));
        expect(reply.content.length).toBeLessThanOrEqual(s.expected.content.length);
      }
    }
  });

  it("without tools, markers are plain content (reasoning is still split off)", () => {
    const parser = new ToolOutputParser("qwen3", { tools: false });
    const events = [
      ...parser.push('<think>hm</think>\n\n<tool_call>\n{"name": "x"}\n</tool_call>'),
      ...parser.finish(),
    ];
    const reply = collect(events);
    expect(reply.calls).toEqual([]);
    expect(reply.reasoning).toBe("hm");
    expect(reply.content).toBe('<tool_call>\n{"name": "x"}\n</tool_call>');
  });

  it("marks where a call's constrained part starts and ends", () => {
    const events = parse("hermes", [
      'Hi <tool_call>\n{"name": "get_time", "arguments": {"timezone": "UTC"}}\n</tool_call>',
    ]);
    const constrain = events.find((e) => e.type === "constrain");
    expect(constrain).toMatchObject({ scope: "call" });
    expect(events.filter((e) => e.type === "release")).toHaveLength(1);
    const harmony = parse("harmony", [
      '<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{"timezone": "UTC"}',
    ]);
    expect(harmony.find((e) => e.type === "constrain")).toMatchObject({ scope: "arguments", name: "get_time" });
  });
});
