// /v1/files uploads as an attacker or a careless client sends them: any file name, control
// characters, duplicated parts; against the real server over loopback.
import { existsSync, readdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { parse as parseDisposition } from "content-disposition";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileNameProblem } from "../../src/finetune/files.ts";
import { envelopeOf, rawRequest } from "../helpers/http.ts";
import { multipart, type Part } from "../helpers/multipart.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s?.close();
});

const LINE = JSON.stringify({
  messages: [
    { role: "user", content: "q" },
    { role: "assistant", content: "a" },
  ],
});

const postParts = (parts: readonly Part[]) => {
  const { contentType, body } = multipart(parts);
  return rawRequest(s.url, { method: "POST", path: "/v1/files", headers: { "content-type": contentType }, body });
};

describe("file names", () => {
  it("any Unicode name uploads, downloads and comes back in an RFC 6266/5987 content-disposition", async () => {
    for (const name of ["日本語.jsonl", "données été.jsonl", 'quote"d.jsonl', "emoji-🚂.jsonl", "plain.jsonl"]) {
      const file = await s.client.files.create({ file: await toFile(Buffer.from(LINE), name), purpose: "fine-tune" });
      expect(file.filename).toBe(name);
      expect((await s.client.files.retrieve(file.id)).filename).toBe(name);
      const res = await fetch(`${s.baseURL}/files/${file.id}/content`);
      expect(res.status, name).toBe(200);
      expect(await res.text()).toBe(LINE);
      const disposition = res.headers.get("content-disposition") ?? "";
      // Header values stay ASCII: the name itself travels in filename*, a fallback in filename.
      expect(disposition).toMatch(/^[\x20-\x7e]+$/);
      const parsed = parseDisposition(disposition);
      expect(parsed.type).toBe("attachment");
      expect(parsed.parameters.filename, disposition).toBe(name);
    }
  });

  it("a name with a control character is refused at upload with a 400 naming the file part", async () => {
    for (const name of ["a\x01b.jsonl", "tab\there.jsonl", "nul\x00.jsonl", "del\x7f.jsonl", "c1\u0085.jsonl"]) {
      const res = await postParts([
        { name: "purpose", body: "fine-tune" },
        { name: "file", filename: name, body: LINE },
      ]);
      expect(res.status, JSON.stringify(name)).toBe(400);
      expect(envelopeOf(res.body).error.message).toMatch(/control character/);
      // The same name encoded per RFC 5987 reaches the name check itself.
      const encoded = await postParts([
        { name: "purpose", body: "fine-tune" },
        { name: "file", filenameStar: name, body: LINE },
      ]);
      expect(encoded.status, JSON.stringify(name)).toBe(400);
      const { error } = envelopeOf(encoded.body);
      expect(error.param).toBe("file");
      expect(error.message).toMatch(/control character \(U\+00[0-9A-F]{2}\)/);
    }
    // Nothing was stored.
    const list = await s.client.files.list();
    expect(list.data.filter((f) => fileNameProblem(f.filename) !== undefined)).toEqual([]);
  });
});

describe("multipart parts", () => {
  it("a duplicated `file` or `purpose` part is a 400 naming it, and nothing is stored", async () => {
    const before = (await s.client.files.list()).data.length;
    const cases: [string, Part[]][] = [
      [
        "file",
        [
          { name: "purpose", body: "fine-tune" },
          { name: "file", filename: "a.jsonl", body: LINE },
          { name: "file", filename: "b.jsonl", body: LINE },
        ],
      ],
      [
        "purpose",
        [
          { name: "purpose", body: "fine-tune" },
          { name: "purpose", body: "batch" },
          { name: "file", filename: "a.jsonl", body: LINE },
        ],
      ],
    ];
    for (const [param, parts] of cases) {
      const res = await postParts(parts);
      expect(res.status, param).toBe(400);
      const { error } = envelopeOf(res.body);
      expect(error.param).toBe(param);
      expect(error.message).toMatch(/more than once/);
    }
    expect((await s.client.files.list()).data.length).toBe(before);
  });
});

describe("concurrent uploads", () => {
  it("past limits.max_concurrent_uploads a caller gets 429 with Retry-After; the others complete", async () => {
    const { contentType, body } = multipart([
      { name: "purpose", body: "fine-tune" },
      { name: "file", filename: "slow.jsonl", body: LINE },
    ]);
    // Four uploads (the default limit) that have sent half their body and wait.
    const held = Array.from({ length: 4 }, () => {
      const req = request(`${s.url}/v1/files`, {
        method: "POST",
        headers: { "content-type": contentType, "content-length": body.length },
      });
      const answer = new Promise<number>((resolve, reject) => {
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
      });
      req.write(body.subarray(0, body.length >> 1));
      return { req, answer };
    });
    // The server has taken all four in once a fifth is refused.
    let refused: Awaited<ReturnType<typeof rawRequest>> | undefined;
    for (let i = 0; i < 50 && refused?.status !== 429; i++) {
      refused = await postParts([
        { name: "purpose", body: "fine-tune" },
        { name: "file", filename: "fifth.jsonl", body: LINE },
      ]);
    }
    expect(refused?.status).toBe(429);
    expect(refused?.headers["retry-after"]).toBe("1");
    expect(envelopeOf(refused?.body ?? "").error.message).toMatch(/at most 4/);
    for (const h of held) h.req.end(body.subarray(body.length >> 1));
    expect(await Promise.all(held.map((h) => h.answer))).toEqual([200, 200, 200, 200]);
    // Slots are given back.
    const after = await postParts([
      { name: "purpose", body: "fine-tune" },
      { name: "file", filename: "after.jsonl", body: LINE },
    ]);
    expect(after.status).toBe(200);
  });

  it("a chunked upload past limits.max_upload is a 413 and leaves no temp file", async () => {
    const small = await startServer({ uploadLimitBytes: 64 * 1024 });
    try {
      const { contentType, body } = multipart([
        { name: "purpose", body: "batch" },
        { name: "file", filename: "big.bin", body: Buffer.alloc(256 * 1024, 0x61) },
      ]);
      const status = await new Promise<number>((resolve, reject) => {
        // No content-length: the size is only known by counting.
        const req = request(`${small.url}/v1/files`, { method: "POST", headers: { "content-type": contentType } });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end(body);
      });
      expect(status).toBe(413);
      const dir = join(small.dataDir, "files");
      expect(existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".tmp")) : []).toEqual([]);
    } finally {
      await small.close();
    }
  });
});

describe("forms cut short", () => {
  it("a form that ends inside a refused or unfinished file part is a 400, never an uncaught error", async () => {
    const cases = [
      // A refused name (RFC 5987 control character), then the form just stops.
      `--B\r\ncontent-disposition: form-data; name="file"; filename*=UTF-8''a%01.jsonl\r\n\r\n${LINE}`,
      // A duplicated file part cut short.
      `--B\r\ncontent-disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n${LINE}\r\n--B\r\ncontent-disposition: form-data; name="file"; filename="b.jsonl"\r\n\r\n${LINE}`,
      // An accepted file part cut short.
      `--B\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--B\r\ncontent-disposition: form-data; name="file"; filename="c.jsonl"\r\n\r\n${LINE}`,
    ];
    for (const body of cases) {
      const res = await rawRequest(s.url, {
        method: "POST",
        path: "/v1/files",
        headers: { "content-type": "multipart/form-data; boundary=B" },
        body,
      });
      expect(res.status).toBe(400);
      envelopeOf(res.body);
    }
    // Give busboy's end-of-form errors time to surface; vitest fails the run on an uncaught one.
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });
});
