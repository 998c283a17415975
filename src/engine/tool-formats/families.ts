// Which tool-call and reasoning format a model was trained on, told from its chat template
// (the markers it writes), else its architecture or name; and what the `tool_format` and
// `reasoning` settings of models.yaml make of that. Resolved once per model when it loads.

export const TOOL_FAMILIES = ["hermes", "qwen3", "llama3", "mistral", "harmony", "deepseek-r1"] as const;
export type ToolFamily = (typeof TOOL_FAMILIES)[number];

/** models.yaml `tool_format`: auto (detect), native (detect, and fail if none), generic, or a family. */
export type ToolFormatSetting = "auto" | "native" | "generic" | ToolFamily;
export type ReasoningSetting = "auto" | "hide" | "none";

export interface ModelFacts {
  template: string | undefined;
  architecture?: string | undefined;
  name?: string | undefined;
}

/** The family a template's own markers show, else its architecture or name suggests. */
export function detectFamily(facts: ModelFacts): ToolFamily | undefined {
  const t = facts.template ?? "";
  if (t.includes("<|channel|>") && t.includes("<|message|>")) return "harmony";
  if (t.includes("tool\u2581call\u2581begin") || t.includes("tool\u2581calls\u2581begin")) return "deepseek-r1";
  if (t.includes("<tool_call>")) return t.includes("<think>") || t.includes("enable_thinking") ? "qwen3" : "hermes";
  if (t.includes("[TOOL_CALLS]")) return "mistral";
  if (t.includes("<|python_tag|>") || (t.includes("<|start_header_id|>") && t.includes("ipython"))) return "llama3";
  if (t.includes("<\uFF5CAssistant\uFF5C>") && t.includes("</think>")) return "deepseek-r1";
  if (facts.template) return undefined;
  // No template: the architecture and name are a weaker hint.
  const arch = (facts.architecture ?? "").toLowerCase();
  const name = (facts.name ?? "").toLowerCase();
  if (arch === "gpt-oss" || /gpt-oss/.test(name)) return "harmony";
  if (arch === "qwen3" || arch === "qwen3moe") return "qwen3";
  if (arch === "qwen2" || /hermes/.test(name)) return "hermes";
  if (/deepseek.*r1/.test(name)) return "deepseek-r1";
  if (/llama-?3\.[1-9]/.test(name)) return "llama3";
  if (/mistral|mixtral/.test(name) || arch === "mistral") return "mistral";
  return undefined;
}

export interface ResolvedFormat {
  /** undefined: the generic JSON scheme (tool-calls.ts). */
  family: ToolFamily | undefined;
  /** How the family was chosen, for GET /v1/models/{id}. */
  source: "template" | "config" | "generic";
  /** Whether thoughts are parsed out, returned to clients, or not parsed at all. */
  reasoning: ReasoningSetting;
  /** Values of `reasoning_effort` the template can act on; empty: a 400. */
  reasoningEfforts: readonly string[];
}

/** Throws (a config error) when `native` finds no format. */
export function resolveFormat(
  facts: ModelFacts,
  setting: ToolFormatSetting = "auto",
  reasoning: ReasoningSetting = "auto",
): ResolvedFormat {
  let family: ToolFamily | undefined;
  let source: ResolvedFormat["source"];
  if (setting === "generic") {
    family = undefined;
    source = "generic";
  } else if (setting === "auto" || setting === "native") {
    family = detectFamily(facts);
    source = family ? "template" : "generic";
    if (!family && setting === "native") {
      throw new Error(
        `tool_format: native, but the model's chat template shows no known tool-call format (known: ${TOOL_FAMILIES.join(", ")}); name one, or use generic`,
      );
    }
  } else {
    family = setting;
    source = "config";
  }
  return { family, source, reasoning, reasoningEfforts: efforts(family, facts.template ?? "") };
}

function efforts(family: ToolFamily | undefined, template: string): readonly string[] {
  if (family === "harmony") return ["low", "medium", "high"];
  // Qwen 3's template has an `enable_thinking` switch: minimal/none turn thinking off.
  if (template.includes("enable_thinking")) return ["none", "minimal", "low", "medium", "high"];
  return [];
}
