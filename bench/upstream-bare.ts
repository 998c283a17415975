// The floor of bench/upstream.ts: the least a Hono proxy on node can do for a chat request.
// It reads the body, sends it on to the upstream over a pooled undici connection and relays
// the answer, streamed or not, with none of Roundhouse's work (validation, routing, cache,
// telemetry, logging). Its own process, like every target. Settings: PORT, UPSTREAM (base URL
// up to /v1). Prints `listening <port>` when ready.
import { createServer } from "node:http";
import { getRequestListener, type HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import { Agent } from "undici";

const upstream = new URL(`${process.env.UPSTREAM ?? "http://127.0.0.1:8000/v1"}/chat/completions`);
const agent = new Agent({ keepAliveTimeout: 30_000 });
const app = new Hono<{ Bindings: HttpBindings }>();

app.get("/health", (c) => c.text("ok"));
app.post("/v1/chat/completions", async (c) => {
  const res = await agent.request({
    origin: upstream.origin,
    path: upstream.pathname,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: await c.req.text(),
  });
  const type = typeof res.headers["content-type"] === "string" ? res.headers["content-type"] : "application/json";
  const outgoing = c.env.outgoing;
  if (type.startsWith("application/json")) {
    const text = await res.body.text();
    outgoing.writeHead(res.statusCode, { "content-type": type, "content-length": Buffer.byteLength(text) });
    outgoing.end(text);
  } else {
    outgoing.writeHead(res.statusCode, { "content-type": type });
    res.body.pipe(outgoing);
  }
  return RESPONSE_ALREADY_SENT;
});

const server = createServer(getRequestListener(app.fetch));
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
