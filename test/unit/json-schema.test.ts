// The bounds on a schema's size (#21 item 1): each is a refusal that names the limit.
import { describe, expect, it } from "vitest";
import { grammarSchema, SCHEMA_LIMITS } from "../../src/engine/json-schema.ts";

const where = "response_format.json_schema.schema";

describe("schema size limits", () => {
  it("accepts up to 1,000 enum and const values and refuses more, naming the limit", () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => i);
    expect(() => grammarSchema({ enum: values(1000) }, where)).not.toThrow();
    expect(() =>
      grammarSchema({ type: "object", properties: { a: { enum: values(1000) }, b: { const: 1 } } }, where),
    ).toThrow(/properties\.b\.const: more than 1000 enum and const values in the schema; the limit is 1000/);
  });

  it("refuses nesting deeper than the limit, naming it", () => {
    let schema: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < SCHEMA_LIMITS.maxDepth; i++) schema = { type: "array", items: schema };
    expect(() => grammarSchema(schema, where)).not.toThrow();
    expect(() => grammarSchema({ type: "array", items: schema }, where)).toThrow(/the limit is 64/);
  });

  it("refuses a schema over the byte limit before reading it", () => {
    const big = { type: "string", description: "x".repeat(SCHEMA_LIMITS.maxBytes) };
    expect(() => grammarSchema(big, where)).toThrow(/bytes of JSON; the limit is 65536 bytes/);
  });

  it("rewrites what node-llama-cpp reads differently", () => {
    expect(grammarSchema({ type: ["integer", "null"] }, where)).toEqual({
      oneOf: [{ type: "integer" }, { type: "null" }],
    });
    expect(grammarSchema({ definitions: { a: { type: "boolean" } }, $ref: "#/definitions/a" }, where)).toEqual({
      $ref: "#/$defs/a",
      $defs: { a: { type: "boolean" } },
    });
  });
});

describe("property names", () => {
  it("keeps a property named __proto__ as a property", () => {
    const schema = JSON.parse(
      '{"type":"object","properties":{"__proto__":{"type":"integer"}},"required":["__proto__"]}',
    );
    const out = grammarSchema(schema, where);
    expect(Object.keys(out.properties as object)).toEqual(["__proto__"]);
  });
});
