// The stored responses: a response belongs to its key, expires after the ttl, and an id that
// does not have a response id's shape never names a file.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ResponseObject } from "../../src/openai/responses.ts";
import { newResponseId, ResponseStore, type StoredResponse } from "../../src/storage/responses.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stored(id: string, owner: string, expiresAt: number): StoredResponse {
  return { response: { id } as ResponseObject, input: [], conversation: [], owner, expiresAt };
}

describe("ResponseStore", () => {
  it("gives a response to its owner only, and forgets it once expired", async () => {
    const dir = mkdtempSync(join(tmpdir(), "roundhouse-responses-"));
    dirs.push(dir);
    let now = 1_000;
    const store = ResponseStore.files(dir, 60_000, () => now);
    const id = newResponseId();
    await store.put(stored(id, "key_a", now + 60_000));
    expect((await store.get(id, "key_a"))?.response.id).toBe(id);
    expect(await store.get(id, "key_b")).toBeUndefined();
    expect(await store.delete(id, "key_b")).toBe(false);
    now += 60_000;
    expect(await store.get(id, "key_a")).toBeUndefined();
    expect(readdirSync(join(dir, "responses"))).toEqual([]);
  });

  it("never reads a path from an id that is not a response id", async () => {
    const dir = mkdtempSync(join(tmpdir(), "roundhouse-responses-"));
    dirs.push(dir);
    const store = ResponseStore.files(dir, 60_000);
    for (const id of ["../../etc/passwd", "resp_../x", "resp_", "msg_abcdefabcdefabcdef"]) {
      expect(await store.get(id, "key_a")).toBeUndefined();
    }
  });

  it("with Redis, one replica's response is every replica's, and Redis forgets it with the ttl", async () => {
    const a = ResponseStore.redis("redis://127.0.0.1:6379", 60_000);
    const b = ResponseStore.redis("redis://127.0.0.1:6379", 60_000);
    try {
      const id = newResponseId();
      await a.put(stored(id, "key_a", Date.now() + 300));
      expect((await b.get(id, "key_a"))?.response.id).toBe(id);
      expect(await b.get(id, "key_b")).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await b.get(id, "key_a")).toBeUndefined();

      const kept = newResponseId();
      await a.put(stored(kept, "key_a", Date.now() + 60_000));
      expect(await b.delete(kept, "key_a")).toBe(true);
      expect(await a.get(kept, "key_a")).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
