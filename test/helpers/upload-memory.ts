// What concurrent uploads cost the server's memory, measured on the server as a user runs it
// (`tsx src/main.ts`, its own process): resident set size before, at its peak during the
// uploads (/proc's VmHWM after resetting it, sampled as well in case the reset is refused) and
// once the uploads are over. Used by the upload test and by bench/uploads.ts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killHard, startMain, waitHealthy } from "./main-process.ts";
import { TINY_MODEL } from "./server.ts";

export interface UploadMemory {
  uploads: number;
  megabytes: number;
  statuses: number[];
  /** MiB of resident memory before the uploads. */
  baselineMiB: number;
  /** MiB the resident set grew by at its peak. */
  peakGrowthMiB: number;
  /** MiB above the baseline once the uploads are over and the server has settled. */
  afterGrowthMiB: number;
  seconds: number;
}

/** Kilobytes of a /proc/<pid>/status field (VmRSS, VmHWM). */
function statusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** A fine-tune JSONL file of about `bytes` bytes: valid chat examples, one per line. */
export function jsonlOfSize(bytes: number): Buffer {
  const line = `${JSON.stringify({
    messages: [
      { role: "user", content: "What is the secret word? ".repeat(40) },
      { role: "assistant", content: "The secret word is papaya. ".repeat(40) },
    ],
  })}\n`;
  return Buffer.from(line.repeat(Math.ceil(bytes / Buffer.byteLength(line))));
}

export async function measureUploads(opts: {
  uploads: number;
  megabytes: number;
  settleMs?: number;
  /** Wait all of settleMs (figures for a report) rather than until back within 64 MiB (a test). */
  settleFully?: boolean;
}): Promise<UploadMemory> {
  const root = mkdtempSync(join(tmpdir(), "roundhouse-upload-memory-"));
  const config = join(root, "models.yaml");
  writeFileSync(
    config,
    [
      "limits:",
      "  max_upload: 256MiB",
      `  max_concurrent_uploads: ${opts.uploads}`,
      "models:",
      "  - id: roundhouse-tiny",
      "    provider: llama",
      `    path: ${TINY_MODEL}`,
      "    context_size: 256",
      "    threads: 1",
      "",
    ].join("\n"),
  );
  const main = await startMain({ MODELS_CONFIG: config, DATA_DIR: join(root, "data") });
  try {
    await waitHealthy(main);
    const pid = main.child.pid as number;
    const body = jsonlOfSize(opts.megabytes * 1e6);
    const upload = async () => {
      const form = new FormData();
      form.set("purpose", "fine-tune");
      form.set("file", new Blob([body]), "big.jsonl");
      const res = await fetch(`${main.url}/v1/files`, { method: "POST", body: form });
      await res.arrayBuffer();
      return res.status;
    };
    // One small fine-tune upload first, so the route's code is loaded and compiled before the baseline.
    await fetch(`${main.url}/v1/files`, {
      method: "POST",
      body: (() => {
        const f = new FormData();
        f.set("purpose", "fine-tune");
        f.set("file", new Blob([jsonlOfSize(2e6)]), "warm.jsonl");
        return f;
      })(),
    }).then((r) => r.arrayBuffer());
    await new Promise((r) => setTimeout(r, 500));
    const baseline = statusKb(pid, "VmRSS");
    try {
      // "5" resets VmHWM to the current RSS (Linux ≥ 4.0), so it then records this run's peak.
      writeFileSync(`/proc/${pid}/clear_refs`, "5");
    } catch {
      // Sampling alone then.
    }
    let sampledPeak = baseline;
    const sampler = setInterval(() => {
      sampledPeak = Math.max(sampledPeak, statusKb(pid, "VmRSS"));
    }, 10);
    const started = performance.now();
    const statuses = await Promise.all(Array.from({ length: opts.uploads }, upload));
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const peak = Math.max(sampledPeak, statusKb(pid, "VmHWM"));
    // Memory given back settles over a few GC cycles: wait for it, up to settleMs.
    const until = Date.now() + (opts.settleMs ?? 10_000);
    let after = statusKb(pid, "VmRSS");
    while ((opts.settleFully || after - baseline > 64 * 1024) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      after = statusKb(pid, "VmRSS");
    }
    return {
      uploads: opts.uploads,
      megabytes: opts.megabytes,
      statuses,
      baselineMiB: Math.round(baseline / 1024),
      peakGrowthMiB: Math.round((peak - baseline) / 1024),
      afterGrowthMiB: Math.round((after - baseline) / 1024),
      seconds: Math.round(seconds * 10) / 10,
    };
  } finally {
    await killHard(main);
    rmSync(root, { recursive: true, force: true });
  }
}
