// Where trainable jobs wait and who trains them. In-process by default: one job at a
// time, on this server. With Redis: a BullMQ queue, trained by `npm run worker`
// processes (which must share DATA_DIR with the server: files, jobs and models live
// there); the server only adds to it.
import { createClient } from "@keyv/redis";
import { type ConnectionOptions, DelayedError, Queue, Worker } from "bullmq";
import type { Logger } from "pino";

export const QUEUE_NAME = "roundhouse-fine-tuning";

export interface JobQueue {
  readonly kind: "in-process" | "redis";
  enqueue(jobId: string): Promise<void>;
  /** Takes a waiting job off the queue, or stops it if it is training here; resolves once it has stopped. */
  stop(jobId: string): Promise<void>;
  close(): Promise<void>;
}

export type TrainFn = (jobId: string, signal: AbortSignal) => Promise<void>;

export class InProcessQueue implements JobQueue {
  readonly kind = "in-process";
  private readonly waiting: string[] = [];
  private current: { id: string; abort: AbortController; done: Promise<void> } | undefined;
  private closed = false;

  constructor(
    private readonly train: TrainFn,
    private readonly logger: Logger,
  ) {}

  async enqueue(jobId: string): Promise<void> {
    if (this.closed || this.waiting.includes(jobId) || this.current?.id === jobId) return;
    this.waiting.push(jobId);
    this.pump();
  }

  async stop(jobId: string): Promise<void> {
    const i = this.waiting.indexOf(jobId);
    if (i >= 0) this.waiting.splice(i, 1);
    if (this.current?.id === jobId) {
      this.current.abort.abort();
      await this.current.done;
    }
  }

  /** Stops the running job (it stays `running` on disk and resumes from its checkpoint at the next start). */
  async close(): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    if (this.current) {
      this.current.abort.abort();
      await this.current.done;
    }
  }

  private pump(): void {
    if (this.current || this.closed) return;
    const id = this.waiting.shift();
    if (id === undefined) return;
    const abort = new AbortController();
    const done = this.train(id, abort.signal)
      .catch((err: unknown) => this.logger.error({ err, job: id }, "fine-tuning job crashed"))
      .finally(() => {
        this.current = undefined;
        this.pump();
      });
    this.current = { id, abort, done };
  }
}

/**
 * BullMQ's default driver (ioredis) is not installed; node-redis is (through @keyv/redis, the
 * cache's store), and BullMQ takes a node-redis client as its connection and duplicates it.
 */
function redisConnection(url: string): { connection: ConnectionOptions; close(): Promise<void> } {
  const client = createClient({ url });
  return {
    connection: client as unknown as ConnectionOptions,
    // BullMQ leaves a client it was given open: ours to close.
    close: async () => {
      if (client.isOpen) await client.close().catch(() => {});
    },
  };
}

export class RedisQueue implements JobQueue {
  readonly kind = "redis";
  private readonly queue: Queue;
  private readonly redis: ReturnType<typeof redisConnection>;

  constructor(url: string) {
    this.redis = redisConnection(url);
    this.queue = new Queue(QUEUE_NAME, { connection: this.redis.connection });
  }

  async enqueue(jobId: string): Promise<void> {
    // The job id is BullMQ's id too, so enqueuing twice (recovery at start) adds it once.
    await this.queue.add("train", { jobId }, { jobId, removeOnComplete: true, removeOnFail: true });
  }

  /** A waiting job is removed; a running one is stopped by its worker, which watches the job's status. */
  async stop(jobId: string): Promise<void> {
    await this.queue.remove(jobId).catch(() => 0);
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.redis.close();
  }
}

/**
 * A BullMQ worker training one job at a time. `isCancelled` is polled while a job
 * trains, since the cancel request reaches the server, not this process.
 */
export function startWorker(opts: {
  url: string;
  train: TrainFn;
  isCancelled: (jobId: string) => Promise<boolean>;
  /** Whether a job may start training now (its tenant's running_jobs); false puts it back for a while. */
  mayStart?: (jobId: string) => Promise<boolean>;
  /** How long a job that may not start yet waits before a worker asks again. */
  deferMs?: number;
  logger: Logger;
  pollMs?: number;
}): { worker: Worker; close(): Promise<void> } {
  const redis = redisConnection(opts.url);
  const worker = new Worker(
    QUEUE_NAME,
    async (job, token) => {
      const jobId = (job.data as { jobId: string }).jobId;
      if (opts.mayStart && token !== undefined && !(await opts.mayStart(jobId))) {
        // BullMQ's way to put a job back without failing it: it waits, then any worker takes it.
        opts.logger.info({ job: jobId }, "tenant at its running_jobs limit: training later");
        await job.moveToDelayed(Date.now() + (opts.deferMs ?? 5000), token);
        throw new DelayedError();
      }
      const abort = new AbortController();
      const timer = setInterval(() => {
        opts.isCancelled(jobId).then(
          (cancelled) => cancelled && abort.abort(),
          () => {},
        );
      }, opts.pollMs ?? 1000);
      try {
        opts.logger.info({ job: jobId }, "training");
        await opts.train(jobId, abort.signal);
      } finally {
        clearInterval(timer);
      }
    },
    // Training takes minutes: a long lock, renewed by BullMQ while the process lives; a crashed
    // worker's job is redelivered and resumes from its last checkpoint.
    { connection: redis.connection, concurrency: 1, lockDuration: 60_000 },
  );
  return {
    worker,
    close: async () => {
      // Force: a training job is aborted and stays `running`, so the next worker resumes it.
      await worker.close(true);
      await redis.close();
    },
  };
}
