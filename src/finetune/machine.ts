// How much memory a trainer on this machine may use: the physical memory, or the
// container's cgroup limit when that is lower (v2 memory.max, v1 memory.limit_in_bytes).
import { readFile } from "node:fs/promises";
import { totalmem } from "node:os";

export async function machineMemoryBytes(root = "/sys/fs/cgroup"): Promise<number> {
  let limit = totalmem();
  for (const file of [`${root}/memory.max`, `${root}/memory/memory.limit_in_bytes`]) {
    const text = (await readFile(file, "utf8").catch(() => "")).trim();
    // "max" (v2) or a huge number (v1) mean no limit.
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (Number.isFinite(n) && n > 0) limit = Math.min(limit, n);
  }
  return limit;
}
