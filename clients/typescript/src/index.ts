// @owp/protocol: the Open Work Protocol's types (generated from the pool's /openapi.json)
// and a typed client, with the helpers a worker needs.
export type { paths, components, operations } from "./schema.js";
export * from "./types.js";
export { createPoolClient, call, unwrap, type ClientOptions, type PoolClient, type Result } from "./client.js";
export { PoolError, retryAfterSeconds, type ErrorCode, type ErrorBody } from "./errors.js";
export { backoffDelay, retryingFetch, sleep, type RetryOptions, type FetchLike } from "./retry.js";
export {
  PoolWorker,
  type Handler,
  type Job,
  type Outcome,
  type ReportFields,
  type RunOptions,
  type WorkerOptions,
} from "./worker.js";
