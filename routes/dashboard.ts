// GET /dashboard: the operators' dashboard, static files `npm run build:dashboard` made from
// src/dashboard (into dist/dashboard). The files hold no data: the page reads the admin routes
// with the admin key the user signs in with, so they are served to anyone, like a login page.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Hono } from "hono";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";

export const DASHBOARD_DIR = join(import.meta.dirname, "..", "dist", "dashboard");

/** The built files, by the name the page asks for; nothing else under the folder is served. */
const FILES: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
  "app.js.map": "application/json",
  "app.css.map": "application/json",
};

// Everything from this origin, nothing inline (uPlot and Preact set styles through the DOM, which
// CSP allows), no framing: the page can only talk to the server that served it.
const HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Small files, rebuilt with the server: revalidate rather than risk a stale script.
  "cache-control": "no-cache",
};

const NOT_BUILT = "The dashboard is not built: run `npm run build:dashboard` (npm start and npm test do).\n";

export function dashboardRoutes(services: Services, dir = DASHBOARD_DIR): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const html = await readFile(join(dir, "index.html"), "utf8").catch(() => undefined);
    if (html === undefined) return c.text(NOT_BUILT, 503);
    // The page needs to know whether to ask for a key before it asks the admin routes anything.
    const required = services.keys.configured.admin ? "required" : "none";
    return c.html(html.replace("__ADMIN_KEY__", required), 200, HEADERS);
  });

  app.get("/:file", async (c) => {
    const file = c.req.param("file");
    const type = FILES[file];
    if (type === undefined) return c.notFound();
    const body = await readFile(join(dir, file)).catch(() => undefined);
    if (body === undefined) return c.text(NOT_BUILT, 503);
    return c.body(body, 200, { ...HEADERS, "content-type": type });
  });

  return app;
}
