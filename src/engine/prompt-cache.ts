// Conversations' KV state kept when their sequence goes to someone else, as llama-server's
// --cache-ram: saved with node-llama-cpp's sequence state files into a RAM-backed folder
// (/dev/shm where it exists), the least recently used dropped past `max_bytes`. On the 115M shape
// a 1,810-token state saves in 29 ms and loads in 16 ms (66 MB) where computing it again takes
// 5.4 s on one thread, so a returning user pays for their new tokens only. When to save and load
// is prefix.ts's.
import { mkdir, mkdtemp, readdir, rm, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LlamaContextSequence, Token } from "node-llama-cpp";

/** How many tokens `a` and `b` share from the start. */
export function commonPrefix<T>(a: readonly T[], b: readonly T[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** A saved state: the tokens it holds, and its file. */
export interface SavedPrompt {
  tokens: Token[];
  file: string;
  bytes: number;
  lastUsed: number;
  /** Being loaded: not dropped until it is done. */
  readers: number;
}

export interface PromptCacheEvents {
  saved?(tokens: number, bytes: number): void;
  dropped?(count: number): void;
}

/** One loaded model's saved states (a state loads only into the model that wrote it). */
export class PromptCache {
  private entries: SavedPrompt[] = [];
  private tick = 0;
  private next = 0;
  private bytesHeld = 0;

  private constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly events: PromptCacheEvents,
  ) {}

  /**
   * A cache in a folder of its own under `root` (default: /dev/shm where it has room for
   * `maxBytes`, else the temp folder). Folders left by a process that is gone are removed.
   */
  static async open(maxBytes: number, root?: string, events: PromptCacheEvents = {}): Promise<PromptCache> {
    // One parent per user: /dev/shm is shared, and another user's folder is not writable.
    const parent = join(root ?? (await ramFolder(maxBytes)), `roundhouse-prompt-cache-${process.getuid?.() ?? 0}`);
    await mkdir(parent, { recursive: true });
    await removeOrphans(parent);
    const dir = await mkdtemp(join(parent, `${process.pid}-`));
    return new PromptCache(dir, maxBytes, events);
  }

  /** Where its files are. */
  get folder(): string {
    return this.dir;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The saved states, each with how many tokens of `prompt` it starts with. */
  candidates(prompt: readonly Token[]): { source: SavedPrompt; commonPrefix: number }[] {
    return this.entries.map((e) => ({ source: e, commonPrefix: commonPrefix(e.tokens, prompt) }));
  }

  /** Whether a saved state holds all of `tokens` (and maybe more). */
  covers(tokens: readonly Token[]): boolean {
    return this.entries.some(
      (e) => e.tokens.length >= tokens.length && commonPrefix(e.tokens, tokens) === tokens.length,
    );
  }

  /** Saves what `sequence` holds; states it extends are dropped (it holds all they did). */
  async save(sequence: LlamaContextSequence): Promise<void> {
    const tokens = sequence.contextTokens.slice();
    const file = join(this.dir, `${this.next++}.state`);
    let bytes: number;
    try {
      ({ fileSize: bytes } = await sequence.saveStateToFile(file));
    } catch {
      // Out of room in the folder, or the sequence went away: the state is simply not kept.
      await rm(file, { force: true });
      return;
    }
    const superseded = this.entries.filter(
      (e) => e.readers === 0 && e.tokens.length <= tokens.length && commonPrefix(e.tokens, tokens) === e.tokens.length,
    );
    await this.drop(superseded);
    this.entries.push({ tokens, file, bytes, lastUsed: ++this.tick, readers: 0 });
    this.bytesHeld += bytes;
    this.events.saved?.(tokens.length, bytes);
    await this.trim();
  }

  /** Loads a saved state into `sequence`; false (and the state dropped) when it cannot be read. */
  async restore(sequence: LlamaContextSequence, entry: SavedPrompt): Promise<boolean> {
    if (!this.entries.includes(entry)) return false;
    entry.readers++;
    entry.lastUsed = ++this.tick;
    let loaded = true;
    try {
      await sequence.loadStateFromFile(entry.file, { acceptRisk: true });
    } catch {
      // A failed load leaves the sequence empty (node-llama-cpp clears it first).
      loaded = false;
    } finally {
      entry.readers--;
    }
    if (!loaded) await this.drop([entry]);
    return loaded;
  }

  /** Removes every state and the folder (the model unloads). */
  async clear(): Promise<void> {
    this.entries = [];
    this.bytesHeld = 0;
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Least recently used first, until the states fit in max_bytes. */
  private async trim(): Promise<void> {
    const victims: SavedPrompt[] = [];
    let bytes = this.bytesHeld;
    for (const e of [...this.entries].sort((a, b) => a.lastUsed - b.lastUsed)) {
      if (bytes <= this.maxBytes) break;
      if (e.readers > 0) continue;
      victims.push(e);
      bytes -= e.bytes;
    }
    await this.drop(victims);
  }

  private async drop(victims: readonly SavedPrompt[]): Promise<void> {
    if (victims.length === 0) return;
    const gone = new Set(victims);
    this.entries = this.entries.filter((e) => !gone.has(e));
    for (const e of victims) this.bytesHeld -= e.bytes;
    this.events.dropped?.(victims.length);
    await Promise.all(victims.map((e) => rm(e.file, { force: true })));
  }
}

async function ramFolder(maxBytes: number): Promise<string> {
  try {
    const fs = await statfs("/dev/shm");
    if (fs.bavail * fs.bsize >= maxBytes) return "/dev/shm";
  } catch {
    // No /dev/shm (macOS, Windows).
  }
  return tmpdir();
}

/** Folders named after a process id that is no longer running (killed before it could clean up). */
async function removeOrphans(parent: string): Promise<void> {
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const pid = Number(name.split("-")[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    await rm(join(parent, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
