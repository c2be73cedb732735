// Backoff for 429 and 503: the pool answers both before anything is applied (a 503 rolls
// its transaction back), with Retry-After, so any request may be sent again. The wrapper
// sits under openapi-fetch as its `fetch`, so every typed call gets it.
import { retryAfterSeconds } from "./errors.js";

export interface RetryOptions {
  /** tries in all, the first included (default 5; 1 turns retries off) */
  attempts?: number;
  /** first backoff when the server gave no Retry-After, doubled each try (default 250 ms) */
  baseDelayMs?: number;
  /** no single wait is longer (default 30 s) */
  maxDelayMs?: number;
  /** called before each wait, for logging */
  onRetry?: (info: { status: number; attempt: number; delayMs: number; url: string }) => void;
}

export type FetchLike = (input: Request) => Promise<Response>;

const RETRY_STATUSES = new Set([429, 503]);

/** How long to wait before try `attempt + 1` (1-based): Retry-After when the server said,
 * else exponential backoff with full jitter (so a fleet refused together spreads out). */
export function backoffDelay(
  response: Response | null,
  attempt: number,
  options: RetryOptions = {},
  random: () => number = Math.random,
): number {
  const max = options.maxDelayMs ?? 30_000;
  const fromServer = response ? retryAfterSeconds(response.headers) : null;
  if (fromServer !== null) {
    // a little jitter on top, never less than asked
    return Math.min(max, fromServer * 1000 + Math.floor(random() * 100));
  }
  const base = options.baseDelayMs ?? 250;
  const ceiling = Math.min(max, base * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling) + 1;
}

export function sleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** `fetch` that retries 429 and 503 answers, honouring Retry-After. A request whose signal
 * aborts stops waiting at once. */
export function retryingFetch(base: FetchLike, options: RetryOptions = {}): FetchLike {
  const attempts = Math.max(1, options.attempts ?? 5);
  return async (request: Request) => {
    for (let attempt = 1; ; attempt++) {
      // the body can be read once: each try sends a copy
      const response = await base(attempt < attempts ? request.clone() : request);
      if (!RETRY_STATUSES.has(response.status) || attempt >= attempts) return response;
      const delayMs = backoffDelay(response, attempt, options);
      options.onRetry?.({ status: response.status, attempt, delayMs, url: request.url });
      // let the connection be reused: drain what the server sent
      await response.body?.cancel().catch(() => undefined);
      await sleep(delayMs, request.signal);
    }
  };
}
