// Small durable primitives for state kept under DATA_DIR: whole-file writes that are
// atomic (temp file + fsync + rename, so a crash leaves the old or the new file, never
// half of one), JSON records, and append-only JSONL logs whose torn last line (a crash
// mid-append) is skipped on read.
import { randomBytes } from "node:crypto";
import { appendFile, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The parsed file, or undefined when it does not exist. */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  return JSON.parse(text) as T;
}

export async function appendJsonLine(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await appendFile(path, `${JSON.stringify(value)}\n`);
}

/** Every complete line of a JSONL log; a line that does not parse (torn by a crash) is skipped. */
export async function readJsonLines<T>(path: string): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
  const out: T[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // A torn write from a crash: the record was never acknowledged, so dropping it is right.
    }
  }
  return out;
}

/** File names in a folder (none when it does not exist), without temp files of unfinished writes. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => !f.endsWith(".tmp"));
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}

export async function removePath(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** JSON records, one file per id, in one folder. Ids must already be checked against a strict pattern. */
export class JsonDir<T> {
  constructor(readonly dir: string) {}

  path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  get(id: string): Promise<T | undefined> {
    return readJsonFile<T>(this.path(id));
  }

  put(id: string, value: T): Promise<void> {
    return writeJsonAtomic(this.path(id), value);
  }

  async delete(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }

  async all(): Promise<T[]> {
    const names = (await listDir(this.dir)).filter((f) => f.endsWith(".json"));
    const out: T[] = [];
    for (const name of names) {
      const value = await readJsonFile<T>(join(this.dir, name));
      if (value !== undefined) out.push(value);
    }
    return out;
  }
}

function isMissing(err: unknown): boolean {
  return typeof err === "object" && err !== null && "code" in err && err.code === "ENOENT";
}
