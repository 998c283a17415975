// The public model names clients may send, and what each one resolves to.

export interface ServedModel {
  id: string;
  provider: "llama";
  aliases: readonly string[];
  ownedBy: string;
  /** Unix seconds, for /v1/models. */
  created: number;
}

export class ModelCatalog {
  private readonly byName = new Map<string, ServedModel>();

  constructor(
    private readonly models: readonly ServedModel[],
    defaultModel?: string,
  ) {
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
}
