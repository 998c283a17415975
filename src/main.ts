// Process entry: config → services → HTTP server; graceful shutdown on SIGTERM/SIGINT.
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { createApp } from "./app.ts";
import { ConfigError } from "./config/errors.ts";
import { loadConfig } from "./config/load.ts";
import { createServices } from "./services.ts";

const DRAIN_MS = 10_000;

async function main(): Promise<void> {
  const configPath = process.env.MODELS_CONFIG ?? "./models.yaml";
  const config = loadConfig(configPath);
  const services = await createServices({
    config,
    dataDir: process.env.DATA_DIR ?? "./data",
    apiKeys: (process.env.API_KEYS ?? "")
      .split(",")
      .map((k) => k.trim())
      .filter((k) => k.length > 0),
    adminApiKey: process.env.ADMIN_API_KEY || undefined,
  });
  const app = createApp(services);
  const { host, port } = config.server;
  // Plain HTTP/1.1 (no TLS or HTTP/2 options are passed), so this is a node:http Server.
  const server = serve({ fetch: app.fetch, hostname: host, port }, (info) => {
    services.logger.info({ host, port: info.port, config: config.file }, `listening on http://${host}:${info.port}`);
  }) as Server;
  services.preload().catch((err: unknown) => services.logger.error({ err }, "preloading models failed"));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    services.logger.info({ signal }, "shutting down: finishing in-flight requests");
    services.drain();
    const force = setTimeout(() => {
      services.logger.warn("in-flight requests did not finish in time; closing them");
      server.closeAllConnections();
    }, DRAIN_MS);
    force.unref();
    server.close(async () => {
      clearTimeout(force);
      await services.close();
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else console.error(err);
  process.exit(1);
});
