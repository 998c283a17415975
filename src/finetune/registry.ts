// The fine-tuned models a server serves: one JSON record per model under
// DATA_DIR/finetune/registry, so they come back after a restart. `sync` reconciles
// the records on disk with what is being served, which also picks up models that a
// `npm run worker` process registered in a shared DATA_DIR (replicas sync on a timer, and
// at once when a request names a fine-tuned model they do not serve yet).

import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { isAbsolute, join, relative } from "node:path";
import { JsonDir } from "../storage/durable.ts";
import type { FineTunedModelRecord } from "./runner.ts";

export interface ServingHooks {
  /** Start serving it; false when its base model is no longer configured. */
  serve(record: FineTunedModelRecord): boolean;
  unserve(id: string): Promise<void>;
}

export class FineTunedModels {
  private readonly records: JsonDir<FineTunedModelRecord>;
  private readonly served = new Map<string, FineTunedModelRecord>();
  private syncing: Promise<void> | undefined;
  private nextSync: Promise<void> | undefined;

  constructor(
    private readonly root: string,
    private readonly hooks: ServingHooks,
  ) {
    this.records = new JsonDir(join(root, "registry"));
  }

  isServed(id: string): boolean {
    return this.served.has(id);
  }

  /** The job that made served model `id`; undefined for any other model. */
  jobOf(id: string): string | undefined {
    return this.served.get(id)?.job_id;
  }

  /** Record file names are the job id: model ids hold ':' and are not safe file names everywhere. */
  async register(record: FineTunedModelRecord): Promise<void> {
    // Stored relative to the fine-tuning folder: a worker and the replicas may mount the shared
    // DATA_DIR at different paths.
    const inside = relative(this.root, record.path);
    const portable = inside.startsWith("..") || isAbsolute(inside) ? record.path : inside;
    await this.records.put(record.job_id, { ...record, path: portable });
    this.start(record);
  }

  /** Stops serving the model and deletes its record and weights. False when it is not a fine-tuned model. */
  async delete(id: string): Promise<boolean> {
    const record = (await this.all()).find((r) => r.id === id);
    if (!record) return false;
    await this.records.delete(record.job_id);
    if (this.served.delete(id)) await this.hooks.unserve(id);
    await rm(record.path, { force: true });
    return true;
  }

  /**
   * Serves every recorded model not yet served; stops serving those whose record is gone.
   * One read of the folder at a time: a call made while one runs waits for the next, which
   * starts after it (so it sees every record written before the call), shared by all such calls.
   */
  sync(): Promise<void> {
    if (!this.syncing) {
      this.syncing = this.syncOnce().finally(() => {
        this.syncing = undefined;
      });
      return this.syncing;
    }
    const next = () => {
      this.nextSync = undefined;
      return this.sync();
    };
    // Whether the running one failed or not, the waiting callers need a read of their own.
    this.nextSync ??= this.syncing.then(next, next);
    return this.nextSync;
  }

  private async syncOnce(): Promise<void> {
    const records = await this.all();
    const ids = new Set(records.map((r) => r.id));
    for (const r of records) if (!this.served.has(r.id)) this.start(r);
    for (const id of [...this.served.keys()]) {
      if (!ids.has(id)) {
        this.served.delete(id);
        await this.hooks.unserve(id);
      }
    }
  }

  /** Every record, its path resolved on this machine (older records hold absolute paths). */
  private async all(): Promise<FineTunedModelRecord[]> {
    return (await this.records.all()).map((r) => ({
      ...r,
      path: isAbsolute(r.path) ? r.path : join(this.root, r.path),
    }));
  }

  private start(record: FineTunedModelRecord): void {
    if (this.served.has(record.id) || !existsSync(record.path)) return;
    if (this.hooks.serve(record)) this.served.set(record.id, record);
  }
}
