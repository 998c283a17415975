// Local GGUF models through node-llama-cpp. Chat is here: renders the prompt with the model's
// chat template (or its native tool-call format), sizes it against the context, and runs one
// Generation per choice on the model's lock-step driver. Legacy completions are in
// llama-completions.ts, embeddings and rerank in llama-vectors.ts.
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import type { Llama, LlamaGrammar, LlamaModel, Token } from "node-llama-cpp";
import { LOCAL_DEFAULT_OPERATIONS } from "../config/schema.ts";
import {
  type FinishReason as EngineFinish,
  Generation,
  type GenerationEvents,
  type GenerationInput,
  type Sampling,
} from "../engine/generation.ts";
import { GrammarCache, grammarStops, type OutputConstraint } from "../engine/grammar.ts";
import { grammarSchema, SchemaRefusal } from "../engine/json-schema.ts";
import type { LoadedModel, LocalModelSpec, ModelLease, ModelPool } from "../engine/pool.ts";
import { promptBytes, tokenizePrompt } from "../engine/prompt-tokens.ts";
import type { ReasoningSetting, ResolvedFormat, ToolFamily } from "../engine/tool-formats/families.ts";
import { forcedCallGbnf, lazyCallGbnf, prefixRules, type ToolGrammarInput } from "../engine/tool-formats/grammar.ts";
import { thinks } from "../engine/tool-formats/parser.ts";
import { type ChatCompletionRequest, requestedMaxTokens, type Tool, tokenBudgetParam } from "../openai/chat.ts";
import type { EmbeddingRequest } from "../openai/embeddings.ts";
import { contextLengthExceeded, invalidRequest, unsupportedValue } from "../openai/errors.ts";
import type { RerankRequest } from "../openai/rerank.ts";
import type { CompletionRequest } from "../openai/text-completions.ts";
import { EventQueue } from "./event-queue.ts";
import { localCompletion } from "./llama-completions.ts";
import { leased, settle } from "./llama-lease.ts";
import { choiceSampling, completionBudget, samplingFor, stopList } from "./llama-request.ts";
import { localEmbeddings, localRerank } from "./llama-vectors.ts";
import { type NativeGrammars, NativeReply } from "./native-tools.ts";
import { toTemplateMessages } from "./prompt.ts";
import type {
  ChatContext,
  ChatEvent,
  ChatProvider,
  ChatStream,
  EmbeddingResult,
  ModelDescription,
  RerankAnswer,
  TokenUsage,
  ToolFormatInfo,
} from "./provider.ts";
import { newCallId, parseToolReply, planTools, type ToolPlan } from "./tool-calls.ts";

export class LlamaProvider implements ChatProvider {
  /** Asked on every request; a model's file is dated once (a fine-tuned one gets a new id). */
  private readonly descriptions = new Map<string, ModelDescription>();
  private readonly grammars: GrammarCache;

  constructor(
    llama: Llama,
    private readonly pool: ModelPool,
  ) {
    this.grammars = new GrammarCache(llama);
  }

  describe(modelId: string): ModelDescription {
    let description = this.descriptions.get(modelId);
    if (!description) {
      const spec = this.pool.spec(modelId);
      description = {
        digest: fileDigest(spec),
        fingerprint: `fp_${createHash("sha256")
          .update(`${modelId}\0${spec?.path ?? ""}`)
          .digest("hex")
          .slice(0, 10)}`,
        defaultTemperature: spec?.sampling.temperature ?? 1,
        operations: spec?.operations ?? LOCAL_DEFAULT_OPERATIONS,
      };
      if (spec) this.descriptions.set(modelId, description);
    }
    return description;
  }

  embeddings(modelId: string, req: EmbeddingRequest, ctx: ChatContext): Promise<EmbeddingResult> {
    return localEmbeddings(this.pool, modelId, req, ctx);
  }

  rerank(modelId: string, req: RerankRequest, ctx: ChatContext): Promise<RerankAnswer> {
    return localRerank(this.pool, modelId, req, ctx);
  }

  complete(modelId: string, req: CompletionRequest, ctx: ChatContext): Promise<ChatStream> {
    return localCompletion(this.pool, modelId, req, ctx);
  }

  async chat(modelId: string, req: ChatCompletionRequest, ctx: ChatContext): Promise<ChatStream> {
    const spec = this.pool.spec(modelId);
    if (!spec) throw new Error(`model ${modelId} is not a local model`);
    const n = req.n ?? 1;
    if (n > spec.parallel) {
      throw invalidRequest(`n=${n} is more than model ${modelId} can run at once (parallel: ${spec.parallel}).`, "n");
    }
    const format = await this.pool.format(modelId);
    checkReasoningEffort(req, format, modelId);
    if (format?.family) return this.nativeChat(modelId, req, ctx, format.family, format.reasoning);
    const tools = planTools(req);

    // Checked before waiting for a sequence: a schema no grammar can enforce is the client's to fix.
    const constraint = outputConstraint(req, tools);

    const { lease, prepared } = await leased(
      this.pool,
      modelId,
      n,
      ctx.signal,
      (loaded) => this.prepare(loaded, req, tools, constraint),
      // To the sequence that already holds this conversation, if one does.
      (p) => p.prompt,
    );

    const queue = new EventQueue<ChatEvent>();
    const usage = runChoices(
      lease,
      prepared,
      req,
      ctx,
      (index) => {
        let buffered = "";
        return {
          input: { grammar: prepared.grammar },
          text: (text, logprobs) => {
            if (tools) buffered += text;
            else queue.push({ type: "content", index, text, logprobs });
            return undefined;
          },
          end: (finishReason) => {
            // An aborted choice has no finish: nobody reads it, and the cache must not store it.
            if (finishReason === "aborted") return;
            for (const event of this.finishEvents(index, finishReason, tools, buffered)) queue.push(event);
          },
        };
      },
      queue,
    );
    return { events: queue, usage };
  }

  async toolFormat(modelId: string): Promise<ToolFormatInfo | undefined> {
    const format = await this.pool.format(modelId);
    if (!format) return undefined;
    return {
      tool_format: format.family ?? "generic",
      tool_format_source: format.source,
      reasoning: format.reasoning,
      reasoning_efforts: format.reasoningEfforts,
    };
  }

  /**
   * A model with a tool-call format of its own: the template renders the tools and the calls
   * and results of earlier turns; the reply is read by the family's parser as it streams.
   */
  private async nativeChat(
    modelId: string,
    req: ChatCompletionRequest,
    ctx: ChatContext,
    family: ToolFamily,
    reasoning: ReasoningSetting,
  ): Promise<ChatStream> {
    const n = req.n ?? 1;
    const choice = req.tool_choice ?? "auto";
    const toolsOn = (req.tools?.length ?? 0) > 0 && choice !== "none";
    const callable = (req.tools ?? []).filter(
      (t) => typeof choice !== "object" || t.function.name === choice.function.name,
    );
    // Checked before waiting for a sequence: a schema no grammar can enforce is the client's to fix.
    const schemas = toolsOn ? callable.map((t) => toolSchema(t, req.tools ?? [])) : [];
    const answer = outputConstraint({ ...req, tools: undefined }, undefined);

    const { lease, prepared } = await leased(
      this.pool,
      modelId,
      n,
      ctx.signal,
      (loaded) =>
        this.prepareNative(loaded, req, family, {
          toolsOn,
          callable: callable.map((t, i) => ({ name: t.function.name, schema: schemas[i] as Record<string, unknown> })),
          mustCall: toolsOn && (choice === "required" || typeof choice === "object"),
          answer,
        }),
      (p) => p.prompt,
    );

    const queue = new EventQueue<ChatEvent>();
    let reasoningTokens = 0;
    const usage = runChoices(
      lease,
      prepared,
      req,
      ctx,
      (index) => {
        const reply = new NativeReply({
          family,
          index,
          tools: toolsOn,
          startInReasoning: prepared.startInReasoning,
          reasoning,
          parallel: req.parallel_tool_calls !== false,
          grammars: prepared.grammars,
          model: lease.loaded.model,
          vocabularySize: lease.loaded.vocabularySize,
          push: (event) => queue.push(event),
        });
        return {
          input: { grammarState: reply.grammarState, tokenBias: reply.tokenBias, specialTokens: true },
          text: (text, logprobs) => reply.text(text, logprobs),
          end: (finishReason) => {
            reasoningTokens += reply.reasoningTokens;
            if (finishReason !== "aborted") reply.end(finishReason);
          },
        };
      },
      queue,
    );
    return {
      events: queue,
      usage: () => ({
        ...usage(),
        ...(reasoning !== "none" && thinks(family) ? { reasoningTokens } : {}),
        ...(family === "harmony" ? { reasoningTokens } : {}),
      }),
    };
  }

  private async prepareNative(
    loaded: LoadedModel,
    req: ChatCompletionRequest,
    family: ToolFamily,
    opts: {
      toolsOn: boolean;
      callable: { name: string; schema: Record<string, unknown> }[];
      mustCall: boolean;
      answer: Constraint | undefined;
    },
  ): Promise<Prepared & { grammars: NativeGrammars | undefined; startInReasoning: boolean }> {
    const { model, template } = loaded;
    if (req.messages.length > loaded.contextSize) {
      throw contextLengthExceeded(loaded.contextSize, req.messages.length, true);
    }
    const messages = toTemplateMessages(req.messages, {
      templateHasToolRole: true,
      native: { arguments: family === "deepseek-r1" ? "string" : "object" },
    });
    // Tools, call names and arguments are rendered by the template itself, so they are parsed for
    // control tokens with it: none of them may spell one.
    if (opts.toolsOn) refuseControlText(model, JSON.stringify(req.tools), "tools");
    req.messages.forEach((m, i) => {
      if (m.role === "assistant" && m.tool_calls?.length) {
        refuseControlText(model, JSON.stringify(m.tool_calls), `messages[${i}].tool_calls`);
      }
      if (m.role === "tool") refuseControlText(model, m.tool_call_id, `messages[${i}].tool_call_id`);
    });
    const effort = req.reasoning_effort ?? undefined;
    const variables: Record<string, unknown> = {};
    if (opts.toolsOn) variables.tools = req.tools;
    if (effort !== undefined) {
      variables.reasoning_effort = effort;
      variables.enable_thinking = !(effort === "none" || effort === "minimal");
    }
    const parts = template.renderPrompt(messages, variables);
    const textBytes = promptBytes(parts);
    if (textBytes > loaded.contextSize * loaded.maxTokenBytes) {
      throw contextLengthExceeded(loaded.contextSize, Math.ceil(textBytes / loaded.maxTokenBytes), true);
    }
    const prompt = await tokenizePrompt(model, parts);
    const maxTokens = completionBudget(loaded, prompt.length, requestedMaxTokens(req), tokenBudgetParam(req));
    const lastControl = [...parts].reverse().find((p) => p.control)?.text ?? "";
    const startInReasoning = thinks(family) && /<think>\s*$/.test(lastControl);

    let grammars: NativeGrammars | undefined;
    try {
      grammars = await this.nativeGrammars(family, opts, req.parallel_tool_calls !== false);
    } catch (err) {
      if (err instanceof Error && "status" in err) throw err;
      throw unsupportedValue(
        opts.answer && !opts.toolsOn ? opts.answer.param : "tools",
        `this JSON Schema cannot be enforced: ${(err as Error).message}`,
      );
    }
    return {
      prompt,
      maxTokens,
      stop: stopList(req.stop),
      grammar: undefined,
      sampling: samplingFor(req, loaded),
      grammars,
      startInReasoning,
    };
  }

  private async nativeGrammars(
    family: ToolFamily,
    opts: {
      toolsOn: boolean;
      callable: { name: string; schema: Record<string, unknown> }[];
      mustCall: boolean;
      answer: Constraint | undefined;
    },
    parallel: boolean,
  ): Promise<NativeGrammars | undefined> {
    let answerGbnf: string | undefined;
    if (opts.answer) {
      const output = opts.answer.output;
      answerGbnf =
        output.type === "json_schema"
          ? await this.grammars.schemaGbnf(output.schema)
          : await this.grammars.schemaGbnf({ type: "object" });
    }
    if (!opts.toolsOn) {
      return answerGbnf ? { args: new Map(), forced: await this.grammars.fromGbnf(answerGbnf) } : undefined;
    }
    const tools: ToolGrammarInput[] = [];
    for (const t of opts.callable) tools.push({ name: t.name, gbnf: await this.grammars.schemaGbnf(t.schema) });
    const args = new Map<string, LlamaGrammar>();
    for (const t of tools) {
      const gbnf = lazyCallGbnf(family, "arguments", tools, { name: t.name, parallel });
      if (gbnf) args.set(t.name, await this.grammars.fromGbnf(gbnf));
    }
    const call = await this.grammars.fromGbnf(lazyCallGbnf(family, "call", tools, { parallel }) as string);
    let forced: LlamaGrammar | undefined;
    if (opts.mustCall) forced = await this.grammars.fromGbnf(forcedCallGbnf(family, tools));
    else if (answerGbnf) {
      // tools with response_format: a call, or an answer in the format.
      const callRules = prefixRules(forcedCallGbnf(family, tools), "c-");
      const answerRules = prefixRules(answerGbnf, "a-");
      forced = await this.grammars.fromGbnf(`root ::= a-root | c-root\n${answerRules}\n${callRules}`);
    }
    return { call, args, forced };
  }

  private finishEvents(
    index: number,
    reason: EngineFinish,
    tools: ToolPlan | undefined,
    buffered: string,
  ): ChatEvent[] {
    if (!tools) return [{ type: "finish", index, reason }];
    const reply = parseToolReply(buffered.trim(), newCallId);
    if (reply.kind === "calls") {
      return [
        { type: "tool_calls", index, calls: reply.calls },
        { type: "finish", index, reason: "tool_calls" },
      ];
    }
    return [
      { type: "content", index, text: reply.text },
      { type: "finish", index, reason },
    ];
  }

  private async prepare(
    loaded: LoadedModel,
    req: ChatCompletionRequest,
    tools: ToolPlan | undefined,
    constraint: Constraint | undefined,
  ): Promise<Prepared> {
    const { model, template } = loaded;
    // Rendering and tokenizing take time that grows with the request (on the event loop), so a
    // prompt that cannot fit is refused before either: every message renders to at least one token, and no token covers
    // more than maxTokenBytes bytes of the text.
    if (req.messages.length > loaded.contextSize) {
      throw contextLengthExceeded(loaded.contextSize, req.messages.length, true);
    }
    const messages = toTemplateMessages(req.messages, {
      system: tools?.instructions,
      templateHasToolRole: /["']tool["']/.test(template.source),
    });
    // Message content is tokenized as text: only the template's own markers become control tokens.
    const parts = template.renderPrompt(messages);
    const textBytes = promptBytes(parts);
    if (textBytes > loaded.contextSize * loaded.maxTokenBytes) {
      throw contextLengthExceeded(loaded.contextSize, Math.ceil(textBytes / loaded.maxTokenBytes), true);
    }
    const prompt = await tokenizePrompt(model, parts);

    const maxTokens = completionBudget(loaded, prompt.length, requestedMaxTokens(req), tokenBudgetParam(req));

    let grammar: LlamaGrammar | undefined;
    if (constraint) {
      try {
        grammar = await this.grammars.get(constraint.output);
      } catch (err) {
        throw unsupportedValue(constraint.param, `this JSON Schema cannot be enforced: ${(err as Error).message}`);
      }
    }
    return {
      prompt,
      maxTokens,
      stop: [...stopList(req.stop), ...(grammar ? grammarStops(grammar) : [])],
      grammar,
      sampling: samplingFor(req, loaded),
    };
  }
}

/** The sampling parameters chat and legacy completions share, with the model's defaults. */
interface Prepared {
  prompt: Token[];
  maxTokens: number;
  stop: string[];
  grammar: LlamaGrammar | undefined;
  sampling: Sampling;
}

interface Constraint {
  output: OutputConstraint;
  /** The request parameter a refusal names. */
  param: "tools" | "response_format";
}

/**
 * The grammar a request needs, its JSON Schema checked (json-schema.ts): a keyword no grammar
 * enforces, or a schema too large to build one from on the event loop, is a 400 naming it.
 */
function outputConstraint(req: ChatCompletionRequest, tools: ToolPlan | undefined): Constraint | undefined {
  const checked = (schema: unknown, where: string, param: string, lenient = false) => {
    try {
      return grammarSchema(schema, where, { lenient });
    } catch (err) {
      if (err instanceof SchemaRefusal) throw unsupportedValue(param, err.message);
      throw err;
    }
  };
  if (tools) {
    // Each tool's parameters first, so a refusal names the tool; then the reply schema around
    // them. A tool without strict: true gets OpenAI's non-strict treatment (json-schema.ts).
    const all = req.tools ?? [];
    all.forEach((t, i) => {
      if (t.function.parameters) {
        checked(t.function.parameters, `tools[${i}].function.parameters`, "tools", t.function.strict !== true);
      }
    });
    const lenient = all.some((t) => t.function.strict !== true);
    const schema = checked(tools.schema, "the tool-call schema", "tools", lenient);
    return { output: { type: "json_schema", schema }, param: "tools" };
  }
  const format = req.response_format;
  if (!format || format.type === "text") return undefined;
  if (format.type === "json_object") return { output: { type: "json_object" }, param: "response_format" };
  const schema = checked(
    format.json_schema.schema ?? { type: "object" },
    "response_format.json_schema.schema",
    "response_format",
  );
  return { output: { type: "json_schema", schema }, param: "response_format" };
}

/** Once every choice has run: the sequences go back, and the events end (or fail). */
/** One chat choice's part in runChoices: what its generation adds, and how its text and end are handled. */
interface ChoiceRun {
  input: Partial<Pick<GenerationInput, "grammar" | "grammarState" | "tokenBias" | "specialTokens">>;
  text: GenerationEvents["text"];
  end(finishReason: EngineFinish | "aborted"): void;
}

/**
 * Runs choice i of a chat on leased sequence i, all from the same prepared prompt, releasing the
 * lease and ending `queue` once every choice ended; answers the request's usage (the prompt is
 * counted once whatever `n` is, and so is what its first choice found cached).
 */
function runChoices(
  lease: ModelLease,
  prepared: Prepared,
  req: ChatCompletionRequest,
  ctx: ChatContext,
  choice: (index: number) => ChoiceRun,
  queue: EventQueue<ChatEvent>,
): () => TokenUsage {
  let completionTokens = 0;
  let cachedPromptTokens = 0;
  const runs = lease.sequences.map((sequence, index) => {
    const run = choice(index);
    const generation = new Generation(
      lease.loaded.model,
      sequence,
      {
        prompt: prepared.prompt,
        maxTokens: prepared.maxTokens,
        stop: prepared.stop,
        sampling: choiceSampling(prepared.sampling, index),
        topLogprobs: req.logprobs ? (req.top_logprobs ?? 0) : undefined,
        ...run.input,
      },
      {
        text: run.text,
        end: ({ finishReason, completionTokens: count, cachedPromptTokens: cached }) => {
          completionTokens += count;
          if (index === 0) cachedPromptTokens = cached;
          run.end(finishReason);
        },
      },
      ctx.signal,
    );
    return lease.run(sequence, generation);
  });
  settle(runs, lease, queue);
  return () => ({ promptTokens: prepared.prompt.length, completionTokens, cachedPromptTokens });
}

/** Identifies a model's weights, for cache keys: its sha256 pin, else its file's size and mtime. */
function fileDigest(spec: LocalModelSpec | undefined): string {
  if (!spec) return "unknown";
  if (spec.sha256) return spec.sha256;
  try {
    const stat = statSync(spec.path);
    return `${spec.path}:${stat.size}:${Math.floor(stat.mtimeMs)}`;
  } catch {
    return spec.path;
  }
}

/** reasoning_effort where the model's template has a switch for it; a 400 elsewhere. */
function checkReasoningEffort(req: ChatCompletionRequest, format: ResolvedFormat | undefined, modelId: string): void {
  const effort = req.reasoning_effort;
  if (effort === undefined || effort === null) return;
  const allowed = format?.reasoningEfforts ?? [];
  if (allowed.length === 0) {
    throw unsupportedValue(
      "reasoning_effort",
      `model ${modelId} has no reasoning switch in its chat template; leave reasoning_effort out.`,
    );
  }
  if (!allowed.includes(effort)) {
    throw unsupportedValue("reasoning_effort", `model ${modelId} takes reasoning_effort ${allowed.join(", ")}.`);
  }
}

/** A tool's arguments schema, checked as the generic scheme checks it (strict or OpenAI's lenient form). */
function toolSchema(tool: Tool, all: readonly Tool[]): Record<string, unknown> {
  const i = all.indexOf(tool);
  const parameters = tool.function.parameters ?? { type: "object", properties: {} };
  try {
    return grammarSchema(parameters, `tools[${i}].function.parameters`, { lenient: tool.function.strict !== true });
  } catch (err) {
    if (err instanceof SchemaRefusal) throw unsupportedValue("tools", err.message);
    throw err;
  }
}

/** Client text the template renders as its own (tools, calls) may not spell a control token. */
function refuseControlText(model: LlamaModel, text: string, param: string): void {
  if (model.tokenize(text, true).length !== model.tokenize(text, false).length) {
    throw invalidRequest(`${param} contains the text of one of the model's control tokens.`, param);
  }
}
