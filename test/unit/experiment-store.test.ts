import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileExperimentStore, type RollbackEvent } from "../../src/storage/experiments.ts";

const event: RollbackEvent = {
  type: "rollback",
  at: "2025-06-12T08:00:00.000Z",
  experiment: "chat",
  variant: "canary",
  rule: { metric: "error_rate", max: 0.2, min_requests: 20, window_ms: 300_000 },
  observed: 0.5,
  threshold: 0.2,
  control_value: null,
  requests: { variant: 20, control: null },
};

describe("FileExperimentStore", () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), "roundhouse-experiments-"));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("keeps rollbacks, weights, events and feedback across a restart", async () => {
    const d = dir();
    const first = new FileExperimentStore(d);
    const started = (await first.load(["chat"], 1000)).get("chat")?.startedAt;
    expect(started).toBe(1000);
    expect(await first.rollBack(event)).toBe(true);
    expect(await first.rollBack(event)).toBe(false);
    await first.setWeights("chat", { control: 70 }, 2000);
    await first.addFeedback({ at: 3000, request_id: "r1", experiment: "chat", variant: "canary", score: -1 });
    await first.close();

    const second = new FileExperimentStore(d);
    const state = (await second.load(["chat"], 9999)).get("chat");
    expect(state).toEqual({ startedAt: 1000, weights: { control: 70 }, rolledBack: { canary: event }, restoredAt: {} });
    expect((await second.events("chat")).map((e) => e.type)).toEqual(["rollback", "weights"]);
    expect(await second.feedback("chat", 0, 5000)).toHaveLength(1);
    expect(await second.feedback("chat", 3001, 5000)).toHaveLength(0);

    expect(await second.restore("chat", "canary", 4000)).toBe(true);
    expect((await second.load(["chat"], 9999)).get("chat")).toMatchObject({
      rolledBack: {},
      restoredAt: { canary: 4000 },
    });
  });

  it("remembers requests for feedback until they expire", async () => {
    const store = new FileExperimentStore(dir());
    store.remember("r1", { experiment: "chat", variant: "control", model: "tiny" }, 30);
    expect(await store.recall("r1")).toEqual({ experiment: "chat", variant: "control", model: "tiny" });
    await new Promise((r) => setTimeout(r, 60));
    expect(await store.recall("r1")).toBeUndefined();
  });
});
