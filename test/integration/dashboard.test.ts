// The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real
// server with real traffic: a 50/50 split, a canary on a model that cannot load (rolled back
// after five failures), and a fine-tune job that trains to the end. Checks that nothing shows
// before signing in with the admin key, that the views show what the admin routes hold (charts
// drawn and not empty), that weights change from the page, that the page logs no errors and that
// its own polling never reaches the usage statistics it shows.
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { toFile } from "openai";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExperimentResults } from "../../src/traffic/results.ts";
import { brokenModelFile } from "../helpers/broken-model.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";
import { usersOn } from "../helpers/sticky.ts";

const ADMIN = "dashboard-admin-key";
/** Debian's package (`apt-get install chromium`; .ci/run installs it); CHROMIUM_PATH overrides. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** Set (a path) to also write the README's screenshot. */
const README_SHOT = process.env.DASHBOARD_SCREENSHOT;

const CONFIG = `models:
  - id: roundhouse-tiny
    provider: llama
    path: ${TINY_MODEL}
    aliases: [tiny]
    context_size: 512
    parallel: 2
    threads: 1
    preload: true
    finetune:
      context: 64
  - id: roundhouse-tiny-b
    provider: llama
    path: ${TINY_MODEL}
    context_size: 256
    threads: 1
  - id: broken
    provider: llama
    path: ${brokenModelFile()}
    context_size: 256
    threads: 1
experiments:
  - name: split
    variants:
      - {name: a, model: roundhouse-tiny, weight: 50}
      - {name: b, model: roundhouse-tiny-b, weight: 50}
  - name: rollout
    variants:
      - {name: control, model: roundhouse-tiny, weight: 50}
      - name: canary
        model: broken
        weight: 50
        canary: true
        fallback: false
        rollback:
          - {metric: error_rate, max: 0.2, min_requests: 5, window: 5m}`;

let s: TestServer;
let browser: Browser;
let shots: string;
let jobId: string;
/** Chat requests this test sent: all the usage statistics may count. */
let sent = 0;

async function chat(model: string, user: string): Promise<number> {
  sent++;
  const res = await fetch(`${s.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-user-id": user },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0 }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function admin<T>(path: string): Promise<T> {
  const res = await fetch(`${s.url}/admin${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

const example = JSON.stringify({
  messages: [
    { role: "user", content: "What is the secret word?" },
    { role: "assistant", content: "The secret word is papaya." },
  ],
});

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`No Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH).`);
  }
  shots = mkdtempSync(join(tmpdir(), "roundhouse-dashboard-"));
  s = await startServer({ config: CONFIG, adminApiKey: ADMIN });
  // The job trains while the rest of the traffic runs and the browser starts.
  const client = s.client;
  const lines = (n: number) => Buffer.from(Array.from({ length: n }, () => example).join("\n"));
  const train = await client.files.create({ file: await toFile(lines(24), "train.jsonl"), purpose: "fine-tune" });
  // Few validation examples (8 fill one 256-token window): the job's evaluations answer each one
  // greedily, before training and after every epoch.
  const valid = await client.files.create({ file: await toFile(lines(8), "valid.jsonl"), purpose: "fine-tune" });
  const job = await client.fineTuning.jobs.create({
    model: "tiny",
    training_file: train.id,
    validation_file: valid.id,
    suffix: "papaya",
    seed: 7,
    // One epoch: a loss per step, a validation loss, a checkpoint; each epoch also costs an evaluation.
    method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 1 } } },
  });
  jobId = job.id;

  const split = [
    { name: "a", weight: 50 },
    { name: "b", weight: 50 },
  ];
  for (const user of [...usersOn("split", split, "a", 3), ...usersOn("split", split, "b", 3)]) {
    expect(await chat("split", user)).toBe(200);
  }
  const rollout = [
    { name: "control", weight: 50 },
    { name: "canary", weight: 50 },
  ];
  for (const user of usersOn("rollout", rollout, "canary", 5)) expect(await chat("rollout", user)).toBe(503);
  for (const user of usersOn("rollout", rollout, "control", 3)) expect(await chat("rollout", user)).toBe(200);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});

afterAll(async () => {
  await browser?.close();
  await s?.close();
  console.log(`dashboard screenshots in ${shots}`);
});

describe("dashboard", () => {
  it("shows nothing and asks nothing of /admin before signing in; a wrong key is refused", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const adminAnswers: number[] = [];
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/admin")) adminAnswers.push(r.status());
    });
    await page.goto(`${s.url}/dashboard`);
    await page.locator("form.sign-in").waitFor();
    expect(await page.locator("[data-chart], table, [data-experiment], [data-job]").count()).toBe(0);
    expect(await page.content()).not.toContain("roundhouse-tiny");
    expect(adminAnswers).toEqual([]);

    await page.fill("input[name=admin-key]", "not-the-key");
    await page.click("button[type=submit]");
    await page.getByText("The admin key was refused.").waitFor();
    expect(adminAnswers).toEqual([401]);
    expect(await page.locator("[data-chart]").count()).toBe(0);
    await context.close();
  });

  it("signs in and shows traffic, experiments with the rollback, weights changed from the page, and the job's loss", async () => {
    // A small laptop's screen.
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const problems: string[] = [];
    const urls: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on("request", (r) => urls.push(r.url()));

    await page.goto(`${s.url}/dashboard?refresh=1`);
    await page.fill("input[name=admin-key]", ADMIN);
    await page.click("button[type=submit]");

    // Overview: every configured model, charts drawn from the traffic above.
    const models = page.locator("table[data-testid=models]");
    await models.waitFor();
    for (const id of ["roundhouse-tiny", "roundhouse-tiny-b", "broken"]) {
      await expect.poll(() => models.textContent()).toContain(id);
    }
    for (const chart of ["requests", "error-rate", "latency", "ttft", "tokens"]) {
      await expectChart(page, `[data-chart=${chart}]`);
    }
    expect(await page.locator("[data-chart=cache]").count()).toBe(1);
    // Another range: the charts are asked for it (6 hours in 10-minute buckets).
    const answer = page.waitForResponse(
      (r) => r.url().includes("/admin/timeseries") && r.url().includes("group_by=model"),
    );
    await page.selectOption("header select", "21600");
    expect(((await (await answer).json()) as { step_seconds: number }).step_seconds).toBe(600);
    await expectChart(page, "[data-chart=requests]");
    await expectFits(page);
    // The key stays with the tab: a reload does not ask again.
    await page.reload();
    await models.waitFor();
    expect(await page.locator("form.sign-in").count()).toBe(0);
    await page.screenshot({ path: join(shots, "overview.png"), fullPage: true });

    // Experiments: both, the canary rolled back by its rule with the figures that tripped it.
    await page.click("a[href='#experiments']");
    const split = page.locator("[data-experiment=split]");
    const rollout = page.locator("[data-experiment=rollout]");
    await split.waitFor();
    await rollout.waitFor();
    await expect.poll(() => page.getByTestId("state-rollout-canary").textContent()).toBe("rolled back");
    const rollback = rollout.getByTestId("event-rollback");
    expect(await rollback.textContent()).toMatch(/canary rolled back.*error_rate.*max 0\.2.*1 > 0\.2/s);
    await expectChart(page, "[data-chart=experiment-split]");
    await expectChart(page, "[data-chart=experiment-rollout]");
    await expectFits(page);
    if (README_SHOT) {
      mkdirSync(dirname(README_SHOT), { recursive: true });
      await page.screenshot({ path: README_SHOT, fullPage: true });
    }

    // New weights, confirmed, through PUT /admin/experiments/split/weights.
    await page.getByTestId("weight-split-a").fill("80");
    await page.getByTestId("weight-split-b").fill("20");
    await page.getByTestId("weights-split").click();
    await split.getByTestId("confirm").waitFor();
    expect((await variants("split")).map((v) => v.effective_weight)).toEqual([50, 50]);
    await split.getByTestId("confirm-yes").click();
    await split.getByText("Done: set weights a=80, b=20.").waitFor();
    expect((await variants("split")).map((v) => v.effective_weight)).toEqual([80, 20]);
    await page.screenshot({ path: join(shots, "experiments.png"), fullPage: true });

    // Restoring the canary, confirmed, through POST …/variants/canary/restore.
    await page.getByTestId("restore-rollout-canary").click();
    await rollout.getByTestId("confirm-yes").click();
    await expect.poll(() => page.getByTestId("state-rollout-canary").textContent()).toBe("active");
    expect((await variants("rollout")).find((v) => v.name === "canary")?.state).toBe("active");

    // Fine-tuning: the job, trained to the end, its loss curve, checkpoints and model.
    await page.click("a[href='#fine-tuning']");
    const job = page.locator(`[data-job="${jobId}"]`);
    await job.waitFor();
    await expect
      .poll(() => page.getByTestId(`job-status-${jobId}`).textContent(), { timeout: 100_000, interval: 500 })
      .toBe("succeeded");
    await expect
      .poll(() => page.getByTestId(`job-model-${jobId}`).textContent())
      .toMatch(/^ft:roundhouse-tiny:papaya:/);
    await expectChart(page, `[data-chart="loss-${jobId}"]`);
    expect(await job.getByTestId(`checkpoints-${jobId}`).locator("tbody tr").count()).toBe(1);
    await page.screenshot({ path: join(shots, "fine-tuning.png"), fullPage: true });

    // While a job trains, its curve grows without a reload. The trainer above may finish between
    // two polls, so this job is staged in the real job store: it runs until the test ends it.
    const jobs = s.services.fineTuning.jobs;
    const trained = await jobs.get(jobId);
    if (!trained) throw new Error("the job is gone");
    const live = `ftjob-${"L".repeat(24)}`;
    await jobs.create({ ...trained, id: live, status: "running", fine_tuned_model: null, finished_at: null });
    const step = (n: number) =>
      jobs.addEvent(live, {
        level: "info",
        message: `Step ${n}/4`,
        type: "metrics",
        data: { step: n, total_steps: 4, train_loss: 5 - n },
      });
    await step(1);
    const liveChart = `[data-chart="loss-${live}"]`;
    await expect.poll(() => page.locator(liveChart).getAttribute("data-points"), { timeout: 10_000 }).toBe("1");
    expect(await page.getByTestId(`job-status-${live}`).textContent()).toBe("running");
    await step(2);
    await step(3);
    await expect.poll(() => page.locator(liveChart).getAttribute("data-points"), { timeout: 10_000 }).toBe("3");
    expect(await page.locator(`[data-job="${live}"] progress`).getAttribute("value")).toBe("0.75");
    await jobs.transition(live, "cancelled");
    await expect.poll(() => page.getByTestId(`job-status-${live}`).textContent()).toBe("cancelled");

    expect(problems).toEqual([]);
    expect(urls.filter((u) => u.includes(ADMIN))).toEqual([]);
    // Nothing but the server: no CDN, no fonts, no beacons.
    expect(urls.filter((u) => !u.startsWith(`${s.url}/`) && !u.startsWith("data:"))).toEqual([]);
    expect(urls.length).toBeGreaterThan(20);
    await context.close();

    // A page that polled every second for all of the above left no trace in the usage it shows.
    const usage = await admin<{ data: { requests: number }[] }>("/usage");
    expect(usage.data.reduce((n, g) => n + g.requests, 0)).toBe(sent);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const counted = metrics
      .split("\n")
      .filter((l) => l.startsWith("roundhouse_requests_total{"))
      .reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
    expect(counted).toBe(sent);
    // The fine-tune job (training and its evaluations) takes most of this: ~30 s on 2 busy cores.
  }, 120_000);
});

async function variants(name: string): Promise<ExperimentResults["variants"]> {
  return (await admin<ExperimentResults>(`/experiments/${name}`)).variants;
}

/** Nothing sticks out sideways at a laptop's width: wide tables scroll in their own box. */
async function expectFits(page: Page): Promise<void> {
  // A string: the test's own types have no DOM.
  const [scroll, client] = (await page.evaluate(
    "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
  )) as [number, number];
  expect(scroll).toBeLessThanOrEqual(client);
}

/** A chart that uPlot drew (its canvas) with at least one data point. */
async function expectChart(page: Page, selector: string): Promise<void> {
  const chart = page.locator(selector);
  await chart.locator("canvas").waitFor();
  await expect.poll(async () => Number(await chart.getAttribute("data-points"))).toBeGreaterThan(0);
  const box = await chart.locator("canvas").boundingBox();
  expect(box?.width).toBeGreaterThan(100);
}
