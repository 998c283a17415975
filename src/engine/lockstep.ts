// Advances every active generation of a model by one step together. node-llama-cpp
// batches the decodes queued in the same tick; when each request drives its own
// generator, the last sampler re-queues too late and a step of 8 sequences splits into
// ~7 single-token decodes (ENGINE-NOTES, "Batch formation"). Stepping all generations
// in lock-step keeps one decode per step.
//
// They step in the order of their sequences, because llama.cpp computes a batch in one pass
// only when its sequences come in increasing, consecutive order: with a KV cache of one stream
// per sequence (node-llama-cpp's) it splits a batch wherever the next sequence id is not the
// last + 1 (llama_batch_allocr::split_equal, sequential), and each part reads all the weights
// again. Stepped in arrival order, 8 streams on 8 sequences that had been reused in another
// order decoded in 2–3 passes: 55–65 ms a step on the 115M bench model instead of 33–40.

export interface Stepper {
  /** Advances by one token; resolves false once this generation is finished. */
  step(): Promise<boolean>;
}

interface Running {
  stepper: Stepper;
  /** Its sequence's index (= node-llama-cpp's sequence id): the order of its decode in a batch. */
  order: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class LockstepDriver {
  private readonly active = new Set<Running>();
  private looping = false;

  get size(): number {
    return this.active.size;
  }

  /** Runs a generation on the sequence of index `order` to its end, alongside the others. */
  run(stepper: Stepper, order: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.active.add({ stepper, order, resolve, reject });
      if (!this.looping) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.active.size > 0) {
        await Promise.all(
          [...this.active]
            .sort((a, b) => a.order - b.order)
            .map(async (r) => {
              try {
                if (await r.stepper.step()) return;
                this.active.delete(r);
                r.resolve();
              } catch (err) {
                this.active.delete(r);
                r.reject(err);
              }
            }),
        );
      }
    } finally {
      this.looping = false;
    }
  }
}
