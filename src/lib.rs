//! OWP Pool: the Open Work Protocol scheduler.
//!
//! - `cli`, `config`: the command line and every setting (flag + env)
//! - `app`: shared state built once; `server`: listeners, background services, shutdown
//! - `http`: routes, extractors, handlers; `error`: failures as PROTOCOL.md answers
//! - `wire`: request and response bodies (server, client, tests); `client`: the typed client
//! - `domain`: pure rules (statuses, transitions, input, PR provenance); `store`: every SQL
//!   statement, the invariant checker (`store::invariants`, docs/invariants.md) among them
//! - `scheduler`: leader election and the periodic duties; `github`: the GitHub API
//! - `liveness`: signs of life, written once per interval per replica
//! - `long_poll`: long polls waiting for work, and what wakes them
//! - `supervisor`: every background task, one stop signal, a shutdown that waits
//! - `auth`: tokens and digests; `limits`: what one client may use (rates, in-flight)
//! - `metrics`, `telemetry`: what operators see
//! - `bench`: the benchmarks, their statistics and their own SQL

pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod github;
pub mod http;
pub mod limits;
pub mod liveness;
pub mod long_poll;
pub mod metrics;
pub mod report_batch;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod wire;
