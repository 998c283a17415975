// The prompt cache's store on the real tiny model: states saved from one sequence load into
// another, the least recently used go first past max_bytes, a dropped state cannot be loaded,
// and the folder goes with the cache.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PromptCache } from "../../src/engine/prompt-cache.ts";
import { TINY_MODEL, testRuntime } from "../helpers/server.ts";

let model: LlamaModel;
let context: LlamaContext;
let a: LlamaContextSequence;
let b: LlamaContextSequence;
const root = mkdtempSync(join(tmpdir(), "roundhouse-prompt-cache-test-"));

beforeAll(async () => {
  const llama = await testRuntime();
  model = await llama.loadModel({ modelPath: TINY_MODEL });
  context = await model.createContext({ contextSize: 512, sequences: 2, threads: 1 });
  a = context.getSequence();
  b = context.getSequence();
});
afterAll(async () => {
  await context?.dispose();
  await model?.dispose();
  rmSync(root, { recursive: true, force: true });
});

async function hold(sequence: LlamaContextSequence, text: string) {
  await sequence.clearHistory();
  const tokens = model.tokenize(text);
  await sequence.evaluateWithoutGeneratingNewTokens(tokens);
  return tokens;
}

describe("PromptCache", () => {
  it("loads a state saved from one sequence into another, which then holds its tokens", async () => {
    const cache = await PromptCache.open(1 << 30, root);
    const tokens = await hold(a, "the harbour lantern shines over the copper river at night");
    await cache.save(a);
    expect(cache.size).toBe(1);
    const [saved] = cache.candidates([...tokens, ...model.tokenize(" and more")]);
    if (!saved) throw new Error("nothing saved");
    expect(saved.commonPrefix).toBe(tokens.length);
    expect(await cache.restore(b, saved.source)).toBe(true);
    expect(b.contextTokens).toEqual(tokens);
    // The next token is what the sequence that computed it would give.
    const next = async (s: LlamaContextSequence) =>
      (await s.evaluate(tokens.slice(-1), { temperature: 0 }).next()).value;
    await a.eraseContextTokenRanges([{ start: tokens.length - 1, end: a.nextTokenIndex }]);
    await b.eraseContextTokenRanges([{ start: tokens.length - 1, end: b.nextTokenIndex }]);
    expect(await next(b)).toBe(await next(a));
    await cache.clear();
  });

  it("drops the least recently used past max_bytes, and a state that extends another replaces it", async () => {
    const [one, two, three] = [
      "one two three four five six seven eight nine ten",
      "red blue green yellow purple orange black white grey pink",
      "cat dog cow hen pig goat duck horse sheep mouse",
    ];
    const probe = await PromptCache.open(1 << 30, root);
    for (const text of [one, two, three]) {
      await hold(a, text);
      await probe.save(a);
    }
    // Room for all three less a byte: one must go.
    const maxBytes = probe.bytes - 1;
    await probe.clear();

    const cache = await PromptCache.open(maxBytes, root);
    const first = await hold(a, one);
    await cache.save(a);
    const second = await hold(a, two);
    await cache.save(a);
    // Used again: the second is now the least recently used.
    const firstSaved = cache.candidates(first).find((c) => c.commonPrefix === first.length);
    expect(firstSaved && (await cache.restore(b, firstSaved.source))).toBe(true);
    const third = await hold(a, three);
    await cache.save(a);
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
    const prefixes = (tokens: readonly Token[]) => cache.candidates(tokens).map((c) => c.commonPrefix);
    expect(prefixes(first)).toContain(first.length);
    expect(prefixes(third)).toContain(third.length);
    expect(prefixes(second)).not.toContain(second.length);

    // The first, continued: its longer state replaces it (it holds all the first did).
    await hold(a, "one two three four five six seven eight nine ten eleven twelve");
    await cache.save(a);
    expect(cache.covers(first)).toBe(true);
    expect(prefixes(first).filter((n) => n === first.length)).toHaveLength(1);
    expect(cache.size).toBe(2);
    await cache.clear();
  });

  it("keeps its files in a folder of its own, removed with it", async () => {
    const cache = await PromptCache.open(1 << 30, root);
    await hold(a, "a folder of its own for every loaded model");
    await cache.save(a);
    expect(
      cache.folder.startsWith(join(root, `roundhouse-prompt-cache-${process.getuid?.() ?? 0}`, `${process.pid}-`)),
    ).toBe(true);
    expect(readdirSync(cache.folder)).toHaveLength(1);
    await cache.clear();
    expect(existsSync(cache.folder)).toBe(false);
  });

  it("removes the folders of a process that is gone (killed before it could clean up)", async () => {
    const parent = join(root, `roundhouse-prompt-cache-${process.getuid?.() ?? 0}`);
    const gone = spawnSync("true").pid;
    mkdirSync(join(parent, `${gone}-left`), { recursive: true });
    writeFileSync(join(parent, `${gone}-left`, "0.state"), "x");
    const mine = await PromptCache.open(1 << 30, root);
    expect(existsSync(join(parent, `${gone}-left`))).toBe(false);
    expect(existsSync(mine.folder)).toBe(true);
    await mine.clear();
  });
});
