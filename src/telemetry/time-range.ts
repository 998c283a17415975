// The `since`/`until` of usage queries: ISO 8601 or unix seconds, defaulting to the last 24 h.

export const DEFAULT_RANGE_MS = 24 * 60 * 60 * 1000;

/** ISO 8601 (a date-time without an offset is UTC) or unix seconds; undefined when neither. */
export function parseInstant(value: string): Date | undefined {
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) {
    // Past ±8.64e15 ms a Date is invalid, and toISOString on it throws.
    const date = new Date(Number(text) * 1000);
    return Number.isNaN(date.getTime()) ? undefined : date;
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) return undefined;
  // JavaScript reads a date-time without an offset as local time; a server's usage is in UTC.
  const utc = /[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text) ? `${text.replace(" ", "T")}Z` : text.replace(" ", "T");
  const ms = Date.parse(utc);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

export type RangeResult = { ok: true; since: Date; until: Date } | { ok: false; param: string; message: string };

export function usageRange(since: string | undefined, until: string | undefined, now: Date): RangeResult {
  const end = until === undefined ? now : parseInstant(until);
  if (!end) return { ok: false, param: "until", message: invalidInstant("until", until ?? "") };
  const start = since === undefined ? new Date(end.getTime() - DEFAULT_RANGE_MS) : parseInstant(since);
  if (!start) return { ok: false, param: "since", message: invalidInstant("since", since ?? "") };
  if (start.getTime() > end.getTime()) {
    return {
      ok: false,
      param: "since",
      message: `since (${start.toISOString()}) is after until (${end.toISOString()}).`,
    };
  }
  return { ok: true, since: start, until: end };
}

function invalidInstant(param: string, value: string): string {
  return `${param} must be an ISO 8601 time (2025-06-12T08:00:00Z) or unix seconds, got ${JSON.stringify(value)}.`;
}
