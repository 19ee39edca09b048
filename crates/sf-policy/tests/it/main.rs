//! sf-policy's integration tests: one binary, a module per area.

mod bench_workload;
mod check;
mod cli;
mod decide;
mod managers;
mod real_alerts;
mod support;

/// The benchmark's workload generator, shared with `benches/decide.rs`.
#[path = "../../benches/support/workload.rs"]
mod workload;
