// CPU accounting from /proc (Linux; undefined elsewhere). On a small shared machine the
// biggest source of noise is other work: the bench records how many cores were busy
// outside the server under test and the bench itself, so a skewed level can be spotted.
import { readFileSync } from "node:fs";

/** Linux reports /proc times in USER_HZ ticks, 100 per second on every mainstream kernel. */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used so far. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Busy CPU seconds of the whole machine, all cores summed (everything but idle and iowait). */
export function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const [label, ...rest] = line.trim().split(/\s+/);
    if (label !== "cpu") return undefined;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    const t = rest.slice(0, 8).map(Number);
    const total = t.reduce((a, b) => a + b, 0);
    return (total - (t[3] ?? 0) - (t[4] ?? 0)) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process (the load generator). */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Cores kept busy by everything on the machine over `ms` milliseconds. */
export async function busyCores(ms: number): Promise<number | undefined> {
  const before = machineBusySeconds();
  await new Promise((r) => setTimeout(r, ms));
  const after = machineBusySeconds();
  return before === undefined || after === undefined ? undefined : (after - before) / (ms / 1000);
}
