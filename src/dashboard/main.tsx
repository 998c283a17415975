// The dashboard's shell: sign-in (when the server has an admin key), the range and the three
// views. Served at /dashboard by routes/dashboard.ts; built by scripts/build-dashboard.ts.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { render } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { Api } from "./api.ts";
import { Experiments } from "./experiments.tsx";
import { FineTuning } from "./fine-tuning.tsx";
import { RANGES } from "./format.ts";
import { Overview } from "./overview.tsx";

const TABS = [
  { id: "overview", label: "Overview" },
  { id: "experiments", label: "Experiments" },
  { id: "fine-tuning", label: "Fine-tuning" },
] as const;
type Tab = (typeof TABS)[number]["id"];

const tabOf = (hash: string): Tab => TABS.find((t) => `#${t.id}` === hash)?.id ?? "overview";

/** routes/dashboard.ts writes whether /admin wants a key into the page. */
const keyRequired = () =>
  document.querySelector('meta[name="roundhouse-admin-key"]')?.getAttribute("content") === "required";

/** Seconds between refreshes: ?refresh=N (1 to 300), 5 by default. */
function refreshMs(): number {
  const n = Number(new URLSearchParams(location.search).get("refresh"));
  return Number.isFinite(n) && n >= 1 && n <= 300 ? n * 1000 : 5000;
}

function App() {
  const [api, setApi] = useState(() => Api.fromSession());
  const [signedIn, setSignedIn] = useState(() => !keyRequired() || api.hasKey);
  const [tab, setTab] = useState<Tab>(() => tabOf(location.hash));
  const [range, setRange] = useState(3600);
  const everyMs = refreshMs();

  useEffect(() => {
    const onHash = () => setTab(tabOf(location.hash));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  const onUnauthorized = useCallback(() => {
    setApi((a) => a.signOut());
    setSignedIn(false);
  }, []);

  if (!signedIn) {
    return (
      <SignIn
        onSignedIn={(next) => {
          setApi(next);
          setSignedIn(true);
        }}
      />
    );
  }

  const props = { api, everyMs, onUnauthorized };
  return (
    <div class="app">
      <header class="top">
        <h1>Roundhouse</h1>
        <nav>
          {TABS.map((t) => (
            <a
              key={t.id}
              href={`#${t.id}`}
              class={tab === t.id ? "active" : ""}
              aria-current={tab === t.id ? "page" : undefined}
            >
              {t.label}
            </a>
          ))}
        </nav>
        <label class="range">
          Range{" "}
          <select value={range} onChange={(e) => setRange(Number((e.currentTarget as HTMLSelectElement).value))}>
            {RANGES.map((r) => (
              <option key={r.seconds} value={r.seconds}>
                last {r.label}
              </option>
            ))}
          </select>
        </label>
        {api.hasKey && (
          <button type="button" onClick={onUnauthorized}>
            Sign out
          </button>
        )}
      </header>
      <main>
        {tab === "overview" && <Overview {...props} range={range} />}
        {tab === "experiments" && <Experiments {...props} range={range} />}
        {tab === "fine-tuning" && <FineTuning {...props} />}
      </main>
    </div>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (api: Api) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    const next = Api.fromSession().signIn(key);
    try {
      await next.get("/admin/models");
      onSignedIn(next);
    } catch (err) {
      next.signOut();
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="sign-in" onSubmit={(e) => void submit(e)}>
      <h1>Roundhouse</h1>
      <p>This server has an admin key (ADMIN_API_KEY). Enter it to see the dashboard; it is kept for this tab only.</p>
      <input
        type="password"
        name="admin-key"
        autocomplete="off"
        aria-label="Admin key"
        placeholder="Admin key"
        value={key}
        onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit" class="primary" disabled={busy || key === ""}>
        Sign in
      </button>
      {error && <p class="error">{error}</p>}
    </form>
  );
}

const root = document.getElementById("root");
if (root) render(<App />, root);
