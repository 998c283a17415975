// Process entry: config → services → HTTP server; graceful shutdown on SIGTERM/SIGINT.
import { createHttpServer } from "../routes/http-server.ts";
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
  const server = createHttpServer(app, {
    hostname: host,
    bodyTimeoutMs: services.bodyTimeoutMs,
    logger: services.logger,
  });
  // A port in use or a host that is not ours: say so in one line rather than crash with a trace.
  // Once listening, a server error (accept failing for want of file descriptors) is logged and
  // the server carries on with the connections it has.
  server.on("error", (err: NodeJS.ErrnoException) => {
    if (server.listening) {
      services.logger.error({ err }, "HTTP server error");
      return;
    }
    services.logger.fatal({ err: err.message }, `cannot listen on ${host}:${port}: ${err.code ?? err.message}`);
    process.exit(1);
  });
  server.listen(port, host, () => {
    const address = server.address();
    const bound = typeof address === "object" && address ? address.port : port;
    services.logger.info({ host, port: bound, config: config.file }, `listening on http://${host}:${bound}`);
  });
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
      // The drained requests' last lines may still be in the buffered log (services.ts):
      // exit once they are written.
      services.logger.flush(() => process.exit(0));
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
