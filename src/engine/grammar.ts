// Output constraints: JSON mode and JSON Schema become llama.cpp grammars, so the
// model cannot produce text that does not parse (or does not validate). The schema was
// checked and rewritten by json-schema.ts; grammars are kept by schema digest, because
// parsing one is the slow, synchronous part of building it.
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import {
  type GbnfJsonSchema,
  isLlamaText,
  type Llama,
  type LlamaGrammar,
  LlamaGrammarEvaluationState,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";

export type OutputConstraint = { type: "json_object" } | { type: "json_schema"; schema: Record<string, unknown> };

/**
 * node-llama-cpp's rules that accept more than JSON Schema does, and the exact rule for each.
 * Its integer allows an exponent (`218e-13` is not an integer), its number an exponent of up
 * to 16 digits (1e999 parses as Infinity), its dates the 31st of every month.
 */
const RULES: readonly { name: string; rule: string }[] = [
  { name: "integer-number-rule", rule: '"-"? ("0" | [1-9] [0-9]{0,15})' },
  {
    name: "fractional-number-rule",
    rule: '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
  },
];
const LOOSE_DATE = '[0-9]{4} "-" ("0" [1-9] | "1" [012]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])';
/** Days that exist in every year: the 29th of February only in leap years, so never. */
const EXACT_DATE =
  '[0-9]{4} "-" ((("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])) | (("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30")) | ("02-" ("0" [1-9] | "1" [0-9] | "2" [0-8])))';

/** Replaces the loose rules in node-llama-cpp's GBNF; throws if an upgrade changed them. */
export function exactGbnf(gbnf: string): string {
  let out = gbnf;
  for (const { name, rule } of RULES) {
    out = out.replace(new RegExp(`^${name} ::= .*$`, "m"), `${name} ::= ${rule}`);
  }
  return out.split(LOOSE_DATE).join(EXACT_DATE);
}

export class GrammarCache {
  private readonly grammars: LRUCache<string, Promise<LlamaGrammar>>;

  constructor(
    private readonly llama: Llama,
    max = 64,
  ) {
    this.grammars = new LRUCache({ max });
  }

  /** The grammar for a constraint whose schema json-schema.ts has already checked. */
  get(constraint: OutputConstraint): Promise<LlamaGrammar> {
    const key = createHash("sha256").update(JSON.stringify(constraint)).digest("hex");
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = this.build(constraint);
      this.grammars.set(key, grammar);
      grammar.catch(() => this.grammars.delete(key));
    }
    return grammar;
  }

  /** The GBNF text of a checked schema's grammar, without the run of newlines that ends it. */
  async schemaGbnf(schema: Record<string, unknown>): Promise<string> {
    const base = await this.get({ type: "json_schema", schema });
    return base.grammar.replace(/ "\\n\\n\\n\\n" \[\\n\]\*$/m, "");
  }

  /** A grammar from GBNF text this server composed (tool-formats/grammar.ts). */
  fromGbnf(gbnf: string): Promise<LlamaGrammar> {
    const key = createHash("sha256").update(`gbnf\0${gbnf}`).digest("hex");
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = this.llama.createGrammar({ grammar: gbnf });
      this.grammars.set(key, grammar);
      grammar.catch(() => this.grammars.delete(key));
    }
    return grammar;
  }

  private async build(constraint: OutputConstraint): Promise<LlamaGrammar> {
    const base =
      constraint.type === "json_object"
        ? await this.llama.getGrammarFor("json")
        : await this.llama.createGrammarForJsonSchema(constraint.schema as Readonly<GbnfJsonSchema> as never);
    const gbnf = exactGbnf(base.grammar);
    if (/"format":"date/.test(JSON.stringify(constraint)) && !gbnf.includes(EXACT_DATE)) {
      throw new Error("node-llama-cpp's date grammar changed; update grammar.ts");
    }
    return this.llama.createGrammar({
      grammar: gbnf,
      stopGenerationTriggers: base.stopGenerationTriggers,
      trimWhitespaceSuffix: base.trimWhitespaceSuffix,
    });
  }
}

/** node-llama-cpp's JSON grammars end in a run of newlines that only an end of
 * generation closes; these strings stop generation there instead of at max_tokens. */
export function grammarStops(grammar: LlamaGrammar): string[] {
  return grammar.stopGenerationTriggers
    .map((t) =>
      typeof t === "string" ? t : isLlamaText(t) ? t.toString() : t.filter((p) => typeof p === "string").join(""),
    )
    .filter((s) => s.length > 0);
}

interface GrammarBindings {
  AddonSampler: {
    acceptGrammarEvaluationStateToken(state: unknown, token: Token): void;
    canBeNextTokenForGrammarEvaluationState(state: unknown, token: Token): boolean;
  };
}

/**
 * A grammar state that has already read `text`: for a lazy grammar whose trigger ended inside a
 * token, the rest of that token was sampled free and must count as the grammar's first text.
 * node-llama-cpp accepts text into a state only token by token, through internal bindings (the
 * version is pinned in package.json); the grammar reads a token's text, so any tokenization of
 * `text` gives the same state. Undefined when the bindings are not there or the grammar cannot
 * start with `text`: the caller then leaves the output unconstrained, as before.
 */
export function grammarStateAfter(
  model: LlamaModel,
  grammar: LlamaGrammar,
  text: string,
): LlamaGrammarEvaluationState | undefined {
  const state = new LlamaGrammarEvaluationState({ model, grammar });
  const internal = state as unknown as { _llama?: { _bindings?: GrammarBindings }; _state?: unknown };
  const sampler = internal._llama?._bindings?.AddonSampler;
  if (typeof sampler?.acceptGrammarEvaluationStateToken !== "function") return undefined;
  for (const token of model.tokenize(text, false)) {
    if (!sampler.canBeNextTokenForGrammarEvaluationState(internal._state, token)) return undefined;
    try {
      sampler.acceptGrammarEvaluationStateToken(internal._state, token);
    } catch {
      return undefined;
    }
  }
  return state;
}
