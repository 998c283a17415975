// A client that opens an event stream and stops reading (issue #21 item 11): the stream stops
// writing once the socket's buffer is full, holds at most that much, and past the stall limit
// cuts the connection with one info line, so generation behind it is aborted. A real node
// server on loopback and a client socket that never reads.
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { PassThrough } from "node:stream";
import { Hono } from "hono";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../routes/env.ts";
import { createHttpServer } from "../../routes/http-server.ts";
import { sendSse } from "../../routes/sse.ts";

const EVENT = `data: ${"x".repeat(64 * 1024)}\n\n`;

describe("SSE to a client that stops reading", () => {
  it("writing pauses at the socket's buffer and the connection is cut past the stall limit, logged at info", async () => {
    let log = "";
    const out = new PassThrough();
    out.on("data", (d: Buffer) => {
      log += d.toString();
    });
    const logger = pino({ level: "info" }, out);
    let written = 0;
    let ended: (closed: boolean) => void = () => {};
    const done = new Promise<boolean>((resolve) => {
      ended = resolve;
    });
    const app = new Hono<AppEnv>();
    app.use(async (c, next) => {
      c.set("log", logger);
      await next();
    });
    app.get("/stream", (c) =>
      sendSse(
        c,
        async (sink) => {
          // As a generation would: as fast as the sink takes events, until the client is gone.
          const until = Date.now() + 20_000;
          while (!sink.closed && Date.now() < until) {
            await sink.write(EVENT);
            written += EVENT.length;
          }
          ended(sink.closed);
        },
        { stallMs: 500 },
      ),
    );
    const server = createHttpServer(app, { hostname: "127.0.0.1" });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const socket = connect(port, "127.0.0.1");
    try {
      socket.write("GET /stream HTTP/1.1\r\nhost: x\r\n\r\n");
      // Never read: the kernel's buffers fill, then node's.
      socket.pause();
      const started = performance.now();
      expect(await done).toBe(true);
      const seconds = (performance.now() - started) / 1000;
      expect(seconds).toBeLessThan(10);
      // What the kernel's socket buffers took plus node's high-water mark and one event, not 20 s of events.
      expect(written).toBeLessThan(64 * 2 ** 20);
      await new Promise((r) => setTimeout(r, 100));
      const lines = log
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { level: number; msg: string; bufferedBytes: number });
      const cut = lines.filter((l) => /stopped reading/.test(l.msg));
      expect(cut).toHaveLength(1);
      expect(cut[0]?.level).toBe(30);
      expect(cut[0]?.bufferedBytes).toBeLessThanOrEqual(16 * 1024 + EVENT.length);
    } finally {
      socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 30_000);
});
