// Where experiment state lives so that every replica agrees on it: run-time weights, which
// canaries are rolled back, the event log, feedback, and which variant served a request (so
// feedback finds it). Two stores behind one interface: files under DATA_DIR (one replica,
// survives restarts) and Redis (replicas share it; each polls it, see traffic.ts).
import { join } from "node:path";
import { createClient } from "@keyv/redis";
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import { appendJsonLine, readJsonFile, readJsonLines, writeJsonAtomic } from "./durable.ts";

export interface ExperimentState {
  /** Epoch ms the experiment was first seen: where its results start by default. */
  startedAt: number;
  /** Weights set at run time, by variant; a variant not named keeps its configured weight. */
  weights: Record<string, number>;
  /** Rolled-back variants → the event that rolled them back. */
  rolledBack: Record<string, RollbackEvent>;
  /** Epoch ms of each variant's last restore: the rules ignore samples from before it. */
  restoredAt: Record<string, number>;
}

/** A rule as written in models.yaml, for events people read. */
export interface RuleRecord {
  metric: string;
  max?: number;
  max_vs_control?: number;
  min_requests: number;
  window_ms: number;
}

export interface RollbackEvent {
  type: "rollback";
  /** ISO 8601. */
  at: string;
  experiment: string;
  variant: string;
  rule: RuleRecord;
  observed: number;
  threshold: number;
  /** Control's value, for max_vs_control rules. */
  control_value: number | null;
  /** Samples the decision rested on. */
  requests: { variant: number; control: number | null };
}

export type ExperimentEvent =
  | RollbackEvent
  | { type: "restore"; at: string; experiment: string; variant: string }
  | { type: "weights"; at: string; experiment: string; weights: Record<string, number> };

export interface FeedbackEntry {
  /** Epoch ms it was given. */
  at: number;
  request_id: string;
  experiment: string;
  variant: string;
  /** −1 … 1. */
  score: number;
  comment?: string | undefined;
}

/** What served a request, remembered for feedback. */
export interface RequestRef {
  experiment: string;
  variant: string;
  model: string;
}

export interface ExperimentStore {
  /** Shared by replicas: they must poll `load` to see each other's changes. */
  readonly shared: boolean;
  /** The state of each named experiment; one seen for the first time starts at `now`. */
  load(names: readonly string[], now: number): Promise<Map<string, ExperimentState>>;
  /** Marks the variant rolled back unless it already is; true when this call did it (one winner among replicas). */
  rollBack(event: RollbackEvent): Promise<boolean>;
  /** Clears a rollback; true when there was one. */
  restore(experiment: string, variant: string, at: number): Promise<boolean>;
  setWeights(experiment: string, weights: Record<string, number>, at: number): Promise<void>;
  /** Oldest first; the last MAX_EVENTS are kept. */
  events(experiment: string): Promise<ExperimentEvent[]>;
  addFeedback(entry: FeedbackEntry): Promise<void>;
  /** Feedback given in [since, until). */
  feedback(experiment: string, since: number, until: number): Promise<FeedbackEntry[]>;
  /** Fire and forget: the response never waits for it. */
  remember(requestId: string, ref: RequestRef, ttlMs: number): void;
  recall(requestId: string): Promise<RequestRef | undefined>;
  close(): Promise<void>;
}

export interface ExperimentStoreOptions {
  store: "file" | "redis";
  url: string;
  dataDir: string;
  logger: Logger;
}

export const MAX_EVENTS = 1000;
export const MAX_FEEDBACK = 100_000;
/** Request → variant memories kept in process (file store); Redis expires them by time alone. */
const MAX_REMEMBERED = 100_000;

export function createExperimentStore(options: ExperimentStoreOptions): ExperimentStore {
  return options.store === "redis"
    ? new RedisExperimentStore(options.url, options.logger)
    : new FileExperimentStore(join(options.dataDir, "experiments"));
}

function emptyState(now: number): ExperimentState {
  return { startedAt: now, weights: {}, rolledBack: {}, restoredAt: {} };
}

function clone(state: ExperimentState): ExperimentState {
  return {
    startedAt: state.startedAt,
    weights: { ...state.weights },
    rolledBack: { ...state.rolledBack },
    restoredAt: { ...state.restoredAt },
  };
}

interface ExperimentFile {
  state: ExperimentState;
  events: ExperimentEvent[];
}

/**
 * One JSON file per experiment (state and events, rewritten atomically on each change) and one
 * JSONL file of feedback. This process is the only writer, so memory is the truth and the
 * files are its durable copy; writes are chained so they land in order.
 */
export class FileExperimentStore implements ExperimentStore {
  readonly shared = false;
  private readonly files = new Map<string, ExperimentFile>();
  private readonly requests = new LRUCache<string, RequestRef>({ max: MAX_REMEMBERED });
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly dir: string) {}

  async load(names: readonly string[], now: number): Promise<Map<string, ExperimentState>> {
    const out = new Map<string, ExperimentState>();
    for (const name of names) out.set(name, clone((await this.file(name, now)).state));
    return out;
  }

  async rollBack(event: RollbackEvent): Promise<boolean> {
    const f = await this.file(event.experiment, Date.parse(event.at));
    if (f.state.rolledBack[event.variant]) return false;
    f.state.rolledBack[event.variant] = event;
    f.events.push(event);
    await this.save(event.experiment, f);
    return true;
  }

  async restore(experiment: string, variant: string, at: number): Promise<boolean> {
    const f = await this.file(experiment, at);
    const was = f.state.rolledBack[variant] !== undefined;
    delete f.state.rolledBack[variant];
    f.state.restoredAt[variant] = at;
    f.events.push({ type: "restore", at: new Date(at).toISOString(), experiment, variant });
    await this.save(experiment, f);
    return was;
  }

  async setWeights(experiment: string, weights: Record<string, number>, at: number): Promise<void> {
    const f = await this.file(experiment, at);
    Object.assign(f.state.weights, weights);
    f.events.push({ type: "weights", at: new Date(at).toISOString(), experiment, weights });
    await this.save(experiment, f);
  }

  async events(experiment: string): Promise<ExperimentEvent[]> {
    return [...(await this.file(experiment, Date.now())).events];
  }

  async addFeedback(entry: FeedbackEntry): Promise<void> {
    const write = this.writing.then(() => appendJsonLine(this.feedbackPath(entry.experiment), entry));
    this.writing = write.catch(() => {});
    await write;
  }

  async feedback(experiment: string, since: number, until: number): Promise<FeedbackEntry[]> {
    await this.writing;
    const all = await readJsonLines<FeedbackEntry>(this.feedbackPath(experiment));
    return all.filter((f) => f.at >= since && f.at < until);
  }

  remember(requestId: string, ref: RequestRef, ttlMs: number): void {
    this.requests.set(requestId, ref, { ttl: ttlMs });
  }

  async recall(requestId: string): Promise<RequestRef | undefined> {
    return this.requests.get(requestId);
  }

  async close(): Promise<void> {
    await this.writing;
  }

  private async file(name: string, now: number): Promise<ExperimentFile> {
    let f = this.files.get(name);
    if (!f) {
      const stored = await readJsonFile<ExperimentFile>(join(this.dir, `${name}.json`));
      // Another call may have read it meanwhile; the first one in wins so no change is lost.
      f = this.files.get(name) ?? stored ?? { state: emptyState(now), events: [] };
      this.files.set(name, f);
      if (!stored) await this.save(name, f);
    }
    return f;
  }

  private save(name: string, f: ExperimentFile): Promise<void> {
    if (f.events.length > MAX_EVENTS) f.events.splice(0, f.events.length - MAX_EVENTS);
    const snapshot = JSON.parse(JSON.stringify(f)) as ExperimentFile;
    const write = this.writing.then(() => writeJsonAtomic(join(this.dir, `${name}.json`), snapshot));
    this.writing = write.catch(() => {});
    return write;
  }

  private feedbackPath(experiment: string): string {
    return join(this.dir, `${experiment}.feedback.jsonl`);
  }
}

const PREFIX = "roundhouse:experiments:";
/** Longest a store call may take before it counts as failed: the caller carries on without it. */
const REDIS_TIMEOUT_MS = 2000;

/**
 * Per experiment one hash (`started_at`, `weight:V`, `rolled_back:V` = the event as JSON,
 * `restored_at:V`), a list of events and a list of feedback; per remembered request a string
 * that expires. HSETNX on `rolled_back:V` picks one winner when replicas trip at once, so the
 * event is recorded and counted once.
 */
export class RedisExperimentStore implements ExperimentStore {
  readonly shared = true;
  private readonly client: ReturnType<typeof createClient>;
  private down = false;

  constructor(url: string, logger: Logger) {
    this.client = createClient({
      url,
      // Fail fast while disconnected: callers keep their last known state rather than wait.
      disableOfflineQueue: true,
      socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000) },
    });
    this.client.on("error", (err: Error) => {
      if (this.down) return;
      this.down = true;
      logger.warn({ err: err.message }, "experiment state store (redis) unavailable; keeping the last known state");
    });
    this.client.on("ready", () => {
      if (this.down) logger.info("experiment state store (redis) is back");
      this.down = false;
    });
    // Retries in the background by itself until it connects (or close()).
    this.client.connect().catch(() => {});
  }

  async load(names: readonly string[], now: number): Promise<Map<string, ExperimentState>> {
    const out = new Map<string, ExperimentState>();
    await this.bounded(async () => {
      const hashes = await Promise.all(
        names.map(async (name) => {
          await this.client.hSetNX(this.key(name), "started_at", String(now));
          return this.client.hGetAll(this.key(name));
        }),
      );
      names.forEach((name, i) => {
        out.set(name, parseHash(hashes[i] ?? {}, now));
      });
    });
    return out;
  }

  async rollBack(event: RollbackEvent): Promise<boolean> {
    return this.bounded(async () => {
      const won = await this.client.hSetNX(
        this.key(event.experiment),
        `rolled_back:${event.variant}`,
        JSON.stringify(event),
      );
      if (won === 1) await this.pushEvent(event);
      return won === 1;
    });
  }

  async restore(experiment: string, variant: string, at: number): Promise<boolean> {
    return this.bounded(async () => {
      const key = this.key(experiment);
      const removed = await this.client.hDel(key, `rolled_back:${variant}`);
      await this.client.hSet(key, `restored_at:${variant}`, String(at));
      await this.pushEvent({ type: "restore", at: new Date(at).toISOString(), experiment, variant });
      return removed > 0;
    });
  }

  async setWeights(experiment: string, weights: Record<string, number>, at: number): Promise<void> {
    await this.bounded(async () => {
      const fields: Record<string, string> = {};
      for (const [variant, weight] of Object.entries(weights)) fields[`weight:${variant}`] = String(weight);
      await this.client.hSet(this.key(experiment), fields);
      await this.pushEvent({ type: "weights", at: new Date(at).toISOString(), experiment, weights });
    });
  }

  async events(experiment: string): Promise<ExperimentEvent[]> {
    const lines = await this.bounded(() => this.client.lRange(`${this.key(experiment)}:events`, 0, -1));
    return parseLines<ExperimentEvent>(lines);
  }

  async addFeedback(entry: FeedbackEntry): Promise<void> {
    await this.bounded(async () => {
      const key = `${this.key(entry.experiment)}:feedback`;
      await this.client.rPush(key, JSON.stringify(entry));
      await this.client.lTrim(key, -MAX_FEEDBACK, -1);
    });
  }

  async feedback(experiment: string, since: number, until: number): Promise<FeedbackEntry[]> {
    const lines = await this.bounded(() => this.client.lRange(`${this.key(experiment)}:feedback`, 0, -1));
    return parseLines<FeedbackEntry>(lines).filter((f) => f.at >= since && f.at < until);
  }

  remember(requestId: string, ref: RequestRef, ttlMs: number): void {
    void this.bounded(() =>
      this.client.set(`${PREFIX}request:${requestId}`, JSON.stringify(ref), {
        expiration: { type: "PX", value: ttlMs },
      }),
    ).catch(() => {
      // Feedback for this request will get a 404; the outage is already logged once.
    });
  }

  async recall(requestId: string): Promise<RequestRef | undefined> {
    const text = await this.bounded(() => this.client.get(`${PREFIX}request:${requestId}`));
    return text === null ? undefined : (JSON.parse(text) as RequestRef);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private key(experiment: string): string {
    return `${PREFIX}${experiment}`;
  }

  private async pushEvent(event: ExperimentEvent): Promise<void> {
    const key = `${this.key(event.experiment)}:events`;
    await this.client.rPush(key, JSON.stringify(event));
    await this.client.lTrim(key, -MAX_EVENTS, -1);
  }

  private async bounded<T>(op: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        op(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`experiment state store took longer than ${REDIS_TIMEOUT_MS} ms`)),
            REDIS_TIMEOUT_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function parseHash(hash: Record<string, string>, now: number): ExperimentState {
  const state = emptyState(Number(hash.started_at ?? now));
  for (const [field, value] of Object.entries(hash)) {
    const colon = field.indexOf(":");
    if (colon < 0) continue;
    const kind = field.slice(0, colon);
    const variant = field.slice(colon + 1);
    if (kind === "weight") state.weights[variant] = Number(value);
    else if (kind === "restored_at") state.restoredAt[variant] = Number(value);
    else if (kind === "rolled_back") {
      try {
        state.rolledBack[variant] = JSON.parse(value) as RollbackEvent;
      } catch {
        // A hand-edited value: still rolled back, with an event saying nothing more.
        state.rolledBack[variant] = {
          type: "rollback",
          at: new Date(now).toISOString(),
          experiment: "",
          variant,
          rule: { metric: "unknown", min_requests: 0, window_ms: 0 },
          observed: 0,
          threshold: 0,
          control_value: null,
          requests: { variant: 0, control: null },
        };
      }
    }
  }
  return state;
}

function parseLines<T>(lines: readonly string[]): T[] {
  const out: T[] = [];
  for (const line of lines) {
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // Not ours; skip it.
    }
  }
  return out;
}
