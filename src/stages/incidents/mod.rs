//! Incidents: the alerts one `[[group]]` rule (or the `[grouping]` default) puts together in one
//! window, the unit an analyst works on. An alert's incident is fixed in its intent
//! (`sf_policy::Policy::incident`); the ledger's `incidents` table keeps each incident's member
//! counts (maintained by triggers as rows become and stop being triaged or escalated), and the
//! files below `incidents/` are views of it, rebuilt after the commits that touched them.

pub mod backfill;
pub mod build;
pub mod summary;
pub mod view;
