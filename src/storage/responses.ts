// Stored responses (`store: true`, OpenAI's default): the response, the input items of its
// request, and the conversation it continued, so `previous_response_id` can carry a chain on.
// One JSON file per response under DATA_DIR/responses, written atomically; a response belongs
// to the key that created it and expires (responses.ttl). Ids are checked against a strict
// pattern before they name a file.
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { InputItem, ResponseObject } from "../openai/responses.ts";

export interface StoredResponse {
  response: ResponseObject;
  /** The request's own input items, with ids. */
  input: (InputItem & { id: string })[];
  /** Every item before this response's output: the chain it continued, then its own input. */
  conversation: InputItem[];
  /** The key (tenant) that created it. */
  owner: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

const ID = /^resp_[A-Za-z0-9]{16,64}$/;

export function newResponseId(): string {
  return `resp_${randomBytes(24).toString("hex")}`;
}

export function newItemId(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString("hex")}`;
}

export class ResponseStore {
  private readonly dir: string;

  constructor(
    dataDir: string,
    /** How long a response is kept (models.yaml responses.ttl). */
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.dir = join(dataDir, "responses");
    mkdirSync(this.dir, { recursive: true });
  }

  async put(stored: StoredResponse): Promise<void> {
    const path = this.path(stored.response.id);
    if (!path) throw new Error(`not a response id: ${stored.response.id}`);
    const temp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    await writeFile(temp, JSON.stringify(stored));
    await rename(temp, path);
  }

  /** The response if it exists, belongs to `owner` (undefined: any owner, the admin) and has not expired. */
  async get(id: string, owner: string | undefined): Promise<StoredResponse | undefined> {
    const path = this.path(id);
    if (!path) return undefined;
    let stored: StoredResponse;
    try {
      stored = JSON.parse(await readFile(path, "utf8")) as StoredResponse;
    } catch {
      return undefined;
    }
    if (stored.expiresAt <= this.now()) {
      await rm(path, { force: true });
      return undefined;
    }
    return owner === undefined || stored.owner === owner ? stored : undefined;
  }

  async delete(id: string, owner: string | undefined): Promise<boolean> {
    if (!(await this.get(id, owner))) return false;
    await rm(this.path(id) as string, { force: true });
    return true;
  }

  private path(id: string): string | undefined {
    return ID.test(id) ? join(this.dir, `${id}.json`) : undefined;
  }
}
