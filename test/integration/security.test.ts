// Who gets in, what they can reach, how much they can send and how often: API keys on every
// /v1 route, the admin key on /admin, keys never written anywhere, ids and model names that
// cannot reach outside DATA_DIR or the configured models, size limits and per-key rate
// limits, all against the real server over loopback.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import OpenAI, { toFile } from "openai";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyId } from "../../src/telemetry/record.ts";
import { envelopeOf, rawRequest } from "../helpers/http.ts";
import { startServer, type TestServer, TINY_MODEL, tinyConfig } from "../helpers/server.ts";

const USER = "sk-user-9d1f0c7a2b";
const LIMITED = "sk-limited-4e8a1b";
const THRIFTY = "sk-thrifty-77c2d0";
const ADMIN = "sk-admin-5b3e91f4";
const SECRETS = [USER, LIMITED, THRIFTY, ADMIN, "sk-wrong-0a0a0a"];

const CONFIG = `${tinyConfig("max_tokens: 8")}
limits:
  max_body: 16KiB
  max_upload: 64KiB
rate_limits:
  keys:
    ${keyId(`Bearer ${LIMITED}`)}: { requests_per_minute: 3 }
    ${keyId(`Bearer ${THRIFTY}`)}: { tokens_per_minute: 5 }
`;

let root: string;
let dataDir: string;
let s: TestServer;
let logged = "";

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "roundhouse-security-"));
  dataDir = join(root, "data");
  mkdirSync(dataDir);
  const out = new PassThrough();
  out.on("data", (d: Buffer) => {
    logged += d.toString();
  });
  s = await startServer({
    config: CONFIG,
    apiKeys: [USER, LIMITED, THRIFTY],
    adminApiKey: ADMIN,
    dataDir,
    logger: pino({ level: "trace" }, out),
  });
});
afterAll(async () => {
  await s?.close();
  rmSync(root, { recursive: true, force: true });
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const chatBody = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 });

/** Every route, with a body where it takes one. */
const V1_ROUTES: [string, string, string?][] = [
  ["GET", "/v1/models"],
  ["GET", "/v1/models/tiny"],
  ["DELETE", "/v1/models/tiny"],
  ["POST", "/v1/chat/completions", chatBody],
  ["POST", "/v1/feedback", JSON.stringify({ request_id: "abc", score: 1 })],
  ["GET", "/v1/files"],
  ["POST", "/v1/files", ""],
  ["GET", "/v1/files/file-aaaaaaaaaaaaaaaaaaaaaaaa"],
  ["GET", "/v1/files/file-aaaaaaaaaaaaaaaaaaaaaaaa/content"],
  ["DELETE", "/v1/files/file-aaaaaaaaaaaaaaaaaaaaaaaa"],
  ["GET", "/v1/fine_tuning/jobs"],
  ["POST", "/v1/fine_tuning/jobs", JSON.stringify({ model: "tiny", training_file: "file-x" })],
  ["GET", "/v1/fine_tuning/jobs/ftjob-aaaaaaaaaaaaaaaaaaaaaaaa"],
  ["POST", "/v1/fine_tuning/jobs/ftjob-aaaaaaaaaaaaaaaaaaaaaaaa/cancel"],
  ["GET", "/v1/fine_tuning/jobs/ftjob-aaaaaaaaaaaaaaaaaaaaaaaa/events"],
  ["GET", "/v1/fine_tuning/jobs/ftjob-aaaaaaaaaaaaaaaaaaaaaaaa/checkpoints"],
  ["POST", "/v1/rerank", JSON.stringify({ model: "tiny", query: "q", documents: ["a"] })],
  ["POST", "/v1/reranking", JSON.stringify({ model: "tiny", query: "q", documents: ["a"] })],
  // Outside /v1, where rerank clients also look: the same door.
  ["POST", "/rerank", JSON.stringify({ model: "tiny", query: "q", documents: ["a"] })],
  ["GET", "/v1/no-such-route"],
];
const ADMIN_ROUTES: [string, string, string?][] = [
  ["GET", "/admin/usage"],
  ["DELETE", "/admin/cache"],
  ["GET", "/admin/experiments"],
  ["GET", "/admin/experiments/x"],
  ["POST", "/admin/experiments/x/variants/y/restore"],
  ["PUT", "/admin/experiments/x/weights", JSON.stringify({ weights: { y: 1 } })],
];

const send = (method: string, path: string, body: string | undefined, headers: Record<string, string>) =>
  rawRequest(s.url, {
    method,
    path,
    ...(body === undefined ? {} : { body }),
    headers: { "content-type": "application/json", ...headers },
  });

describe("API keys", () => {
  it("every /v1 route refuses a missing, wrong or non-Bearer key with 401 in OpenAI's envelope", async () => {
    const attempts: [Record<string, string>, string][] = [
      [{}, "missing_api_key"],
      [bearer("sk-wrong-0a0a0a"), "invalid_api_key"],
      [bearer(`${USER}x`), "invalid_api_key"],
      [bearer(USER.slice(0, -1)), "invalid_api_key"],
      [{ authorization: `Basic ${USER}` }, "missing_api_key"],
      [{ authorization: USER }, "missing_api_key"],
    ];
    for (const [method, path, body] of V1_ROUTES) {
      for (const [headers, code] of attempts) {
        const res = await send(method, path, body, headers);
        expect(res.status, `${method} ${path} with ${JSON.stringify(headers)}`).toBe(401);
        expect(envelopeOf(res.body).error.code).toBe(code);
      }
      // A valid key, and the admin key, get past the door (whatever the route then says about the request).
      for (const key of [USER, ADMIN]) {
        const ok = await send(method, path, body, bearer(key));
        expect(ok.status, `${method} ${path}`).not.toBe(401);
        expect(ok.status).toBeLessThan(500);
      }
    }
  });

  it("admin routes take the admin key only: API keys get 403, others 401", async () => {
    for (const [method, path, body] of ADMIN_ROUTES) {
      const user = await send(method, path, body, bearer(USER));
      expect(user.status, `${method} ${path}`).toBe(403);
      expect(envelopeOf(user.body).error).toMatchObject({ type: "permission_error", code: "permission_denied" });
      expect((await send(method, path, body, {})).status).toBe(401);
      expect((await send(method, path, body, bearer("sk-wrong-0a0a0a"))).status).toBe(401);
      const admin = await send(method, path, body, bearer(ADMIN));
      expect([401, 403, 500], `${method} ${path}`).not.toContain(admin.status);
    }
  });

  it("the SDK raises AuthenticationError and PermissionDeniedError", async () => {
    const wrong = new OpenAI({ baseURL: s.baseURL, apiKey: "sk-wrong-0a0a0a", maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const user = new OpenAI({ baseURL: `${s.url}/admin`, apiKey: USER, maxRetries: 0 });
    await expect(user.get("/usage")).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
  });

  it("health and metrics stay open (they show no keys, ids or text)", async () => {
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const metrics = await fetch(`${s.url}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    for (const secret of SECRETS) expect(text).not.toContain(secret);
  });
});

describe("ids and paths", () => {
  beforeAll(() => {
    // Objects planted next to DATA_DIR, shaped like the real ones: a traversal that reached them would answer 200.
    const file = {
      file: {
        id: "x",
        object: "file",
        bytes: 6,
        created_at: 0,
        filename: "planted",
        purpose: "batch",
        status: "processed",
      },
      created_ms: 0,
    };
    writeFileSync(join(root, "planted.json"), JSON.stringify(file));
    writeFileSync(join(root, "planted.data"), "SECRET");
    mkdirSync(join(dataDir, "files"), { recursive: true });
  });

  it("an id holding a path never reads or deletes outside its folder", async () => {
    const tricks = [
      "../planted",
      "..%2Fplanted",
      "..%2f..%2fplanted",
      "%2e%2e%2fplanted",
      "..\\planted",
      "file-aaaaaaaaaaaaaaaaaaaaaaaa%00.json",
      "file-aaaaaaaaaaaaaaaaaaaaaaaa%2F..%2F..%2Fplanted",
      "%252e%252e%252fplanted",
      "....//planted",
    ];
    const routes = (id: string): [string, string][] => [
      ["GET", `/v1/files/${id}`],
      ["GET", `/v1/files/${id}/content`],
      ["DELETE", `/v1/files/${id}`],
      ["GET", `/v1/fine_tuning/jobs/${id}`],
      ["GET", `/v1/fine_tuning/jobs/${id}/events`],
      ["POST", `/v1/fine_tuning/jobs/${id}/cancel`],
      ["GET", `/v1/models/${id}`],
      ["DELETE", `/v1/models/${id}`],
    ];
    for (const id of tricks) {
      for (const [method, path] of routes(id)) {
        const res = await send(method, path, undefined, bearer(USER));
        // 404 (no such object or route), 400 for the raw backslash node's parser refuses: never 200, never a 5xx.
        expect([400, 404], `${method} ${path}`).toContain(res.status);
        envelopeOf(res.body);
        expect(res.body).not.toContain("SECRET");
      }
    }
    expect(readFileSync(join(root, "planted.data"), "utf8")).toBe("SECRET");
    expect(existsSync(join(root, "planted.json"))).toBe(true);
  });

  it("an upload's filename is only a label: the bytes land under DATA_DIR/files by id", async () => {
    const before = new Set(readdirSync(root));
    // Raw multipart: clients and FormData strip directories from file names, an attacker does not.
    const boundary = "----roundhouse-test";
    const body = [
      `--${boundary}`,
      'Content-Disposition: form-data; name="purpose"',
      "",
      "batch",
      `--${boundary}`,
      'Content-Disposition: form-data; name="file"; filename="../../escaped.txt"',
      "Content-Type: text/plain",
      "",
      "hello",
      `--${boundary}--`,
      "",
    ].join("\r\n");
    const raw = await rawRequest(s.url, {
      method: "POST",
      path: "/v1/files",
      headers: { ...bearer(USER), "content-type": `multipart/form-data; boundary=${boundary}` },
      body,
    });
    expect(raw.status).toBe(200);
    const res = JSON.parse(raw.body) as { id: string; filename: string };
    expect(res.filename).toMatch(/escaped\.txt$/);
    expect(res.id).toMatch(/^file-[A-Za-z0-9]{24}$/);
    expect(new Set(readdirSync(root))).toEqual(before);
    expect(readdirSync(join(dataDir, "files")).sort()).toEqual([`${res.id}.data`, `${res.id}.json`]);
    const download = await fetch(`${s.baseURL}/files/${res.id}/content`, { headers: bearer(USER) });
    expect(await download.text()).toBe("hello");
  });

  it("a model name is never a path: only configured models load", async () => {
    const before = s.services.pool.loadedIds;
    for (const model of [
      TINY_MODEL,
      "../models/roundhouse-tiny-q8_0.gguf",
      "/etc/passwd",
      "hf:user/repo/x.gguf",
      "file:///etc/passwd",
    ]) {
      const res = await send(
        "POST",
        "/v1/chat/completions",
        JSON.stringify({ model, messages: [{ role: "user", content: "x" }], max_tokens: 1 }),
        bearer(USER),
      );
      expect(res.status, model).toBe(404);
      expect(envelopeOf(res.body).error.code).toBe("model_not_found");
    }
    const del = await send("DELETE", `/v1/models/${encodeURIComponent(TINY_MODEL)}`, undefined, bearer(USER));
    expect(del.status).toBe(404);
    expect(statSync(TINY_MODEL).isFile()).toBe(true);
    expect(s.services.pool.loadedIds).toEqual(before);
  });

  it("a client's x-request-id is echoed only when it is short and plain", async () => {
    const plain = await fetch(`${s.baseURL}/models`, { headers: { ...bearer(USER), "x-request-id": "req-42.a:b_c" } });
    expect(plain.headers.get("x-request-id")).toBe("req-42.a:b_c");
    for (const hostile of ["x".repeat(129), "a b", "<script>", "../../x", "id\u00e9"]) {
      const res = await rawRequest(s.url, {
        method: "GET",
        path: "/v1/models",
        headers: { ...bearer(USER), "x-request-id": hostile },
      });
      expect(res.status).toBe(200);
      expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

describe("sizes", () => {
  it("a JSON body over max_body gets 413 in the envelope, on /v1 and /admin", async () => {
    const big = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "x".repeat(20_000) }] });
    const v1 = await send("POST", "/v1/chat/completions", big, bearer(USER));
    expect(v1.status).toBe(413);
    expect(envelopeOf(v1.body).error.code).toBe("request_too_large");
    const admin = await send(
      "PUT",
      "/admin/experiments/x/weights",
      JSON.stringify({ weights: { a: 1 }, pad: "x".repeat(20_000) }),
      bearer(ADMIN),
    );
    expect(admin.status).toBe(413);
    envelopeOf(admin.body);
  });

  it("a body without content-length is counted as it streams", async () => {
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { ...bearer(USER), "content-type": "application/json" },
      body: new Blob(["{", " ".repeat(40_000), "}"]).stream(),
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    envelopeOf(await res.text());
  });

  it("uploads have their own, larger limit", async () => {
    const fits = await s.client.files.create({
      file: await toFile(Buffer.alloc(40_000, 65), "a.txt"),
      purpose: "batch",
    });
    expect(fits.bytes).toBe(40_000);
    const error = await s.client.files
      .create({ file: await toFile(Buffer.alloc(70_000, 65), "b.txt"), purpose: "batch" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
  });
});

describe("rate limits", () => {
  it("a key past its requests per minute gets 429 rate_limit_exceeded with Retry-After; other keys carry on", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      // Any spelling of the scheme counts against the same key.
      const res = await send("GET", "/v1/models", undefined, {
        authorization: `${i % 2 ? "bearer" : "Bearer"} ${LIMITED}`,
      });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers["retry-after"])).toBeGreaterThanOrEqual(1);
        expect(envelopeOf(res.body).error).toMatchObject({ type: "requests", code: "rate_limit_exceeded" });
        expect(envelopeOf(res.body).error.message).toMatch(/requests per min \(RPM\): Limit 3, Used 3/);
      }
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect((await send("GET", "/v1/models", undefined, bearer(USER))).status).toBe(200);
    const sdk = new OpenAI({ baseURL: s.baseURL, apiKey: LIMITED, maxRetries: 0 });
    await expect(sdk.models.list()).rejects.toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("a key past its tokens per minute is refused after the request that spent them", async () => {
    const first = await send("POST", "/v1/chat/completions", chatBody, bearer(THRIFTY));
    expect(first.status).toBe(200);
    const second = await send("POST", "/v1/chat/completions", chatBody, bearer(THRIFTY));
    expect(second.status).toBe(429);
    expect(envelopeOf(second.body).error).toMatchObject({ type: "tokens", code: "rate_limit_exceeded" });
    expect(Number(second.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  });
});

describe("secrets", () => {
  it("no key appears in the logs, the usage log or anything under DATA_DIR; records name the key by its id", async () => {
    // Every kind of request once more, with every key, right or wrong.
    for (const key of SECRETS) {
      await send("POST", "/v1/chat/completions", chatBody, bearer(key));
      await send("GET", "/admin/usage", undefined, bearer(key));
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(logged.length).toBeGreaterThan(1000);
    for (const secret of SECRETS) expect(logged).not.toContain(secret);
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
      );
    const stored = walk(dataDir)
      .map((f) => readFileSync(f, "latin1"))
      .join("\n");
    for (const secret of SECRETS) expect(stored).not.toContain(secret);
    const records = [];
    for await (const r of s.services.telemetry.usage.query(new Date(0), new Date(Date.now() + 60_000))) records.push(r);
    expect(records.length).toBeGreaterThan(5);
    for (const r of records) expect(r.key_id).toMatch(/^(key_[0-9a-f]{12}|anonymous)$/);
    expect(records.map((r) => r.key_id)).toContain(keyId(`Bearer ${USER}`));
  });
});
