// Telemetry of one app: starts a RequestTelemetry per chat request and turns each finished
// one into a UsageRecord that goes to the metrics, the usage log and one log line.
import { join } from "node:path";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { CALIBRATION_TEXT } from "./calibration-text.ts";
import { JsonlUsageLog } from "./jsonl-usage-log.ts";
import { KeyIds } from "./key-ids.ts";
import { Metrics, type ModelGaugeSample } from "./metrics.ts";
import { buildRecord, type RequestFacts, type UsageRecord } from "./record.ts";
import { type ReferencePrice, ReferencePricing } from "./reference-price.ts";
import { RequestTelemetry } from "./request.ts";
import { TokenCounter } from "./tokens.ts";
import type { UsageLog } from "./usage-log.ts";

export interface TelemetryOptions {
  logger: Logger;
  /** Usage records go to DATA_DIR/usage unless `usageLog` is given. */
  dataDir: string;
  usageLog?: UsageLog;
  /** Reference prices by local model id. */
  prices: ReadonlyMap<string, ReferencePrice>;
  /** The pool's state, read at scrape time. */
  models: () => readonly ModelGaugeSample[];
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
  private readonly listeners: ((record: UsageRecord) => void)[] = [];

  constructor(options: TelemetryOptions) {
    this.logger = options.logger;
    this.metrics = new Metrics(this.registry, options.models);
    this.usage =
      options.usageLog ??
      new JsonlUsageLog(join(options.dataDir, "usage"), {
        onError: (err, dropped) => this.logger.error({ err, dropped }, "writing the usage log failed"),
      });
    this.pricing = new ReferencePricing(options.prices, this.tokens);
  }

  /** `authorization` is hashed only when the record is built, after the response. */
  begin(requestId: string, authorization: string | undefined): RequestTelemetry {
    return new RequestTelemetry(requestId, authorization, this.keyId, this.sink);
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
    await this.usage.close();
    this.tokens.free();
  }

  private readonly keyId = (authorization: string | undefined): string => this.keyIds.of(authorization);

  private readonly sink = (facts: RequestFacts): void => {
    try {
      this.record(buildRecord(facts, this.pricing.estimate(facts.servedModel, facts.usage)));
    } catch (err) {
      // Telemetry must never take a request down with it.
      this.logger.error({ err, requestId: facts.requestId }, "recording the request failed");
    }
  };
}
