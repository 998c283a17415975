// OpenAI's error envelope. Every failure a client sees, from a bad parameter to a full queue,
// is an ApiError rendered by errorBody, so SDKs raise the same exception classes they would
// against api.openai.com (they dispatch on the HTTP status and read error.code/param).
import type { z } from "zod";
import { describeIssue, formatPath, issueLine } from "./issues.ts";

/** OpenAI's `error.type` values that we emit. */
export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "requests"
  | "tokens"
  | "server_error";

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  /** One of ErrorType for Roundhouse's own errors; an upstream provider's own type passes through. */
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  /** Seconds a client should wait before retrying; routes turn it into a Retry-After header. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    status: number,
    message: string,
    options: { type?: string; param?: string | null; code?: string | null; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.status = status;
    this.type = options.type ?? (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** The JSON body for an error response; all four keys are always present, as on OpenAI. */
export function errorBody(err: ApiError): ErrorBody {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

/** Anything thrown → ApiError; what is not already one becomes a 500 that leaks no internals. */
export function toApiError(err: unknown): ApiError {
  return err instanceof ApiError ? err : internal();
}

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, { param, code });
}

/** A parameter OpenAI has but this server cannot honour (OpenAI's own wording and code). */
export function unsupportedParameter(name: string, reason = "is not supported by this server"): ApiError {
  return new ApiError(400, `Unsupported parameter: '${name}' ${reason}.`, {
    param: name,
    code: "unsupported_parameter",
  });
}

/** A known parameter with a value this server (or this model) cannot honour. */
export function unsupportedValue(param: string, message: string): ApiError {
  return new ApiError(400, `Unsupported value: ${message}`, { param, code: "unsupported_value" });
}

/** `atLeast`: the count is a lower bound, found without tokenizing a prompt that cannot fit anyway. */
export function contextLengthExceeded(maxTokens: number, requestedTokens: number, atLeast = false): ApiError {
  return new ApiError(
    400,
    `This model's maximum context length is ${maxTokens} tokens. However, your messages resulted in ${atLeast ? "at least " : ""}${requestedTokens} tokens. Please reduce the length of the messages.`,
    { param: "messages", code: "context_length_exceeded" },
  );
}

/**
 * The prompt and the completion the client asked for do not fit the context together. A
 * completion budget that alone fills the context can never fit, whatever the messages: the
 * message is then about `param` (max_tokens or max_completion_tokens), not the messages.
 */
export function completionDoesNotFit(
  contextSize: number,
  promptTokens: number,
  asked: number | undefined,
  param: "max_tokens" | "max_completion_tokens",
): ApiError {
  if (asked !== undefined && asked >= contextSize) {
    return new ApiError(
      400,
      `${param} is too large: ${asked}. This model's maximum context length is ${contextSize} tokens, prompt and completion together; these messages take ${promptTokens}, which leaves at most ${Math.max(0, contextSize - promptTokens)} for ${param}.`,
      { param, code: "context_length_exceeded" },
    );
  }
  if (asked === undefined) return contextLengthExceeded(contextSize, promptTokens + 1);
  return new ApiError(
    400,
    `This model's maximum context length is ${contextSize} tokens. However, you requested ${promptTokens + asked} tokens (${promptTokens} in the messages, ${asked} in the completion). Please reduce the length of the messages or ${param}.`,
    { param: "messages", code: "context_length_exceeded" },
  );
}

export function modelNotFound(model: string): ApiError {
  return new ApiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, {
    code: "model_not_found",
  });
}

/** A missing object other than a model (file, job…); `param` names the path parameter. */
export function notFound(message: string, param: string | null = null): ApiError {
  return new ApiError(404, message, { param });
}

export function routeNotFound(method: string, path: string): ApiError {
  return new ApiError(404, `Invalid URL (${method.toUpperCase()} ${path})`);
}

export function methodNotAllowed(method: string, path: string): ApiError {
  return new ApiError(405, `Method ${method.toUpperCase()} is not allowed for ${path}.`, {
    code: "method_not_allowed",
  });
}

export function missingApiKey(): ApiError {
  return new ApiError(
    401,
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    { code: "missing_api_key" },
  );
}

// OpenAI answers a wrong key with type invalid_request_error, not authentication_error; SDKs
// only look at the 401.
export function invalidApiKey(message = "Incorrect API key provided."): ApiError {
  return new ApiError(401, message, { code: "invalid_api_key" });
}

export function permissionDenied(message = "You are not allowed to perform this action."): ApiError {
  return new ApiError(403, message, { type: "permission_error", code: "permission_denied" });
}

/** Too many requests waiting (OpenAI's type and code, so clients back off as they would there). */
export function rateLimited(retryAfterSeconds: number, message?: string): ApiError {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
  return new ApiError(
    429,
    message ?? `Too many requests are waiting for this model. Please retry after ${seconds} seconds.`,
    {
      type: "requests",
      code: "rate_limit_exceeded",
      retryAfterSeconds: seconds,
    },
  );
}

export function serviceUnavailable(
  message = "The server is overloaded. Please try again later.",
  retryAfterSeconds?: number,
): ApiError {
  return new ApiError(503, message, {
    type: "server_error",
    code: "overloaded",
    ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds: Math.max(1, Math.ceil(retryAfterSeconds)) }),
  });
}

export const overloaded = serviceUnavailable;

export function payloadTooLarge(limitBytes: number): ApiError {
  return new ApiError(413, `Request body too large: the limit is ${limitBytes} bytes.`, {
    code: "request_too_large",
  });
}

export function internal(
  message = "The server had an error while processing your request. Sorry about that!",
): ApiError {
  return new ApiError(500, message, { type: "server_error" });
}

/**
 * A failed zod parse of a request → a 400 naming the first problem, e.g.
 * `messages[0].role: expected one of system, developer, user, assistant, tool, got "bot"`.
 * An unknown key gets OpenAI's wording and code `unknown_parameter`.
 */
export function fromZodError(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  if (issue === undefined) return invalidRequest("Invalid request body.");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const param = formatPath([...issue.path, key]);
    const message =
      issue.path.length === 0
        ? `Unrecognized request argument supplied: ${issue.keys.join(", ")}`
        : `${formatPath(issue.path)}: unrecognized argument${issue.keys.length === 1 ? "" : "s"} ${issue.keys.join(", ")}`;
    return invalidRequest(message, param, "unknown_parameter");
  }
  const described = describeIssue(issue);
  const param = formatPath(described.path);
  if (param === "" && issue.code === "invalid_type") {
    return invalidRequest("The request body must be a JSON object.", null, "invalid_type");
  }
  return invalidRequest(issueLine(described), param === "" ? null : param, codeFor(issue));
}

// OpenAI's codes for the same failures, so clients branching on `code` keep working.
function codeFor(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type" && issue.input === undefined) return "missing_required_parameter";
  if (issue.code === "invalid_type") return "invalid_type";
  return "invalid_value";
}
