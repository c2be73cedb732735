//! OWP Pool: the Open Work Protocol scheduler.
//!
//! - `cli`, `config`: the command line and every setting (flag + env)
//! - `app`: shared state built once; `server`: listeners, background services, shutdown
//! - `http`: routes, extractors, handlers; `error`: failures as PROTOCOL.md answers
//! - `domain`: pure rules (statuses, transitions, input); `store`: every SQL statement
//! - `scheduler`: leader election and the periodic duties
//! - `auth`: tokens and digests; `limits`: what one client may use (rates, in-flight)
//! - `metrics`, `telemetry`: what operators see
//! - `bench`, `checker`: the load benchmark and the invariant checker it shares with tests

pub mod app;
pub mod auth;
pub mod bench;
pub mod bench_lists;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod github;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod wakeups;
pub mod wire;
