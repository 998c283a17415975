// Advances every active generation of a model by one step together. node-llama-cpp
// batches the decodes queued in the same tick; when each request drives its own
// generator, the last sampler re-queues too late and a step of 8 sequences splits into
// ~7 single-token decodes (ENGINE-NOTES, "Batch formation"). Stepping all generations
// in lock-step keeps one decode per step.

export interface Stepper {
  /** Advances by one token; resolves false once this generation is finished. */
  step(): Promise<boolean>;
}

interface Running {
  stepper: Stepper;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class LockstepDriver {
  private readonly active = new Set<Running>();
  private looping = false;

  get size(): number {
    return this.active.size;
  }

  /** Runs a generation to its end alongside the others. */
  run(stepper: Stepper): Promise<void> {
    return new Promise((resolve, reject) => {
      this.active.add({ stepper, resolve, reject });
      if (!this.looping) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.active.size > 0) {
        await Promise.all(
          [...this.active].map(async (r) => {
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
