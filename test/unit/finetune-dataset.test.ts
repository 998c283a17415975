import { describe, expect, it } from "vitest";
import { CHAT_TEMPLATE, renderChat } from "../../scripts/model/chat-template.ts";
import { ChatTemplate, type TemplateMessage } from "../../src/engine/chat-template.ts";
import { type ExampleMessage, parseDataset, renderDataset } from "../../src/finetune/dataset.ts";
import { isId, newId } from "../../src/finetune/ids.ts";
import { minimumTokens, planWindows, trainerWindow } from "../../src/finetune/prepare.ts";

const good = JSON.stringify({
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: [{ type: "text", text: "Hello." }] },
  ],
});

describe("parseDataset", () => {
  it("accepts chat examples and skips blank lines", () => {
    const r = parseDataset(`${good}\n\n${good}\n`);
    expect(r.ok && r.examples.length).toBe(2);
  });

  it.each([
    ["{not json", /line 2: not valid JSON/],
    ["[1,2]", /line 2: expected a JSON object/],
    [JSON.stringify({ prompt: "x" }), /line 2: unsupported key `prompt`/],
    [JSON.stringify({ messages: [] }), /line 2: `messages` is empty/],
    [JSON.stringify({ messages: [{ role: "bot", content: "x" }] }), /line 2: messages\[0\]\.role must be one of/],
    [JSON.stringify({ messages: [{ role: "user", content: "x" }] }), /line 2: no assistant message/],
    [JSON.stringify({ messages: [{ role: "user", content: 3 }] }), /line 2: messages\[0\]\.content must be/],
    [`{"messages":[{"role":"user","content":"${"x".repeat(70_000)}"}]}`, /line 2: the line is \d+ characters long/],
  ])("names the first bad line and why: %#", (bad, reason) => {
    const r = parseDataset(`${good}\n${bad}\n${good}`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(`line ${r.line}: ${r.reason}`).toMatch(reason);
  });

  it("refuses an empty file", () => {
    expect(parseDataset("\n\n").ok).toBe(false);
  });
});

describe("renderDataset", () => {
  it("renders like the built-in model's corpus: <s> + the chat template, seeded order", () => {
    const template = new ChatTemplate(CHAT_TEMPLATE, { bos: "<s>", eos: "</s>" });
    const examples = [1, 2, 3].map((n) => ({
      messages: [
        { role: "user" as const, content: `q${n}` },
        { role: "assistant" as const, content: `a${n}` },
      ],
    }));
    const opts = {
      bos: "<s>",
      seed: 7,
      render: (m: readonly ExampleMessage[]) =>
        template.render(m as readonly TemplateMessage[], { addGenerationPrompt: false }),
    };
    const text = renderDataset(examples, opts);
    expect(text).toBe(renderDataset(examples, opts));
    for (const e of examples) expect(text).toContain(`<s>${renderChat(e.messages, { addGenerationPrompt: false })}`);
  });
});

describe("trainerWindow", () => {
  it("is the context llama.cpp pads to a multiple of 256", () => {
    expect([32, 64, 128, 256, 257, 512].map(trainerWindow)).toEqual([256, 256, 256, 256, 512, 512]);
  });
});

describe("planWindows", () => {
  it("matches llama-finetune's window count and needs 1.5 windows of text", () => {
    expect(planWindows(minimumTokens(64) - 1, 0, 64)).toBeUndefined();
    expect(planWindows(minimumTokens(64), 0, 64)).toMatchObject({ windows: 1, trainWindows: 1, valSplit: 0 });
    // (1000 - 128 - 1) / 64 = 13 windows.
    expect(planWindows(1000, 0, 128)?.windows).toBe(13);
  });

  it("puts exactly the windows past the training text into validation", () => {
    const plan = planWindows(800, 300, 128);
    expect(plan).toBeDefined();
    if (!plan) return;
    expect(plan.trainWindows + plan.valWindows).toBe(plan.windows);
    // llama-finetune: idata_split = windows * (1 - val_split), truncated.
    expect(Math.trunc(plan.windows * (1 - plan.valSplit))).toBe(plan.trainWindows);
    expect(planWindows(800, 10, 128)).toBeUndefined();
  });
});

describe("ids", () => {
  it("are strict", () => {
    expect(isId("file", newId("file"))).toBe(true);
    expect(isId("job", newId("job"))).toBe(true);
    expect(isId("file", "file-../../etc/passwd")).toBe(false);
    expect(isId("file", `${newId("file")}.json`)).toBe(false);
  });
});
