// The README's worker (examples/worker.mjs), run as its own process, completes a task.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { baseUrl, createTask, eventually, fixture, taskStatus } from "./helpers.js";

test("the README's example worker completes a task", async () => {
  const { repo, skill } = await fixture();
  const taskId = await createTask(repo, skill, "for the example");
  const script = fileURLToPath(new URL("../../examples/worker.mjs", import.meta.url));
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, OWP_URL: baseUrl, OWP_SKILLS: skill, OWP_TOKEN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  try {
    await eventually(async () => (await taskStatus(taskId)) === "completed", 20_000);
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal(await exited, 0, output);
  assert.match(output, new RegExp(`working on ${taskId}`));
});
