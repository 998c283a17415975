// The loaded local models: loads on first use (or at start for `preload`), unloads
// the least recently used idle model when a load would pass the memory budget or the
// model count, and hands out context sequences to requests.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  DraftSequenceTokenPredictor,
  type GgufFileInfo,
  GgufInsights,
  InputLookupTokenPredictor,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaModel,
  type LlamaRankingContext,
  readGgufFileInfo,
  resolveModelFile,
  type Token,
} from "node-llama-cpp";
import type { Operation } from "../config/schema.ts";
import { ChatTemplate } from "./chat-template.ts";
import { ModelLoadError } from "./errors.ts";
import { type LoadedModelState, type PoolLimits, planEviction } from "./eviction.ts";
import { contextFlashAttention, type FlashAttentionSetting } from "./flash-attention.ts";
import { readGguf } from "./gguf.ts";
import { LockstepDriver, type Stepper } from "./lockstep.ts";
import { estimateMemory } from "./memory-estimate.ts";
import { canCopyInto, restorePrefix } from "./prefix.ts";
import { PromptCache } from "./prompt-cache.ts";
import { pickSequences, SequenceSlots } from "./slots.ts";
import {
  type ReasoningSetting,
  type ResolvedFormat,
  resolveFormat,
  type ToolFormatSetting,
} from "./tool-formats/families.ts";

export interface LocalModelSpec {
  id: string;
  /** A file path, or an `hf:` URI resolved (and downloaded) by node-llama-cpp. */
  path: string;
  contextSize: number;
  parallel: number;
  threads: number;
  batchSize?: number | undefined;
  /** models.yaml `flash_attention`; default auto (flash-attention.ts says what auto does). */
  flashAttention?: FlashAttentionSetting | undefined;
  gpuLayers: "auto" | "max" | number;
  sha256?: string | undefined;
  chatTemplate?: string | undefined;
  /** models.yaml `tool_format` and `reasoning` (tool-formats/families.ts); default auto. */
  toolFormat?: ToolFormatSetting | undefined;
  reasoning?: ReasoningSetting | undefined;
  queue: { maxWaiting: number; timeoutMs: number };
  /** Sampling used where the request sets none. */
  sampling: { temperature?: number; topP?: number; topK?: number; minP?: number; repeatPenalty?: number };
  /** Largest completion a request may ask for. */
  maxTokens?: number | undefined;
  /** What clients may ask of it; default: everything. */
  operations?: readonly Operation[] | undefined;
  /** Unloaded this long after its last request ends (keep_alive); undefined: until evicted. */
  keepAliveMs?: number | undefined;
  /** models.yaml `speculative`; undefined: off. */
  speculative?:
    | { method: "prompt_lookup"; maxTokens: number }
    | { method: "draft"; path: string; maxTokens: number; minConfidence: number }
    | undefined;
  /** Conversations' states kept when their sequence is given away (prompt_cache); undefined: none. */
  promptCache?: { maxBytes: number; dir?: string | undefined } | undefined;
}

export interface LoadedModel {
  spec: LocalModelSpec;
  model: LlamaModel;
  context: LlamaContext;
  /** The draft model's context (speculative: draft), a sequence for each of the model's. */
  draft?: LlamaContext | undefined;
  sequences: LlamaContextSequence[];
  slots: SequenceSlots;
  driver: LockstepDriver;
  template: ChatTemplate;
  /** Its tool-call and reasoning format, resolved once when it loads. */
  format: ResolvedFormat;
  /** Tokens one sequence can hold: prompt + completion must fit. */
  contextSize: number;
  vocabularySize: number;
  /** UTF-8 bytes of the longest token's text: no token covers more of a prompt than this. */
  maxTokenBytes: number;
  bytes: number;
  lastUsed: number;
  inFlight: number;
  /** Made on the first embeddings request (a context of its own, in embeddings mode). */
  embedding?: Promise<LlamaEmbeddingContext> | undefined;
  /** Made on the first rerank request (a context of its own, in ranking mode). */
  ranking?: Promise<LlamaRankingContext> | undefined;
  /** Saved sequence states (prompt_cache), when configured. */
  promptCache?: PromptCache | undefined;
  /** The prompt each sequence's request is computing (one-sequence requests, from their start to their end). */
  computing: Map<LlamaContextSequence, readonly Token[]>;
}

export interface ModelLease {
  loaded: LoadedModel;
  sequences: LlamaContextSequence[];
  /**
   * Moves the request to the sequences best for `prompt` (pickSequences): those that keep the
   * running sequences' ids consecutive (one pass per decode step), holding most of it, else the
   * least recently used. Called once its prompt is tokenized. A request on
   * one sequence then gets the best start of its prompt that is anywhere (planPrefix): copied
   * from an idle sequence or loaded from the prompt cache, and what its sequence held is saved
   * first when it would be lost.
   */
  preferPrefix(prompt: readonly Token[], signal?: AbortSignal): Promise<void>;
  /**
   * Runs a generation on one of its sequences to its end, on the model's lock-step driver, in
   * the order of that sequence's index (lockstep.ts says why the order matters).
   */
  run(sequence: LlamaContextSequence, generation: Stepper): Promise<void>;
  release(): void;
}

export interface PoolEvents {
  loaded?(id: string, seconds: number): void;
  /** A request got its sequences after `seconds` in the queue; `deferred`: it had to wait for them. */
  queued?(id: string, seconds: number, deferred: boolean): void;
  /** `reason`: evicted for another model, idle past keep_alive, asked (admin), or shutting down / removed. */
  unloaded?(id: string, reason: UnloadReason): void;
  /** A sequence's state was saved, restored from a saved one, or copied from another sequence (`count`: its tokens); `count` saved states dropped. */
  promptCache?(id: string, operation: PromptCacheOperation, count: number): void;
}

export type PromptCacheOperation = "saved" | "restored" | "copied" | "dropped";

export type UnloadReason = "evicted" | "keep_alive" | "requested" | "removed" | "shutdown";

export class ModelPool {
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  /** keep_alive timers of idle models. */
  private readonly idle = new Map<string, NodeJS.Timeout>();
  private clock = 0;
  /** Aborted when shutting down: a load in progress (which can take minutes) stops at once. */
  private readonly stopping = new AbortController();
  /** Copied: models are added and removed at run time (fine-tuned models). */
  private readonly specs: Map<string, LocalModelSpec>;

  constructor(
    private readonly llama: Llama,
    specs: ReadonlyMap<string, LocalModelSpec>,
    private readonly limits: PoolLimits,
    private readonly options: { modelsDir: string; events?: PoolEvents } = { modelsDir: "./data/models" },
  ) {
    this.specs = new Map(specs);
  }

  spec(id: string): LocalModelSpec | undefined {
    return this.specs.get(id);
  }

  /**
   * A model's tool-call format: the loaded model's, else resolved the same way from its GGUF
   * header (read once, not loaded). Undefined for a file that cannot be read here (an hf: URI).
   */
  async format(id: string): Promise<ResolvedFormat | undefined> {
    const loaded = this.loaded.get(id);
    if (loaded) return loaded.format;
    const spec = this.specs.get(id);
    if (!spec || spec.path.startsWith("hf:")) return undefined;
    let known = this.formats.get(id);
    if (!known) {
      known = readGguf(spec.path).then((file) => {
        const meta = (key: string) => {
          const v = file.metadata.get(key);
          return v?.type === "string" ? (v.value as string) : undefined;
        };
        return resolveFormat(
          {
            template: spec.chatTemplate ?? meta("tokenizer.chat_template"),
            architecture: meta("general.architecture"),
            name: meta("general.name"),
          },
          spec.toolFormat,
          spec.reasoning,
        );
      });
      known.catch(() => this.formats.delete(id));
      this.formats.set(id, known);
    }
    return known.catch(() => undefined);
  }

  private readonly formats = new Map<string, Promise<ResolvedFormat>>();

  /** Makes a model loadable (a fine-tuned model registered at run time). */
  addSpec(spec: LocalModelSpec): void {
    this.specs.set(spec.id, spec);
  }

  /** Forgets a model; it is unloaded now if idle, else when its last request ends. */
  async removeSpec(id: string): Promise<void> {
    this.specs.delete(id);
    await this.loading.get(id)?.catch(() => {});
    const loaded = this.loaded.get(id);
    if (loaded && loaded.inFlight === 0) await this.unload(id, "removed");
  }

  get loadedIds(): string[] {
    return [...this.loaded.keys()];
  }

  isLoaded(id: string): boolean {
    return this.loaded.has(id);
  }

  get(id: string): LoadedModel | undefined {
    return this.loaded.get(id);
  }

  /** Loads the model if needed and waits for `count` free sequences of it. */
  async acquire(id: string, count: number, signal?: AbortSignal): Promise<ModelLease> {
    const loaded = await this.load(id);
    loaded.inFlight++;
    loaded.lastUsed = ++this.clock;
    this.stopIdling(id);
    let ids: number[];
    const deferred = loaded.slots.wouldWait(count);
    const waitStarted = performance.now();
    try {
      ids = await loaded.slots.acquire(count, signal);
    } catch (err) {
      loaded.inFlight--;
      throw err;
    }
    this.options.events?.queued?.(id, (performance.now() - waitStarted) / 1000, deferred);
    let released = false;
    const sequenceOf = (i: number) => loaded.sequences[i] as LlamaContextSequence;
    const lease: ModelLease = {
      loaded,
      sequences: ids.map(sequenceOf),
      preferPrefix: async (prompt, signal) => {
        if (released) return;
        const tokens = [...prompt];
        const candidates = [...ids, ...loaded.slots.freeIds].map((i) => ({
          id: i,
          commonPrefix: sequenceOf(i).compareContextTokens(tokens).firstDifferentIndex,
          lastUsed: loaded.slots.lastUsed(i),
          held: ids.includes(i),
        }));
        const busy = loaded.sequences.map((_, i) => i).filter((i) => !candidates.some((c) => c.id === i));
        const chosen = pickSequences(candidates, ids.length, prompt.length, busy, canCopyInto(sequenceOf(0)));
        loaded.slots.exchange(ids, chosen);
        ids = chosen;
        lease.sequences = ids.map(sequenceOf);
        // Several choices or prompts each compute their own.
        if (ids.length !== 1) return;
        const target = sequenceOf(ids[0] as number);
        try {
          await restorePrefix(loaded, target, tokens, signal, (operation, count) =>
            this.options.events?.promptCache?.(id, operation, count),
          );
        } catch {
          // Whatever failed (a model unloading under it), the request computes its whole prompt.
          await target.clearHistory().catch(() => {});
        }
        if (!released) loaded.computing.set(target, tokens);
      },
      run: (sequence, generation) => loaded.driver.run(generation, loaded.sequences.indexOf(sequence)),
      release: () => {
        if (released) return;
        released = true;
        loaded.inFlight--;
        loaded.lastUsed = ++this.clock;
        for (const i of ids) loaded.computing.delete(sequenceOf(i));
        loaded.slots.release(ids);
        if (loaded.inFlight > 0) return;
        if (!this.specs.has(id)) void this.unload(id, "removed");
        else this.idleFrom(loaded);
      },
    };
    return lease;
  }

  load(id: string): Promise<LoadedModel> {
    const ready = this.loaded.get(id);
    if (ready) return Promise.resolve(ready);
    let pending = this.loading.get(id);
    if (!pending) {
      pending = this.doLoad(id).finally(() => this.loading.delete(id));
      this.loading.set(id, pending);
    }
    return this.unlessStopping(id, pending);
  }

  /**
   * A load ends for its waiters as soon as the server shuts down: allocating a large context is
   * one native call that no signal interrupts (~2.5 s for 2 GiB here, far longer for a size that
   * barely fits), and the load disposes of what it made when that call returns.
   */
  private unlessStopping<T>(id: string, pending: Promise<T>): Promise<T> {
    const signal = this.stopping.signal;
    const stopped = () => new ModelLoadError(id, "the server is shutting down");
    if (signal.aborted) return Promise.reject(stopped());
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(stopped());
      signal.addEventListener("abort", onAbort, { once: true });
      pending.then(
        (value) => {
          signal.removeEventListener("abort", onAbort);
          resolve(value);
        },
        (err: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
  }

  private async doLoad(id: string): Promise<LoadedModel> {
    const spec = this.specs.get(id);
    if (!spec) throw new ModelLoadError(id, "not configured");
    if (this.stopping.signal.aborted) throw new ModelLoadError(id, "the server is shutting down");
    const started = performance.now();
    try {
      const path = spec.path.startsWith("hf:")
        ? await resolveModelFile(spec.path, { directory: this.options.modelsDir, cli: false })
        : spec.path;
      if (spec.sha256) await verifySha256(path, spec.sha256);
      // Each GGUF's header is read once here, for the memory estimate and the flash attention setting.
      const info = await readGgufFileInfo(path);
      const draftPath = spec.speculative?.method === "draft" ? spec.speculative.path : undefined;
      const draftInfo = draftPath === undefined ? undefined : await readGgufFileInfo(draftPath);
      const bytes = (await this.estimate(spec, info)) + (draftInfo ? await this.estimate(spec, draftInfo) : 0);
      await this.makeRoom(id, bytes);
      const signal = this.stopping.signal;
      // Opened first: a folder it cannot use fails the load before anything is allocated.
      const promptCache = spec.promptCache?.maxBytes
        ? await PromptCache.open(spec.promptCache.maxBytes, spec.promptCache.dir, {
            saved: (tokens) => this.options.events?.promptCache?.(id, "saved", tokens),
            dropped: (count) => this.options.events?.promptCache?.(id, "dropped", count),
          }).catch((err: unknown) => {
            throw new Error(`prompt_cache: ${(err as Error).message}`);
          })
        : undefined;
      // What is made so far, disposed in reverse when a later step fails.
      const made: { dispose(): Promise<unknown> }[] = [];
      const undo = async () => {
        for (const m of made.reverse()) await m.dispose().catch(() => {});
        await promptCache?.clear();
      };
      let model: LlamaModel;
      let context: LlamaContext;
      let draft: LlamaContext | undefined;
      try {
        // Flash attention is set on the model, so that all its contexts (chat, draft, embeddings,
        // rerank) have it as flash-attention.ts decides for this model on this runtime.
        const load = (modelPath: string, file: GgufFileInfo) =>
          this.llama.loadModel({
            modelPath,
            gpuLayers: spec.gpuLayers,
            defaultContextFlashAttention: contextFlashAttention(
              spec.flashAttention,
              this.llama.gpu,
              spec.gpuLayers,
              file.architectureMetadata,
            ),
            loadSignal: signal,
          });
        model = await load(path, info);
        made.push(model);
        const contextOptions = {
          contextSize: spec.contextSize,
          sequences: spec.parallel,
          threads: spec.threads,
          createSignal: signal,
          ...(spec.batchSize ? { batchSize: spec.batchSize } : {}),
        } as const;
        context = await model.createContext(contextOptions);
        made.push(context);
        if (draftPath !== undefined && draftInfo) {
          // The draft runs beside the model on the same threads, a sequence of its own for each.
          const draftModel = await load(draftPath, draftInfo);
          made.push(draftModel);
          draft = await draftModel.createContext(contextOptions);
          made.push(draft);
        }
        if (signal.aborted) throw new Error("the server is shutting down");
      } catch (err) {
        await undo();
        throw err;
      }
      const speculative = spec.speculative;
      const sequences = Array.from({ length: spec.parallel }, () =>
        context.getSequence(
          speculative?.method === "prompt_lookup"
            ? { tokenPredictor: new InputLookupTokenPredictor({ predictionLength: { max: speculative.maxTokens } }) }
            : speculative?.method === "draft" && draft
              ? {
                  tokenPredictor: new DraftSequenceTokenPredictor(draft.getSequence(), {
                    // Each step waits for the draft (until max_tokens or a token below
                    // min_confidence), as llama-server drafts: without it node-llama-cpp checks
                    // whatever the draft has made so far, which on a busy CPU is nothing.
                    minTokens: speculative.maxTokens,
                    maxTokens: speculative.maxTokens,
                    minConfidence: speculative.minConfidence,
                  }),
                }
              : undefined,
        ),
      );
      const templateSource = spec.chatTemplate ?? stringMeta(model, "tokenizer.chat_template");
      const template = new ChatTemplate(templateSource, {
        bos: model.tokens.bosString ?? "",
        eos: model.tokens.eosString ?? "",
      });
      const loaded: LoadedModel = {
        spec,
        model,
        context,
        sequences,
        slots: new SequenceSlots(id, spec.parallel, spec.queue),
        driver: new LockstepDriver(),
        template,
        format: resolveFormat(
          {
            template: templateSource,
            architecture: stringMeta(model, "general.architecture"),
            name: stringMeta(model, "general.name"),
          },
          spec.toolFormat,
          spec.reasoning,
        ),
        contextSize: context.contextSize,
        vocabularySize: vocabularySize(model),
        maxTokenBytes: maxTokenBytes(model),
        bytes,
        lastUsed: ++this.clock,
        inFlight: 0,
        promptCache,
        computing: new Map(),
        draft,
      };
      this.loaded.set(id, loaded);
      this.options.events?.loaded?.(id, (performance.now() - started) / 1000);
      // Loaded ahead of its requests (preload, the admin route): idle from now.
      this.idleFrom(loaded);
      return loaded;
    } catch (err) {
      if (err instanceof ModelLoadError) throw err;
      throw new ModelLoadError(id, (err as Error).message);
    }
  }

  /** Memory a GGUF takes loaded with a context of the spec's size (memory-estimate.ts). */
  private async estimate(spec: LocalModelSpec, info: GgufFileInfo): Promise<number> {
    const insights = await GgufInsights.from(info, this.llama);
    return (await estimateMemory(this.llama, insights, spec, spec.contextSize)).total;
  }

  private async makeRoom(id: string, bytes: number): Promise<void> {
    const states: LoadedModelState[] = [...this.loaded.values()].map((m) => ({
      id: m.spec.id,
      bytes: m.bytes,
      lastUsed: m.lastUsed,
      inFlight: m.inFlight,
    }));
    const plan = planEviction({ id, bytes }, states, this.limits);
    if (!plan.ok) throw new ModelLoadError(id, plan.reason);
    for (const victim of plan.evict) await this.unload(victim, "evicted");
  }

  /**
   * Unloads a model on request (POST /admin/models/{id}/unload): false when it has requests in
   * flight or waiting, which it keeps serving.
   */
  async unloadIdle(id: string): Promise<boolean> {
    const m = this.loaded.get(id);
    if (!m) return true;
    if (m.inFlight > 0) return false;
    await this.unload(id, "requested");
    return true;
  }

  /** An idle model with a keep_alive goes that long after its last request, unless one comes first. */
  private idleFrom(loaded: LoadedModel): void {
    const ms = loaded.spec.keepAliveMs;
    const id = loaded.spec.id;
    if (ms === undefined || loaded.inFlight > 0) return;
    this.stopIdling(id);
    const timer = setTimeout(() => {
      this.idle.delete(id);
      // Still the same load, and still idle.
      if (this.loaded.get(id) === loaded && loaded.inFlight === 0) void this.unload(id, "keep_alive");
    }, ms);
    timer.unref();
    this.idle.set(id, timer);
  }

  private stopIdling(id: string): void {
    clearTimeout(this.idle.get(id));
    this.idle.delete(id);
  }

  async unload(id: string, reason: UnloadReason = "requested"): Promise<void> {
    const m = this.loaded.get(id);
    if (!m) return;
    this.stopIdling(id);
    this.loaded.delete(id);
    await (await m.embedding?.catch(() => undefined))?.dispose();
    await (await m.ranking?.catch(() => undefined))?.dispose();
    await m.promptCache?.clear();
    await m.context.dispose();
    await m.model.dispose();
    if (m.draft) {
      const draftModel = m.draft.model;
      await m.draft.dispose();
      await draftModel.dispose();
    }
    this.options.events?.unloaded?.(id, reason);
  }

  /** Shutting down: loads in progress stop, and no new one starts. */
  stopLoading(): void {
    this.stopping.abort();
  }

  /** Unloads every model; a load still in progress is not waited for (unlessStopping). */
  async close(): Promise<void> {
    this.stopLoading();
    for (const id of [...this.loaded.keys()]) await this.unload(id, "shutdown");
  }
}

/**
 * The embedding or ranking context of a loaded model, made on first use and kept with it (the
 * pool disposes of it at unload). A failed creation is not kept: the next request tries again.
 */
export function sideContext<K extends "embedding" | "ranking">(
  loaded: LoadedModel,
  kind: K,
  make: (model: LlamaModel, options: { contextSize: number; threads: number; batchSize?: number }) => LoadedModel[K],
): NonNullable<LoadedModel[K]> {
  let made = loaded[kind];
  if (!made) {
    const { contextSize, threads, batchSize } = loaded.spec;
    made = make(loaded.model, { contextSize, threads, ...(batchSize ? { batchSize } : {}) });
    loaded[kind] = made;
    made?.catch(() => {
      loaded[kind] = undefined as LoadedModel[K];
    });
  }
  return made as NonNullable<LoadedModel[K]>;
}

function vocabularySize(model: LlamaModel): number {
  const tokens = metaValue(model, "tokenizer.ggml.tokens");
  if (Array.isArray(tokens)) return tokens.length;
  const arch = metaValue(model, "general.architecture");
  const size = typeof arch === "string" ? metaValue(model, `${arch}.vocab_size`) : undefined;
  return typeof size === "number" ? size : 0;
}

/**
 * An upper bound on the bytes of text one token stands for: the longest token string in the
 * vocabulary, in UTF-8. Byte-level BPE (Ġ for a space) and SentencePiece (▁, <0x0A>) spell
 * tokens with at least as many bytes as they decode to, so the bound is safe. Without a
 * vocabulary list, a bound no real tokenizer reaches.
 */
function maxTokenBytes(model: LlamaModel): number {
  const tokens = metaValue(model, "tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || tokens.length === 0) return 1024;
  let max = 1;
  for (const t of tokens) if (typeof t === "string") max = Math.max(max, Buffer.byteLength(t));
  return max;
}

function stringMeta(model: LlamaModel, key: string): string | undefined {
  const value = metaValue(model, key);
  return typeof value === "string" ? value : undefined;
}

function metaValue(model: LlamaModel, key: string): unknown {
  let node: unknown = model.fileInfo.metadata;
  for (const part of key.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

async function verifySha256(path: string, expected: string): Promise<void> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const actual = hash.digest("hex");
  if (actual !== expected.toLowerCase()) {
    throw new Error(`sha256 of ${path} is ${actual}, but models.yaml pins ${expected}; refusing to load it`);
  }
}
