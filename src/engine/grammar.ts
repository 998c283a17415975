// Output constraints: JSON mode and JSON Schema become llama.cpp grammars, so the
// model cannot produce text that does not parse (or does not validate).
import { type GbnfJsonSchema, isLlamaText, type Llama, type LlamaGrammar } from "node-llama-cpp";

export type OutputConstraint = { type: "json_object" } | { type: "json_schema"; schema: Record<string, unknown> };

export async function grammarFor(llama: Llama, constraint: OutputConstraint): Promise<LlamaGrammar> {
  if (constraint.type === "json_object") return llama.getGrammarFor("json");
  // The request's schema is arbitrary JSON; node-llama-cpp validates it while building the grammar.
  return llama.createGrammarForJsonSchema(constraint.schema as Readonly<GbnfJsonSchema> as never);
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
