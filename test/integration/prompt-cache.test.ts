// A conversation keeps its KV cache (issue #25, item 2): when its sequence is given to another
// conversation, its state is saved (prompt_cache) and loaded back when it returns; a prompt that
// starts like what an idle sequence holds (a shared system prompt) copies that instead of
// computing it again. Measured by what the server reports (usage.prompt_tokens_details), and
// checked against a server that computes every prompt itself.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer, tinyModelEntry } from "../helpers/server.ts";

type Message = { role: "system" | "user" | "assistant"; content: string };

const model = (id: string, parallel: number, extra: string[] = []) =>
  tinyModelEntry(id, { contextSize: 512, parallel, extra });

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: [
      "models:",
      model("one-seq", 1),
      model("two-seq", 2),
      model("waiting", 2),
      // A folder it cannot make (under a file): the model does not load, and says why.
      tinyModelEntry("bad-dir", { preload: false, extra: ["prompt_cache: {dir: /etc/hostname/roundhouse}"] }),
      // What every answer is checked against: nothing saved, nothing restored.
      model("uncached", 1, ["prompt_cache: false"]),
    ].join("\n"),
  });
});
afterAll(async () => {
  await s?.close();
});

async function turn(id: string, messages: Message[]) {
  const res = await s.client.chat.completions.create({ model: id, messages, max_tokens: 8, temperature: 0 });
  return {
    reply: res.choices[0]?.message.content ?? "",
    prompt: res.usage?.prompt_tokens ?? 0,
    cached: res.usage?.prompt_tokens_details?.cached_tokens ?? 0,
  };
}

const metric = async (line: RegExp): Promise<number> => {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const match = text.split("\n").find((l) => line.test(l));
  return match === undefined ? 0 : Number(match.split(" ").at(-1));
};

const ADA =
  "My name is Ada. I keep bees on a hill above the harbour, and my bees make clover honey every summer. In the winter I mend the hives and read about the old lighthouse keepers.";
const BOB = "Tell me about the tallest lighthouse you know of, and the storms it has seen over the years, please.";

describe("prompt_cache", () => {
  it("saves a conversation when its only sequence serves another, and loads it back when it returns", async () => {
    const a1 = await turn("one-seq", [{ role: "user", content: ADA }]);
    // Another conversation takes the one sequence: Ada's state must not be lost.
    await turn("one-seq", [{ role: "user", content: BOB }]);
    const a2Messages: Message[] = [
      { role: "user", content: ADA },
      { role: "assistant", content: a1.reply },
      { role: "user", content: "What do I keep?" },
    ];
    const a2 = await turn("one-seq", a2Messages);
    expect(a1.prompt).toBeGreaterThan(64);
    // All of the first turn's prompt came back (its last token is always computed again).
    expect(a2.cached).toBeGreaterThanOrEqual(a1.prompt - 1);
    expect(await metric(/^roundhouse_prompt_cache_operations_total\{model="one-seq",operation="saved"\}/)).toBe(1);
    expect(await metric(/^roundhouse_prompt_cache_operations_total\{model="one-seq",operation="restored"\}/)).toBe(1);
    expect(await metric(/^roundhouse_prompt_cache_bytes\{model="one-seq"\}/)).toBeGreaterThan(0);

    // The same answer as computing everything.
    await turn("uncached", [{ role: "user", content: ADA }]);
    await turn("uncached", [{ role: "user", content: BOB }]);
    const reference = await turn("uncached", a2Messages);
    expect(reference.cached).toBeLessThan(a1.prompt - 1);
    expect(a2.reply).toBe(reference.reply);
  });

  it("copies a shared system prompt from the idle sequence holding it instead of computing it again", async () => {
    const system: Message = {
      role: "system",
      content: "You are the harbour office assistant. Answer briefly and politely, in plain words.",
    };
    const a1 = await turn("two-seq", [system, { role: "user", content: ADA }]);
    // A long question: the system prompt is under half of this prompt, so it goes to the other
    // (never used) sequence rather than overwrite Ada's conversation, and copies the start.
    const question = `${BOB} ${BOB} ${BOB}`;
    const b1 = await turn("two-seq", [system, { role: "user", content: question }]);
    // The system prompt's tokens, not the question's.
    expect(b1.cached).toBeGreaterThanOrEqual(32);
    expect(b1.cached).toBeLessThan(b1.prompt / 2);
    expect(await metric(/^roundhouse_prompt_cache_operations_total\{model="two-seq",operation="copied"\}/)).toBe(1);
    // Ada's conversation is still whole in its own sequence.
    const a2 = await turn("two-seq", [
      system,
      { role: "user", content: ADA },
      { role: "assistant", content: a1.reply },
      { role: "user", content: "What do I keep?" },
    ]);
    expect(a2.cached).toBeGreaterThanOrEqual(a1.prompt - 1);

    const reference = await turn("uncached", [system, { role: "user", content: question }]);
    expect(b1.reply).toBe(reference.reply);
  });

  it("waits for a sequence computing the same start of a prompt, then copies it instead of computing it twice", async () => {
    const pool = s.services.pool;
    const { model: llm } = await pool.load("waiting");
    const shared = llm.tokenize(`You are the harbour office assistant. ${ADA}`);
    const promptA = [...shared, ...llm.tokenize(" What do I keep?")];
    const promptB = [...shared, ...llm.tokenize(" Where do I live, and what do my bees make?")];

    const a = await pool.acquire("waiting", 1);
    await a.preferPrefix(promptA);
    const b = await pool.acquire("waiting", 1);
    let ready = false;
    const bReady = b.preferPrefix(promptB).then(() => {
      ready = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    // A has not computed anything yet: B waits for it rather than compute the same start alongside.
    expect(ready).toBe(false);
    await a.sequences[0]?.evaluateWithoutGeneratingNewTokens(promptA);
    await bReady;
    expect(b.sequences[0]?.compareContextTokens(promptB).firstDifferentIndex).toBeGreaterThanOrEqual(shared.length);
    b.release();
    a.release();

    // A request that ends without computing its prompt does not keep another waiting.
    const fresh = llm.tokenize(`A different conversation altogether. ${BOB}`);
    const c = await pool.acquire("waiting", 1);
    await c.preferPrefix([...fresh, ...llm.tokenize(" One.")]);
    const d = await pool.acquire("waiting", 1);
    let dReady = false;
    const dDone = d.preferPrefix([...fresh, ...llm.tokenize(" Two.")]).then(() => {
      dReady = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(dReady).toBe(false);
    c.release();
    await dDone;
    d.release();
  });

  it("a prompt_cache folder that cannot be used fails the load with a 503 naming it, not a crash", async () => {
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "bad-dir", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
    });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toContain("prompt_cache");
    expect(s.services.pool.isLoaded("bad-dir")).toBe(false);
  });
});
