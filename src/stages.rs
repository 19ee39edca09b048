//! The stages of a run, in order: [`poll`], [`cap`], [`triage`] (cases and escalation packs
//! are built inside each triage batch, with [`escalate`]), [`reconcile`], [`heartbeat`]. Each has
//! one entry point and a typed report. Stages use `store` and `model`, never `cmd`.

pub mod cap;
pub mod escalate;
pub mod heartbeat;
pub mod poll;
pub mod reconcile;
pub mod triage;
