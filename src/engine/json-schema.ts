// The JSON Schema subset that a grammar enforces exactly. A request's schema is checked keyword
// by keyword and rewritten into the form node-llama-cpp's grammar builder reads; anything it
// would ignore or enforce loosely (pattern, minimum, most formats, a $ref it cannot resolve) is
// refused, naming the keyword, so a 200 always carries output that validates. Schemas are also
// bounded in size: the grammar built from one is parsed and copied on the event loop, in time
// that grows faster than the schema (a 20,000-value enum: ~1 s to parse, more to copy per request).
//
// Supported (README.md "Structured outputs" has the table):
//   type (one name or a list), enum, const, anyOf, oneOf (branches that cannot both match),
//   $ref to #/$defs/NAME or #/definitions/NAME at the root, $defs / definitions at the root;
//   object: properties, required (of the listed properties), additionalProperties (false, or for
//     an object without properties true or a schema), maxProperties, minProperties (up to the
//     number of properties: every listed property is always generated);
//   array: items, prefixItems, minItems, maxItems, uniqueItems: false;
//   string: minLength, maxLength, or format date-time | date | time;
//   annotations anywhere: title, description, default, examples, $comment, $schema, $id,
//     deprecated, readOnly, writeOnly.

export interface SchemaLimits {
  /** Bytes of the schema as JSON. */
  maxBytes: number;
  /** enum values (and const) in the whole schema; OpenAI's own limit is 1,000. */
  maxEnumValues: number;
  /** Nesting of subschemas. */
  maxDepth: number;
}

export const SCHEMA_LIMITS: SchemaLimits = { maxBytes: 64 * 1024, maxEnumValues: 1000, maxDepth: 64 };

/** Why a schema was refused: the keyword, where it is, and what to do instead. */
export class SchemaRefusal extends Error {
  override readonly name = "SchemaRefusal";
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };
type Primitive = null | boolean | number | string;

const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$comment",
  "$schema",
  "$id",
  "deprecated",
  "readOnly",
  "writeOnly",
]);
const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
const FORMATS = new Set(["date-time", "date", "time"]);
const KEYWORDS_OF: Record<string, readonly string[]> = {
  object: ["properties", "required", "additionalProperties", "minProperties", "maxProperties"],
  array: ["items", "prefixItems", "minItems", "maxItems", "uniqueItems"],
  string: ["minLength", "maxLength", "format"],
  number: [],
  integer: [],
  boolean: [],
  null: [],
};
/** What to tell a client that sent a keyword no grammar here enforces. */
const REFUSED: Record<string, string> = {
  pattern: "a grammar cannot enforce a regular expression here; use enum, or check the value yourself",
  patternProperties: "use properties with the names listed",
  minimum: "numeric bounds are not enforced; use enum for a small range, or check the value yourself",
  maximum: "numeric bounds are not enforced; use enum for a small range, or check the value yourself",
  exclusiveMinimum: "numeric bounds are not enforced; use enum for a small range, or check the value yourself",
  exclusiveMaximum: "numeric bounds are not enforced; use enum for a small range, or check the value yourself",
  multipleOf: "numeric constraints are not enforced",
  allOf: "merge the subschemas into one",
  not: "negation cannot be enforced by a grammar",
  if: "conditional subschemas are not enforced; use anyOf",
  uniqueItems: "only uniqueItems: false is supported",
  nullable: 'nullable is not JSON Schema; use "type": ["…", "null"] or anyOf',
};

export interface SchemaOptions {
  limits?: SchemaLimits;
  /**
   * A tool's parameters without `strict: true`: like OpenAI's non-strict function calling, value
   * constraints no grammar enforces (LOOSE) are left out rather than refused, so common tool
   * schemas work; their structure (types, properties, enums) is still enforced.
   */
  lenient?: boolean;
}

/** Dropped in lenient mode; refused otherwise. */
const LOOSE = new Set([
  "pattern",
  "patternProperties",
  "propertyNames",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "uniqueItems",
  "contains",
  "minContains",
  "maxContains",
  "nullable",
]);

/**
 * Checks `schema` (at `where`, for messages: `response_format.json_schema.schema`) and returns the
 * equivalent schema node-llama-cpp builds a grammar from. Throws SchemaRefusal.
 */
export function grammarSchema(schema: unknown, where: string, options: SchemaOptions = {}): Schema {
  const limits = options.limits ?? SCHEMA_LIMITS;
  const bytes = Buffer.byteLength(JSON.stringify(schema) ?? "");
  if (bytes > limits.maxBytes) {
    throw new SchemaRefusal(
      `${where} is ${bytes} bytes of JSON; the limit is ${limits.maxBytes} bytes (a grammar is built from it for every request).`,
    );
  }
  if (!isObject(schema)) throw new SchemaRefusal(`${where} must be a JSON Schema object.`);
  const checker = new Checker(schema, where, limits, options.lenient ?? false);
  return checker.root();
}

class Checker {
  private enumValues = 0;
  private readonly defs: Record<string, Json>;

  constructor(
    private readonly rootSchema: Schema,
    private readonly where: string,
    private readonly limits: SchemaLimits,
    private readonly lenient: boolean,
  ) {
    this.defs = {
      ...asDefs(rootSchema.definitions, where, "definitions"),
      ...asDefs(rootSchema.$defs, where, "$defs"),
    };
  }

  root(): Schema {
    const out = this.node(this.rootSchema, "", 0, true);
    // fromEntries, not assignment: a name such as __proto__ stays a name.
    const defs: Record<string, Json> = Object.fromEntries(
      Object.entries(this.defs).map(([name, def]) => [name, this.node(def, `.$defs.${name}`, 1, false)]),
    );
    return Object.keys(defs).length > 0 ? { ...out, $defs: defs } : out;
  }

  private refuse(path: string, message: string): never {
    throw new SchemaRefusal(`${this.where}${path}: ${message}`);
  }

  private node(value: Json | undefined, path: string, depth: number, isRoot: boolean): Schema {
    if (depth > this.limits.maxDepth) {
      this.refuse(path, `nested more than ${this.limits.maxDepth} levels deep; the limit is ${this.limits.maxDepth}.`);
    }
    if (value === true) return {};
    if (value === false) this.refuse(path, "the schema false accepts nothing, so nothing can be generated.");
    if (!isObject(value)) this.refuse(path, "expected a JSON Schema object.");
    const schema = value;
    const keys = Object.keys(schema).filter(
      (k) => !ANNOTATIONS.has(k) && !(isRoot && (k === "$defs" || k === "definitions")),
    );
    for (const k of ["$defs", "definitions"]) {
      if (!isRoot && k in schema) this.refuse(path, `${k} is supported at the root of the schema only.`);
    }
    const description: Schema = typeof schema.description === "string" ? { description: schema.description } : {};

    if ("$ref" in schema) {
      this.only(keys, ["$ref"], path);
      return { ...description, $ref: this.ref(schema.$ref, `${path}.$ref`) };
    }
    for (const union of ["anyOf", "oneOf"] as const) {
      if (!(union in schema)) continue;
      this.only(keys, [union], path);
      const branches = schema[union];
      if (!Array.isArray(branches) || branches.length === 0)
        this.refuse(`${path}.${union}`, "expected a non-empty array of schemas.");
      const out = branches.map((b, i) => this.node(b, `${path}.${union}[${i}]`, depth + 1, false));
      if (union === "oneOf" && !this.lenient) this.disjoint(out, `${path}.oneOf`);
      // A grammar's alternatives are anyOf; node-llama-cpp spells it oneOf.
      return { ...description, oneOf: out };
    }
    if ("const" in schema || "enum" in schema) {
      this.only(keys, ["const", "enum", "type"], path);
      const values = "const" in schema ? [schema.const as Json] : schema.enum;
      const key = "const" in schema ? "const" : "enum";
      if (!Array.isArray(values) || values.length === 0)
        this.refuse(`${path}.enum`, "expected a non-empty array of values.");
      this.enumValues += values.length;
      if (this.enumValues > this.limits.maxEnumValues) {
        this.refuse(
          `${path}.${key}`,
          `more than ${this.limits.maxEnumValues} enum and const values in the schema; the limit is ${this.limits.maxEnumValues}.`,
        );
      }
      const types = schema.type === undefined ? undefined : this.types(schema.type, `${path}.type`);
      values.forEach((v, i) => {
        if (v !== null && typeof v === "object") {
          this.refuse(
            `${path}.${key}${key === "enum" ? `[${i}]` : ""}`,
            "only strings, numbers, booleans and null are supported as enum and const values.",
          );
        }
        if (types && !types.some((t) => typeOf(v) === t || (t === "number" && typeof v === "number"))) {
          this.refuse(`${path}.${key}`, `the value ${JSON.stringify(v)} is not of type ${types.join(" or ")}.`);
        }
      });
      return key === "const" ? { ...description, const: values[0] as Primitive } : { ...description, enum: values };
    }

    const inferred = schema.type ?? inferType(schema);
    if (inferred === undefined) {
      this.only(keys, [], path);
      // Any value validates; node-llama-cpp generates null for it.
      return { ...description };
    }
    const types = this.types(inferred, `${path}.type`);
    if (types.length > 1) {
      // One branch per type, each with the keywords that apply to it: a union, as anyOf.
      const branches = types.map((t) => {
        const own = Object.fromEntries(Object.entries(schema).filter(([k]) => KEYWORDS_OF[t]?.includes(k)));
        return this.typed(t, own, path, depth);
      });
      this.only(keys, ["type", ...types.flatMap((t) => KEYWORDS_OF[t] ?? [])], path);
      return { ...description, oneOf: branches };
    }
    const type = types[0] as string;
    this.only(keys, ["type", ...(KEYWORDS_OF[type] ?? [])], path, type);
    return { ...description, ...this.typed(type, schema, path, depth) };
  }

  /** One type's schema; its keywords were checked against the type by the caller. */
  private typed(type: string, schema: Schema, path: string, depth: number): Schema {
    switch (type) {
      case "object":
        return this.object(schema, path, depth);
      case "array":
        return this.array(schema, path, depth);
      case "string":
        return this.string(schema, path);
      default:
        return { type };
    }
  }

  private object(schema: Schema, path: string, depth: number): Schema {
    const props = schema.properties ?? {};
    if (!isObject(props)) this.refuse(`${path}.properties`, "expected an object of schemas.");
    const properties: Record<string, Json> = Object.fromEntries(
      Object.entries(props).map(([name, sub]) => [
        name,
        this.node(sub, `${path}.properties.${name}`, depth + 1, false),
      ]),
    );
    const names = Object.keys(properties);
    const required = schema.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) {
      this.refuse(`${path}.required`, "expected an array of property names.");
    }
    for (const r of required) {
      if (!names.includes(r as string)) {
        this.refuse(
          `${path}.required`,
          `"${r}" is required but not in properties; every required property must be listed in properties.`,
        );
      }
    }
    const out: Schema = { type: "object", properties, required: required as string[] };
    const extra = schema.additionalProperties;
    if (extra !== undefined && extra !== false && !(this.lenient && names.length > 0)) {
      if (names.length > 0) {
        this.refuse(
          `${path}.additionalProperties`,
          "is supported as false only when properties are listed (every listed property is generated; other keys could repeat one of them). Leave it out or set it to false.",
        );
      }
      out.additionalProperties =
        extra === true ? true : this.node(extra, `${path}.additionalProperties`, depth + 1, false);
    }
    const min = this.count(schema.minProperties, `${path}.minProperties`);
    const max = this.count(schema.maxProperties, `${path}.maxProperties`);
    if (min !== undefined && min > names.length) {
      this.refuse(
        `${path}.minProperties`,
        `is supported up to the number of listed properties (${names.length}), which are always generated.`,
      );
    }
    if (max !== undefined && max < names.length) {
      this.refuse(
        `${path}.maxProperties`,
        `is ${max}, fewer than the ${names.length} listed properties, which are always generated.`,
      );
    }
    if (max !== undefined) out.maxProperties = max;
    return out;
  }

  private array(schema: Schema, path: string, depth: number): Schema {
    const out: Schema = { type: "array" };
    if (schema.uniqueItems !== undefined && schema.uniqueItems !== false && !this.lenient)
      this.refuse(`${path}.uniqueItems`, REFUSED.uniqueItems as string);
    if (schema.items !== undefined) {
      if (Array.isArray(schema.items) || schema.items === false) {
        this.refuse(`${path}.items`, "is supported as one schema for every item; use prefixItems for a tuple.");
      }
      out.items = this.node(schema.items, `${path}.items`, depth + 1, false);
    }
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) this.refuse(`${path}.prefixItems`, "expected an array of schemas.");
      out.prefixItems = schema.prefixItems.map((s, i) => this.node(s, `${path}.prefixItems[${i}]`, depth + 1, false));
    }
    const min = this.count(schema.minItems, `${path}.minItems`);
    const max = this.count(schema.maxItems, `${path}.maxItems`);
    const prefix = Array.isArray(out.prefixItems) ? out.prefixItems.length : 0;
    if (max !== undefined && (max < prefix || (min !== undefined && max < min))) {
      this.refuse(`${path}.maxItems`, `is ${max}, fewer than minItems or prefixItems require; no array could match.`);
    }
    if (min !== undefined) out.minItems = min;
    if (max !== undefined) out.maxItems = max;
    return out;
  }

  private string(schema: Schema, path: string): Schema {
    const enforced =
      typeof schema.format === "string" &&
      FORMATS.has(schema.format) &&
      schema.minLength === undefined &&
      schema.maxLength === undefined;
    if (schema.format !== undefined && !(this.lenient && !enforced)) {
      if (typeof schema.format !== "string" || !FORMATS.has(schema.format)) {
        this.refuse(
          `${path}.format`,
          `format ${JSON.stringify(schema.format)} is not supported; supported: date-time, date, time.`,
        );
      }
      if (schema.minLength !== undefined || schema.maxLength !== undefined) {
        this.refuse(`${path}.format`, "format cannot be combined with minLength or maxLength.");
      }
      return { type: "string", format: schema.format };
    }
    const out: Schema = { type: "string" };
    const min = this.count(schema.minLength, `${path}.minLength`);
    const max = this.count(schema.maxLength, `${path}.maxLength`);
    if (min !== undefined && max !== undefined && max < min) {
      this.refuse(`${path}.maxLength`, `is ${max}, less than minLength ${min}; no string could match.`);
    }
    if (min !== undefined) out.minLength = min;
    if (max !== undefined) out.maxLength = max;
    return out;
  }

  private count(value: Json | undefined, path: string): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 100_000) {
      this.refuse(path, "expected a whole number from 0 to 100000.");
    }
    return value;
  }

  private types(value: Json, path: string): string[] {
    const list = Array.isArray(value) ? value : [value];
    if (list.length === 0) this.refuse(path, "expected a type name or a non-empty list of them.");
    for (const t of list) {
      if (typeof t !== "string" || !TYPES.has(t)) {
        this.refuse(path, `unknown type ${JSON.stringify(t)}; expected one of ${[...TYPES].join(", ")}.`);
      }
    }
    return [...new Set(list as string[])];
  }

  private ref(value: Json | undefined, path: string): string {
    const match = typeof value === "string" ? /^#\/(\$defs|definitions)\/([^/~]+)$/.exec(value) : null;
    if (!match)
      this.refuse(
        path,
        `${JSON.stringify(value)} cannot be resolved; only "#/$defs/NAME" (or "#/definitions/NAME") at the root of the schema is supported.`,
      );
    const name = match[2] as string;
    if (!(name in this.defs))
      this.refuse(path, `${JSON.stringify(value)} cannot be resolved: there is no definition "${name}".`);
    return `#/$defs/${name}`;
  }

  /** Every keyword of `schema` other than annotations must be one of `allowed`. */
  private only(keys: readonly string[], allowed: readonly string[], path: string, type?: string): void {
    for (const k of keys) {
      if (allowed.includes(k) || (this.lenient && LOOSE.has(k))) continue;
      const reason = REFUSED[k];
      if (reason) this.refuse(`${path}.${k}`, `${k} is not supported: ${reason}.`);
      if (type && isTypeKeyword(k)) this.refuse(`${path}.${k}`, `${k} does not apply to type ${type}.`);
      this.refuse(
        `${path}.${k}`,
        `${k} is not supported here (supported keywords: see the structured outputs table in the README).`,
      );
    }
  }

  /** oneOf means exactly one: refused unless no generated value can match two branches. */
  private disjoint(branches: Schema[], path: string): void {
    for (let i = 0; i < branches.length; i++) {
      for (let j = i + 1; j < branches.length; j++) {
        if (!this.exclusive(branches[i] as Schema, branches[j] as Schema)) {
          this.refuse(
            path,
            `branches ${i} and ${j} may both match one value, which oneOf forbids; use anyOf, or make the branches differ by type, by const or enum values, or by a required property.`,
          );
        }
      }
    }
  }

  private exclusive(a: Schema, b: Schema): boolean {
    const ka = this.kinds(a);
    const kb = this.kinds(b);
    if (ka === "any" || kb === "any") return false;
    if (![...ka].some((k) => kb.has(k))) return true;
    const va = this.literals(a);
    const vb = this.literals(b);
    if (va && vb) return !va.some((v) => vb.some((w) => v === w));
    if (ka.size === 1 && kb.size === 1 && ka.has("object"))
      return this.objectsExclusive(this.resolve(a), this.resolve(b));
    return false;
  }

  /** Generated objects carry exactly their listed properties (module comment). */
  private objectsExclusive(a: Schema, b: Schema): boolean {
    return this.objectFails(a, b) && this.objectFails(b, a);
  }

  /** Whether every object generated from `a` fails `b`: it lacks a key `b` requires, or has a value `b` forbids. */
  private objectFails(a: Schema, b: Schema): boolean {
    const pa = isObject(a.properties) ? a.properties : {};
    const pb = isObject(b.properties) ? b.properties : {};
    const required = Array.isArray(b.required) ? b.required : [];
    if (a.additionalProperties === undefined && required.some((k) => typeof k === "string" && !(k in pa))) return true;
    return Object.keys(pa).some((k) => {
      const x = isObject(pa[k]) ? this.literals(pa[k]) : undefined;
      const y = isObject(pb[k]) ? this.literals(pb[k]) : undefined;
      return x !== undefined && y !== undefined && !x.some((v) => y.includes(v));
    });
  }

  private resolve(s: Schema, seen = 0): Schema {
    if (typeof s.$ref === "string" && seen < 16) {
      const def = this.defs[s.$ref.slice("#/$defs/".length)];
      return isObject(def) ? this.resolve(def, seen + 1) : {};
    }
    return s;
  }

  private literals(s: Schema): Primitive[] | undefined {
    const r = this.resolve(s);
    if ("const" in r) return [r.const as Primitive];
    if (Array.isArray(r.enum)) return r.enum as Primitive[];
    return undefined;
  }

  private kinds(s: Schema): Set<string> | "any" {
    const r = this.resolve(s);
    const literals = this.literals(r);
    if (literals) return new Set(literals.map((v) => (typeof v === "number" ? "number" : typeOf(v))));
    if (Array.isArray(r.oneOf)) {
      const all = new Set<string>();
      for (const b of r.oneOf) {
        const k = isObject(b) ? this.kinds(b) : "any";
        if (k === "any") return "any";
        for (const x of k) all.add(x);
      }
      return all;
    }
    if (typeof r.type === "string") return new Set([r.type === "integer" ? "number" : r.type]);
    return "any";
  }
}

function asDefs(value: Json | undefined, where: string, key: string): Record<string, Json> {
  if (value === undefined) return {};
  if (!isObject(value)) throw new SchemaRefusal(`${where}.${key}: expected an object of schemas.`);
  return value;
}

function isObject(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function typeOf(v: Json): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function isTypeKeyword(k: string): boolean {
  return Object.values(KEYWORDS_OF).some((list) => list.includes(k)) || k in REFUSED;
}

/** A schema without `type` whose keywords name one (properties → object), as clients often write. */
function inferType(schema: Schema): string | undefined {
  if (["properties", "required", "additionalProperties"].some((k) => k in schema)) return "object";
  if (["items", "prefixItems"].some((k) => k in schema)) return "array";
  return undefined;
}
