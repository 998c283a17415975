// What an upstream failure means for the client and for the proxy: the status and envelope
// the client gets, whether the same request may be sent again (retry) and whether the next
// model of the route may take it (fallback). Pure: the adapter (providers/openai.ts) hands
// in what it saw (an error code, a status and body) and acts on the verdict.
import { ApiError } from "../../openai/errors.ts";

/** Statuses worth another attempt: the upstream is briefly overloaded or a hop in front of it failed. */
const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);

/** Error codes (node and undici) of a request that never got a response. */
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ETIMEDOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
]);

const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

export type UpstreamFailureKind = "connect" | "timeout" | "status" | "protocol";

export interface UpstreamVerdict {
  kind: UpstreamFailureKind;
  /** The same request may be sent again: nothing was generated for the client yet. */
  retryable: boolean;
  /** The failure is the target's, not the request's: another model may answer it. */
  fallsBack: boolean;
  /** The upstream's Retry-After, when it sent one. */
  retryAfter?: string | undefined;
  /** The HTTP status the upstream answered (a `status` failure), whatever status the client gets. */
  upstreamStatus?: number | undefined;
}

/**
 * An upstream failure, already in the status and envelope the client gets. It is an ApiError,
 * so the route renders it like any other; fallback.ts reads `fallsBack`.
 */
export class UpstreamError extends ApiError {
  readonly kind: UpstreamFailureKind;
  readonly retryable: boolean;
  readonly fallsBack: boolean;
  readonly retryAfter: string | undefined;
  readonly upstreamStatus: number | undefined;

  constructor(
    api: { status: number; message: string; type?: string; param?: string | null; code?: string | null },
    verdict: UpstreamVerdict,
  ) {
    super(api.status, api.message, {
      type: api.type ?? "server_error",
      param: api.param ?? null,
      code: api.code ?? null,
      ...(retryAfterSeconds(verdict.retryAfter) === undefined
        ? {}
        : { retryAfterSeconds: retryAfterSeconds(verdict.retryAfter) }),
    });
    this.kind = verdict.kind;
    this.retryable = verdict.retryable;
    this.fallsBack = verdict.fallsBack;
    this.retryAfter = verdict.retryAfter;
    this.upstreamStatus = verdict.upstreamStatus;
  }
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") return code;
  // fetch-style wrappers keep the socket's error as the cause.
  return errorCode((err as { cause?: unknown }).cause);
}

/** The limit on the wait for a response to begin, and the models.yaml key that set it. */
export interface ResponseWait {
  ms: number;
  setting: "timeout" | "response_timeout";
}

/**
 * A request that got no response: refused, reset, unresolvable, or timed out. `timeoutMs`
 * bounds the connection and the gaps in a body; `wait` the wait for the response to begin.
 */
export function requestFailure(
  model: string,
  err: unknown,
  timeoutMs: number,
  wait: ResponseWait = { ms: timeoutMs, setting: "timeout" },
): UpstreamError {
  const code = errorCode(err) ?? "unknown";
  if (code === "UND_ERR_HEADERS_TIMEOUT") return timeoutFailure(model, wait.ms, wait.setting);
  if (TIMEOUT_CODES.has(code)) return timeoutFailure(model, timeoutMs);
  if (code === "UND_ERR_CONNECT_TIMEOUT") {
    return new UpstreamError(
      {
        status: 504,
        message: `The upstream server of model ${model} did not accept a connection within ${timeoutMs} ms.`,
        code: "upstream_timeout",
      },
      { kind: "connect", retryable: true, fallsBack: true },
    );
  }
  if (CONNECT_CODES.has(code)) {
    return new UpstreamError(
      {
        status: 502,
        message: `The upstream server of model ${model} could not be reached (${code}).`,
        code: "upstream_unreachable",
      },
      { kind: "connect", retryable: true, fallsBack: true },
    );
  }
  return protocolFailure(model, `the request failed (${code})`);
}

/** `setting` names the models.yaml key whose limit passed. */
export function timeoutFailure(
  model: string,
  timeoutMs: number,
  setting: ResponseWait["setting"] = "timeout",
): UpstreamError {
  return new UpstreamError(
    {
      status: 504,
      message: `The upstream server of model ${model} sent nothing for ${timeoutMs} ms (its ${setting}).`,
      code: "upstream_timeout",
    },
    { kind: "timeout", retryable: false, fallsBack: true },
  );
}

/** The upstream broke the protocol: a stream that ends early, an event that is not a chunk. */
export function protocolFailure(model: string, what: string): UpstreamError {
  return new UpstreamError(
    { status: 502, message: `The upstream server of model ${model} failed: ${what}.`, code: "upstream_error" },
    { kind: "protocol", retryable: false, fallsBack: true },
  );
}

interface UpstreamEnvelope {
  message: string;
  type: string | undefined;
  param: string | null;
  code: string | null;
}

/**
 * The error an upstream sent, wherever it put it: OpenAI's `{"error": {...}}`, or the
 * top-level `{"object": "error", "message": ...}` of older vLLM. Codes that are not strings
 * (vLLM sends the HTTP status as a number) become null, as OpenAI's clients expect a string.
 */
export function parseEnvelope(body: string): UpstreamEnvelope | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null) return undefined;
  const inner = (json as { error?: unknown }).error;
  const source =
    typeof inner === "object" && inner !== null ? inner : typeof inner === "string" ? { message: inner } : json;
  const { message, type, param, code } = source as Record<string, unknown>;
  if (typeof message !== "string" || message === "") return undefined;
  return {
    message,
    type: typeof type === "string" && type !== "" ? type : undefined,
    param: typeof param === "string" ? param : null,
    code: typeof code === "string" ? code : null,
  };
}

/** A response other than 200 before anything was streamed. */
export function statusFailure(model: string, status: number, body: string, retryAfter?: string): UpstreamError {
  const envelope = parseEnvelope(body);
  const said = envelope?.message ?? snippet(body);
  const retryable = RETRYABLE_STATUSES.has(status);
  if (status >= 500 || status < 400) {
    return new UpstreamError(
      {
        status: 502,
        message: `The upstream server of model ${model} failed with HTTP ${status}${said ? `: ${said}` : "."}`,
        code: "upstream_error",
      },
      { kind: "status", retryable, fallsBack: true, retryAfter, upstreamStatus: status },
    );
  }
  // A 401 is about Roundhouse's key for the upstream, not the client's key: passing it through
  // would make an SDK report the client's own credentials as wrong.
  if (status === 401) {
    return new UpstreamError(
      {
        status: 502,
        message: `The upstream server of model ${model} refused Roundhouse's credentials (HTTP 401${said ? `: ${said}` : ""}); check the model's api_key_env.`,
        code: "upstream_auth_failed",
      },
      { kind: "status", retryable: false, fallsBack: true, upstreamStatus: status },
    );
  }
  // Any other 4xx is the upstream's verdict on the request: the client gets it as it was sent.
  // 429 alone is the target's state rather than the request's, so it may also fall back.
  return new UpstreamError(
    {
      status,
      message:
        envelope?.message ??
        `The upstream server of model ${model} refused the request with HTTP ${status}${said ? `: ${said}` : "."}`,
      type: envelope?.type ?? (status === 429 ? "requests" : "invalid_request_error"),
      param: envelope?.param ?? null,
      code: envelope?.code ?? (status === 429 ? "rate_limit_exceeded" : null),
    },
    { kind: "status", retryable, fallsBack: status === 429, retryAfter, upstreamStatus: status },
  );
}

/** An `{"error": ...}` event inside a 200 stream (it falls back only when it came first). */
export function streamErrorFailure(model: string, data: string): UpstreamError {
  const envelope = parseEnvelope(data);
  return new UpstreamError(
    {
      status: 502,
      message: `The upstream server of model ${model} failed mid-stream: ${envelope?.message ?? snippet(data)}`,
      type: envelope?.type ?? "server_error",
      code: envelope?.code ?? "upstream_error",
    },
    { kind: "protocol", retryable: false, fallsBack: true },
  );
}

/** Retry-After in whole seconds for the client's header; undefined when absent or not a number of seconds. */
function retryAfterSeconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+(\.\d+)?$/.test(value.trim())) return undefined;
  return Math.max(1, Math.ceil(Number(value)));
}

/** The start of a body that is not an envelope, on one line, for a message. */
function snippet(body: string): string {
  return body.replace(/\s+/g, " ").trim().slice(0, 200);
}
