//! Integration tests: the real `signalfoundry` binary on real files in temp directories.
//!
//! Layout: `support` (the harness), then one module per area.

// Tests build fixtures (hostile ones included) with plain std::fs: the fsx rule is for the product.
#![allow(clippy::disallowed_methods)]
// Children that fail to report are left to the panic; the passing paths kill and wait them.
#![allow(clippy::zombie_processes)]

mod browser;
mod cli;
mod crash;
mod deliver;
mod disk_full;
mod escapes;
mod holes;
mod incidents;
mod ingest;
mod noise;
mod poll;
mod product;
mod readme;
mod replay;
mod reports;
mod retention;
mod serve;
mod spool;
mod support;
mod triage;
