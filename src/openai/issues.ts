// Turns zod issues into one sentence a person can act on. Shared by the API's 400s and
// models.yaml errors so that both read alike: "<path>: expected a number, got "four"".
import { z } from "zod";

type Issue = z.core.$ZodIssue;
type PathKey = PropertyKey;

export interface DescribedIssue {
  /** Full path of the offending value, as keys and indexes. */
  path: PathKey[];
  /** What is wrong with it, without the path. */
  message: string;
}

/** `["messages", 0, "role"]` → `messages[0].role`; the root is the empty string. */
export function formatPath(path: readonly PathKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** `formatPath` followed by the message, or the message alone at the root. */
export function issueLine(described: DescribedIssue): string {
  const at = formatPath(described.path);
  return at === "" ? described.message : `${at}: ${described.message}`;
}

/**
 * Describes one issue. A message set on the schema itself (`{ error: "…" }`, `.refine`) is kept;
 * zod's own English is replaced, because it says "received string" where we can show the value.
 */
export function describeIssue(issue: Issue): DescribedIssue {
  return describeAt([], issue);
}

function describeAt(prefix: PathKey[], issue: Issue): DescribedIssue {
  const path = [...prefix, ...issue.path];
  if (issue.code === "invalid_union" && issue.errors.length > 0 && issue.discriminator === undefined) {
    return describeUnion(path, issue.errors);
  }
  if (hasCustomMessage(issue)) {
    // A pattern's own wording says what is allowed; the value shows what was sent.
    const got = issue.code === "invalid_format" && typeof issue.input === "string" ? `, got ${show(issue.input)}` : "";
    return { path, message: `${issue.message}${got}` };
  }
  return { path, ...ownMessage(issue) };
}

function ownMessage(issue: Issue): { message: string } {
  const got = issue.input === undefined ? "" : `, got ${show(issue.input)}`;
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return { message: `required, expected ${typeLabel(issue.expected)}` };
      if (issue.expected === "int" && typeof issue.input === "number") {
        return { message: `expected an integer${got}` };
      }
      return { message: `expected ${typeLabel(issue.expected)}${got}` };
    case "too_big":
      return {
        message: `${boundPhrase(issue.origin, "at most", issue.maximum, issue.inclusive)}${gotSize(issue.input)}`,
      };
    case "too_small":
      return {
        message: `${boundPhrase(issue.origin, "at least", issue.minimum, issue.inclusive)}${gotSize(issue.input)}`,
      };
    case "invalid_value":
      return { message: `expected ${choiceLabel(issue.values)}${got}` };
    case "invalid_union": {
      // Only a discriminated union reaches here (see describeAt): the discriminator names the choices.
      const options = "options" in issue && issue.options !== undefined ? issue.options : [];
      const value = discriminatorValue(issue.input, issue.discriminator);
      const gotValue = value === undefined ? "" : `, got ${show(value)}`;
      const prefix = value === undefined ? "required, " : "";
      return { message: `${prefix}expected ${choiceLabel(options)}${gotValue}` };
    }
    case "unrecognized_keys":
      return {
        message:
          issue.keys.length === 1
            ? `unknown key "${issue.keys[0]}"`
            : `unknown keys ${issue.keys.map((k) => `"${k}"`).join(", ")}`,
      };
    case "invalid_format":
      if (issue.format === "regex" && issue.pattern !== undefined) {
        return { message: `expected a string matching ${issue.pattern}${got}` };
      }
      return { message: `expected ${issue.format}${got}` };
    case "not_multiple_of":
      return { message: `expected a multiple of ${issue.divisor}${got}` };
    case "invalid_key":
    case "invalid_element": {
      const inner = issue.issues[0];
      return { message: inner === undefined ? "invalid key" : `invalid key, ${describeIssue(inner).message}` };
    }
    default:
      return { message: issue.message };
  }
}

/**
 * A union failed every branch. When the value had the wrong type for all of them, list the
 * types; otherwise the value was meant for one branch (the one that got furthest), so report
 * that branch's first problem: `stop: expected at most 4 items`, not "Invalid input".
 */
function describeUnion(path: PathKey[], branches: Issue[][]): DescribedIssue {
  const isMismatch = (issues: Issue[]) =>
    issues.every((i) => i.path.length === 0 && (i.code === "invalid_type" || i.code === "invalid_value"));
  const near = branches.filter((b) => b.length > 0 && !isMismatch(b));
  if (near.length > 0) {
    const depth = (b: Issue[]) => Math.max(...b.map((i) => i.path.length));
    const best = near.reduce((a, b) => (depth(b) > depth(a) ? b : a));
    const first = best[0] as Issue;
    return describeAt(path, first);
  }
  const labels: string[] = [];
  let input: unknown;
  for (const branch of branches) {
    for (const issue of branch) {
      input ??= issue.input;
      const label =
        issue.code === "invalid_type"
          ? typeLabel(issue.expected)
          : issue.code === "invalid_value"
            ? choiceLabel(issue.values)
            : undefined;
      if (label !== undefined && !labels.includes(label)) labels.push(label);
    }
  }
  const expected = labels.length <= 1 ? (labels[0] ?? "a valid value") : joinOr(labels);
  if (input === undefined) return { path, message: `required, expected ${expected}` };
  return { path, message: `expected ${expected}, got ${show(input)}` };
}

function hasCustomMessage(issue: Issue): boolean {
  if (issue.code === "custom") return true;
  const locale = z.locales.en().localeError;
  if (locale === undefined) return false;
  const standard = locale(issue as Parameters<typeof locale>[0]);
  const text = typeof standard === "string" ? standard : standard?.message;
  return text !== undefined && text !== issue.message;
}

function discriminatorValue(input: unknown, key: string | undefined): unknown {
  if (key === undefined || typeof input !== "object" || input === null) return undefined;
  return (input as Record<string, unknown>)[key];
}

const TYPE_LABELS: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "a boolean",
  array: "an array",
  object: "an object",
  record: "an object",
  tuple: "an array",
  null: "null",
  undefined: "nothing",
  never: "nothing",
};

function typeLabel(expected: string): string {
  return TYPE_LABELS[expected] ?? expected;
}

function choiceLabel(values: readonly unknown[]): string {
  const shown = values.map((v) => (typeof v === "string" ? v : show(v)));
  if (shown.length === 1) return JSON.stringify(values[0]);
  return `one of ${shown.join(", ")}`;
}

function joinOr(labels: string[]): string {
  if (labels.length <= 2) return labels.join(" or ");
  return `${labels.slice(0, -1).join(", ")} or ${labels[labels.length - 1]}`;
}

function boundPhrase(origin: string, word: string, bound: number | bigint, inclusive: boolean | undefined): string {
  const n = Number(bound);
  switch (origin) {
    case "string":
      return n === 1 && word === "at least"
        ? "expected a non-empty string"
        : `expected ${word} ${n} character${n === 1 ? "" : "s"}`;
    case "array":
    case "set":
      return `expected ${word} ${n} item${n === 1 ? "" : "s"}`;
    default: {
      const op = word === "at most" ? (inclusive === false ? "<" : "<=") : inclusive === false ? ">" : ">=";
      return `expected a number ${op} ${n}`;
    }
  }
}

/** For a size bound the size is what matters: "got 5 items", not "got an array". */
function gotSize(input: unknown): string {
  if (Array.isArray(input)) return `, got ${input.length} item${input.length === 1 ? "" : "s"}`;
  if (typeof input === "string") return `, got ${input.length} character${input.length === 1 ? "" : "s"}`;
  return input === undefined ? "" : `, got ${show(input)}`;
}

/** A short rendering of the offending value: scalars as JSON, containers by kind. */
function show(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") {
    const cut = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return JSON.stringify(cut);
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeof value;
}
