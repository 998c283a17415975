// Data that refreshes itself: fetched at once, then every `everyMs` while the tab is visible,
// never two fetches of the same view at a time.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { Unauthorized } from "./api.ts";

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  refresh(): void;
}

export function usePoll<T>(
  load: () => Promise<T>,
  deps: readonly unknown[],
  everyMs: number,
  onUnauthorized: () => void,
): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const busy = useRef(false);
  const latest = useRef(load);
  latest.current = load;

  const run = useCallback(async () => {
    if (busy.current) return;
    busy.current = true;
    try {
      setData(await latest.current());
      setError(undefined);
    } catch (err) {
      if (err instanceof Unauthorized) onUnauthorized();
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      busy.current = false;
    }
  }, [onUnauthorized]);

  useEffect(() => {
    void run();
    const timer = setInterval(() => {
      if (!document.hidden) void run();
    }, everyMs);
    return () => clearInterval(timer);
  }, [run, everyMs, ...deps]);

  return { data, error, refresh: () => void run() };
}
