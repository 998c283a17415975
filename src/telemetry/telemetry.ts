// Telemetry of one app: starts a RequestTelemetry per chat request and turns each finished
// one into a UsageRecord that goes to the metrics, the usage log and one log line.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { addressId } from "../security/api-keys.ts";
import { CALIBRATION_TEXT } from "./calibration-text.ts";
import { JsonlUsageLog } from "./jsonl-usage-log.ts";
import { KeyIds } from "./key-ids.ts";
import { Metrics, type ModelGaugeSample } from "./metrics.ts";
import { buildRecord, type RequestFacts, type UsageRecord } from "./record.ts";
import { RedisUsageLog } from "./redis-usage-log.ts";
import { type ReferencePrice, ReferencePricing } from "./reference-price.ts";
import { RequestTelemetry } from "./request.ts";
import { TokenCounter } from "./tokens.ts";
import type { UsageLog } from "./usage-log.ts";

/** Where usage records go (models.yaml `usage_log`); the Redis fields matter for `redis` only. */
export interface UsageLogSettings {
  store: "file" | "redis";
  url: string;
  maxRecords: number;
  maxBuffered: number;
}

export interface TelemetryOptions {
  logger: Logger;
  /** Usage records go to DATA_DIR/usage unless `usageStore` says redis or `usageLog` is given. */
  dataDir: string;
  usageStore?: UsageLogSettings;
  usageLog?: UsageLog;
  /** Reference prices by local model id. */
  prices: ReadonlyMap<string, ReferencePrice>;
  /** The pool's state, read at scrape time. */
  models: () => readonly ModelGaugeSample[];
  /**
   * API_KEYS is set: a record's key_id is its key's. Without keys any bearer string is let in,
   * so a record names its client address instead (addressId), as the rate limits count it.
   */
  keyed?: boolean;
  /** Without API_KEYS, key ids rate_limits.keys lists: records name such a caller by its key id. */
  listedKeys?: ReadonlySet<string>;
}

export class Telemetry {
  readonly registry = new Registry();
  readonly metrics: Metrics;
  readonly usage: UsageLog;
  /** tiktoken counts, for providers whose model we cannot tokenize ourselves. */
  readonly tokens = new TokenCounter();
  private readonly pricing: ReferencePricing;
  private readonly logger: Logger;
  private readonly keyIds = new KeyIds();
  private readonly keyed: boolean;
  private readonly listedKeys: ReadonlySet<string>;
  private readonly listeners: ((record: UsageRecord) => void)[] = [];
  /** Finished requests whose records wait for the next turn of the event loop (see `sink`). */
  private deferred: RequestFacts[] = [];
  private flushing: NodeJS.Immediate | undefined;
  /** Once closing, records are made at once: nothing may wait for a turn that never comes. */
  private closing = false;

  constructor(options: TelemetryOptions) {
    this.logger = options.logger;
    this.metrics = new Metrics(this.registry, options.models);
    this.usage = options.usageLog ?? this.openUsageLog(options);
    this.pricing = new ReferencePricing(options.prices, this.tokens);
    this.keyed = options.keyed ?? true;
    this.listedKeys = options.listedKeys ?? new Set();
  }

  /** `authorization` (or `address`, without API_KEYS) is hashed only when the record is built, after the response. */
  begin(requestId: string, authorization: string | undefined, address = "unknown"): RequestTelemetry {
    if (this.keyed) return new RequestTelemetry(requestId, authorization, this.keyId, this.sink);
    const callerId = (auth: string) => {
      const id = this.keyIds.of(auth);
      return this.listedKeys.has(id) ? id : addressId(address);
    };
    return new RequestTelemetry(requestId, authorization ?? "", callerId, this.sink);
  }

  /** The metrics, the usage log and the log line for one finished request. */
  record(record: UsageRecord): void {
    this.metrics.observe(record);
    this.usage.append(record);
    // Nested, not flat: pino serializes a flat object key by key, several times slower than
    // the one native JSON.stringify a nested one gets. `requestId` matches other request lines.
    this.logger.info({ requestId: record.request_id, record }, "request");
    for (const listener of this.listeners) listener(record);
  }

  /** Calls `listener` with every finished request's record (the rollback rules feed on them). */
  onRecord(listener: (record: UsageRecord) => void): void {
    this.listeners.push(listener);
  }

  /**
   * A model finished loading. `countTokens` is its own tokenizer, used once on the
   * calibration text when the model has a reference price.
   */
  modelLoaded(id: string, seconds: number, countTokens: (text: string) => number): void {
    this.metrics.modelLoaded(id, seconds);
    if (this.pricing.priced(id)) this.pricing.calibrate(id, countTokens(CALIBRATION_TEXT));
  }

  async close(): Promise<void> {
    this.closing = true;
    this.flushDeferred();
    await this.usage.close();
    this.tokens.free();
  }

  private openUsageLog(options: TelemetryOptions): UsageLog {
    const dropped = (count: number) => this.metrics.usageRecordsDropped.inc(count);
    const settings = options.usageStore;
    if (settings?.store === "redis") {
      return new RedisUsageLog({
        url: settings.url,
        logger: this.logger,
        maxRecords: settings.maxRecords,
        maxBuffered: settings.maxBuffered,
        // Readable in logs and unique even for several apps in one process (tests).
        replica: `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
        dropped,
      });
    }
    return new JsonlUsageLog(join(options.dataDir, "usage"), {
      ...(settings ? { maxBuffered: settings.maxBuffered } : {}),
      onError: (err, lost) => {
        if (lost > 0) dropped(lost);
        this.logger.error({ err, dropped: lost }, "writing the usage log failed");
      },
    });
  }

  private readonly keyId = (authorization: string | undefined): string => this.keyIds.of(authorization);

  /**
   * A request's facts arrive while its response is still on its way to the socket (the route
   * returns it after the middleware that ends the record). Building the record, the metrics,
   * the usage log and the log line wait for setImmediate, which runs once the response has been
   * written, so the client does not wait for them; the facts (latency included) are final
   * already. One immediate serves every request finished in the same turn.
   */
  private readonly sink = (facts: RequestFacts): void => {
    if (this.closing) {
      this.recordFacts(facts);
      return;
    }
    this.deferred.push(facts);
    this.flushing ??= setImmediate(this.flushDeferred);
  };

  private readonly flushDeferred = (): void => {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    const batch = this.deferred;
    this.deferred = [];
    for (const facts of batch) this.recordFacts(facts);
  };

  private recordFacts(facts: RequestFacts): void {
    try {
      this.record(buildRecord(facts, this.pricing.estimate(facts.servedModel, facts.usage)));
    } catch (err) {
      // Telemetry must never take a request down with it.
      this.logger.error({ err, requestId: facts.requestId }, "recording the request failed");
    }
  }
}
