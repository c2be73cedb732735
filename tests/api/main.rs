//! Black-box tests: the real app over HTTP against a fresh PostgreSQL database per test.

mod admin;
mod analytics;
mod chaos;
mod concurrency;
mod db_down;
mod errors;
mod limits;
mod long_poll;
mod offers;
mod operator;
mod ops;
mod pr_slots;
mod reliability;
mod replicas;
mod reputation;
mod retention;
mod retries;
mod scheduler;
mod shutdown;
mod status;
mod support;
mod trust;
mod work;
mod workers;
