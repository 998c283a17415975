// The load generator: N concurrent streaming chat requests in a closed loop (each
// stream sends its next request when the previous one ends), timing the first content
// byte and counting the completion tokens the server reports in its usage chunk.
// node:http rather than fetch: less client CPU on a machine the servers share with us.
import { Agent, request } from "node:http";
import { machineBusySeconds, selfCpuSeconds } from "./cpu.ts";

export interface RequestSpec {
  prompt: string;
  maxTokens: number;
}

export interface RequestResult {
  /** Milliseconds from sending the request to the first chunk with non-empty content;
   * null when the reply had no content at all. */
  ttftMs: number | null;
  totalMs: number;
  promptTokens: number;
  completionTokens: number;
  finishReason: string | null;
}

export interface LevelRun {
  concurrency: number;
  requests: RequestResult[];
  /** First request sent to last response finished. */
  wallMs: number;
  completionTokens: number;
  tokensPerSecond: number;
  /** Cores the server kept busy on average (CPU seconds / wall seconds), when known. */
  serverCores: number | undefined;
  /** Cores the load generator (this process) kept busy. */
  clientCores: number;
  /** Cores busy with anything else on the machine meanwhile: noise, when known. */
  otherCores: number | undefined;
}

export interface Endpoint {
  baseUrl: string;
  model: string;
  agent: Agent;
  cpuSeconds(): number | undefined;
}

const REQUEST_TIMEOUT_MS = 300_000;

export function newAgent(): Agent {
  // A fresh connection per request (loopback connects cost ~0.1 ms, alike for both):
  // reusing idle keep-alive sockets races llama-server's idle timeout ("socket hang up").
  return new Agent({ keepAlive: false, maxSockets: 64 });
}

interface ChunkShape {
  choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: unknown;
}

/** One streaming chat completion, at temperature 0 with a fixed seed; `onContent` hears each content chunk as it comes. */
export function streamChat(
  endpoint: Endpoint,
  spec: RequestSpec,
  onContent?: (at: number) => void,
): Promise<RequestResult> {
  const body = JSON.stringify({
    model: endpoint.model,
    messages: [{ role: "user", content: spec.prompt }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: spec.maxTokens,
    temperature: 0,
    seed: 42,
  });
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ttftMs: number | null = null;
    let promptTokens = 0;
    let completionTokens = -1;
    let finishReason: string | null = null;
    let buffer = "";
    let done = false;

    const onEvent = (data: string) => {
      if (data === "[DONE]") {
        done = true;
        return;
      }
      const chunk = JSON.parse(data) as ChunkShape;
      if (chunk.error !== undefined) throw new Error(`stream error: ${data}`);
      for (const choice of chunk.choices ?? []) {
        if (choice.delta?.content) onContent?.(performance.now());
        if (ttftMs === null && choice.delta?.content) ttftMs = performance.now() - started;
        if (choice.finish_reason) finishReason = choice.finish_reason;
      }
      if (chunk.usage) {
        promptTokens = chunk.usage.prompt_tokens ?? 0;
        completionTokens = chunk.usage.completion_tokens ?? -1;
      }
    };

    const req = request(
      `${endpoint.baseUrl}/v1/chat/completions`,
      {
        method: "POST",
        agent: endpoint.agent,
        // no-store: no server-side response cache may answer (or keep) these requests.
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "cache-control": "no-store",
        },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        res.setEncoding("utf8");
        if (res.headers["x-roundhouse-cache"] === "hit") {
          res.resume();
          reject(new Error(`${endpoint.baseUrl} answered from its response cache; the bench measures generation`));
          return;
        }
        if (res.statusCode !== 200) {
          let text = "";
          res.on("data", (s: string) => {
            text += s;
          });
          res.on("end", () =>
            reject(new Error(`HTTP ${res.statusCode} from ${endpoint.baseUrl}: ${text.slice(0, 500)}`)),
          );
          return;
        }
        res.on("data", (s: string) => {
          buffer += s;
          // SSE events end with a blank line; servers may send \r\n line ends.
          for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            for (const line of event.split(/\r?\n/)) {
              if (!line.startsWith("data:")) continue;
              try {
                onEvent(line.slice(5).trim());
              } catch (err) {
                req.destroy(err as Error);
                return;
              }
            }
          }
        });
        res.on("end", () => {
          if (!done) return reject(new Error(`stream from ${endpoint.baseUrl} ended without [DONE]`));
          if (completionTokens < 0) return reject(new Error(`no usage chunk from ${endpoint.baseUrl}`));
          resolve({ ttftMs, totalMs: performance.now() - started, promptTokens, completionTokens, finishReason });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`request to ${endpoint.baseUrl} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * `concurrency` streams, each sending `requestsPerStream` requests back to back.
 * Request k of stream s gets `specFor(k * concurrency + s)`, so every target sees the
 * same requests in the same order.
 */
export async function runLevel(
  endpoint: Endpoint,
  concurrency: number,
  requestsPerStream: number,
  specFor: (index: number) => RequestSpec,
): Promise<LevelRun> {
  const results: RequestResult[] = [];
  const cpuBefore = endpoint.cpuSeconds();
  const machineBefore = machineBusySeconds();
  const selfBefore = selfCpuSeconds();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, stream) => {
      for (let k = 0; k < requestsPerStream; k++) {
        results.push(await streamChat(endpoint, specFor(k * concurrency + stream)));
      }
    }),
  );
  const wallMs = performance.now() - started;
  const cpuAfter = endpoint.cpuSeconds();
  const machineAfter = machineBusySeconds();
  const seconds = wallMs / 1000;
  const completionTokens = results.reduce((sum, r) => sum + r.completionTokens, 0);
  const serverCores = cpuBefore !== undefined && cpuAfter !== undefined ? (cpuAfter - cpuBefore) / seconds : undefined;
  const clientCores = (selfCpuSeconds() - selfBefore) / seconds;
  const machineCores =
    machineBefore !== undefined && machineAfter !== undefined ? (machineAfter - machineBefore) / seconds : undefined;
  return {
    concurrency,
    requests: results,
    wallMs,
    completionTokens,
    tokensPerSecond: completionTokens / seconds,
    serverCores,
    clientCores,
    // Tick granularity (10 ms) can make this slightly negative on short levels.
    otherCores:
      machineCores !== undefined && serverCores !== undefined
        ? Math.max(0, machineCores - serverCores - clientCores)
        : undefined,
  };
}
