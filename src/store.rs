//! The store: the only code that touches the state directory and `ledger.db`. Stages ask it
//! to list, claim, move, write and record; it keeps the invariants of the disk and the ledger
//! (ARCHITECTURE.md: "Architecture invariants").
//!
//! - [`fsx`]: every visible write, rename and removal; no-follow opens; durability.
//! - [`state`]: the state directory, its subdirectories, the run lock, depths.
//! - [`names`]: canonical names and listings without `stat`.
//! - [`spool`]: enqueue (ingest, poll), admission, adoption.
//! - [`quarantine`]: quarantine entries and their rows.
//! - [`claim`]: worker claim folders, liveness, recovery of dead workers.
//! - [`ledger`]: the SQLite ledger: one row per alert, its lifecycle, queries.

pub mod claim;
pub mod fsx;
pub mod ledger;
pub mod names;
pub mod quarantine;
pub mod spool;
pub mod state;
