// The backoff's arithmetic, without a server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, retryAfterSeconds } from "../src/index.js";

test("Retry-After in seconds or as an HTTP date", () => {
  assert.equal(retryAfterSeconds(new Headers({ "retry-after": "7" })), 7);
  const now = Date.parse("2026-12-03T10:00:00Z");
  assert.equal(retryAfterSeconds(new Headers({ "retry-after": "Thu, 03 Dec 2026 10:00:30 GMT" }), now), 30);
  assert.equal(retryAfterSeconds(new Headers({ "retry-after": "soon" })), null);
  assert.equal(retryAfterSeconds(new Headers()), null);
});

test("the server's Retry-After wins; otherwise jittered exponential backoff under the cap", () => {
  const asked = new Response(null, { status: 429, headers: { "retry-after": "2" } });
  assert.equal(backoffDelay(asked, 1, {}, () => 0), 2000);
  assert.equal(backoffDelay(asked, 1, { maxDelayMs: 500 }, () => 0), 500);
  assert.equal(backoffDelay(null, 1, { baseDelayMs: 100 }, () => 0.999), 100);
  assert.equal(backoffDelay(null, 4, { baseDelayMs: 100 }, () => 0.999), 800);
  assert.equal(backoffDelay(null, 30, { baseDelayMs: 100, maxDelayMs: 1000 }, () => 0.999), 1000);
  assert.ok(backoffDelay(null, 3, { baseDelayMs: 100 }, () => 0) >= 1);
});
