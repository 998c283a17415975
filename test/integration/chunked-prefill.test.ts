// A long prompt is computed in chunks, one per lock-step round (issue #25, item 1): the running
// streams, stepped in the same rounds, get a token per chunk instead of waiting for the whole
// prompt (node-llama-cpp puts a round's decodes in one batch). Checked by order, not by time: a
// running stream (here a stand-in that records what the long prompt's sequence holds at each of
// its steps) is stepped while that sequence holds only part of the prompt; before, the prompt
// was one step, and the stream's next step came only once all of it was computed.
import { afterAll, beforeAll, expect, it } from "vitest";
import { Generation } from "../../src/engine/generation.ts";
import type { Stepper } from "../../src/engine/lockstep.ts";
import { startServer, type TestServer, tinyModelEntry } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: ["models:", tinyModelEntry("chunked", { contextSize: 1024, parallel: 1 })].join("\n"),
  });
});
afterAll(async () => {
  await s?.close();
});

it("a running stream is stepped while a long prompt is being computed", async () => {
  const lease = await s.services.pool.acquire("chunked", 1);
  try {
    const { model, driver } = lease.loaded;
    const sequence = lease.sequences[0];
    if (!sequence) throw new Error("no sequence");
    await sequence.clearHistory();
    const words = "harbour lantern orchard meadow copper river station garden signal ferry market window".split(" ");
    const long = model.tokenize(Array.from({ length: 160 }, (_, i) => words[(i * 7) % words.length]).join(" "));
    expect(long.length).toBeGreaterThan(2 * 256);

    let done = false;
    const held: number[] = [];
    const running: Stepper = {
      step: async () => {
        held.push(sequence.nextTokenIndex);
        await new Promise((r) => setImmediate(r));
        return !done;
      },
    };
    const runningDone = driver.run(running, 1);
    const generation = new Generation(
      model,
      sequence,
      { prompt: long, maxTokens: 2, stop: [], sampling: { temperature: 0 } },
      { text: () => undefined, end: () => {} },
      undefined,
    );
    await driver.run(generation, 0);
    done = true;
    await runningDone;
    expect(held.filter((n) => n > 0 && n < long.length).length).toBeGreaterThanOrEqual(2);
  } finally {
    lease.release();
  }
});
