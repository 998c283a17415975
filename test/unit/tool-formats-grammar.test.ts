// The tool-call grammars of every family parse in llama.cpp (a GBNF llama.cpp rejects would be a
// 400 on the first request with tools), and the rule renaming that composes them leaves string
// literals and character classes alone.
import type { Llama } from "node-llama-cpp";
import { beforeAll, describe, expect, it } from "vitest";
import { GrammarCache, grammarStateAfter } from "../../src/engine/grammar.ts";
import { openRuntime } from "../../src/engine/runtime.ts";
import { TOOL_FAMILIES } from "../../src/engine/tool-formats/families.ts";
import {
  forcedCallGbnf,
  lazyCallGbnf,
  literal,
  prefixRules,
  type ToolGrammarInput,
} from "../../src/engine/tool-formats/grammar.ts";
import { TINY_MODEL } from "../helpers/server.ts";

let llama: Llama;
let tools: ToolGrammarInput[];
beforeAll(async () => {
  llama = await openRuntime({ gpu: false });
  const cache = new GrammarCache(llama);
  tools = [
    {
      name: "get_weather",
      gbnf: await cache.schemaGbnf({
        type: "object",
        properties: { city: { type: "string" }, unit: { enum: ["c", "f"] } },
        required: ["city", "unit"],
        additionalProperties: false,
      }),
    },
    { name: "get_time", gbnf: await cache.schemaGbnf({ type: "object", properties: {}, additionalProperties: false }) },
  ];
}, 60_000);

describe("tool-call grammars", () => {
  for (const family of TOOL_FAMILIES) {
    it(`${family}: the forced and lazy grammars parse`, async () => {
      const grammars = [
        forcedCallGbnf(family, tools),
        lazyCallGbnf(family, "call", tools, { parallel: true }),
        lazyCallGbnf(family, "call", tools, { parallel: false }),
        lazyCallGbnf(family, "arguments", tools, { name: "get_weather", parallel: true }),
      ];
      for (const gbnf of grammars) {
        expect(gbnf).toBeDefined();
        await expect(llama.createGrammar({ grammar: gbnf as string })).resolves.toBeDefined();
      }
    });
  }

  it("an unknown tool name has no arguments grammar", () => {
    expect(lazyCallGbnf("harmony", "arguments", tools, { name: "nope", parallel: true })).toBeUndefined();
  });

  it("renames rules, not the text inside literals and classes", () => {
    expect(prefixRules('root ::= "root" [a-z] item\nitem ::= "x\\"y"', "t0-")).toBe(
      't0-root ::= "root" [a-z] t0-item\nt0-item ::= "x\\"y"',
    );
    expect(literal('say "hi"\n')).toBe('"say \\"hi\\"\\n"');
  });
});

describe("a lazy grammar whose trigger ended inside a token", () => {
  it("reads the rest of that token first: a state when the call can start so, none when it cannot", async () => {
    const model = await llama.loadModel({ modelPath: TINY_MODEL });
    try {
      const gbnf = lazyCallGbnf("llama3", "call", tools, { parallel: true }) as string;
      const grammar = await llama.createGrammar({ grammar: gbnf });
      const stateAfter = (text: string) => grammarStateAfter(model, grammar, text);
      expect(stateAfter('{"')).toBeDefined();
      expect(stateAfter('{"name": "get_w')).toBeDefined();
      expect(stateAfter('{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "c"}}')).toBeDefined();
      // Not a tool's name, not its arguments' schema, not a call at all.
      expect(stateAfter('{"name": "get_wx')).toBeUndefined();
      expect(stateAfter('{"name": "get_time", "parameters": {"city"')).toBeUndefined();
      expect(stateAfter("Sure, here")).toBeUndefined();
    } finally {
      await model.dispose();
    }
  });
});
