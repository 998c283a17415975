// The server as a user runs it (`tsx src/main.ts`) in its own process, for tests that stop it
// the hard way (SIGKILL) and start it again on the same DATA_DIR.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { freePort } from "./redis.ts";
import { REPO } from "./server.ts";

export interface MainProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

export async function startMain(env: Record<string, string>): Promise<MainProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO, "src", "main.ts")], {
    cwd: REPO,
    env: { ...process.env, LOG_LEVEL: "warn", PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { url: `http://127.0.0.1:${port}`, child, output: () => output, exited };
}

export async function waitHealthy(main: MainProcess, deadlineMs = 60_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (main.child.exitCode !== null) throw new Error(`server exited (${main.child.exitCode}):\n${main.output()}`);
    try {
      if ((await fetch(`${main.url}/healthz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not become healthy:\n${main.output()}`);
}

/** SIGKILL: no shutdown code runs, as in a crash or an OOM kill. */
export async function killHard(main: MainProcess): Promise<void> {
  if (main.child.exitCode !== null) return;
  main.child.kill("SIGKILL");
  await main.exited;
}
