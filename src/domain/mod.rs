//! Pure rules of the pool: no I/O, no SQL, no HTTP. Everything here is unit-tested.

pub mod access;
pub mod analytics;
pub mod compat;
pub mod github_issue;
pub mod github_writeback;
pub mod ids;
pub mod input;
pub mod new_task;
pub mod notify;
pub mod pr_link;
pub mod reputation;
pub mod retry;
pub mod status;
pub mod task_edit;
pub mod transition;
pub mod trust;
