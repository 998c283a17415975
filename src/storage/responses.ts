// Stored responses (`store: true`, OpenAI's default): the response, the input items of its
// request, and the conversation it continued, so `previous_response_id` can carry a chain on.
// A response belongs to the key that created it and expires (models.yaml responses.ttl). Kept
// as one JSON file per response under DATA_DIR/responses, or in Redis (responses.store: redis)
// so that every replica sees every response. Ids are checked against a strict pattern before
// they name a file or a key.
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@keyv/redis";
import type { InputItem, ResponseObject } from "../openai/responses.ts";
import { JsonDir } from "./durable.ts";

export interface StoredResponse {
  response: ResponseObject;
  /** The request's own input items, with ids. */
  input: (InputItem & { id: string })[];
  /** Every item before this response's output: the chain it continued, then its own input. */
  conversation: InputItem[];
  /** The key (tenant) that created it. */
  owner: string;
  /** The model that answered it through its own Responses API (an upstream's), which holds it too. */
  native?: string;
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

/** Where the records live: files or Redis. */
interface Backend {
  get(id: string): Promise<StoredResponse | undefined>;
  put(stored: StoredResponse, ttlMs: number): Promise<void>;
  delete(id: string): Promise<void>;
  close(): Promise<void>;
}

export class ResponseStore {
  private constructor(
    private readonly backend: Backend,
    /** How long a response is kept (models.yaml responses.ttl). */
    readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  static files(dataDir: string, ttlMs: number, now: () => number = Date.now): ResponseStore {
    return new ResponseStore(new FileBackend(join(dataDir, "responses")), ttlMs, now);
  }

  static redis(url: string, ttlMs: number, now: () => number = Date.now): ResponseStore {
    return new ResponseStore(new RedisBackend(url), ttlMs, now);
  }

  async put(stored: StoredResponse): Promise<void> {
    if (!ID.test(stored.response.id)) throw new Error(`not a response id: ${stored.response.id}`);
    await this.backend.put(stored, stored.expiresAt - this.now());
  }

  /** The response if it exists, `viewer` sees it (its owner, or undefined: the admin) and it has not expired. */
  async get(id: string, viewer: string | undefined): Promise<StoredResponse | undefined> {
    if (!ID.test(id)) return undefined;
    const stored = await this.backend.get(id);
    if (!stored) return undefined;
    if (stored.expiresAt <= this.now()) {
      await this.backend.delete(id);
      return undefined;
    }
    return viewer === undefined || stored.owner === viewer ? stored : undefined;
  }

  async delete(id: string, viewer: string | undefined): Promise<boolean> {
    if (!(await this.get(id, viewer))) return false;
    await this.backend.delete(id);
    return true;
  }

  close(): Promise<void> {
    return this.backend.close();
  }
}

class FileBackend implements Backend {
  private readonly dir: JsonDir<StoredResponse>;

  constructor(path: string) {
    mkdirSync(path, { recursive: true });
    this.dir = new JsonDir(path);
  }

  get(id: string): Promise<StoredResponse | undefined> {
    return this.dir.get(id).catch(() => undefined);
  }

  put(stored: StoredResponse): Promise<void> {
    return this.dir.put(stored.response.id, stored);
  }

  delete(id: string): Promise<void> {
    return this.dir.delete(id);
  }

  async close(): Promise<void> {}
}

/** One string per response, expiring with it (PX), so Redis forgets what the ttl forgets. */
class RedisBackend implements Backend {
  private readonly client: ReturnType<typeof createClient>;
  private readonly connected: Promise<unknown>;

  constructor(url: string) {
    this.client = createClient({
      url,
      socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000) },
    });
    // Errors reach the caller of each command; the client reconnects by itself.
    this.client.on("error", () => {});
    this.connected = this.client.connect().catch(() => {});
  }

  async get(id: string): Promise<StoredResponse | undefined> {
    await this.connected;
    const text = await this.client.get(key(id));
    return text === null ? undefined : (JSON.parse(text) as StoredResponse);
  }

  async put(stored: StoredResponse, ttlMs: number): Promise<void> {
    await this.connected;
    await this.client.set(key(stored.response.id), JSON.stringify(stored), { PX: Math.max(1, Math.round(ttlMs)) });
  }

  async delete(id: string): Promise<void> {
    await this.connected;
    await this.client.del(key(id));
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => {});
  }
}

function key(id: string): string {
  return `roundhouse:response:${id}`;
}
