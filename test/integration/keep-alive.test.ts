// Idle models unload (issue #25, item 4): `keep_alive` per model, as Ollama's, and the admin
// routes that load or free a model now; a model with requests in flight is never unloaded.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer, TINY_MODEL, tinyConfig } from "../helpers/server.ts";

const ADMIN = "sk-admin-4f0c1e";

let s: TestServer;
beforeAll(async () => {
  const idle = [
    "  - id: idle-tiny",
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    context_size: 256",
    "    threads: 1",
    "    keep_alive: 0.3", // seconds
    "  - id: up",
    "    provider: openai",
    "    base_url: http://127.0.0.1:9/v1",
  ].join("\n");
  s = await startServer({ config: `${tinyConfig()}\n${idle}`, adminApiKey: ADMIN });
});
afterAll(async () => {
  await s?.close();
});

const admin = (path: string) =>
  fetch(`${s.url}/admin/models/${path}`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}` } });
const loaded = (id: string) => s.services.pool.isLoaded(id);
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; !condition(); i++) {
    expect(i, what).toBeLessThan(200);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("keep_alive", () => {
  it("unloads a model once it has been idle that long, and loads it again for the next request", async () => {
    const ask = () =>
      s.client.chat.completions.create({
        model: "idle-tiny",
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 2,
      });
    await ask();
    expect(loaded("idle-tiny")).toBe(true);
    await until(() => !loaded("idle-tiny"), "the idle model was never unloaded");
    // A model without keep_alive stays.
    expect(loaded("roundhouse-tiny")).toBe(true);
    expect((await ask()).model).toBe("idle-tiny");
    await until(() => !loaded("idle-tiny"), "the idle model was never unloaded again");
  });

  it("never unloads a model while a request holds it", async () => {
    // A request's hold on the model, as the provider takes it (the tiny model generates a whole
    // answer faster than keep_alive: a real request would not stay long enough to tell).
    const lease = await s.services.pool.acquire("idle-tiny", 1);
    await new Promise((r) => setTimeout(r, 900));
    expect(loaded("idle-tiny")).toBe(true);
    lease.release();
    await until(() => !loaded("idle-tiny"), "the model was not unloaded after its request ended");
  });
});

describe("POST /admin/models/{id}/load and /unload", () => {
  it("loads a model ahead of its requests and frees it on demand", async () => {
    await s.services.pool.unloadIdle("roundhouse-tiny");
    const res = await admin("tiny/load");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      id: "roundhouse-tiny",
      object: "model.load",
      loaded: true,
      already_loaded: false,
    });
    expect(loaded("roundhouse-tiny")).toBe(true);
    expect(await (await admin("roundhouse-tiny/load")).json()).toMatchObject({ already_loaded: true });

    const freed = await admin("roundhouse-tiny/unload");
    expect(await freed.json()).toEqual({ id: "roundhouse-tiny", object: "model.unload", loaded: false });
    expect(loaded("roundhouse-tiny")).toBe(false);
    const health = (await (await fetch(`${s.url}/healthz`)).json()) as { models: { id: string; loaded: boolean }[] };
    expect(health.models.find((m) => m.id === "roundhouse-tiny")?.loaded).toBe(false);
  });

  it("refuses to unload a busy model with 409, which keeps serving", async () => {
    const stream = await s.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Tell me a long story." }],
      max_tokens: 100,
      stream: true,
    });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    const res = await admin("tiny/unload");
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: { code: "model_busy" } });
    while (!(await iterator.next()).done) {
      // the request goes on to its end
    }
    expect(loaded("roundhouse-tiny")).toBe(true);
    expect((await admin("tiny/unload")).status).toBe(200);
  });

  it("names what cannot be loaded: an unknown model 404, an upstream one 400, without the admin key 401", async () => {
    expect((await admin("no-such-model/load")).status).toBe(404);
    const upstream = await admin("up/load");
    expect(upstream.status).toBe(400);
    expect(((await upstream.json()) as { error: { message: string } }).error.message).toMatch(/upstream/);
    expect((await fetch(`${s.url}/admin/models/tiny/load`, { method: "POST" })).status).toBe(401);
  });
});
