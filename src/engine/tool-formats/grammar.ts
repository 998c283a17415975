// GBNF for tool calls in a family's own syntax, built from each tool's arguments grammar (the
// JSON Schema grammar of grammar.ts). Lazy use: the parser says where a call begins
// ("constrain") and the provider switches this grammar on from there, so free text is never
// constrained; forced use (tool_choice required or named): the grammar starts at the first
// token and admits only a call (after the thoughts of a family that thinks).
import type { ToolFamily } from "./families.ts";
import { MARKERS, thinks } from "./parser.ts";

export interface ToolGrammarInput {
  name: string;
  /** GBNF of its arguments' JSON Schema, with `root` as the start rule. */
  gbnf: string;
}

/** A GBNF string literal. */
export function literal(text: string): string {
  return `"${text
    .replace(/[\\"]/g, (c) => `\\${c}`)
    .replace(/\n/g, "\\n")
    .replace(/\t/g, "\\t")}"`;
}

/** Renames every rule of `gbnf` with `prefix` (outside string literals and character classes). */
export function prefixRules(gbnf: string, prefix: string): string {
  let out = "";
  let i = 0;
  while (i < gbnf.length) {
    const c = gbnf[i] as string;
    if (c === '"' || c === "[") {
      const close = c === '"' ? '"' : "]";
      let j = i + 1;
      while (j < gbnf.length && gbnf[j] !== close) j += gbnf[j] === "\\" ? 2 : 1;
      out += gbnf.slice(i, j + 1);
      i = j + 1;
    } else if (/[a-zA-Z]/.test(c)) {
      let j = i;
      while (j < gbnf.length && /[a-zA-Z0-9_-]/.test(gbnf[j] as string)) j++;
      out += prefix + gbnf.slice(i, j);
      i = j;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Each tool's arguments grammar as rules `tN-…`, and the rule that starts tool N's arguments. */
function toolRules(tools: readonly ToolGrammarInput[]): string {
  return tools.map((t, i) => prefixRules(t.gbnf.trim(), `t${i}-`)).join("\n");
}

const WS = "ws ::= [ ]?\nnl ::= [ \\n]?";

function argsKey(family: ToolFamily): string {
  return family === "llama3" ? "parameters" : "arguments";
}

/** One call as a JSON object `{"name": …, "arguments": …}`, any of the tools. */
function callObject(family: ToolFamily, tools: readonly ToolGrammarInput[]): string {
  const alts = tools
    .map(
      (t, i) =>
        `${literal(JSON.stringify(t.name))} ws "," ws ${literal(JSON.stringify(argsKey(family)))} ws ":" ws t${i}-root`,
    )
    .join(" | ");
  return `obj ::= "{" ws "\\"name\\"" ws ":" ws ( ${alts} ) ws "}"`;
}

/** Lazy: the rest of a call after its marker. `scope` and `name` come from the parser's event. */
export function lazyCallGbnf(
  family: ToolFamily,
  scope: "call" | "arguments",
  tools: readonly ToolGrammarInput[],
  opts: { name?: string | undefined; parallel: boolean },
): string | undefined {
  if (scope === "arguments") {
    const i = tools.findIndex((t) => t.name === opts.name);
    if (i === -1) return undefined;
    return `root ::= nl t${i}-root\n${WS}\n${toolRules(tools)}`;
  }
  if (family === "mistral") {
    // After `[TOOL_CALLS][`: the array of calls and its closing bracket.
    const more = opts.parallel ? ' ( ws "," ws obj )*' : "";
    return `root ::= ws obj${more} ws "]"\n${callObject(family, tools)}\n${WS}\n${toolRules(tools)}`;
  }
  return `root ::= nl obj nl\n${callObject(family, tools)}\n${WS}\n${toolRules(tools)}`;
}

/** Forced: the whole reply is (thoughts, then) one call, written as the family writes it. */
export function forcedCallGbnf(family: ToolFamily, tools: readonly ToolGrammarInput[]): string {
  const rules = `${WS}\n${toolRules(tools)}`;
  const think = thinks(family) ? `think ::= "<think>" ( [^<] | "<" [^/] | "</" [^t] )* "</think>" [ \\n]*\n` : "";
  const pre = thinks(family) ? "think? " : "";
  const named = (prefix: (name: string) => string, suffix: string) =>
    tools.map((t, i) => `( ${prefix(t.name)} t${i}-root ${suffix} )`).join(" | ");
  switch (family) {
    case "hermes":
    case "qwen3":
      return `root ::= ${pre}${literal(`${MARKERS.hermes.open}\n`)} obj ${literal(`\n${MARKERS.hermes.close}`)}\n${think}${callObject(family, tools)}\n${rules}`;
    case "llama3":
      return `root ::= obj\n${callObject(family, tools)}\n${rules}`;
    case "mistral":
      return `root ::= ${literal(`${MARKERS.mistral.calls}[`)} obj "]"\n${callObject(family, tools)}\n${rules}`;
    case "harmony": {
      const h = MARKERS.harmony;
      return `root ::= ${named((n) => literal(`${h.channel}commentary to=functions.${n} ${h.constrain}json${h.message}`), "")}\n${rules}`;
    }
    case "deepseek-r1": {
      const d = MARKERS.deepseek;
      return `root ::= ${pre}${named(
        (n) => literal(`${d.callsBegin}${d.callBegin}function${d.sep}${n}\n\`\`\`json\n`),
        literal(`\n\`\`\`${d.callEnd}${d.callsEnd}`),
      )}\n${think}${rules}`;
    }
  }
}
