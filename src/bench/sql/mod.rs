//! The benchmarks' statements: bulk seeds and the raw-SQL ceiling. They write scratch rows
//! straight into a benchmark database, which the service never does, so they live here
//! and not in `store` (the service's statements).

pub mod ceiling;
pub mod seed;
