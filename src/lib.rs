//! SignalFoundry: a SOC automation pipeline for Wazuh. It takes alerts from a Wazuh indexer
//! (or `alerts.json`), keeps a race-safe spool of them, and accounts for every one.
//!
//! Layout, and the layering rule: every arrow points down, never back.
//!
//! ```text
//! cmd      the command line: clap, Context, Failure, exit codes, one module per command
//! serve    beside cmd: the console (`signalfoundry serve`), read-only web pages and /api/v1
//!   |
//! stages   poll, cap, triage (cases and packs inside), escalate, deliver, reconcile, heartbeat;
//!   |      each with one entry point and a report (`stages::Report`)
//!   v
//! store    the only code that touches the state directory and ledger.db
//! model    alerts, keys, levels, cases: data, no IO
//! ```
//!
//! `config` (the TOML configuration), `secret` (secrets and their files) and `failpoint` (test
//! hooks) sit beside `store` and `model`:
//! anything may use them, they use nothing above. ARCHITECTURE.md has the codemap and the
//! invariants.

pub mod cmd;
pub mod config;
pub mod failpoint;
pub mod model;
pub mod secret;
pub mod serve;
pub mod stages;
pub mod store;
