// Tool calls and thoughts in a model family's own format (engine/tool-formats): one NativeReply
// per choice reads the generated text through the family's parser and turns it into provider
// events as it streams (a call's name first, then its arguments in pieces), and switches the
// lazy tool-call grammar on where a call starts and off where it ends.
import { randomBytes } from "node:crypto";
import { type LlamaGrammar, LlamaGrammarEvaluationState, type LlamaModel, type Token, TokenBias } from "node-llama-cpp";
import { grammarStateAfter } from "../engine/grammar.ts";
import type { ReasoningSetting, ToolFamily } from "../engine/tool-formats/families.ts";
import { type ParseEvent, ToolOutputParser, thinks } from "../engine/tool-formats/parser.ts";
import type { FinishReason, TokenLogprob } from "../openai/chat.ts";
import type { ChatEvent } from "./provider.ts";
import { newCallId } from "./tool-calls.ts";

/** Grammars prepared for one request, before its generation starts. */
export interface NativeGrammars {
  /** For "call"-scoped constraints: a whole JSON call object (any tool). */
  call?: LlamaGrammar | undefined;
  /** For "arguments"-scoped constraints: by tool name. */
  args: ReadonlyMap<string, LlamaGrammar>;
  /** Constrains from the first token (tool_choice required or named, or response_format). */
  forced?: LlamaGrammar | undefined;
}

export interface NativeReplyOptions {
  family: ToolFamily;
  index: number;
  /** Whether calls are parsed (tool_choice none: everything is text). */
  tools: boolean;
  startInReasoning: boolean;
  reasoning: ReasoningSetting;
  /** parallel_tool_calls: false ends the reply after its first call. */
  parallel: boolean;
  grammars: NativeGrammars | undefined;
  model: LlamaModel;
  vocabularySize: number;
  push(event: ChatEvent): void;
}

export class NativeReply {
  private readonly parser: ToolOutputParser;
  private state: LlamaGrammarEvaluationState | undefined;
  private readonly ids = new Map<number, string>();
  private logprobs: TokenLogprob[] | undefined;
  /** Text pieces (≈ tokens) that were thoughts. */
  reasoningTokens = 0;

  constructor(private readonly o: NativeReplyOptions) {
    this.parser = new ToolOutputParser(o.family, { tools: o.tools, startInReasoning: o.startInReasoning });
    if (o.grammars?.forced)
      this.state = new LlamaGrammarEvaluationState({ model: o.model, grammar: o.grammars.forced });
  }

  /** Asked before each token is sampled. */
  readonly grammarState = (): LlamaGrammarEvaluationState | undefined => this.state;

  /** Inside a call's JSON no control token may be sampled: its text would pass the grammar. */
  private inCall = false;
  readonly tokenBias = (): TokenBias | undefined =>
    this.inCall ? controlTokenBan(this.o.model, this.o.vocabularySize) : undefined;

  /** One generated piece; "stop" ends the reply (its first call done, parallel calls off). */
  text(delta: string, logprobs?: TokenLogprob[] | undefined): "stop" | undefined {
    // Logprobs go with the content they produced; those of markers and thoughts are not content's.
    this.logprobs = logprobs;
    const events = this.parser.push(delta);
    if (events.some((e) => e.type === "reasoning")) this.reasoningTokens++;
    return this.apply(events);
  }

  /** The reply ended: the events that close it, and its finish reason. */
  end(reason: "stop" | "length"): void {
    this.apply(this.parser.finish(reason === "length"));
    const finish: FinishReason = reason === "length" ? "length" : this.parser.callCount > 0 ? "tool_calls" : "stop";
    this.o.push({ type: "finish", index: this.o.index, reason: finish });
  }

  /** reasoning: none, thoughts under way in the content: their closing tag is still to come. */
  private rawThoughts = false;

  private apply(events: ParseEvent[]): "stop" | undefined {
    const index = this.o.index;
    let stop: "stop" | undefined;
    for (const e of events) {
      if (this.rawThoughts && e.type !== "reasoning" && e.type !== "constrain" && e.type !== "release") {
        this.rawThoughts = false;
        if (thinks(this.o.family)) this.o.push({ type: "content", index, text: "</think>" });
      }
      switch (e.type) {
        case "content":
          this.o.push({ type: "content", index, text: e.text, logprobs: this.logprobs });
          this.logprobs = undefined;
          break;
        case "reasoning":
          if (this.o.reasoning === "auto") this.o.push({ type: "reasoning", index, text: e.text });
          else if (this.o.reasoning === "none") {
            // Left in the text as the model wrote it, between its tags (the opening one too when
            // the template opened the thoughts in the prompt), so a client that reads them finds them.
            const open = this.rawThoughts || !thinks(this.o.family) ? "" : "<think>";
            this.rawThoughts = true;
            this.o.push({ type: "content", index, text: open + e.text });
          }
          break;
        case "call": {
          if (stop) break;
          // Mistral's templates refuse any call id but 9 letters and digits.
          const id = this.o.family === "mistral" ? mistralCallId() : newCallId();
          this.ids.set(e.index, id);
          this.o.push({
            type: "tool_call_delta",
            index,
            delta: { index: e.index, id, type: "function", function: { name: e.name, arguments: "" } },
          });
          break;
        }
        case "arguments":
          if (this.ids.has(e.index)) {
            this.o.push({ type: "tool_call_delta", index, delta: { index: e.index, function: { arguments: e.text } } });
          }
          break;
        case "call_end":
          if (!this.o.parallel) stop = "stop";
          break;
        case "constrain":
          this.inCall = true;
          // A forced grammar already covers the whole reply.
          if (this.o.grammars?.forced) break;
          this.state = this.lazyState(e);
          break;
        case "release":
          this.inCall = false;
          if (!this.o.grammars?.forced) this.state = undefined;
          break;
      }
    }
    return stop;
  }

  private lazyState(e: Extract<ParseEvent, { type: "constrain" }>): LlamaGrammarEvaluationState | undefined {
    const g = this.o.grammars;
    if (!g) return undefined;
    const grammar = e.scope === "call" ? g.call : e.name !== undefined ? g.args.get(e.name) : undefined;
    if (!grammar) return undefined;
    // The grammar starts where the marker ended; text already sampled past it in the same token
    // (`{"` after Llama 3's `{`-led call, `<tool_call>\n{"na` from a tokenizer without the marker
    // as one token) is read into it first. Text it cannot start with leaves the call free.
    if (/\S/.test(e.after)) return grammarStateAfter(this.o.model, grammar, e.after.replace(/^\s+/, ""));
    return new LlamaGrammarEvaluationState({ model: this.o.model, grammar });
  }
}

const bans = new WeakMap<LlamaModel, TokenBias>();

/** Every control token of the model except end-of-generation ones, banned (made once per model). */
function controlTokenBan(model: LlamaModel, vocabularySize: number): TokenBias {
  let bias = bans.get(model);
  if (!bias) {
    bias = new TokenBias(model.tokenizer);
    for (let t = 0; t < vocabularySize; t++) {
      const token = t as Token;
      if (model.isSpecialToken(token) && !model.isEogToken(token)) bias.set(token, "never");
    }
    bans.set(model, bias);
  }
  return bias;
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

function mistralCallId(): string {
  return Array.from(randomBytes(9), (b) => ALNUM[b % ALNUM.length]).join("");
}
