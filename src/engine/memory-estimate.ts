// How much memory a local model takes once loaded: its weights plus one context of context_size ×
// parallel sequences, as node-llama-cpp estimates them for this runtime (GPU layers, flash
// attention as the pool will create it). One estimate for the start check (model-check.ts) and
// for the pool's eviction (pool.ts), so what was checked is what is loaded.
import type { GgufInsights, Llama } from "node-llama-cpp";
import { contextFlashAttention, type FlashAttentionSetting } from "./flash-attention.ts";

export interface MemoryNeed {
  model: number;
  context: number;
  total: number;
  ram: number;
  vram: number;
  /** The GPU's memory; 0 on the CPU. */
  vramTotal: number;
}

export interface ContextShape {
  gpuLayers: "auto" | "max" | number;
  parallel: number;
  batchSize?: number | undefined;
  flashAttention?: FlashAttentionSetting | undefined;
}

/** Sizes above this are extrapolated from two smaller estimates (see estimateMemory). */
const ESTIMATE_DIRECTLY = 65_536;

export async function estimateMemory(
  llama: Llama,
  insights: GgufInsights,
  shape: ContextShape,
  contextSize: number,
): Promise<MemoryNeed> {
  const gpuLayers =
    llama.gpu === false ? 0 : typeof shape.gpuLayers === "number" ? shape.gpuLayers : insights.totalLayers;
  const weights = await insights.estimateModelResourceRequirementsV2({ gpuLayers });
  const flashAttention = contextFlashAttention(
    shape.flashAttention,
    llama.gpu,
    shape.gpuLayers,
    insights.ggufFileInfo.architectureMetadata,
  );
  const at = (size: number) =>
    insights.estimateContextResourceRequirementsV2({
      contextSize: size,
      sequences: shape.parallel,
      modelGpuLayers: gpuLayers,
      batchSize: shape.batchSize,
      flashAttention,
    });
  // node-llama-cpp's estimate takes time that grows with the size (~0.4 s at a million tokens,
  // minutes at 100 million); the memory grows linearly with it (the KV cache), so a large size
  // is extrapolated from two small ones.
  let context: { cpuRam: number; gpuVram: number };
  if (contextSize <= ESTIMATE_DIRECTLY) context = await at(contextSize);
  else {
    const [a, b] = [await at(ESTIMATE_DIRECTLY / 2), await at(ESTIMATE_DIRECTLY)];
    const scale = (contextSize - ESTIMATE_DIRECTLY / 2) / (ESTIMATE_DIRECTLY / 2);
    context = {
      cpuRam: a.cpuRam + (b.cpuRam - a.cpuRam) * scale,
      gpuVram: a.gpuVram + (b.gpuVram - a.gpuVram) * scale,
    };
  }
  const vramTotal = llama.gpu === false ? 0 : (await llama.getVramState()).total;
  return {
    model: weights.cpuRam + weights.gpuVram,
    context: context.cpuRam + context.gpuVram,
    total: weights.cpuRam + weights.gpuVram + context.cpuRam + context.gpuVram,
    ram: weights.cpuRam + context.cpuRam,
    vram: weights.gpuVram + context.gpuVram,
    vramTotal,
  };
}
