//! The benchmarks, apart from the service's own code: each drives a running server from
//! outside (or, for the ceiling and the seeds, writes its own scratch data) and prints its
//! figures; docs/BENCHMARKS.md records them.
//! - `lifecycle`: `owp bench`, a worker fleet's poll -> `in_progress` -> `completed`, with
//!   the raw-SQL ceiling measured in the same run
//! - `idle`, `heartbeat`, `sweep`: `owp bench-idle`, `bench-heartbeat`, `bench-sweep`
//! - `open_loop`: `owp bench --open-loop`, latency at a fixed offered load
//! - `lists`: `owp bench-lists`, the operator's list endpoints over a large history
//! - `stats`: latencies, errors and memory, as every benchmark prints them
//! - `sql`: the benchmarks' own statements (seeds, the ceiling), kept out of `store`

pub mod heartbeat;
pub mod idle;
pub mod lifecycle;
pub mod lists;
pub mod open_loop;
pub mod sql;
pub(crate) mod stats;
pub mod sweep;

pub use lifecycle::{run, BenchArgs};
