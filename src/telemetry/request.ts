// The telemetry of one chat request in flight: the route and the middleware tell it what
// happened as it happens; at the end it hands a RequestFacts to its sink. Holds no text.
import type { ApiError } from "../openai/errors.ts";
import type { ChatEvent, ChatStream, NativeResponses, TokenUsage } from "../providers/provider.ts";
import type { CacheResult, RequestFacts } from "./record.ts";

/** Public model names are client input: capped so a huge one cannot bloat the log. */
const MAX_NAME = 256;
/** How long an abandoned stream may take to stop before its record goes out anyway. */
const DRAIN_LIMIT_MS = 10_000;

export interface RequestTarget {
  id: string;
  provider: string;
}

export class RequestTelemetry {
  private readonly startedAt = Date.now();
  private readonly start = performance.now();
  private operation: string | undefined;
  private model: string | undefined;
  private stream = false;
  private variantServed: boolean | undefined;
  private target: RequestTarget | undefined;
  private experiment: string | undefined;
  private variant: string | undefined;
  private forced = false;
  private cache: CacheResult | undefined;
  private fallbacks = 0;
  private error: RequestFacts["error"];
  private usage: (() => TokenUsage) | undefined;
  private estimated = false;
  /** The provider's events arrive as they are generated, so their times are worth taking. */
  private timed = true;
  private firstDelta: number | undefined;
  private lastDelta: number | undefined;
  /** A watched stream that has not ended yet: the record waits for its final usage. */
  private streaming = false;
  private tapping = false;
  private respondsLater = false;
  private ended = false;
  private reported = false;
  private status = 0;
  private clientDisconnected = false;
  private endMs = 0;

  /** `keyId` and `sink` are shared by all requests; the bearer header is hashed only after the response. */
  constructor(
    private readonly requestId: string,
    /** The bearer header, or the client address on a server without API_KEYS: what `keyId` names the caller by. */
    private readonly authorization: string | undefined,
    private readonly keyId: (authorization: string) => string,
    private readonly sink: (facts: RequestFacts) => void,
  ) {}

  /** What the raw body asks for, noted before validation so refused requests are attributed too. */
  requested(body: unknown, target: RequestTarget | undefined): void {
    if (typeof body === "object" && body !== null) {
      const { model, stream } = body as { model?: unknown; stream?: unknown };
      if (typeof model === "string") this.model = model.slice(0, MAX_NAME);
      this.stream = stream === true;
    }
    this.target = target;
  }

  /** What the client asks: chat, completions, embeddings. */
  asked(operation: string): void {
    this.operation = operation;
  }

  /** Hook for the traffic layer: whether the model that served is one of the variant's own. */
  servedByVariant(own: boolean): void {
    this.variantServed = own;
  }

  /** An answer that is whole at once (embeddings): its usage, and no first-token time. */
  answered(usage: TokenUsage): void {
    this.usage = () => usage;
    this.timed = false;
  }

  /** Hook for the traffic layer: the experiment variant that served the request. */
  assigned(experiment: string, variant: string, forced = false): void {
    this.experiment = experiment;
    this.variant = variant;
    this.forced = forced;
  }

  /** Hook for the traffic layer: the model trying the request now (after a fallback, the next one). */
  routedTo(target: RequestTarget): void {
    this.target = target;
  }

  /** Hook for the response cache. */
  cached(result: CacheResult): void {
    this.cache = result;
  }

  /** Hook for provider fallbacks: call once per fallback taken. */
  fellBack(): void {
    this.fallbacks++;
  }

  failed(error: ApiError): void {
    this.error = { type: error.type, code: error.code };
  }

  /**
   * Observes a provider's stream: time of the first and last delta (unless they all arrived
   * at once, at the end), and its usage. `estimated` marks counts that came from tiktoken
   * (upstream providers without usage).
   */
  watch(chat: ChatStream, estimated = false): ChatStream {
    this.usage = chat.usage;
    this.estimated = estimated;
    this.streaming = true;
    this.timed = chat.arrivedWhole !== true;
    return { ...chat, events: new TappedEvents(chat.events[Symbol.asyncIterator](), this, isChatDelta) };
  }

  /**
   * Observes a Responses API answer passed through from the model that served it: its events
   * timed as chat deltas are (output text, refusal and function-call argument deltas), its usage
   * from its final response; a JSON answer only for its usage.
   */
  watchNative(answer: NativeResponses): NativeResponses {
    this.usage = answer.usage;
    if (answer.kind === "json") return answer;
    this.streaming = true;
    this.timed = true;
    return { ...answer, events: new TappedEvents(answer.events[Symbol.asyncIterator](), this, isResponsesDelta) };
  }

  /** The route answers with a stream and calls end() itself when the stream is over. */
  respondingLater(): void {
    this.respondsLater = true;
  }

  get endsItself(): boolean {
    return this.respondsLater;
  }

  /**
   * The response is complete (or abandoned). The record goes out once the provider's stream
   * has ended too, so usage counts are final; nothing here waits on I/O.
   */
  end(status: number, clientDisconnected: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.endMs = performance.now() - this.start;
    this.status = status;
    this.clientDisconnected = clientDisconnected;
    // A stream nobody began to read has nothing to wait for.
    if (!this.tapping) this.streaming = false;
    if (!this.streaming) this.report();
  }

  /** From the tap: the provider's stream began to be read. */
  readingStarted(): void {
    this.tapping = true;
  }

  /** From the tap: a content or tool-call delta went by. */
  delta(): void {
    if (!this.timed) return;
    const now = performance.now() - this.start;
    this.firstDelta ??= now;
    this.lastDelta = now;
  }

  /** From the tap: the provider's stream ended, failed, or was drained after the client left. */
  streamOver(): void {
    this.streaming = false;
    if (this.ended) this.report();
  }

  private report(): void {
    if (this.reported) return;
    this.reported = true;
    this.sink({
      requestId: this.requestId,
      startedAt: this.startedAt,
      keyId: this.authorization === undefined ? "anonymous" : this.keyId(this.authorization),
      operation: this.operation,
      model: this.model,
      servedModel: this.target?.id,
      provider: this.target?.provider,
      experiment: this.experiment,
      variant: this.variant,
      forced: this.forced,
      cache: this.cache,
      stream: this.stream,
      status: this.status,
      error: this.error,
      clientDisconnected: this.clientDisconnected,
      ...this.usageFacts(),
      firstDeltaMs: this.firstDelta,
      lastDeltaMs: this.lastDelta,
      endMs: this.endMs,
      fallbacks: this.fallbacks,
      variantServed: this.variantServed,
    });
  }

  /** Final usage; counts are estimated when the watcher said so or the provider marked them (an upstream without usage). */
  private usageFacts(): { usage: TokenUsage | undefined; estimated: boolean } {
    const usage = this.usage?.();
    return { usage, estimated: this.estimated || usage?.estimated === true };
  }
}

/**
 * The provider's events on their way to the route, timed as they pass. A plain iterator rather
 * than an async generator (it runs once per token, and a generator costs several promises per
 * step), and a class rather than closures: one is made per request, and under tsx every
 * closure made is also named at run time.
 */
class TappedEvents<E> implements AsyncIterableIterator<E> {
  private readonly seen: (next: IteratorResult<E>) => IteratorResult<E>;
  private readonly failed: (err: unknown) => never;

  constructor(
    private readonly source: AsyncIterator<E>,
    private readonly telemetry: RequestTelemetry,
    private readonly isDelta: (event: E) => boolean,
  ) {
    this.seen = this.onSeen.bind(this);
    this.failed = this.onFailed.bind(this);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<E> {
    return this;
  }

  next(): Promise<IteratorResult<E>> {
    this.telemetry.readingStarted();
    return this.source.next().then(this.seen, this.failed);
  }

  /**
   * The consumer stopped early (client gone): it must not wait for the provider, but the usage
   * is only final once the provider has stopped, so drain it in the background.
   */
  return(value?: unknown): Promise<IteratorResult<E>> {
    this.telemetry.readingStarted();
    const telemetry = this.telemetry;
    void drain(this.source, DRAIN_LIMIT_MS).finally(() => telemetry.streamOver());
    return Promise.resolve({ done: true, value: value as E });
  }

  private onSeen(next: IteratorResult<E>): IteratorResult<E> {
    if (next.done) this.telemetry.streamOver();
    else if (this.isDelta(next.value)) this.telemetry.delta();
    return next;
  }

  private onFailed(err: unknown): never {
    this.telemetry.streamOver();
    throw err;
  }
}

function isChatDelta(event: ChatEvent): boolean {
  return event.type !== "finish";
}

/** The Responses events that carry generated output, as chat's content and tool-call deltas do. */
const RESPONSES_DELTAS = new Set([
  "response.output_text.delta",
  "response.refusal.delta",
  "response.function_call_arguments.delta",
]);

function isResponsesDelta(event: Record<string, unknown>): boolean {
  return RESPONSES_DELTAS.has(event.type as string);
}

/** Consumes what is left of an abandoned stream; gives up after `limitMs` so a stuck provider cannot hold the record back forever. */
async function drain<E>(source: AsyncIterator<E>, limitMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, limitMs);
  });
  const rest = (async () => {
    try {
      while (!(await source.next()).done) {
        // discard: nobody is listening any more
      }
    } catch {
      // the provider's failure was already the request's outcome, or nobody is left to tell
    }
  })();
  await Promise.race([rest, limit]);
  clearTimeout(timer);
}
