//! Black-box tests: the real app over HTTP against a fresh PostgreSQL database per test.

mod admin;
mod chaos;
mod concurrency;
mod db_down;
mod errors;
mod limits;
mod operator;
mod ops;
mod pr_slots;
mod reliability;
mod replicas;
mod retention;
mod retries;
mod scheduler;
mod shutdown;
mod status;
mod support;
mod trust;
mod work;
mod workers;
