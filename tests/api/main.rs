//! The integration tests, one module per area, linked into one test binary
//! (`cargo test --test api`). `common` holds the shared helpers.
//! Two test files are binaries of their own, each saying why:
//! `tests/hostile_memory.rs` (it measures the process's peak memory) and
//! `tests/crash_safety.rs` (a fixed-length burst that needs the CPU).

mod common;

mod abuse;
mod auth_api;
mod bounce_corpus;
mod bounce_patterns;
mod bounces_api;
mod browser_smoke;
mod classification_corpus;
mod cli;
mod cluster;
mod confirmations;
mod doctor;
mod egress;
mod faults;
mod http_basics;
mod jobs_api;
mod jobs_upload;
mod load;
mod openapi_contract;
mod operator_metrics;
mod packaging;
mod postfix_e2e;
mod stats_api;
mod store_contract;
mod suggestions;
mod suppression_evidence;
mod suppression_feed;
mod suppression_import;
mod suppression_undo;
mod suppressions_api;
mod ui_browser;
mod ui_http;
mod verify_api;
mod webhooks_api;
mod widget_api;
mod widget_browser;
