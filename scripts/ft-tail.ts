// Follows a fine-tuning job: its events as they come, and a progress bar with epoch,
// step, loss and ETA, until the job finishes. Exits 0 if it succeeded, 1 otherwise.
//
//   npx tsx scripts/ft-tail.ts ftjob-…            # ROUNDHOUSE_URL (default http://127.0.0.1:8080), OPENAI_API_KEY
import OpenAI from "openai";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

interface Metrics {
  step?: number;
  total_steps?: number;
  epoch?: number;
  n_epochs?: number;
  train_loss?: number;
  eta_seconds?: number;
}

async function main(): Promise<number> {
  const jobId = process.argv[2];
  if (!jobId) {
    console.error("usage: npx tsx scripts/ft-tail.ts <fine-tuning job id>");
    return 2;
  }
  const baseURL = `${(process.env.ROUNDHOUSE_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "")}/v1`;
  const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY ?? "unused" });
  const seen = new Set<string>();
  const tty = process.stdout.isTTY === true;
  let bar = "";
  for (;;) {
    const job = await client.fineTuning.jobs.retrieve(jobId);
    // Newest first: take the page, keep the ones not printed yet, print oldest first.
    const page = await client.fineTuning.jobs.listEvents(jobId, { limit: 100 });
    const fresh = page.data.filter((e) => !seen.has(e.id)).reverse();
    for (const e of fresh) {
      seen.add(e.id);
      const data = (e.data ?? {}) as Metrics;
      if (e.type === "metrics" && data.total_steps !== undefined) {
        bar = progressBar(data);
        if (!tty) console.log(bar);
        continue;
      }
      if (tty && bar) process.stdout.write("\r\x1b[2K");
      console.log(`${new Date(e.created_at * 1000).toISOString().slice(11, 19)} ${e.level.padEnd(5)} ${e.message}`);
    }
    if (tty && bar) process.stdout.write(`\r\x1b[2K${bar}`);
    if (TERMINAL.has(job.status)) {
      if (tty && bar) process.stdout.write("\n");
      console.log(
        job.status === "succeeded"
          ? `succeeded: ${job.fine_tuned_model} (${job.trained_tokens} tokens trained)`
          : `${job.status}${job.error ? `: ${job.error.message}` : ""}`,
      );
      return job.status === "succeeded" ? 0 : 1;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function progressBar(m: Metrics): string {
  const width = 30;
  const done = Math.min(1, (m.step ?? 0) / Math.max(1, m.total_steps ?? 1));
  const filled = Math.round(done * width);
  const eta = m.eta_seconds === undefined ? "?" : formatSeconds(m.eta_seconds);
  return (
    `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(done * 100).toFixed(0).padStart(3)}% ` +
    `epoch ${m.epoch}/${m.n_epochs} step ${m.step}/${m.total_steps} loss ${m.train_loss?.toFixed(4) ?? "?"} ETA ${eta}`
  );
}

function formatSeconds(s: number): string {
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, "0")}`;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
