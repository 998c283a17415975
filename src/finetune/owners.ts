// Who owns a fine-tuning object (a job, and through it its events, checkpoints, results file
// and fine-tuned model): one JSON record per object id under DATA_DIR/finetune/owners, apart
// from the OpenAI-shaped objects so none of them ever shows it to a client. Files keep their
// owner in their own record (files.ts).
import { join } from "node:path";
import { JsonDir } from "../storage/durable.ts";

/**
 * A tenant (src/security/api-keys.ts Caller.tenant), or undefined for whoever sees everything
 * (the server's own work: the trainer, the queue).
 */
export type Viewer = string | undefined;

/**
 * Whether `viewer` may see an object owned by `owner`. An object made before ownership was
 * recorded has none: it stays visible to everyone, as it was.
 */
export function visibleTo(owner: string | undefined, viewer: Viewer): boolean {
  return viewer === undefined || owner === undefined || owner === viewer;
}

export class Owners {
  private readonly records: JsonDir<{ tenant: string }>;

  constructor(root: string) {
    this.records = new JsonDir(join(root, "owners"));
  }

  /** `id` must already be checked against its strict pattern. */
  set(id: string, tenant: string): Promise<void> {
    return this.records.put(id, { tenant });
  }

  async of(id: string): Promise<string | undefined> {
    return (await this.records.get(id))?.tenant;
  }

  async sees(id: string, viewer: Viewer): Promise<boolean> {
    return viewer === undefined || visibleTo(await this.of(id), viewer);
  }

  async delete(id: string): Promise<void> {
    await this.records.delete(id);
  }
}
