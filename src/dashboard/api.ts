// The admin routes the dashboard reads, with the admin key the user signed in with. Types come
// from the server's own modules (type-only imports: nothing of the server is bundled).
import type { Checkpoint, FineTuningJob, JobEvent } from "../finetune/jobs.ts";
import type { TimeSeries as TimeSeriesBody } from "../telemetry/timeseries.ts";
import type { ExperimentResults } from "../traffic/results.ts";

export type { SeriesGroup } from "../telemetry/timeseries.ts";
export type { VariantResult } from "../traffic/results.ts";
export type { Checkpoint, ExperimentResults, FineTuningJob, JobEvent };

/** GET /admin/timeseries. */
export type TimeSeries = TimeSeriesBody & { since: string; until: string };

/** The x range a series covers, in unix seconds: the range asked for, up to now. */
export const seriesRange = (s: TimeSeries): [number, number] => [
  Date.parse(s.since) / 1000,
  Date.parse(s.until) / 1000,
];

/** A job as GET /admin/fine_tuning/jobs lists it: with the tenant that owns it (null: made before ownership). */
export type AdminJob = FineTuningJob & { tenant: string | null };

export interface ModelRow {
  id: string;
  provider: string;
  aliases: string[];
  loaded: boolean;
  memory_bytes: number | null;
  parallel: number | null;
  busy_sequences: number;
  queue_depth: number;
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

/** The key lives in the tab's sessionStorage: gone when the tab closes, never in a URL. */
const KEY_ITEM = "roundhouse.admin-key";

export class Unauthorized extends Error {}

export class Api {
  constructor(private key: string | null) {}

  static fromSession(): Api {
    return new Api(sessionStorage.getItem(KEY_ITEM));
  }

  get hasKey(): boolean {
    return this.key !== null;
  }

  signIn(key: string): Api {
    sessionStorage.setItem(KEY_ITEM, key);
    return new Api(key);
  }

  signOut(): Api {
    sessionStorage.removeItem(KEY_ITEM);
    return new Api(null);
  }

  async get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.key !== null) headers.authorization = `Bearer ${this.key}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // 401: no key or a wrong one; 403: a key of the API, not the admin key.
    if (res.status === 401 || res.status === 403) throw new Unauthorized("The admin key was refused.");
    const json = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    if (!res.ok) throw new Error(json?.error?.message ?? `${method} ${path}: HTTP ${res.status}`);
    return json as T;
  }

  /** Every page of a list route that pages with `after` (fine-tuning events, checkpoints). */
  async all<T extends { id: string }>(path: string): Promise<T[]> {
    const items: T[] = [];
    for (let after: string | undefined; ; ) {
      const sep = path.includes("?") ? "&" : "?";
      const page = await this.get<Page<T>>(
        `${path}${sep}limit=100${after ? `&after=${encodeURIComponent(after)}` : ""}`,
      );
      items.push(...page.data);
      after = page.data.at(-1)?.id;
      if (!page.has_more || after === undefined) return items;
    }
  }
}
