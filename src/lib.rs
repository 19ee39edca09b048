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
//! - [`escalate`]: escalation packs: summary.md, observables, manifest, verify-pack.
//! - [`cases`]: case ids, case paths, `case.json`.
//! - [`triage`]: stage 3 (with cases and escalation inside each batch).
//! - [`poll`]: stage 1, the Wazuh indexer poller.
//! - [`heartbeat`]: stage 7, heartbeat.json, heartbeats.jsonl, metrics.prom.
//! - [`run`]: the seven stages in one run.
//! - [`demo`]: the pipeline against the built-in simulator.
//! - [`daemon`]: `run` on a cadence, signals.
//! - [`ingest`]: JSON lines into the queue.
//! - [`reconcile`]: stage 6, the ledger against the disk, and the verdict.
//! - [`requeue`]: overflow or quarantine back into the queue.
//! - [`status`]: `status`, read-only.
//! - [`cli`]: the `signalfoundry` command line.
//! - [`debug`]: test hooks that crash the process at a named point.

pub mod alert;
pub mod cap;
pub mod cases;
pub mod claim;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod debug;
pub mod demo;
pub mod escalate;
pub mod fsx;
pub mod heartbeat;
pub mod ingest;
pub mod ledger;
pub mod poll;
pub mod reconcile;
pub mod requeue;
pub mod run;
pub mod spool;
pub mod state;
pub mod status;
pub mod triage;
