// The steps that turn an untrained GGUF into the shipped model (train, repair
// metadata, quantize) live in src/finetune/llama-finetune.ts, shared with the
// fine-tuning jobs so both run the llama.cpp tools the same way.
export {
  type EpochResult,
  type Figures,
  FinetuneLog,
  type FinetuneOptions,
  type FinetuneResult,
  finetune,
  quantize,
  type RestoreOptions,
  restoreMetadata,
} from "../../src/finetune/llama-finetune.ts";
