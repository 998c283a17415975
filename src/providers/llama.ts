// Local GGUF models through node-llama-cpp: renders the prompt with the model's chat
// template, sizes it against the context, and runs one Generation per choice on the
// model's lock-step driver.
import { randomBytes, randomInt } from "node:crypto";
import type { Llama, LlamaGrammar, Token } from "node-llama-cpp";
import { type FinishReason as EngineFinish, Generation, type Sampling } from "../engine/generation.ts";
import { grammarFor, grammarStops, type OutputConstraint } from "../engine/grammar.ts";
import type { LoadedModel, ModelPool } from "../engine/pool.ts";
import { type ChatCompletionRequest, requestedMaxTokens, tokenBudgetParam } from "../openai/chat.ts";
import { completionDoesNotFit, contextLengthExceeded, invalidRequest, unsupportedValue } from "../openai/errors.ts";
import { EventQueue } from "./event-queue.ts";
import { toTemplateMessages } from "./prompt.ts";
import type { ChatContext, ChatEvent, ChatProvider, ChatStream } from "./provider.ts";
import { parseToolReply, planTools, type ToolPlan } from "./tool-calls.ts";

export class LlamaProvider implements ChatProvider {
  constructor(
    private readonly llama: Llama,
    private readonly pool: ModelPool,
  ) {}

  async chat(modelId: string, req: ChatCompletionRequest, ctx: ChatContext): Promise<ChatStream> {
    const spec = this.pool.spec(modelId);
    if (!spec) throw new Error(`model ${modelId} is not a local model`);
    const n = req.n ?? 1;
    if (n > spec.parallel) {
      throw invalidRequest(`n=${n} is more than model ${modelId} can run at once (parallel: ${spec.parallel}).`, "n");
    }
    const tools = planTools(req);
    if (tools && req.response_format && req.response_format.type !== "text") {
      throw invalidRequest(
        "response_format cannot be combined with tools on this server; drop one of them.",
        "response_format",
      );
    }

    const lease = await this.pool.acquire(modelId, n, ctx.signal);
    let prepared: Prepared;
    try {
      prepared = await this.prepare(lease.loaded, req, tools);
    } catch (err) {
      lease.release();
      throw err;
    }

    const queue = new EventQueue<ChatEvent>();
    let completionTokens = 0;
    const runs = lease.sequences.map((sequence, index) => {
      let buffered = "";
      const generation = new Generation(
        lease.loaded.model,
        sequence,
        {
          prompt: prepared.prompt,
          maxTokens: prepared.maxTokens,
          stop: prepared.stop,
          sampling: choiceSampling(prepared.sampling, index),
          grammar: prepared.grammar,
          topLogprobs: req.logprobs ? (req.top_logprobs ?? 0) : undefined,
        },
        {
          text: (text, logprobs) => {
            if (tools) buffered += text;
            else queue.push({ type: "content", index, text, logprobs });
          },
          end: ({ finishReason, completionTokens: count }) => {
            completionTokens += count;
            // An aborted choice has no finish: nobody reads it, and the cache must not store it.
            if (finishReason === "aborted") return;
            for (const event of this.finishEvents(index, finishReason, tools, buffered)) queue.push(event);
          },
        },
        ctx.signal,
      );
      return lease.loaded.driver.run(generation);
    });
    Promise.all(runs).then(
      () => {
        lease.release();
        queue.end();
      },
      (err: unknown) => {
        lease.release();
        queue.fail(err);
      },
    );
    return { events: queue, usage: () => ({ promptTokens: prepared.prompt.length, completionTokens }) };
  }

  private finishEvents(
    index: number,
    reason: EngineFinish,
    tools: ToolPlan | undefined,
    buffered: string,
  ): ChatEvent[] {
    if (!tools) return [{ type: "finish", index, reason }];
    const reply = parseToolReply(buffered.trim(), () => `call_${randomBytes(12).toString("hex")}`);
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
  ): Promise<Prepared> {
    const { model, template, spec } = loaded;
    // Rendering and tokenizing take time that grows with the request (tokenizing text full of
    // special tokens faster than linearly, on the event loop), so a prompt that cannot fit is
    // refused before either: every message renders to at least one token, and no token covers
    // more than maxTokenBytes bytes of the text.
    if (req.messages.length > loaded.contextSize) {
      throw contextLengthExceeded(loaded.contextSize, req.messages.length, true);
    }
    const messages = toTemplateMessages(req.messages, {
      system: tools?.instructions,
      templateHasToolRole: /["']tool["']/.test(template.source),
    });
    const text = template.render(messages);
    const textBytes = Buffer.byteLength(text);
    if (textBytes > loaded.contextSize * loaded.maxTokenBytes) {
      throw contextLengthExceeded(loaded.contextSize, Math.ceil(textBytes / loaded.maxTokenBytes), true);
    }
    const prompt = model.tokenize(text, true);
    const bos = model.tokens.bos;
    if (model.tokens.shouldPrependBosToken && bos !== null && prompt[0] !== bos) prompt.unshift(bos);

    const room = loaded.contextSize - prompt.length;
    const asked = requestedMaxTokens(req);
    if (asked !== undefined && spec.maxTokens !== undefined && asked > spec.maxTokens) {
      const param = req.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens";
      throw invalidRequest(
        `${param} is too large: ${asked}. Model ${spec.id} supports at most ${spec.maxTokens} completion tokens.`,
        param,
      );
    }
    if (room < 1 || (asked !== undefined && asked > room)) {
      throw completionDoesNotFit(loaded.contextSize, prompt.length, asked, tokenBudgetParam(req));
    }
    const maxTokens = Math.min(asked ?? room, spec.maxTokens ?? room, room);

    const constraint = outputConstraint(req, tools);
    let grammar: LlamaGrammar | undefined;
    if (constraint) {
      try {
        grammar = await grammarFor(this.llama, constraint);
      } catch (err) {
        const param = tools ? "tools" : "response_format";
        throw unsupportedValue(param, `this JSON Schema cannot be enforced: ${(err as Error).message}`);
      }
    }
    const stop = typeof req.stop === "string" ? [req.stop] : (req.stop ?? []);
    for (const id of Object.keys(req.logit_bias ?? {})) {
      // An id past the vocabulary would index outside llama.cpp's logits array.
      if (Number(id) >= loaded.vocabularySize) {
        throw invalidRequest(
          `logit_bias: token id ${id} is outside the vocabulary of ${spec.id} (size ${loaded.vocabularySize}).`,
          "logit_bias",
        );
      }
    }
    return {
      prompt,
      maxTokens,
      stop: [...stop.filter((s) => s.length > 0), ...(grammar ? grammarStops(grammar) : [])],
      grammar,
      sampling: {
        temperature: req.temperature ?? spec.sampling.temperature ?? 1,
        // OpenAI's defaults (no truncation) unless the model's config sets its own; this also
        // keeps every candidate in the distribution that top_logprobs reads.
        topP: req.top_p ?? spec.sampling.topP ?? 1,
        topK: spec.sampling.topK ?? 0,
        minP: spec.sampling.minP ?? 0,
        seed: req.seed,
        repeatPenalty: spec.sampling.repeatPenalty,
        presencePenalty: req.presence_penalty,
        frequencyPenalty: req.frequency_penalty,
        logitBias: req.logit_bias
          ? Object.fromEntries(Object.entries(req.logit_bias).map(([k, v]) => [Number(k), v]))
          : undefined,
      },
    };
  }
}

interface Prepared {
  prompt: Token[];
  maxTokens: number;
  stop: string[];
  grammar: LlamaGrammar | undefined;
  sampling: Sampling;
}

function outputConstraint(req: ChatCompletionRequest, tools: ToolPlan | undefined): OutputConstraint | undefined {
  if (tools) return { type: "json_schema", schema: tools.schema };
  const format = req.response_format;
  if (!format || format.type === "text") return undefined;
  if (format.type === "json_object") return { type: "json_object" };
  return { type: "json_schema", schema: format.json_schema.schema ?? { type: "object" } };
}

/** Each choice gets its own seed, so n > 1 gives n samples yet a seeded request repeats exactly. */
function choiceSampling(sampling: Sampling, index: number): Sampling {
  const seed = sampling.seed !== undefined ? sampling.seed + index : randomInt(2 ** 31);
  return { ...sampling, seed };
}
