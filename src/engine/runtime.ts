// The one llama.cpp runtime of a process: GPU auto-detection (CUDA, Vulkan, Metal
// when present, CPU otherwise) over node-llama-cpp's prebuilt binaries.
import { availableParallelism } from "node:os";
import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";

export interface RuntimeOptions {
  /** "auto" probes for a GPU; false forces the CPU. */
  gpu?: "auto" | false;
}

export function openRuntime(options: RuntimeOptions = {}): Promise<Llama> {
  return getLlama({
    gpu: options.gpu ?? "auto",
    // Never compile llama.cpp on a request path or at start; `npm ci` brings the binaries.
    build: "never",
    logLevel: LlamaLogLevel.warn,
    // No process-wide cap: each model's context uses exactly its configured `threads`
    // (default cores − 1, see defaultThreads), which a cap would silently lower.
    maxThreads: 0,
  });
}

/** ggml's spinning workers compete with the JS thread: leave one core to it (ENGINE-NOTES). */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}
