// The public model names clients may send, and what each one resolves to.

export interface ServedModel {
  id: string;
  provider: "llama" | "openai";
  aliases: readonly string[];
  ownedBy: string;
  /** Unix seconds, for /v1/models. */
  created: number;
}

export class ModelCatalog {
  private readonly byName = new Map<string, ServedModel>();

  private readonly models: ServedModel[];

  constructor(models: readonly ServedModel[], defaultModel?: string) {
    this.models = [...models];
    for (const m of models) {
      this.byName.set(m.id, m);
      for (const alias of m.aliases) this.byName.set(alias, m);
    }
    this.fallback = defaultModel === undefined ? undefined : this.byName.get(defaultModel);
  }

  private readonly fallback: ServedModel | undefined;

  /** The model a request's `model` names (id or alias), else the configured default, else undefined. */
  resolve(name: string): ServedModel | undefined {
    return this.byName.get(name) ?? this.fallback;
  }

  /** Only exact ids and aliases: /v1/models/{id} must not invent models. */
  find(name: string): ServedModel | undefined {
    return this.byName.get(name);
  }

  list(): readonly ServedModel[] {
    return this.models;
  }

  /** Serves a model added at run time (a fine-tuned model); its id must not be taken. */
  add(model: ServedModel): void {
    if (this.byName.has(model.id)) throw new Error(`model name ${model.id} is already served`);
    this.models.push(model);
    this.byName.set(model.id, model);
    for (const alias of model.aliases) this.byName.set(alias, model);
  }

  /** Stops serving a model added with `add`; true when it was there. */
  remove(id: string): boolean {
    const index = this.models.findIndex((m) => m.id === id);
    if (index < 0) return false;
    const [model] = this.models.splice(index, 1);
    for (const name of [id, ...(model?.aliases ?? [])]) this.byName.delete(name);
    return true;
  }
}
