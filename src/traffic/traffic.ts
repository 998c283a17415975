// The traffic layer of one app: resolves a public model name to the models a request may try
// (an experiment's assigned variant and its fallbacks, or a plain model), runs the fallback
// loop, feeds completed requests to the rollback rules, and answers the admin and feedback
// calls. Decisions are the pure functions beside it (assignment, fallback, rollback, results);
// this class holds their inputs: the state snapshot kept in step with the store, and the
// rollback windows.
import type { Logger } from "pino";
import type { ExperimentSpec, RollbackRuleSpec, VariantSpec } from "../config/experiments.ts";
import { ModelLoadError } from "../engine/errors.ts";
import { ApiError, invalidRequest, modelNotFound, notFound, serviceUnavailable } from "../openai/errors.ts";
import type {
  ExperimentState,
  ExperimentStore,
  FeedbackEntry,
  RollbackEvent,
  RuleRecord,
} from "../storage/experiments.ts";
import type { UsageRecord } from "../telemetry/record.ts";
import type { UsageLog } from "../telemetry/usage-log.ts";
import { assignmentKey, assignVariant } from "./assignment.ts";
import type { ModelCatalog, ServedModel } from "./catalog.ts";
import { fallbackOrder, firstAdmitted } from "./fallback.ts";
import { outcomeOf, timesModel } from "./outcome.ts";
import { type ExperimentResults, effectiveWeight, experimentResults } from "./results.ts";
import { evaluateRollback, type RollbackTrip, type Sample } from "./rollback.ts";
import { SampleWindows } from "./window.ts";

/** The header that forces a variant. */
export const FORCE_HEADER = "x-roundhouse-variant";
/** Rules are judged at most this often per experiment; a trip waits at most this long. */
const EVALUATE_EVERY_MS = 50;
/** How long feedback can find the request it rates. */
const REMEMBER_MS = 24 * 60 * 60 * 1000;

export interface TrafficOptions {
  experiments: readonly ExperimentSpec[];
  catalog: ModelCatalog;
  store: ExperimentStore;
  /** Where results come from. */
  usage: UsageLog;
  /** roundhouse_rollbacks_total. */
  rollbacks: { inc(labels: { experiment: string; variant: string }): void };
  logger: Logger;
  /** How often a shared store is read. */
  pollMs: number;
  now?: () => number;
  random?: () => number;
}

/** Where a request goes: the models to try in order, and the variant when it is an experiment. */
export interface Route {
  targets: string[];
  experiment: { name: string; variant: string; forced: boolean; models: readonly string[] } | undefined;
}

/** What the route knows of the request. */
export interface RouteRequest {
  header(name: string): string | undefined;
  /**
   * Who asks, for forcing a variant: with API keys configured only the admin key and an
   * experiment's force_keys may. Absent: allowed (the server's own calls, tests).
   */
  caller?: { credential: string; keyId: string; open: boolean } | undefined;
  user?: string | null | undefined;
  safetyIdentifier?: string | null | undefined;
}

export interface ServeHooks {
  requestId: string;
  /** The tenant that made the request: only it may rate the answer (feedback). */
  owner: string;
  /** Whose fine-tuned models it may use: its tenant's; undefined (all) for the admin key. */
  viewer: string | undefined;
  log: Logger;
  /** Called once per fallback taken (telemetry's fellBack). */
  fellBack(): void;
}

export interface VariantStatus {
  name: string;
  configured_weight: number;
  effective_weight: number;
  state: "active" | "rolled_back";
}

export class Traffic {
  private readonly specs: Map<string, ExperimentSpec>;
  private states = new Map<string, ExperimentState>();
  private readonly windows = new SampleWindows();
  /** Longest rule window per experiment: how long its samples are kept. */
  private readonly horizon = new Map<string, number>();
  private readonly lastEvaluated = new Map<string, number>();
  private readonly pendingEvaluation = new Map<string, NodeJS.Timeout>();
  /** Rollbacks on their way to the store, so a second trip does not record a second event. */
  private readonly tripping = new Set<string>();
  /** Store writes in flight, and a count of writes started, so a poll never undoes a change it raced. */
  private writesInFlight = 0;
  private writesStarted = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly options: TrafficOptions) {
    this.specs = new Map(options.experiments.map((e) => [e.name, e]));
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    for (const e of options.experiments) {
      const windows = e.variants.flatMap((v) => v.rollback.map((r) => r.windowMs));
      this.horizon.set(e.name, Math.max(0, ...windows));
    }
  }

  /** Reads the state once, then (with a shared store) keeps polling it. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.options.store.shared && this.specs.size > 0) this.schedulePoll();
  }

  experiments(): readonly ExperimentSpec[] {
    return [...this.specs.values()];
  }

  isExperiment(name: string): boolean {
    return this.specs.has(name);
  }

  /**
   * The model a name stands for before routing, for telemetry of refused requests: none for
   * an experiment (no variant is assigned to a request that fails validation).
   */
  attribution(name: string): ServedModel | undefined {
    return this.specs.has(name) ? undefined : this.options.catalog.resolve(name);
  }

  /** Throws 404 for an unknown model, 400 for an unknown or misplaced forced variant. */
  route(model: string, request: RouteRequest): Route {
    const forced = request.header(FORCE_HEADER);
    const spec = this.specs.get(model);
    if (!spec) {
      const served = this.options.catalog.resolve(model);
      if (!served) throw modelNotFound(model);
      if (forced !== undefined) {
        throw invalidRequest(
          `The ${FORCE_HEADER} header names a variant, but \`${model}\` is a model, not an experiment.`,
          FORCE_HEADER,
          "unknown_variant",
        );
      }
      return { targets: [served.id], experiment: undefined };
    }
    if (forced !== undefined && !mayForce(spec, request.caller)) {
      throw new ApiError(
        403,
        `This key may not force a variant of \`${spec.name}\` with the ${FORCE_HEADER} header: only the admin key and the experiment's force_keys may. Send the request without it.`,
        { type: "permission_error", param: FORCE_HEADER, code: "permission_denied" },
      );
    }
    const state = this.states.get(spec.name);
    const assignment = assignVariant({
      experiment: spec.name,
      variants: spec.variants.map((v) => ({ name: v.name, weight: effectiveWeight(v, state) })),
      control: spec.control,
      key: assignmentKey(request.header(spec.stickyHeader), request.user, request.safetyIdentifier),
      forced,
      random: this.random,
    });
    if (!assignment.ok) {
      throw invalidRequest(
        `Experiment \`${spec.name}\` has no variant \`${assignment.unknownVariant}\` (${FORCE_HEADER}); it has ${spec.variants.map((v) => v.name).join(", ")}.`,
        FORCE_HEADER,
        "unknown_variant",
      );
    }
    const variant = variantOf(spec, assignment.variant);
    return {
      targets: fallbackOrder(variant, variantOf(spec, spec.control)),
      experiment: {
        name: spec.name,
        variant: variant.name,
        forced: assignment.by === "forced",
        models: variant.models,
      },
    };
  }

  /**
   * Runs `attempt` on each target in turn until one admits the request (see fallback.ts). A
   * target no longer served (removed at run time) fails like a model that cannot load.
   */
  async serve<T>(
    route: Route,
    attempt: (model: ServedModel) => Promise<T>,
    hooks: ServeHooks,
  ): Promise<{ model: ServedModel; result: T }> {
    const { target, result } = await firstAdmitted(
      route.targets,
      (id) => {
        const model = this.options.catalog.find(id);
        return model ? attempt(model) : Promise.reject(new ModelLoadError(id, "it is not served any more"));
      },
      (from, to, err) => {
        hooks.fellBack();
        hooks.log.warn(
          {
            experiment: route.experiment?.name,
            variant: route.experiment?.variant,
            from,
            to,
            err: (err as Error).message,
          },
          "falling back to the next model",
        );
      },
    );
    const model = this.options.catalog.find(target) as ServedModel;
    if (route.experiment) {
      const { name, variant } = route.experiment;
      this.options.store.remember(
        rememberedAs(hooks.owner, hooks.requestId),
        { experiment: name, variant, model: model.id },
        REMEMBER_MS,
      );
    }
    return { model, result };
  }

  /** True when some variant has rollback rules: only then are completed requests worth sampling. */
  judgesRollbacks(): boolean {
    return [...this.specs.values()].some((e) => e.variants.some((v) => v.rollback.length > 0));
  }

  /**
   * A request another replica served (read from the shared usage log): it counts in the
   * windows as of when it completed there, so rules judge the fleet's traffic and a canary
   * trips after min_requests in total rather than on every replica. Clamped to now, as a
   * sample from a clock slightly ahead would stay out of the window until this one caught up.
   */
  completedElsewhere(record: UsageRecord): void {
    const completedAt = Date.parse(record.started_at) + record.latency_ms;
    this.completed(record, Math.min(this.now(), completedAt));
  }

  /** A request finished (its usage record): feeds the rollback windows of its variant. */
  completed(record: UsageRecord, at = this.now()): void {
    // Forced requests chose their variant: they say nothing about how it does on real traffic,
    // and counting them would let any client roll back a healthy canary.
    if (record.experiment === undefined || record.variant === undefined || record.forced || this.closed) return;
    const spec = this.specs.get(record.experiment);
    const variant = spec?.variants.find((v) => v.name === record.variant);
    if (!spec || !variant) return;
    const outcome = outcomeOf(record, variant);
    // Cache hits exercised no model; client errors and disconnects would fail anywhere.
    if (outcome === "client_error" || outcome === "disconnected" || record.cache === "hit") return;
    const timed = timesModel(record, outcome);
    const sample: Sample = {
      at,
      failed: outcome === "failed",
      latencyMs: timed ? record.latency_ms : undefined,
      ttftMs: timed ? record.ttft_ms : undefined,
    };
    this.windows.add(spec.name, variant.name, sample, this.horizon.get(spec.name) ?? 0);
    this.evaluateSoon(spec);
  }

  /** Current weights and states, without the usage log. */
  status(name: string): VariantStatus[] {
    const spec = this.spec(name);
    const state = this.states.get(name);
    return spec.variants.map((v) => ({
      name: v.name,
      configured_weight: v.weight,
      effective_weight: effectiveWeight(v, state),
      state: state?.rolledBack[v.name] ? "rolled_back" : "active",
    }));
  }

  /** Brings a rolled-back variant back at its weight; its rules start again from an empty window. */
  async restore(name: string, variantName: string): Promise<VariantStatus[]> {
    const spec = this.spec(name);
    const variant = this.variant(spec, variantName);
    const at = this.now();
    const restored = await this.write(() => this.options.store.restore(spec.name, variant.name, at));
    this.windows.clear(spec.name, variant.name);
    this.options.logger.info(
      { experiment: spec.name, variant: variant.name, wasRolledBack: restored },
      "variant restored",
    );
    return this.status(name);
  }

  /** Sets run-time weights of the variants named; the others keep theirs. A rolled-back variant stays at 0 until restored. */
  async setWeights(name: string, weights: Record<string, number>): Promise<VariantStatus[]> {
    const spec = this.spec(name);
    for (const variantName of Object.keys(weights)) this.variant(spec, variantName);
    const next = spec.variants.map((v) => weights[v.name] ?? this.states.get(name)?.weights[v.name] ?? v.weight);
    if (!next.some((w) => w > 0)) {
      throw invalidRequest("At least one variant needs a weight above 0.", "weights", "invalid_value");
    }
    await this.write(() => this.options.store.setWeights(spec.name, weights, this.now()));
    this.options.logger.info({ experiment: spec.name, weights }, "experiment weights changed");
    return this.status(name);
  }

  /** Results over [since, until); since defaults to when the experiment was first seen. */
  async results(
    name: string,
    range: { since?: Date | undefined; until?: Date | undefined } = {},
  ): Promise<ExperimentResults> {
    return (await this.resultsOf([this.spec(name)], range))[0] as ExperimentResults;
  }

  /** Every experiment's results, from one pass over the usage log. */
  async allResults(range: { since?: Date | undefined; until?: Date | undefined } = {}): Promise<ExperimentResults[]> {
    return this.resultsOf(this.experiments(), range);
  }

  /** Attaches a rating to the variant that served `requestId`; returns it with the model that served. */
  async feedback(
    owner: string,
    requestId: string,
    score: number,
    comment: string | undefined,
  ): Promise<{ entry: FeedbackEntry; model: string }> {
    // Another tenant's request is not found, exactly like one that was never made.
    const ref = await this.storeCall(() => this.options.store.recall(rememberedAs(owner, requestId)));
    if (!ref || !this.specs.has(ref.experiment)) {
      throw notFound(
        `No experiment request with id '${requestId}' is known (requests are remembered for 24 hours).`,
        "request_id",
      );
    }
    const entry: FeedbackEntry = {
      at: this.now(),
      request_id: requestId,
      experiment: ref.experiment,
      variant: ref.variant,
      score,
      ...(comment === undefined ? {} : { comment }),
    };
    await this.storeCall(() => this.options.store.addFeedback(entry));
    return { entry, model: ref.model };
  }

  /** A store call a client waits on: an outage is a 503, not a 500. */
  private async storeCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, "experiment state store unavailable for feedback");
      throw serviceUnavailable("Feedback cannot be recorded right now: the experiment state store is unavailable.", 1);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const t of this.pendingEvaluation.values()) clearTimeout(t);
    this.pendingEvaluation.clear();
    await this.options.store.close();
  }

  private async resultsOf(
    specs: readonly ExperimentSpec[],
    range: { since?: Date | undefined; until?: Date | undefined },
  ): Promise<ExperimentResults[]> {
    // No experiments configured: nothing to read (and no earliest start to read from).
    if (specs.length === 0) return [];
    const until = range.until ?? new Date(this.now());
    const startOf = (spec: ExperimentSpec) => range.since ?? new Date(this.states.get(spec.name)?.startedAt ?? 0);
    const since = new Date(Math.min(...specs.map((s) => startOf(s).getTime())));
    const records: UsageRecord[] = [];
    const names = new Set(specs.map((s) => s.name));
    for await (const r of this.options.usage.query(since, until)) {
      if (r.experiment !== undefined && names.has(r.experiment)) records.push(r);
    }
    return Promise.all(
      specs.map(async (spec) => {
        const from = startOf(spec);
        const [feedback, events] = await Promise.all([
          this.options.store.feedback(spec.name, from.getTime(), until.getTime()),
          this.options.store.events(spec.name),
        ]);
        return experimentResults({
          spec,
          state: this.states.get(spec.name) ?? {
            startedAt: from.getTime(),
            weights: {},
            rolledBack: {},
            restoredAt: {},
          },
          records: records.filter((r) => Date.parse(r.started_at) >= from.getTime()),
          feedback,
          events,
          since: from,
          until,
        });
      }),
    );
  }

  private spec(name: string): ExperimentSpec {
    const spec = this.specs.get(name);
    if (!spec) throw notFound(`No experiment named '${name}'.`, "experiment");
    return spec;
  }

  private variant(spec: ExperimentSpec, name: string): VariantSpec {
    const variant = spec.variants.find((v) => v.name === name);
    if (!variant) throw notFound(`Experiment '${spec.name}' has no variant '${name}'.`, "variant");
    return variant;
  }

  /** Judges the rules now, or once EVALUATE_EVERY_MS has passed since the last time. */
  private evaluateSoon(spec: ExperimentSpec): void {
    if (this.pendingEvaluation.has(spec.name)) return;
    const wait = (this.lastEvaluated.get(spec.name) ?? Number.NEGATIVE_INFINITY) + EVALUATE_EVERY_MS - this.now();
    if (wait <= 0) {
      this.evaluate(spec);
      return;
    }
    const timer = setTimeout(() => {
      this.pendingEvaluation.delete(spec.name);
      if (!this.closed) this.evaluate(spec);
    }, wait);
    timer.unref();
    this.pendingEvaluation.set(spec.name, timer);
  }

  private evaluate(spec: ExperimentSpec): void {
    const now = this.now();
    this.lastEvaluated.set(spec.name, now);
    const state = this.states.get(spec.name);
    const control = this.windows.get(spec.name, spec.control);
    for (const variant of spec.variants) {
      if (variant.rollback.length === 0 || state?.rolledBack[variant.name]) continue;
      if (this.tripping.has(`${spec.name}\0${variant.name}`)) continue;
      const samples = this.windows.get(spec.name, variant.name, state?.restoredAt[variant.name]);
      const trip = evaluateRollback(variant.rollback, samples, control, now);
      if (trip) void this.rollBack(spec, variant, trip, now);
    }
  }

  private async rollBack(spec: ExperimentSpec, variant: VariantSpec, trip: RollbackTrip, now: number): Promise<void> {
    const key = `${spec.name}\0${variant.name}`;
    this.tripping.add(key);
    const event: RollbackEvent = {
      type: "rollback",
      at: new Date(now).toISOString(),
      experiment: spec.name,
      variant: variant.name,
      rule: ruleRecord(trip.rule),
      observed: round(trip.observed),
      threshold: round(trip.threshold),
      control_value: trip.controlValue === undefined ? null : round(trip.controlValue),
      requests: { variant: trip.counts.variant, control: trip.counts.control ?? null },
    };
    // This replica stops sending traffic at once, before the store answers.
    this.stateOf(spec.name).rolledBack[variant.name] = event;
    let won = true;
    try {
      won = await this.write(() => this.options.store.rollBack(event));
    } catch (err) {
      // Rolled back here regardless; the next trip retries the store.
      this.options.logger.error({ err: (err as Error).message, experiment: spec.name }, "recording a rollback failed");
    } finally {
      this.tripping.delete(key);
    }
    if (!won) return; // another replica got there first and recorded it
    this.options.rollbacks.inc({ experiment: spec.name, variant: variant.name });
    this.options.logger.warn(
      {
        experiment: spec.name,
        variant: variant.name,
        metric: event.rule.metric,
        observed: event.observed,
        threshold: event.threshold,
        control_value: event.control_value,
        requests: event.requests,
      },
      `canary rolled back: ${event.rule.metric} ${event.observed} > ${event.threshold}`,
    );
  }

  /** A store change; the snapshot is re-read after it so this replica sees the result at once. */
  private async write<T>(change: () => Promise<T>): Promise<T> {
    this.writesInFlight++;
    this.writesStarted++;
    try {
      return await change();
    } finally {
      this.writesInFlight--;
      await this.refresh().catch(() => {});
    }
  }

  private async refresh(): Promise<void> {
    if (this.specs.size === 0) return;
    const started = this.writesStarted;
    let states: Map<string, ExperimentState>;
    try {
      states = await this.options.store.load([...this.specs.keys()], this.now());
    } catch (err) {
      // Keep the last known state; the store logs its outage once.
      this.options.logger.debug({ err: (err as Error).message }, "reading experiment state failed");
      return;
    }
    // A change started meanwhile may be missing from what was read: keep the local view until the next read.
    if (this.writesInFlight > 0 || started !== this.writesStarted) return;
    // A rollback not yet recorded (store down) stays in force here.
    for (const [name, local] of this.states) {
      const read = states.get(name);
      if (!read) continue;
      for (const key of this.tripping) {
        const [experiment, variant] = key.split("\0") as [string, string];
        const event = local.rolledBack[variant];
        if (experiment === name && event && !read.rolledBack[variant]) read.rolledBack[variant] = event;
      }
    }
    this.states = states;
  }

  private schedulePoll(): void {
    this.timer = setTimeout(async () => {
      await this.refresh();
      if (!this.closed) this.schedulePoll();
    }, this.options.pollMs);
    this.timer.unref();
  }

  private stateOf(name: string): ExperimentState {
    let state = this.states.get(name);
    if (!state) {
      state = { startedAt: this.now(), weights: {}, rolledBack: {}, restoredAt: {} };
      this.states.set(name, state);
    }
    return state;
  }
}

function variantOf(spec: ExperimentSpec, name: string): VariantSpec {
  const variant = spec.variants.find((v) => v.name === name);
  // Config validation guarantees the control and every assigned name exist.
  if (!variant) throw new Error(`experiment ${spec.name} has no variant ${name}`);
  return variant;
}

function ruleRecord(rule: RollbackRuleSpec): RuleRecord {
  return {
    metric: rule.metric,
    ...(rule.max === undefined ? {} : { max: rule.max }),
    ...(rule.maxVsControl === undefined ? {} : { max_vs_control: rule.maxVsControl }),
    min_requests: rule.minRequests,
    window_ms: rule.windowMs,
  };
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}

/**
 * Requests are remembered per tenant: request ids can be chosen by clients (x-request-id), so
 * one tenant can neither rate another's request nor overwrite it by reusing its id.
 */
function rememberedAs(owner: string, requestId: string): string {
  return `${owner}/${requestId}`;
}

/** Whether `caller` may force a variant of `spec` (see RouteRequest.caller). */
export function mayForce(spec: ExperimentSpec, caller: RouteRequest["caller"]): boolean {
  if (caller === undefined || caller.open || caller.credential === "admin") return true;
  return spec.forceKeys.includes(caller.keyId);
}
