// Raw HTTP for tests that must send what fetch would refuse or tidy up: un-normalized paths
// (`/v1/files/../x`), broken bodies, any header. Answers are read whole, with a deadline so
// a hang fails the test instead of stalling it.
import { type Agent, request } from "node:http";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs?: number;
  /** Reuse connections (keep-alive); a fresh connection per request otherwise. */
  agent?: Agent;
}

export function rawRequest(baseUrl: string, req: RawRequest): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers: {
          ...(req.body === undefined ? {} : { "content-length": Buffer.byteLength(req.body) }),
          ...req.headers,
        },
        // By default a fresh connection each time: a test that breaks one leaves the rest alone.
        agent: req.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    r.setTimeout(req.timeoutMs ?? 30_000, () => r.destroy(new Error(`no answer to ${req.method} ${req.path} in time`)));
    r.on("error", reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The body parsed as OpenAI's error envelope (all four keys, message not empty); throws if it is not one. */
export function envelopeOf(body: string): ErrorEnvelope {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error(`not JSON: ${body.slice(0, 200)}`);
  }
  const error = (parsed as { error?: Record<string, unknown> } | null)?.error;
  const ok =
    typeof error === "object" &&
    error !== null &&
    typeof error.message === "string" &&
    error.message.length > 0 &&
    typeof error.type === "string" &&
    (typeof error.param === "string" || error.param === null) &&
    (typeof error.code === "string" || error.code === null) &&
    Object.keys(error).length === 4;
  if (!ok) throw new Error(`not an OpenAI error envelope: ${body.slice(0, 200)}`);
  return parsed as ErrorEnvelope;
}
