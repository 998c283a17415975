// response_format json_schema is enforced as documented (README, "Structured outputs"): every
// keyword of the table, across seeds, produces output a JSON Schema validator accepts, and every
// keyword outside it is a 400 that names it, never a 200 whose output does not validate.
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s?.close();
});

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);

const SEEDS = [1, 2, 3, 4, 5, 6];

/** One schema per row of the README's table: what each keyword must guarantee. */
const SUPPORTED: Record<string, Record<string, unknown>> = {
  "type integer": { type: "integer" },
  "type number": { type: "number" },
  "type boolean": { type: "boolean" },
  "type null": { type: "null" },
  "type list": { type: ["integer", "null"] },
  "string minLength/maxLength": { type: "string", minLength: 2, maxLength: 6 },
  "format date-time": { type: "string", format: "date-time" },
  "format date": { type: "string", format: "date" },
  "format time": { type: "string", format: "time" },
  enum: { enum: ["red", "green", 3, null] },
  const: { const: "fixed" },
  "object properties/required/additionalProperties false": {
    type: "object",
    properties: { n: { type: "integer" }, s: { type: "string", maxLength: 4 }, b: { type: "boolean" } },
    required: ["n"],
    additionalProperties: false,
  },
  "object min/maxProperties": {
    type: "object",
    properties: { a: { type: "integer" }, b: { type: "null" } },
    minProperties: 1,
    maxProperties: 2,
  },
  "object additionalProperties schema": {
    type: "object",
    additionalProperties: { type: "integer" },
    maxProperties: 2,
  },
  "array items/minItems/maxItems": { type: "array", items: { type: "integer" }, minItems: 1, maxItems: 3 },
  "array prefixItems": {
    type: "array",
    prefixItems: [{ type: "integer" }, { enum: ["x", "y"] }],
    items: { type: "boolean" },
    maxItems: 3,
  },
  anyOf: { anyOf: [{ type: "integer" }, { type: "string", maxLength: 3 }] },
  "oneOf (disjoint branches)": {
    oneOf: [
      { type: "object", properties: { kind: { const: "a" }, n: { type: "integer" } }, required: ["kind", "n"] },
      { type: "object", properties: { kind: { const: "b" }, ok: { type: "boolean" } }, required: ["kind"] },
    ],
  },
  "$defs and $ref": {
    $defs: { num: { type: "integer" } },
    type: "array",
    items: { $ref: "#/$defs/num" },
    maxItems: 3,
  },
  "definitions and $ref": {
    definitions: { flag: { type: "boolean" } },
    type: "object",
    properties: { f: { $ref: "#/definitions/flag" } },
  },
  annotations: { title: "T", description: "D", $comment: "c", type: "integer", examples: [1], default: 0 },
};

/** Keywords no grammar here enforces: each must be refused with a 400 that names it. */
const REFUSED: [string, Record<string, unknown>][] = [
  ["pattern", { type: "string", pattern: "^[a-z]+$" }],
  ["minimum", { type: "integer", minimum: 1 }],
  ["maximum", { type: "number", maximum: 10 }],
  ["exclusiveMinimum", { type: "number", exclusiveMinimum: 0 }],
  ["exclusiveMaximum", { type: "integer", exclusiveMaximum: 5 }],
  ["multipleOf", { type: "integer", multipleOf: 3 }],
  ["format", { type: "string", format: "email" }],
  ["allOf", { allOf: [{ type: "integer" }] }],
  ["not", { not: { type: "string" } }],
  ["if", { if: { type: "string" }, else: { maxLength: 2 } }],
  ["patternProperties", { type: "object", patternProperties: { "^a": { type: "integer" } } }],
  ["propertyNames", { type: "object", propertyNames: { maxLength: 2 } }],
  ["uniqueItems", { type: "array", uniqueItems: true }],
  ["contains", { type: "array", contains: { type: "integer" } }],
  ["$ref", { $ref: "#/$defs/missing" }],
  ["$ref", { $ref: "https://example.com/schema.json" }],
  ["required", { type: "object", properties: { a: { type: "integer" } }, required: ["b"] }],
  ["additionalProperties", { type: "object", properties: { a: { type: "integer" } }, additionalProperties: true }],
  ["oneOf", { oneOf: [{ type: "number" }, { type: "integer" }] }],
  ["enum", { type: "string", enum: ["a", 1] }],
  ["$defs", { type: "object", properties: { a: { $defs: { x: { type: "integer" } }, $ref: "#/$defs/x" } } }],
  ["nullable", { type: "string", nullable: true }],
];

async function generate(schema: Record<string, unknown>, seed: number) {
  const res = await s.client.chat.completions.create({
    model: "tiny",
    messages: [{ role: "user", content: "Answer in JSON." }],
    response_format: { type: "json_schema", json_schema: { name: "out", schema } },
    temperature: 1,
    seed,
    max_tokens: 300,
  });
  const choice = res.choices[0];
  return { text: choice?.message.content ?? "", finish: choice?.finish_reason };
}

describe("supported keywords", () => {
  it.each(Object.entries(SUPPORTED))("%s: output validates for every seed", async (_name, schema) => {
    const validate = ajv.compile(schema);
    let complete = 0;
    for (const seed of SEEDS) {
      const { text, finish } = await generate(schema, seed);
      // A reply cut at max_tokens is unfinished, not invalid (free-text keys can run long at
      // temperature 1); a third of them must finish for the row to prove anything.
      if (finish === "length") continue;
      complete++;
      const value = JSON.parse(text);
      expect(validate(value), `seed ${seed}: ${text} ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    expect(complete).toBeGreaterThanOrEqual(SEEDS.length / 3);
  });
});

describe("refused keywords", () => {
  it.each(REFUSED)("%s: a 400 naming it", async (keyword, schema) => {
    const err = await generate(schema, 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(APIError);
    const api = err as APIError;
    expect(api.status).toBe(400);
    expect(api.param).toBe("response_format");
    expect(api.message).toContain(keyword);
  });

  it("names the strict tool whose parameters use a refused keyword", async () => {
    const err = await s.client.chat.completions
      .create({
        model: "tiny",
        messages: [{ role: "user", content: "hi" }],
        tools: [
          { type: "function", function: { name: "ok", parameters: { type: "object", properties: {} } } },
          {
            type: "function",
            function: {
              name: "bad",
              strict: true,
              parameters: { type: "object", properties: { n: { type: "integer", minimum: 0 } } },
            },
          },
        ],
      })
      .then(
        () => undefined,
        (e: unknown) => e as APIError,
      );
    expect(err?.status).toBe(400);
    expect(err?.param).toBe("tools");
    expect(err?.message).toContain("tools[1].function.parameters.properties.n.minimum");
  });

  it("leaves out what it cannot enforce for a tool without strict, and enforces the rest", async () => {
    const parameters = {
      type: "object",
      properties: {
        n: { type: "integer", minimum: 0, format: "int32" },
        site: { type: "string", format: "uri", pattern: "^https://", maxLength: 12 },
        tags: { type: "array", items: { enum: ["a", "b"] }, uniqueItems: true, maxItems: 2 },
      },
      required: ["n", "site", "tags"],
      additionalProperties: true,
    };
    // What the grammar enforces: everything but the value constraints it dropped.
    const structure = {
      type: "object",
      properties: {
        n: { type: "integer" },
        site: { type: "string", maxLength: 12 },
        tags: { type: "array", items: { enum: ["a", "b"] }, maxItems: 2 },
      },
      required: ["n", "site", "tags"],
    };
    const validate = ajv.compile(structure);
    let calls = 0;
    for (const seed of SEEDS) {
      const res = await s.client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: "Call f." }],
        tools: [{ type: "function", function: { name: "f", parameters } }],
        tool_choice: "required",
        temperature: 1,
        seed,
        max_tokens: 150,
      });
      const call = res.choices[0]?.message.tool_calls?.[0];
      if (res.choices[0]?.finish_reason !== "tool_calls" || call?.type !== "function") continue;
      calls++;
      const args = JSON.parse(call.function.arguments);
      expect(validate(args), `seed ${seed}: ${call.function.arguments} ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    expect(calls).toBeGreaterThanOrEqual(SEEDS.length / 3);
  });
});
