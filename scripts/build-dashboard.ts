// npm run build:dashboard: bundles src/dashboard (Preact + uPlot) into dist/dashboard, the
// files routes/dashboard.ts serves. Run by `npm start` and `npm test` first; a second or so.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";

const root = join(import.meta.dirname, "..");
const src = join(root, "src", "dashboard");
const out = join(root, "dist", "dashboard");

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: join(src, "main.tsx") },
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
});
await copyFile(join(src, "index.html"), join(out, "index.html"));
