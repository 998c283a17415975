// Uploaded files (/v1/files) under DATA_DIR/files: `<id>.json` holds the OpenAI file
// object, `<id>.data` the bytes exactly as uploaded. Fine-tune uploads are validated
// line by line before anything is stored.
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { JsonDir, writeFileAtomic } from "../storage/durable.ts";
import { checkDatasetLines, DATASET_LIMITS, parseDataset } from "./dataset.ts";
import { isId, newId } from "./ids.ts";
import { type Viewer, visibleTo } from "./owners.ts";

/** Purposes a client may upload with (OpenAI's list); `fine-tune-results` is ours to create. */
export const UPLOAD_PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"] as const;
export type FilePurpose = (typeof UPLOAD_PURPOSES)[number] | "fine-tune-results";

export interface FileObject {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  /** Absent: files here never expire (OpenAI's schema has no null for it). */
  expires_at?: number;
  filename: string;
  purpose: FilePurpose;
  /** Deprecated by OpenAI but still required: always `processed`, since a bad upload is refused outright. */
  status: "uploaded" | "processed" | "error";
}

/** A refused upload: `line` is the first bad line of a fine-tune file. */
export class InvalidFileError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

/** Longest file name kept, in characters: a label, not a place to store data. */
export const MAX_FILENAME_LENGTH = 1024;

/**
 * Why a client's file name cannot be kept, or undefined when it can. Any Unicode name is fine
 * (downloads encode it per RFC 6266/5987); control characters (C0, DEL, C1) are refused: they
 * cannot travel in a header's fallback and mean nothing in a name.
 */
export function fileNameProblem(name: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(name);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    return `The file name contains a control character (U+${code}) at position ${control.index + 1}; rename the file.`;
  }
  if (name.length > MAX_FILENAME_LENGTH) {
    return `The file name is ${name.length} characters long; at most ${MAX_FILENAME_LENGTH} are allowed.`;
  }
  return undefined;
}

/**
 * On disk: the object plus a millisecond clock, so files made within one second keep their
 * order, and the tenant that uploaded it (absent on files from before tenants: visible to all).
 */
interface StoredFile {
  file: FileObject;
  created_ms: number;
  owner?: string;
}

export class FileStore {
  private readonly meta: JsonDir<StoredFile>;
  private lastMs = 0;

  constructor(private readonly dir: string) {
    this.meta = new JsonDir(dir);
  }

  async create(input: {
    filename: string;
    purpose: FilePurpose;
    bytes: Uint8Array;
    owner?: string | undefined;
  }): Promise<FileObject> {
    if (input.purpose === "fine-tune") {
      const text = decodeUtf8(input.bytes);
      if (text === undefined) throw new InvalidFileError("The fine-tune file is not valid UTF-8 text.");
      const check = parseDataset(text);
      if (!check.ok) {
        throw new InvalidFileError(`Invalid fine-tune file: line ${check.line}: ${check.reason}.`, check.line);
      }
    }
    const file: FileObject = {
      id: newId("file"),
      object: "file",
      bytes: input.bytes.byteLength,
      created_at: Math.floor(Date.now() / 1000),
      filename: input.filename,
      purpose: input.purpose,
      status: "processed",
    };
    // Bytes first: a file object never points at content that is not there.
    await writeFileAtomic(this.dataPath(file.id), input.bytes);
    // Strictly increasing, so two uploads in the same millisecond still sort in upload order.
    this.lastMs = Math.max(Date.now(), this.lastMs + 1);
    await this.meta.put(file.id, { file, created_ms: this.lastMs, ...ownedBy(input.owner) });
    return file;
  }

  /**
   * Where an upload in progress writes its bytes: a temp file in the files folder itself, so
   * the upload becomes a file by a rename. `.tmp` files are never listed; leftovers of a
   * crash are removed by removeStaleIncoming.
   */
  async incomingPath(): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    return join(this.dir, `${INCOMING_PREFIX}${randomBytes(9).toString("hex")}.tmp`);
  }

  /**
   * An upload already on disk (incomingPath) → a stored file: a fine-tune file is checked line
   * by line from the disk, then the temp file is renamed into place (or left for the caller to
   * remove when refused).
   */
  async createFromFile(input: {
    filename: string;
    purpose: FilePurpose;
    path: string;
    owner: string;
  }): Promise<FileObject> {
    if (input.purpose === "fine-tune") {
      const check = await checkDatasetLines(utf8Lines(input.path, DATASET_LIMITS.maxLineChars));
      if (!check.ok) {
        throw new InvalidFileError(`Invalid fine-tune file: line ${check.line}: ${check.reason}.`, check.line);
      }
    }
    const file: FileObject = {
      id: newId("file"),
      object: "file",
      bytes: (await stat(input.path)).size,
      created_at: Math.floor(Date.now() / 1000),
      filename: input.filename,
      purpose: input.purpose,
      status: "processed",
    };
    await rename(input.path, this.dataPath(file.id));
    this.lastMs = Math.max(Date.now(), this.lastMs + 1);
    await this.meta.put(file.id, { file, created_ms: this.lastMs, owner: input.owner });
    return file;
  }

  /**
   * Removes temp files of uploads a crash cut short. Only old ones: replicas sharing DATA_DIR
   * may be receiving uploads right now.
   */
  async removeStaleIncoming(olderThanMs = 60 * 60 * 1000): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!name.startsWith(INCOMING_PREFIX) || !name.endsWith(".tmp")) continue;
      const path = join(this.dir, name);
      try {
        if (Date.now() - (await stat(path)).mtimeMs > olderThanMs) await rm(path, { force: true });
      } catch {
        // Finished or removed meanwhile.
      }
    }
  }

  /** Undefined when there is no such file or `viewer` may not see it. */
  async get(id: string, viewer?: Viewer): Promise<FileObject | undefined> {
    if (!isId("file", id)) return undefined;
    const stored = await this.meta.get(id);
    return stored && visibleTo(stored.owner, viewer) ? stored.file : undefined;
  }

  /** Who uploaded the file (undefined for files from before tenants). */
  async owner(id: string): Promise<string | undefined> {
    return isId("file", id) ? (await this.meta.get(id))?.owner : undefined;
  }

  async content(id: string, viewer?: Viewer): Promise<Buffer | undefined> {
    if (!(await this.get(id, viewer))) return undefined;
    return readFile(this.dataPath(id));
  }

  async delete(id: string, viewer?: Viewer): Promise<boolean> {
    if (!(await this.get(id, viewer))) return false;
    await this.meta.delete(id);
    await rm(this.dataPath(id), { force: true });
    return true;
  }

  /** Oldest first, ties broken by id, so cursors are stable. */
  async list(purpose?: string, viewer?: Viewer): Promise<FileObject[]> {
    const all = await this.meta.all();
    return all
      .filter((s) => (purpose === undefined || s.file.purpose === purpose) && visibleTo(s.owner, viewer))
      .sort((a, b) => a.created_ms - b.created_ms || a.file.id.localeCompare(b.file.id))
      .map((s) => s.file);
  }

  private dataPath(id: string): string {
    return join(this.dir, `${id}.data`);
  }
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function ownedBy(owner: string | undefined): { owner?: string } {
  return owner === undefined ? {} : { owner };
}

const INCOMING_PREFIX = "incoming-";
/**
 * Bytes read at a time when checking a file. Small enough that a chunk's decoded string stays
 * under V8's large-object size (~128 KiB) and dies young: 256 KiB chunks went to the large-object
 * space, which only a full GC frees, and left ~50 MB more resident after six 40 MB uploads.
 */
const READ_CHUNK_BYTES = 32 * 1024;

/**
 * The lines of a UTF-8 file, read in chunks: invalid UTF-8 throws InvalidFileError, and a line
 * is cut one character past `maxChars` (the rest of it skipped), so a file without newlines
 * costs no more memory than one allowed line.
 */
async function* utf8Lines(path: string, maxChars: number): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let line = "";
  let skipping = false;
  const take = (text: string) => {
    if (skipping) return;
    line += text;
    if (line.length > maxChars) {
      line = line.slice(0, maxChars + 1);
      skipping = true;
    }
  };
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK_BYTES })) {
    let text: string;
    try {
      text = decoder.decode(chunk as Buffer, { stream: true });
    } catch {
      throw new InvalidFileError("The fine-tune file is not valid UTF-8 text.");
    }
    let start = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      take(text.slice(start, nl));
      yield line;
      line = "";
      skipping = false;
      start = nl + 1;
    }
    take(text.slice(start));
  }
  try {
    take(decoder.decode());
  } catch {
    throw new InvalidFileError("The fine-tune file is not valid UTF-8 text.");
  }
  if (line !== "") yield line;
}
