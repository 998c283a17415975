// The cache benchmark's load generator, in a process of its own (bench/cache.ts forks it):
// on two cores, the process that sends the requests shares them with the server and Redis,
// and a bench process that also holds every result and reads the server's log has GC pauses
// of its own (on its helper threads too) that delay the server's wake-ups. This one keeps
// nothing between batches but a batch's round trips.
//
// Messages in: Batch; out: BatchResult, one per batch. Closed loop, one request at a time
// over one keep-alive connection.
import { Agent, request } from "node:http";

export interface Batch {
  port: number;
  body: string;
  /** Sent with `cache-control: no-cache`, so the server generates (and stores) again. */
  noCache: boolean;
  n: number;
}

export interface BatchResult {
  /** Round trip of each request, in ms. */
  ms: number[];
  /** The x-roundhouse-cache header of each request. */
  cache: string[];
  /** Set when a request failed: the batch stops there. */
  error?: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function once(batch: Batch): Promise<{ cache: string; ms: number }> {
  const started = performance.now();
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(batch.body),
  };
  if (batch.noCache) headers["cache-control"] = "no-cache";
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: batch.port, path: "/v1/chat/completions", method: "POST", agent, headers },
      (res) => {
        res.resume();
        res.on("end", () => {
          const cache = String(res.headers["x-roundhouse-cache"]);
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode} (cache ${cache})`));
          else resolve({ cache, ms: performance.now() - started });
        });
      },
    );
    req.on("error", reject);
    req.end(batch.body);
  });
}

process.on("message", async (batch: Batch) => {
  const result: BatchResult = { ms: new Array<number>(batch.n), cache: new Array<string>(batch.n) };
  try {
    for (let i = 0; i < batch.n; i++) {
      const { cache, ms } = await once(batch);
      result.ms[i] = ms;
      result.cache[i] = cache;
    }
  } catch (err) {
    result.error = (err as Error).message;
  }
  process.send?.(result);
});
process.on("disconnect", () => agent.destroy());
