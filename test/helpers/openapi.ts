// Checks a value against a schema of OpenAI's published spec (test/fixtures/openai-openapi), so
// tests prove "shaped as OpenAI's X" against the source rather than against our own reading of it.
//
//   assertMatchesSchema("CreateChatCompletionResponse", body);
//
// The spec is OpenAPI 3.1 with leftover 3.0 idioms, which are rewritten to JSON Schema 2020-12
// here (nullable, boolean exclusiveMinimum, $recursiveRef); vendor keywords (x-oaiMeta,
// x-stainless-*, discriminator, example) are ignored.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ajv2020Module, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import ajvFormatsModule from "ajv-formats";
import { parse } from "yaml";

// ajv ships CommonJS with `exports.default`; under NodeNext the class is that property.
const Ajv2020 = ajv2020Module.default;
const addFormats = ajvFormatsModule.default;

const SPEC_FILE = fileURLToPath(new URL("../fixtures/openai-openapi/openapi.yaml", import.meta.url));
const SPEC_ID = "openai-openapi";

type Json = unknown;
type JsonObject = { [key: string]: Json };

interface Spec {
  ajv: InstanceType<typeof Ajv2020>;
  names: Set<string>;
  validators: Map<string, ValidateFunction>;
}

// Parsing the 3 MB spec takes over a second: once per process.
let spec: Spec | undefined;

function loadSpec(): Spec {
  if (spec !== undefined) return spec;
  const document = parse(readFileSync(SPEC_FILE, "utf8"), { maxAliasCount: -1 }) as {
    components: { schemas: Record<string, Json> };
  };
  const schemas: JsonObject = {};
  for (const [name, schema] of Object.entries(document.components.schemas)) {
    schemas[name] = convert(schema, name);
  }
  // strict: false makes Ajv skip the keywords it does not know instead of refusing the schema.
  const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
  addFormats(ajv);
  // Formats the spec uses only as documentation of a number's or string's encoding.
  for (const format of ["unixtime", "int64", "int32", "double", "float", "binary"]) ajv.addFormat(format, true);
  ajv.addSchema({ $id: SPEC_ID, components: { schemas } });
  spec = { ajv, names: new Set(Object.keys(schemas)), validators: new Map() };
  return spec;
}

function validatorFor(name: string): ValidateFunction {
  const loaded = loadSpec();
  const cached = loaded.validators.get(name);
  if (cached !== undefined) return cached;
  if (!loaded.names.has(name)) throw new Error(`No schema named "${name}" in components.schemas of the OpenAI spec`);
  const validate = loaded.ajv.getSchema(`${SPEC_ID}#/components/schemas/${name}`);
  if (validate === undefined) throw new Error(`Ajv could not compile components.schemas.${name}`);
  loaded.validators.set(name, validate);
  return validate;
}

/** The problems of `value` against `components.schemas[name]`, one readable line each; empty when it matches. */
export function schemaErrors(name: string, value: unknown): string[] {
  const validate = validatorFor(name);
  if (validate(value)) return [];
  return formatErrors(validate.errors ?? []);
}

/** Throws, listing every mismatch with its path, unless `value` matches the named schema. */
export function assertMatchesSchema(name: string, value: unknown): void {
  const errors = schemaErrors(name, value);
  if (errors.length === 0) return;
  const shown = errors.slice(0, 20).map((e) => `  ${e}`);
  if (errors.length > 20) shown.push(`  … and ${errors.length - 20} more`);
  throw new Error(`Value does not match OpenAI schema ${name}:\n${shown.join("\n")}`);
}

function formatErrors(errors: ErrorObject[]): string[] {
  const lines = errors.map((e) => {
    const where = e.instancePath === "" ? "(root)" : e.instancePath;
    const extra =
      e.keyword === "additionalProperties"
        ? ` "${String(e.params.additionalProperty)}"`
        : e.keyword === "enum"
          ? ` ${JSON.stringify(e.params.allowedValues)}`
          : e.keyword === "const"
            ? ` ${JSON.stringify(e.params.allowedValue)}`
            : "";
    return `${where}: ${e.message ?? e.keyword}${extra} (schema ${e.schemaPath})`;
  });
  return [...new Set(lines)];
}

// --- OpenAPI 3.0 leftovers → JSON Schema 2020-12 ------------------------------------------------

// Where a schema holds subschemas; everything else (enum, example, default, x-*) is data and is
// left alone, so a property that happens to be called "nullable" is never rewritten.
const SCHEMA_MAPS = ["properties", "patternProperties", "$defs", "definitions"];
const SCHEMA_LISTS = ["allOf", "anyOf", "oneOf", "prefixItems"];
const SCHEMA_SINGLES = ["items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"];

function convert(node: Json, componentName: string): Json {
  if (node === null || typeof node !== "object" || Array.isArray(node)) return node;
  const source = node as JsonObject;
  const out: JsonObject = { ...source };

  for (const key of SCHEMA_MAPS) {
    const map = source[key];
    if (isObject(map)) {
      out[key] = Object.fromEntries(Object.entries(map).map(([k, v]) => [k, convert(v, componentName)]));
    }
  }
  for (const key of SCHEMA_LISTS) {
    const list = source[key];
    if (Array.isArray(list)) out[key] = list.map((v) => convert(v, componentName));
  }
  for (const key of SCHEMA_SINGLES) {
    const child = source[key];
    if (isObject(child)) out[key] = convert(child, componentName);
  }

  // 2019-09 recursion: the only anchor in the spec is on the component itself.
  if (out.$recursiveRef === "#") {
    delete out.$recursiveRef;
    out.$ref = `#/components/schemas/${componentName}`;
  }
  delete out.$recursiveAnchor;

  for (const [bound, limit] of [
    ["exclusiveMinimum", "minimum"],
    ["exclusiveMaximum", "maximum"],
  ] as const) {
    if (typeof out[bound] === "boolean") {
      if (out[bound] === true && typeof out[limit] === "number") {
        out[bound] = out[limit];
        delete out[limit];
      } else {
        delete out[bound];
      }
    }
  }

  if (out.nullable === true) {
    delete out.nullable;
    return makeNullable(out);
  }
  delete out.nullable;
  return out;
}

function makeNullable(schema: JsonObject): JsonObject {
  const type = schema.type;
  const composite =
    schema.$ref !== undefined || schema.allOf !== undefined || schema.anyOf !== undefined || schema.oneOf !== undefined;
  if (!composite && (typeof type === "string" || Array.isArray(type))) {
    const types = Array.isArray(type) ? type : [type];
    const out: JsonObject = { ...schema, type: types.includes("null") ? types : [...types, "null"] };
    if (Array.isArray(schema.enum) && !schema.enum.includes(null)) out.enum = [...schema.enum, null];
    return out;
  }
  if (!composite && type === undefined) return schema; // no type constraint: null already allowed
  // A $ref or a combinator cannot take "null" into its type: offer null beside it. Annotations
  // stay outside so they still describe the whole.
  const { description, title, default: def, deprecated, ...rest } = schema;
  const out: JsonObject = { anyOf: [rest, { type: "null" }] };
  if (description !== undefined) out.description = description;
  if (title !== undefined) out.title = title;
  if (def !== undefined) out.default = def;
  if (deprecated !== undefined) out.deprecated = deprecated;
  return out;
}

function isObject(value: Json): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
