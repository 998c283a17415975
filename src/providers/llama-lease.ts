// How a local request holds the model's sequences: leased waits for them and builds what the
// request runs on; settle gives them back once every choice has ended.
import type { Token } from "node-llama-cpp";
import type { LoadedModel, ModelLease, ModelPool } from "../engine/pool.ts";
import type { EventQueue } from "./event-queue.ts";
import type { ChatEvent } from "./provider.ts";

/**
 * Waits for `count` of the model's sequences and builds what the request runs on the loaded
 * model (released again if that fails); a request with one prompt then moves to the sequence
 * best placed for it (ModelLease.preferPrefix).
 */
export async function leased<P>(
  pool: ModelPool,
  modelId: string,
  count: number,
  signal: AbortSignal,
  build: (loaded: LoadedModel) => P | Promise<P>,
  promptOf: (prepared: P) => readonly Token[] | undefined,
): Promise<{ lease: ModelLease; prepared: P }> {
  const lease = await pool.acquire(modelId, count, signal);
  let prepared: P;
  try {
    prepared = await build(lease.loaded);
  } catch (err) {
    lease.release();
    throw err;
  }
  const prompt = promptOf(prepared);
  if (prompt) await lease.preferPrefix(prompt, signal);
  return { lease, prepared };
}

/** Releases the lease and ends `queue` once every run has ended (fails it if one failed). */
export function settle(runs: Promise<unknown>[], lease: ModelLease, queue: EventQueue<ChatEvent>): void {
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
}
