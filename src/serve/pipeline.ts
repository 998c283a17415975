// The serving pipeline every endpoint goes through, one straight line:
//   route (public name → experiment variant → targets with fallbacks)
//   → for each target until one admits: the model's description, refusals, cache, provider
// with telemetry wrapped around it (assignment, target, fallbacks, cache result, usage), so a
// route only parses, calls serve(), and writes JSON or SSE. What differs between endpoints is
// an Operation: which provider call answers it, what of the request shapes the answer (the
// cache key), and how the answer is cached.
import type { CacheDecision, CacheMode } from "../cache/policy.ts";
import { decideCaching } from "../cache/policy.ts";
import { type CacheCodec, serveWithCache } from "../cache/serve.ts";
import type { ResponseCache } from "../cache/store.ts";
import { invalidRequest, modelNotFound } from "../openai/errors.ts";
import type { ChatContext, ChatProvider, ModelDescription, Operation as OperationName } from "../providers/provider.ts";
import type { RequestTelemetry } from "../telemetry/request.ts";
import type { ServedModel } from "../traffic/catalog.ts";
import type { Route, RouteRequest, ServeHooks, Traffic } from "../traffic/traffic.ts";

/** One kind of request, as the pipeline needs to know it. */
export interface Operation<Req, Answer> {
  /** What the client asked for, as usage records and metrics label it. */
  name: OperationName | "responses";
  /** What the model must serve for it (models.yaml `operations`); default: `name`. */
  serves?: OperationName;
  /** Refusals that depend on the model, thrown before the cache: a hit never answers what the model would refuse. */
  check?(req: Req, model: ServedModel, description: ModelDescription): void;
  /** Whether answers of this model may be cached at all (default: yes); no: the cache is bypassed. */
  cacheable?(req: Req, model: ServedModel, description: ModelDescription): boolean;
  /** Temperature and seed, for the caching decision; none: the answer does not vary (embeddings). */
  sampling?(req: Req): { temperature?: number | null | undefined; seed?: number | null | undefined };
  /** The cache key of the request on this model; an operation without a key and codec is never cached. */
  key?(req: Req, model: ServedModel, description: ModelDescription): string;
  codec?(req: Req, model: ServedModel): CacheCodec<Answer>;
  run(provider: ChatProvider, modelId: string, req: Req, ctx: ChatContext): Promise<Answer>;
  /** Telemetry's view of the answer (the stream it times, or a whole answer's usage). */
  watch(telemetry: RequestTelemetry, answer: Answer, hit: boolean): Answer;
}

export interface PipelineDeps {
  traffic: Traffic;
  providers: Record<ServedModel["provider"], ChatProvider>;
  cache: ResponseCache | undefined;
  cacheMode: CacheMode;
  /** tenant: each tenant's entries are its own (models.yaml cache.scope). */
  cacheScope: "tenant" | "global";
  /** Finds a fine-tuned model another process registered moments ago, before a 404. */
  ensureServed(name: string): Promise<void>;
  isServed(name: string): boolean;
  /** Whether a viewer may use a model: a fine-tuned model is its job's tenant's alone (and the admin's). */
  visible(modelId: string, viewer: string | undefined): Promise<boolean>;
}

/** What the route knows of the request beyond its body. */
export interface ServeContext extends RouteRequest {
  cacheControl: string | undefined;
  telemetry: RequestTelemetry | undefined;
  hooks: Omit<ServeHooks, "fellBack">;
  /** The signal generation listens to; made only when a provider is asked (once, however many fallbacks). */
  signal(): AbortSignal;
  /** The variant is known: a request that then fails still says which one it got. */
  routed?(route: Route): void;
}

export interface Served<Answer> {
  answer: Answer;
  model: ServedModel;
  description: ModelDescription;
  route: Route;
  cache: "hit" | "miss" | "bypass";
}

export class Pipeline {
  constructor(private readonly deps: PipelineDeps) {}

  /** The model's description, from its provider. */
  describe(model: ServedModel): ModelDescription {
    return this.deps.providers[model.provider].describe(model.id);
  }

  async serve<Req extends { model: string }, Answer>(
    op: Operation<Req, Answer>,
    req: Req,
    ctx: ServeContext,
  ): Promise<Served<Answer>> {
    const { telemetry } = ctx;
    telemetry?.asked(op.name);
    if (!this.deps.isServed(req.model)) await this.deps.ensureServed(req.model);
    const route = this.deps.traffic.route(req.model, ctx);
    if (route.experiment) telemetry?.assigned(route.experiment.name, route.experiment.variant, route.experiment.forced);
    ctx.routed?.(route);

    const { model, result } = await this.deps.traffic.serve(
      route,
      async (target) => {
        // Another tenant's fine-tuned model does not exist for this one.
        if (!(await this.deps.visible(target.id, ctx.hooks.viewer))) throw modelNotFound(req.model);
        const description = this.describe(target);
        const needed = op.serves ?? (op.name as OperationName);
        if (!description.operations.includes(needed)) throw notServed(target.id, needed, description);
        op.check?.(req, target, description);
        telemetry?.routedTo(target);
        const run = () => op.run(this.deps.providers[target.provider], target.id, req, { signal: ctx.signal() });
        const { key, codec } = op;
        if (!key || !codec || op.cacheable?.(req, target, description) === false) {
          const answer = await run();
          return { run: { answer, status: "bypass" as const, cacheError: false }, description };
        }
        return serveWithCache(
          this.deps.cache,
          () => this.scoped(key(req, target, description), ctx.hooks.owner),
          this.caching(op, req, description, ctx.cacheControl),
          codec(req, target),
          run,
        ).then((cachedRun) => ({ run: cachedRun, description }));
      },
      { ...ctx.hooks, fellBack: () => telemetry?.fellBack() },
    );
    const { run, description } = result;
    if (route.experiment) telemetry?.servedByVariant(route.experiment.models.includes(model.id));
    telemetry?.cached(run.cacheError ? "error" : run.status);
    const answer = telemetry ? op.watch(telemetry, run.answer, run.status === "hit") : run.answer;
    return { answer, model, description, route, cache: run.status };
  }

  /**
   * A tenant's own key: its id after the model's (keys start `model:` so a model's entries can
   * be purged by prefix). A cache shared across tenants would tell one what another asked.
   */
  private scoped(key: string, tenant: string): string {
    if (this.deps.cacheScope === "global") return key;
    const colon = key.indexOf(":");
    return `${key.slice(0, colon)}:${tenant}${key.slice(colon)}`;
  }

  private caching<Req>(
    op: Operation<Req, unknown>,
    req: Req,
    description: ModelDescription,
    cacheControl: string | undefined,
  ): CacheDecision {
    const sampling = op.sampling?.(req) ?? { temperature: 0 };
    return decideCaching(
      { temperature: sampling.temperature ?? undefined, seed: sampling.seed ?? undefined },
      this.deps.cacheMode,
      cacheControl,
      description.defaultTemperature,
    );
  }
}

function notServed(modelId: string, operation: OperationName, description: ModelDescription) {
  return invalidRequest(
    `Model ${modelId} does not serve ${operation}; it serves ${description.operations.join(", ")} (models.yaml \`operations\`).`,
    "model",
    "unsupported_operation",
  );
}
