// 429 and Retry-After: the live pool runs with a small per-worker rate
// (scripts/clients-test.sh: OWP_WORKER_RATE=20, OWP_WORKER_BURST=20).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PoolWorker, unwrap } from "../src/index.js";
import { baseUrl, fixture } from "./helpers.js";

test("a burst past the worker's limit gets 429 with Retry-After; the backoff gets every call through", async () => {
  const { skill } = await fixture();
  const registration = unwrap(await PoolWorker.register({ baseUrl }, { name: "burst", skills: [skill] })).registration;
  const token = registration.token;
  const noRetry = new PoolWorker({ baseUrl, token, retry: { attempts: 1 } });
  const burst = await Promise.all(Array.from({ length: 60 }, () => noRetry.heartbeat()));
  const limited = burst.filter((r) => r.error?.code === "rate_limited");
  assert.ok(limited.length > 0, "some of 60 heartbeats at once were refused");
  for (const r of limited) {
    assert.equal(r.error?.status, 429);
    assert.ok((r.error?.retryAfter ?? 0) >= 1, "a 429 says when to come back");
  }
  assert.ok(burst.every((r) => r.data || r.error?.code === "rate_limited"), "nothing else went wrong");

  const retries: number[] = [];
  const patient = new PoolWorker({
    baseUrl,
    token,
    retry: { attempts: 20, maxDelayMs: 5_000, onRetry: ({ status }) => retries.push(status) },
  });
  const again = await Promise.all(Array.from({ length: 60 }, () => patient.heartbeat()));
  assert.ok(again.every((r) => r.data?.ok === true), "every call got through in the end");
  assert.ok(retries.length > 0 && retries.every((s) => s === 429), "by waiting out 429s");
});
