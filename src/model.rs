//! The model: what an alert, its key, its level and its case are. Data and pure functions, no
//! IO and no clock (time comes in as a parameter).
//!
//! - [`alert`]: strict parsing (duplicate keys refused), alert key, level, time, content hash.
//! - [`cases`]: case ids, case paths, `case.json`, the stored decision.
//! - [`noise`]: noise figures per signature over a period (`policy stats`, the heartbeat).

pub mod alert;
pub mod cases;
pub mod noise;
