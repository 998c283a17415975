// Whether a model's context computes attention with llama.cpp's flash attention (models.yaml
// `flash_attention`). `auto` on a GPU is llama.cpp's own choice: on where the device supports it.
// On the CPU it depends on the model's head size. ggml's CPU kernel takes its tiled path only for
// 64 or more query tokens of a sequence at once (ggml-cpu/ops.cpp, `neq1 >= Q_TILE_SZ`); fewer go
// one row at a time, which below a head size of 64 is 2.5–4.6× slower than attention without it,
// and those are most of a chat's prompt chunks: a new question, a returning user's next turn.
// Measured (`npm run bench -- flash-attention` measures it on any machine), 1 thread, a sequence
// already holding 200 tokens, ms without / with it:
//
//   head size  model shape       +1 token     +8 tokens     +32 tokens    +64 tokens
//   16         tiny (128 × 4)    1.39 / 1.17  1.86 / 5.12   2.86 / 19.3   7.36 / 4.52
//   16         512 × 4           3.47 / 4.72  9.13 / 22.9   23.9 / 82.4   45.4 / 29.0
//   32         512 × 4           3.62 / 4.51  7.38 / 20.7   15.8 / 72.4   36.0 / 25.9
//   64         512 × 4           2.45 / 2.02  7.01 / 6.93   15.5 / 16.8   34.2 / 25.4
//   64         115M (768 × 12)   10.6 / 10.6  40.9 / 42.9   95.8 / 103    199 / 163
//
// So at 64 and above it is about as fast on short chunks and per generated token (115M: equal at
// 200 tokens held, 10–20 % faster at 50 and at 400) and faster on long prompts; below, it is
// slower at every chunk under 64 tokens, and the tiny model's multi-turn chat took 3× as long with
// it (TTFT p50 0.24 s against 0.08 s). Deeper into a conversation the one-row path costs more at
// any head size: 1,100 tokens held, +16 / +48 tokens are 1.16× / 1.37× slower with it on the 115M
// shape (1.26–1.88× on 512 × 4 shapes with heads of 64 and 128), while on the 115M shape a
// generated token is 13 % faster there, and 64+ token chunks are 17–26 % faster on all three. The 115M multi-turn bench still runs better with it
// (overall TTFT 3.66–4.06 s against 4.20–4.38 s), so from 64 up `auto` stays llama.cpp's, as
// llama-server's: real models' heads are 64–256 wide.

export type FlashAttentionSetting = "auto" | boolean;

/** Below this head size the CPU kernel is slower at every prompt chunk under 64 tokens (table above). */
export const CPU_MIN_HEAD_SIZE = 64;

/** What of a GGUF's architecture metadata gives its head size (node-llama-cpp's architectureMetadata). */
export interface AttentionShape {
  embedding_length?: number | undefined;
  attention?: { head_count?: number | readonly number[] | undefined; key_length?: number | undefined } | undefined;
}

/**
 * The setting the context is created with: `auto` on the CPU becomes off for heads narrower than
 * CPU_MIN_HEAD_SIZE; otherwise it stays llama.cpp's auto (on where the model and device support
 * it: a model whose key and value heads differ cannot have it), as does an explicit true or false.
 */
export function flashAttentionFor(
  setting: FlashAttentionSetting,
  onCpu: boolean,
  headSize: number | undefined,
): FlashAttentionSetting {
  if (setting !== "auto" || !onCpu || headSize === undefined) return setting;
  return headSize >= CPU_MIN_HEAD_SIZE ? "auto" : false;
}

/** Width of one attention head: key_length when the GGUF has it, else embedding length ÷ heads (llama.cpp's rule). */
export function headSize(shape: AttentionShape | undefined): number | undefined {
  const keyLength = shape?.attention?.key_length;
  if (keyLength !== undefined && keyLength > 0) return keyLength;
  const count = shape?.attention?.head_count;
  // Per-layer counts: the first layer's, as llama.cpp's n_head() (such models give key_length anyway).
  const heads = (typeof count === "number" ? count : count?.[0]) ?? 0;
  const embedding = shape?.embedding_length ?? 0;
  return heads > 0 && embedding > 0 ? embedding / heads : undefined;
}

/**
 * flashAttentionFor for a context on this runtime: on the CPU when the runtime has no GPU or the
 * model keeps all its layers off it (`gpu_layers: 0`).
 */
export function contextFlashAttention(
  setting: FlashAttentionSetting | undefined,
  gpu: string | false,
  gpuLayers: "auto" | "max" | number,
  shape: AttentionShape | undefined,
): FlashAttentionSetting {
  return flashAttentionFor(setting ?? "auto", gpu === false || gpuLayers === 0, headSize(shape));
}
