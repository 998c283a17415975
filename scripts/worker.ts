// A fine-tuning worker: trains jobs from the BullMQ queue in Redis, one at a time.
//
//   REDIS_URL=redis://host:6379 DATA_DIR=/shared/data npm run worker
//
// It must share DATA_DIR (and models.yaml, MODELS_CONFIG) with the servers: the
// uploaded files, the jobs and the trained models live there. Servers pick up the
// models it registers within seconds; a cancel reaches it through the job's status.
import pino from "pino";
import { ConfigError } from "../src/config/errors.ts";
import { isLlamaModel, loadConfig } from "../src/config/load.ts";
import { openRuntime } from "../src/engine/runtime.ts";
import { startWorker } from "../src/finetune/queue.ts";
import { FineTuning } from "../src/finetune/service.ts";
import { Tenants } from "../src/security/tenants.ts";
import { trainableModel } from "../src/services.ts";

async function main(): Promise<void> {
  const config = loadConfig(process.env.MODELS_CONFIG ?? "./models.yaml");
  const logger = pino({ level: process.env.LOG_LEVEL ?? "info" });
  const url = config.fine_tuning.redisUrl;
  if (!url) throw new Error("npm run worker needs Redis: set REDIS_URL or fine_tuning.redis_url in models.yaml");
  // Only local models can be fine-tuned.
  const models = new Map(config.models.filter(isLlamaModel).map((m) => [m.id, m]));
  const llama = await openRuntime({ gpu: "auto" });
  const fineTuning = new FineTuning({
    dataDir: process.env.DATA_DIR ?? "./data",
    llama,
    logger,
    threads: config.fine_tuning.threads,
    redisUrl: url,
    tenants: new Tenants(config.tenants),
    trainable: (id) => trainableModel(models.get(id), config.file),
    resolveModel: (name) => (models.has(name) ? name : undefined),
    // The worker serves nothing: the registry record it writes is what the servers serve.
    serving: { serve: () => true, unserve: async () => {} },
  });
  const worker = startWorker({
    url,
    train: (id, signal) => fineTuning.runner.train(id, signal),
    isCancelled: async (id) => (await fineTuning.jobs.get(id))?.status === "cancelled",
    mayStart: (id) => fineTuning.mayStart(id),
    logger,
  });
  logger.info({ redis: url.replace(/\/\/[^@]*@/, "//***@") }, "fine-tuning worker ready");
  const stop = async (signal: string) => {
    logger.info({ signal }, "worker stopping");
    await worker.close();
    await fineTuning.close();
    await llama.dispose();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
