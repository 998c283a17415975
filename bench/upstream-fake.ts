// The fake OpenAI-compatible upstream of `bench/upstream.ts`, run as its own process so its
// CPU is not the proxy's or the load generator's. It does as little as a server can: the
// reply for a model name is built once, then written as is.
//
//   model "instant": the whole reply at once (JSON, or SSE when `stream` is true)
//   model "paced":   SSE, the first chunk at once, then one every PACE_MS
//
// Prints `listening <port>` when ready. Settings: PORT (0 = any), PIECES (content chunks,
// default 16), PACE_MS (default 10).
import { createServer, type ServerResponse } from "node:http";

const PIECES = Number(process.env.PIECES ?? 16);
const PACE_MS = Number(process.env.PACE_MS ?? 10);

const words = Array.from({ length: PIECES }, (_, i) => (i === 0 ? "Hello" : ` word${i}`));
const usage = { prompt_tokens: 12, completion_tokens: PIECES, total_tokens: 12 + PIECES };

function chunkEvent(model: string, delta: object, finish: string | null): string {
  return `data: ${JSON.stringify({
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model,
    system_fingerprint: "fp_fake",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  })}\n\n`;
}

interface Reply {
  json: string;
  /** Without and with the usage chunk. */
  events: [string[], string[]];
}

const replies = new Map<string, Reply>();

function replyFor(model: string): Reply {
  let reply = replies.get(model);
  if (!reply) {
    const body = [
      chunkEvent(model, { role: "assistant", content: "", refusal: null }, null),
      ...words.map((w) => chunkEvent(model, { content: w }, null)),
      chunkEvent(model, {}, "stop"),
    ];
    const usageEvent = `data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 1_700_000_000, model, choices: [], usage })}\n\n`;
    reply = {
      json: JSON.stringify({
        id: "chatcmpl-fake",
        object: "chat.completion",
        created: 1_700_000_000,
        model,
        system_fingerprint: "fp_fake",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: words.join(""), refusal: null },
            logprobs: null,
            finish_reason: "stop",
          },
        ],
        usage,
      }),
      events: [
        [...body, "data: [DONE]\n\n"],
        [...body, usageEvent, "data: [DONE]\n\n"],
      ],
    };
    replies.set(model, reply);
  }
  return reply;
}

function answer(res: ServerResponse, text: string): void {
  let body: { model?: unknown; stream?: unknown; stream_options?: { include_usage?: unknown } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    res.writeHead(400, { "content-type": "application/json" });
    res.end('{"error":{"message":"bad json","type":"invalid_request_error","param":null,"code":null}}');
    return;
  }
  const model = typeof body.model === "string" ? body.model : "instant";
  const reply = replyFor(model);
  if (body.stream !== true) {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(reply.json) });
    res.end(reply.json);
    return;
  }
  const events = reply.events[body.stream_options?.include_usage === true ? 1 : 0];
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  if (model !== "paced" || PACE_MS <= 0) {
    res.end(events.join(""));
    return;
  }
  // Role and first word at once, then one event per PACE_MS.
  res.write(events[0] + (events[1] ?? ""));
  let i = 2;
  const timer = setInterval(() => {
    if (i >= events.length - 1) {
      clearInterval(timer);
      res.end(events.slice(i).join(""));
      return;
    }
    res.write(events[i++]);
  }, PACE_MS);
  res.once("close", () => clearInterval(timer));
}

const server = createServer((req, res) => {
  if (req.method === "GET") {
    res.end("ok");
    return;
  }
  let text = "";
  req.setEncoding("utf8");
  req.on("data", (s: string) => {
    text += s;
  });
  req.on("end", () => answer(res, text));
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
