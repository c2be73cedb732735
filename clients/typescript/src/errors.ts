// Errors as values: every non-2xx answer of the pool has one body shape (PROTOCOL.md,
// "Errors"); PoolError carries it with the HTTP status and the Retry-After hint, and a
// failure to reach the pool at all is a PoolError too (code "network_error").

/** The pool's error codes (`code` of every non-2xx body), plus the client's own two. */
export type ErrorCode =
  | "validation_error"
  | "auth_error"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "rate_limited"
  | "unavailable"
  | "internal_error"
  /** no answer: connection refused, reset, DNS, or the request was aborted */
  | "network_error"
  /** an answer that is not the pool's error body (a proxy's HTML page, say) */
  | "unexpected_response";

export interface ErrorBody {
  code: string;
  message: string;
  details?: string | null;
  suggestion?: string | null;
}

export class PoolError extends Error {
  readonly code: ErrorCode;
  /** HTTP status, 0 when no answer arrived */
  readonly status: number;
  readonly details: string | null;
  readonly suggestion: string | null;
  /** seconds the server asked to wait (Retry-After), when it said */
  readonly retryAfter: number | null;
  readonly requestId: string | null;

  constructor(init: {
    code: ErrorCode;
    status: number;
    message: string;
    details?: string | null;
    suggestion?: string | null;
    retryAfter?: number | null;
    requestId?: string | null;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "PoolError";
    this.code = init.code;
    this.status = init.status;
    this.details = init.details ?? null;
    this.suggestion = init.suggestion ?? null;
    this.retryAfter = init.retryAfter ?? null;
    this.requestId = init.requestId ?? null;
  }

  /** 409 `lease_lost`: the lease ended (expired, requeued, cancelled); stop working on it. */
  get leaseLost(): boolean {
    return this.code === "conflict" && this.details === "lease_lost";
  }

  /** 409 `invalid_transition: <from> -> <to>` */
  get invalidTransition(): boolean {
    return this.code === "conflict" && (this.details ?? "").startsWith("invalid_transition");
  }

  /** Worth retrying later: rate limited, unavailable, or no answer at all. */
  get retryable(): boolean {
    return this.code === "rate_limited" || this.code === "unavailable" || this.code === "network_error";
  }
}

const KNOWN: ReadonlySet<string> = new Set([
  "validation_error",
  "auth_error",
  "forbidden",
  "not_found",
  "conflict",
  "payload_too_large",
  "rate_limited",
  "unavailable",
  "internal_error",
]);

/** Retry-After as seconds: a delay in seconds or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterSeconds(headers: Headers, now: number = Date.now()): number | null {
  const value = headers.get("retry-after");
  if (value === null || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/** The PoolError of a non-2xx answer, from its body as openapi-fetch parsed it. */
export function errorFromResponse(response: Response, body: unknown): PoolError {
  const retryAfter = retryAfterSeconds(response.headers);
  const requestId = response.headers.get("x-request-id");
  if (isErrorBody(body)) {
    return new PoolError({
      code: KNOWN.has(body.code) ? (body.code as ErrorCode) : "unexpected_response",
      status: response.status,
      message: body.message,
      details: body.details ?? null,
      suggestion: body.suggestion ?? null,
      retryAfter,
      requestId,
    });
  }
  return new PoolError({
    code: response.status === 429 ? "rate_limited" : response.status === 503 ? "unavailable" : "unexpected_response",
    status: response.status,
    message: `HTTP ${response.status} ${response.statusText}`.trim(),
    retryAfter,
    requestId,
  });
}

/** A request that got no answer. */
export function networkError(cause: unknown): PoolError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new PoolError({ code: "network_error", status: 0, message, cause });
}

function isErrorBody(body: unknown): body is ErrorBody {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as ErrorBody).code === "string" &&
    typeof (body as ErrorBody).message === "string"
  );
}
