//! SignalFoundry: a SOC automation pipeline for Wazuh. It takes alerts from a Wazuh indexer
//! (or `alerts.json`), keeps a race-safe spool of them, and accounts for every one.
//!
//! Layout (one line a module; ARCHITECTURE.md has the codemap and the invariants):
//! - [`fsx`]: every visible write, rename and removal; no-follow opens; durability.
//! - [`state`]: the state directory, its subdirectories and the run lock.
//! - [`config`]: the TOML configuration.
//! - [`alert`]: strict parsing, alert key, level, time, content hash.
//! - [`ledger`]: the SQLite ledger (one row per alert, lifecycle state).
//! - [`spool`]: canonical names, listing, enqueue, admission, adoption, quarantine.
//! - [`cap`]: stage 2, keep `queue/` at or under its cap.
//! - [`claim`]: worker claim folders, claims, recovery of dead workers.
//! - [`ingest`]: JSON lines into the queue.
//! - [`requeue`]: overflow or quarantine back into the queue.
//! - [`cli`]: the `signalfoundry` command line.

pub mod alert;
pub mod cap;
pub mod claim;
pub mod cli;
pub mod config;
pub mod fsx;
pub mod ingest;
pub mod ledger;
pub mod requeue;
pub mod spool;
pub mod state;
