// The command trainer's progress contract: JSON lines on stdout, anything else ignored, a line
// split anywhere across chunks read the same.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProgressLines, parseProgress, trainerEnvironment } from "../../src/finetune/command-trainer.ts";
import type { StepProgress } from "../../src/finetune/llama-finetune.ts";

const OUTPUT = [
  "Loading checkpoint shards: 100%|##########| 2/2",
  '{"phase":"train","step":1,"steps":2,"loss":2.5,"accuracy":0.2,"elapsed_seconds":1,"eta_seconds":1}',
  "{not json",
  '{"phase":"train","step":2,"steps":2,"loss":2.25}',
  '{"phase":"eval","step":1,"steps":1,"loss":9}',
  '{"phase":"val","step":1,"steps":1,"loss":2.4,"accuracy":1.7}',
  "",
].join("\n");

describe("parseProgress", () => {
  it("reads the contract's fields and defaults the optional ones", () => {
    expect(parseProgress('{"phase":"val","step":3,"steps":9,"loss":1.5}')).toEqual({
      phase: "val",
      step: 3,
      steps: 9,
      loss: 1.5,
      accuracy: 0,
      elapsedSeconds: 0,
      etaSeconds: 0,
    });
  });

  it("ignores any line that is not a progress line", () => {
    for (const line of ["", "epoch 1", "{}", "[1,2]", '{"phase":"train","step":1,"steps":2}', '{"loss":"1"}']) {
      expect(parseProgress(line), line).toBeUndefined();
    }
  });
});

describe("ProgressLines", () => {
  it("keeps the last train and val figures, whatever the chunks", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: OUTPUT.length - 1 }), { maxLength: 12 }), (cuts) => {
        const steps: StepProgress[] = [];
        const lines = new ProgressLines((s) => steps.push(s));
        const at = [0, ...cuts.sort((a, b) => a - b), OUTPUT.length];
        for (let i = 1; i < at.length; i++) lines.push(OUTPUT.slice(at[i - 1], at[i]));
        expect(lines.end()).toEqual({ train: { loss: 2.25, accuracy: 0 }, val: { loss: 2.4, accuracy: 1 } });
        expect(steps.map((s) => `${s.phase}${s.step}`)).toEqual(["train1", "train2", "val1"]);
      }),
    );
  });

  it("has no result when no train line came", () => {
    const lines = new ProgressLines();
    lines.push('{"phase":"val","step":1,"steps":1,"loss":2}\n');
    expect(lines.end()).toBeUndefined();
  });
});

it("hands the trainer every documented variable", () => {
  const env = trainerEnvironment(
    {
      model: "/m.gguf",
      textFile: "/t.txt",
      out: "/o.gguf",
      context: 64,
      epochs: 1,
      lr: 0.001,
      valSplit: 0.1,
      threads: 2,
      seed: 5,
    },
    { epoch: 2, epochs: 3 },
  );
  expect(env).toEqual({
    ROUNDHOUSE_MODEL: "/m.gguf",
    ROUNDHOUSE_TRAINING_TEXT: "/t.txt",
    ROUNDHOUSE_OUTPUT: "/o.gguf",
    ROUNDHOUSE_CONTEXT: "64",
    ROUNDHOUSE_LEARNING_RATE: "0.001",
    ROUNDHOUSE_VAL_SPLIT: "0.1",
    ROUNDHOUSE_SEED: "5",
    ROUNDHOUSE_THREADS: "2",
    ROUNDHOUSE_EPOCH: "2",
    ROUNDHOUSE_N_EPOCHS: "3",
  });
});
