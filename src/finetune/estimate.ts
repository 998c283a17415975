// What a llama-finetune run will cost, from the model's shape alone: peak memory
// (weights, gradients, optimizer state, activations of one window) and time per epoch.
// Pure functions: the service refuses a job whose memory cannot fit before it runs, and
// every job gets the estimate as an event. The constants are measured, not guessed: see
// CPU_CALIBRATION and `npm run bench -- finetune`, which prints estimate and measurement
// side by side.
import type { GgufFile } from "../engine/gguf.ts";

/** What the estimate needs to know about a model. */
export interface ModelShape {
  /** Every weight in the file. */
  parameters: number;
  /** The weights llama-finetune updates: all but the token embeddings (llama.cpp never trains those). */
  trainableParameters: number;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  nVocab: number;
}

export interface TrainingSettings {
  /** Tokens per window (llama-finetune's padded -c). */
  window: number;
  threads: number;
}

export interface MemoryEstimate {
  /** F32 weights, loaded into memory (llama-finetune does not mmap). */
  weights: number;
  /** Each trainable weight's gradient, F32. */
  gradients: number;
  /** AdamW's two moments per trainable weight, F32. */
  optimizer: number;
  /** Forward activations kept for the backward pass, their gradients, logits and KV cache of one window. */
  activations: number;
  /** Program, libraries and allocator overhead. */
  overhead: number;
  total: number;
}

/** The estimate as a job event's data. */
export interface EstimateFigures {
  estimated_seconds_per_epoch: number;
  estimated_tokens_per_second: number;
  estimated_peak_memory_bytes: number;
  estimated_memory: { weights: number; gradients: number; optimizer: number; activations: number };
}

export interface TrainingEstimate {
  memory: MemoryEstimate;
  /** Floating-point operations for one trained token (forward + backward). */
  flopsPerToken: number;
  /** Training tokens per second on `threads` threads. */
  tokensPerSecond: number;
  secondsPerWindow: number;
}

export interface Calibration {
  /** Sustained F32 training throughput of one thread, in FLOP/s. */
  flopsPerThread: number;
  /** Activation bytes per layer per token = 4 × (e·n_embd + kv·n_embd_kv + f·n_ff + s·n_head·window). */
  activation: { e: number; kv: number; f: number; s: number };
  /** Copies of the logits (values, softmax, gradient), F32, window × vocabulary each. */
  logitCopies: number;
  /** Program, libraries and allocator overhead. */
  overheadBytes: number;
  /** Fixed cost of a window whatever the model: building and allocating its graphs, scheduling. */
  windowOverheadSeconds: number;
}

/**
 * Fitted to llama-finetune's peak RSS and speed on a 2-core Intel Xeon (AVX-512), the
 * portable (GGML_NATIVE=OFF) build, 2 threads, 256-token windows, with other work sharing
 * the machine (load ~8): a 12-layer 115M model peaked at 2.13 GB and trained 10.7
 * tokens/s, a 24-layer 360M one (Qwen2.5-0.5B's body) 6.45 GB and 4.3 tokens/s. The
 * static part (weights, gradient, AdamW's m and v: 16 bytes per weight) is exact; the
 * activation coefficients reproduce both runs' remainder within 6%. The 1.4M-parameter
 * tiny model (60 MB, 85 tokens/s) shows the fixed cost of a window. On an idle machine
 * training runs faster than this estimate says.
 */
export const CPU_CALIBRATION: Calibration = {
  flopsPerThread: 4e9,
  activation: { e: 24, kv: 0, f: 1, s: 1 },
  logitCopies: 3,
  overheadBytes: 20 * 2 ** 20,
  windowOverheadSeconds: 2,
};

const F32 = 4;

/** The shape from a GGUF's metadata and tensor table (any quantization: only the counts matter). */
export function modelShape(file: GgufFile): ModelShape {
  const arch = stringValue(file, "general.architecture") ?? "llama";
  const num = (key: string): number | undefined => {
    const v = file.metadata.get(`${arch}.${key}`);
    return v !== undefined && v.type !== "array" && typeof v.value === "number" ? v.value : undefined;
  };
  const elements = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
  let parameters = 0;
  let embeddings = 0;
  let nVocab = num("vocab_size");
  for (const t of file.tensors) {
    const n = elements(t.dims);
    parameters += n;
    if (t.name === "token_embd.weight") {
      embeddings = n;
      nVocab ??= t.dims[1];
    }
  }
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  nVocab ??= tokens?.type === "array" ? tokens.value.length : 0;
  const nEmbd = num("embedding_length") ?? 0;
  const nHead = num("attention.head_count") ?? 1;
  return {
    parameters,
    trainableParameters: parameters - embeddings,
    nLayer: num("block_count") ?? 0,
    nEmbd,
    nFf: num("feed_forward_length") ?? 4 * nEmbd,
    nHead,
    nHeadKv: num("attention.head_count_kv") ?? nHead,
    nVocab,
  };
}

function stringValue(file: GgufFile, key: string): string | undefined {
  const v = file.metadata.get(key);
  return v?.type === "string" ? v.value : undefined;
}

export function estimateTraining(
  shape: ModelShape,
  settings: TrainingSettings,
  cal: Calibration = CPU_CALIBRATION,
): TrainingEstimate {
  const T = settings.window;
  const embdKv = (shape.nEmbd / shape.nHead) * shape.nHeadKv;
  const weights = shape.parameters * F32;
  const gradients = shape.trainableParameters * F32;
  const optimizer = 2 * shape.trainableParameters * F32;
  const a = cal.activation;
  const perLayerToken = F32 * (a.e * shape.nEmbd + a.kv * embdKv + a.f * shape.nFf + a.s * shape.nHead * T);
  const kvCache = 2 * shape.nLayer * T * embdKv * F32; // K and V: llama-finetune forces F32 (OUT_PROD has no F16)
  const logits = cal.logitCopies * T * shape.nVocab * F32;
  const activations = shape.nLayer * T * perLayerToken + logits + kvCache;
  const overhead = cal.overheadBytes;
  const memory = {
    weights,
    gradients,
    optimizer,
    activations,
    overhead,
    total: weights + gradients + optimizer + activations + overhead,
  };
  // Forward 2 FLOPs per weight per token, backward 4; attention adds QKᵀ and AV
  // (2 × 2 × n_embd × window per token per layer forward, the mean causal span being half of it, ×3 with backward).
  const weightFlops = 6 * shape.trainableParameters;
  const attentionFlops = 3 * 2 * shape.nLayer * shape.nEmbd * T;
  const flopsPerToken = weightFlops + attentionFlops;
  const secondsPerWindow =
    (T * flopsPerToken) / (cal.flopsPerThread * Math.max(1, settings.threads)) + cal.windowOverheadSeconds;
  return { memory, flopsPerToken, tokensPerSecond: T / secondsPerWindow, secondsPerWindow };
}

/** Seconds for one epoch: training windows cost forward + backward, validation ones a forward pass (a third). */
export function epochSeconds(estimate: TrainingEstimate, trainWindows: number, valWindows: number): number {
  return estimate.secondsPerWindow * (trainWindows + valWindows / 3);
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.max(1, Math.round(bytes / 2 ** 20))} MiB`;
}

/** "~3 min", "~40 s", "~2.5 h". */
export function formatDuration(seconds: number): string {
  if (seconds < 90) return `~${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `~${Math.round(seconds / 60)} min`;
  return `~${(seconds / 3600).toFixed(1)} h`;
}

/** The breakdown people read: "4.1 GiB (weights 1.4 GiB, gradients …)". */
export function describeMemory(m: MemoryEstimate): string {
  return `${formatBytes(m.total)} (weights ${formatBytes(m.weights)}, gradients ${formatBytes(m.gradients)}, optimizer state ${formatBytes(m.optimizer)}, activations ${formatBytes(m.activations)}, runtime ${formatBytes(m.overhead)})`;
}
