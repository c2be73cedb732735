// The typed client: openapi-fetch over the generated paths, with the pool's credentials
// and the 429/503 backoff. `call` turns its { data, error } into a Result whose error is
// a PoolError, and a request that got no answer into one too (code "network_error").
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { paths } from "./schema.js";
import { errorFromResponse, networkError, type PoolError } from "./errors.js";
import { retryingFetch, type FetchLike, type RetryOptions } from "./retry.js";

export type PoolClient = Client<paths, "application/json">;

export interface ClientOptions {
  /** the pool's base URL, e.g. https://pool.example.org */
  baseUrl: string;
  /** a worker's token (Authorization: Bearer) */
  token?: string;
  /** an admin token (X-Admin-Token); admin routes never accept worker tokens */
  adminToken?: string;
  /** backoff on 429 and 503; `{ attempts: 1 }` turns it off */
  retry?: RetryOptions;
  /** the fetch to send with (default globalThis.fetch) */
  fetch?: FetchLike;
  /** sent as User-Agent where the runtime allows it */
  userAgent?: string;
}

/** A Result: exactly one of `data` and `error`. */
export type Result<T> = { data: T; error?: undefined } | { data?: undefined; error: PoolError };

export function createPoolClient(options: ClientOptions): PoolClient {
  const base: FetchLike = options.fetch ?? ((request) => globalThis.fetch(request));
  const client = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    fetch: retryingFetch(base, options.retry),
  });
  client.use(credentials(options));
  return client;
}

function credentials(options: ClientOptions): Middleware {
  return {
    onRequest({ request }) {
      if (options.token && !request.headers.has("authorization")) {
        request.headers.set("authorization", `Bearer ${options.token}`);
      }
      if (options.adminToken && !request.headers.has("x-admin-token")) {
        request.headers.set("x-admin-token", options.adminToken);
      }
      if (options.userAgent) request.headers.set("user-agent", options.userAgent);
      return request;
    },
  };
}

/** Runs one openapi-fetch call and answers a Result: a 2xx body, or the PoolError of the
 * answer (or of the missing answer). */
export async function call<T>(
  request: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<Result<T>> {
  let outcome: { data?: T; error?: unknown; response: Response };
  try {
    outcome = await request;
  } catch (cause) {
    return { error: networkError(cause) };
  }
  const { data, error, response } = outcome;
  if (!response.ok || error !== undefined) return { error: errorFromResponse(response, error) };
  return { data: data as T };
}

/** The value of a Result, or its PoolError thrown: for code that prefers exceptions. */
export function unwrap<T>(result: Result<T>): T {
  if (result.error) throw result.error;
  return result.data as T;
}
