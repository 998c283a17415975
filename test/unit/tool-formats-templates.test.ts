// Each family's real chat template (test/fixtures/chat-templates: written down from the models'
// published tokenizer_config.json, see the README there) is recognised by the detector, renders
// tools, a call and its result through ChatTemplate as the provider sends them, and the call it
// renders for the assistant reads back through that family's parser.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ChatTemplate } from "../../src/engine/chat-template.ts";
import { detectFamily, resolveFormat, type ToolFamily } from "../../src/engine/tool-formats/families.ts";
import { type ParseEvent, ToolOutputParser } from "../../src/engine/tool-formats/parser.ts";
import type { ChatMessage } from "../../src/openai/chat.ts";
import { toTemplateMessages } from "../../src/providers/prompt.ts";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/chat-templates/${name}`, import.meta.url), "utf8");

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Get the weather in a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];

interface Case {
  file: string;
  family: ToolFamily;
  bos: string;
  eos: string;
  callId: string;
  /** The call as the template writes it for the assistant. */
  renderedCall: string;
  /** Where the generation prompt leaves the model. */
  promptEnd: string;
  /** The tool result, framed as the model reads it. */
  resultFrame: [string, string];
  efforts: readonly string[];
}

const DS_SEP = "<\uFF5Ctool\u2581sep\uFF5C>";
const CASES: Case[] = [
  {
    file: "qwen2.5.jinja",
    family: "hermes",
    bos: "",
    eos: "<|im_end|>",
    callId: "call_abc",
    renderedCall: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    promptEnd: "<|im_start|>assistant\n",
    resultFrame: ["<tool_response>\n", "\n</tool_response>"],
    efforts: [],
  },
  {
    file: "qwen3.jinja",
    family: "qwen3",
    bos: "",
    eos: "<|im_end|>",
    callId: "call_abc",
    renderedCall: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    promptEnd: "<|im_start|>assistant\n",
    resultFrame: ["<tool_response>\n", "\n</tool_response>"],
    efforts: ["none", "minimal", "low", "medium", "high"],
  },
  {
    file: "llama3.1.jinja",
    family: "llama3",
    bos: "<|begin_of_text|>",
    eos: "<|eot_id|>",
    callId: "call_abc",
    renderedCall: '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    promptEnd: "<|start_header_id|>assistant<|end_header_id|>\n\n",
    resultFrame: ['<|start_header_id|>ipython<|end_header_id|>\n\n"', '"<|eot_id|>'],
    efforts: [],
  },
  {
    file: "mistral-v3.jinja",
    family: "mistral",
    bos: "<s>",
    eos: "</s>",
    callId: "a1B2c3D4e",
    renderedCall: '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "a1B2c3D4e"}]',
    promptEnd: "[/TOOL_RESULTS]",
    resultFrame: ['[TOOL_RESULTS] {"content": ', ', "call_id": "a1B2c3D4e"}[/TOOL_RESULTS]'],
    efforts: [],
  },
  {
    file: "deepseek-r1.jinja",
    family: "deepseek-r1",
    bos: "<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>",
    eos: "<\uFF5Cend\u2581of\u2581sentence\uFF5C>",
    callId: "call_abc",
    renderedCall: `<\uFF5Ctool\u2581calls\u2581begin\uFF5C><\uFF5Ctool\u2581call\u2581begin\uFF5C>function${DS_SEP}get_weather\n\`\`\`json\n{"city": "Paris"}\n\`\`\`<\uFF5Ctool\u2581call\u2581end\uFF5C><\uFF5Ctool\u2581calls\u2581end\uFF5C>`,
    promptEnd: "<\uFF5Ctool\u2581outputs\u2581end\uFF5C>",
    resultFrame: ["<\uFF5Ctool\u2581output\u2581begin\uFF5C>", "<\uFF5Ctool\u2581output\u2581end\uFF5C>"],
    efforts: [],
  },
  {
    file: "gpt-oss.jinja",
    family: "harmony",
    bos: "<|startoftext|>",
    eos: "<|return|>",
    callId: "call_abc",
    renderedCall:
      '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>',
    promptEnd: "<|start|>assistant",
    resultFrame: ['<|channel|>commentary<|message|>"', '"<|end|>'],
    efforts: ["low", "medium", "high"],
  },
];

function conversation(callId: string): ChatMessage[] {
  return [
    { role: "system", content: "You are terse." },
    { role: "user", content: "What is the weather in Paris?" },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: callId, type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }],
    },
    { role: "tool", tool_call_id: callId, content: "Sunny, 21 C" },
  ] as ChatMessage[];
}

describe("real chat templates, rendered with tools, calls and results", () => {
  for (const c of CASES) {
    it(`${c.file}: detected as ${c.family}, renders the tools, the call and the result`, () => {
      const source = fixture(c.file);
      expect(detectFamily({ template: source })).toBe(c.family);
      expect(resolveFormat({ template: source }).reasoningEfforts).toEqual(c.efforts);
      const template = new ChatTemplate(source, { bos: c.bos, eos: c.eos });
      const messages = toTemplateMessages(conversation(c.callId), {
        templateHasToolRole: true,
        native: { arguments: c.family === "deepseek-r1" ? "string" : "object" },
      });
      const variables = c.family === "deepseek-r1" ? {} : { tools };
      const parts = template.renderPrompt(messages, variables);
      const text = parts.map((p) => p.text).join("");
      // DeepSeek R1's template shows no tools; every other one lists them.
      if (c.family !== "deepseek-r1") expect(text).toContain("get_weather");
      if (c.family !== "deepseek-r1") expect(text).toContain("Get the weather in a city");
      expect(text).toContain(c.renderedCall);
      expect(text).toContain(`${c.resultFrame[0]}Sunny, 21 C${c.resultFrame[1]}`);
      expect(text.endsWith(c.promptEnd)).toBe(true);
      // Message content is never template text: the result and the question are content parts.
      const content = parts.filter((p) => !p.control).map((p) => p.text);
      expect(content).toContain("Sunny, 21 C");
      expect(content.some((t) => t.includes("What is the weather in Paris?"))).toBe(true);
      expect(parts.filter((p) => p.control).some((p) => p.text.includes("Sunny"))).toBe(false);
    });

    it(`${c.file}: the call it renders reads back through the ${c.family} parser`, () => {
      const parser = new ToolOutputParser(c.family, { tools: true });
      // What follows the assistant's header is what the model itself wrote.
      const written =
        c.family === "harmony"
          ? c.renderedCall.replace("<|call|>", "")
          : c.family === "mistral"
            ? c.renderedCall
            : c.renderedCall;
      const events: ParseEvent[] = [...parser.push(written), ...parser.finish()];
      const calls = events.filter((e) => e.type === "call");
      expect(calls).toEqual([{ type: "call", index: 0, name: "get_weather" }]);
      const args = events
        .filter((e): e is Extract<ParseEvent, { type: "arguments" }> => e.type === "arguments")
        .map((e) => e.text)
        .join("");
      expect(JSON.parse(args)).toEqual({ city: "Paris" });
      expect(events.filter((e) => e.type === "content").map((e) => (e as { text: string }).text)).toEqual([]);
    });
  }

  it("Qwen 3's thinking switch: reasoning_effort none closes the think block in the prompt", () => {
    const template = new ChatTemplate(fixture("qwen3.jinja"), { bos: "", eos: "<|im_end|>" });
    const messages = toTemplateMessages([{ role: "user", content: "Hi" }] as ChatMessage[], {
      templateHasToolRole: true,
      native: { arguments: "object" },
    });
    const off = template
      .renderPrompt(messages, { enable_thinking: false })
      .map((p) => p.text)
      .join("");
    const on = template
      .renderPrompt(messages, { enable_thinking: true })
      .map((p) => p.text)
      .join("");
    expect(off.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n")).toBe(true);
    expect(on.endsWith("<|im_start|>assistant\n")).toBe(true);
  });

  it("gpt-oss renders the reasoning effort it is given", () => {
    const template = new ChatTemplate(fixture("gpt-oss.jinja"), { bos: "", eos: "" });
    const messages = toTemplateMessages([{ role: "user", content: "Hi" }] as ChatMessage[], {
      templateHasToolRole: true,
      native: { arguments: "object" },
    });
    const text = template
      .renderPrompt(messages, { reasoning_effort: "high" })
      .map((p) => p.text)
      .join("");
    expect(text).toContain("Reasoning: high");
  });

  it("a template without a known format stays generic", () => {
    expect(detectFamily({ template: "{% for m in messages %}{{ m.content }}{% endfor %}" })).toBeUndefined();
    expect(resolveFormat({ template: undefined, architecture: "qwen3" }).family).toBe("qwen3");
    expect(resolveFormat({ template: fixture("qwen2.5.jinja") }, "generic").family).toBeUndefined();
    expect(resolveFormat({ template: undefined }, "mistral")).toMatchObject({ family: "mistral", source: "config" });
    expect(() => resolveFormat({ template: "{{ messages }}" }, "native")).toThrow(/no known tool-call format/);
  });
});
