// A complete worker in plain JavaScript: register once (keep the token), then work leases
// until Ctrl-C. Run: OWP_URL=http://127.0.0.1:8787 node examples/worker.mjs
import { PoolWorker, unwrap } from "@owp/protocol";

const baseUrl = process.env.OWP_URL ?? "http://127.0.0.1:8787";
const skills = (process.env.OWP_SKILLS ?? "rust").split(",");

let worker;
if (process.env.OWP_TOKEN) {
  worker = new PoolWorker({ baseUrl, token: process.env.OWP_TOKEN });
} else {
  const { worker: registered, registration } = unwrap(
    await PoolWorker.register({ baseUrl }, { name: "example-worker", skills }),
  );
  // the token is shown once: a real agent stores it (OWP_TOKEN) and reuses it
  console.log(`registered ${registration.worker_id}`);
  worker = registered;
}

const stop = new AbortController();
process.on("SIGINT", () => stop.abort());
process.on("SIGTERM", () => stop.abort());

await worker.run(
  async (job) => {
    console.log(`working on ${job.lease.task_id}: ${job.lease.title}`);
    // ... run your coding agent here; job.signal aborts if the lease is lost ...
    return { status: "completed", message: "done by the example worker" };
  },
  {
    wait: 30,
    signal: stop.signal,
    onError: (error, where) => console.error(`${where}: ${error.code} ${error.message}`),
  },
);
