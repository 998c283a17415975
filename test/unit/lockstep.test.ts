// The lock-step driver steps generations in the order of their sequences, whatever order they
// arrived in: llama.cpp decodes a batch in one pass only when its sequences come in increasing,
// consecutive order (src/engine/lockstep.ts).
import { describe, expect, it } from "vitest";
import { LockstepDriver, type Stepper } from "../../src/engine/lockstep.ts";

describe("LockstepDriver", () => {
  it("steps every generation once per round, in the order of its sequence", async () => {
    const driver = new LockstepDriver();
    const calls: number[] = [];
    const stepper = (order: number, steps: number): Stepper => {
      let left = steps;
      return {
        step: async () => {
          calls.push(order);
          await Promise.resolve();
          return --left > 0;
        },
      };
    };
    await Promise.all([driver.run(stepper(3, 2), 3), driver.run(stepper(0, 3), 0), driver.run(stepper(1, 2), 1)]);
    // The first round starts with the first arrival alone; from the second on, all three step in
    // sequence order (3 ends after 2 steps, 1 after 2, 0 after 3).
    expect(calls).toEqual([3, 0, 1, 3, 0, 1, 0]);
  });
});
