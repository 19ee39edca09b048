//! Delivery: incidents' messages to people and case tools, from the ledger's outbox.
//!
//! The incident round records each due message (`event::Event`) in the outbox in the
//! transaction that records the incident's built revision; this stage sends what is due, per
//! route, and records every attempt. `formats` renders an event for each kind (pure).

pub mod due;
pub mod event;
pub mod formats;
