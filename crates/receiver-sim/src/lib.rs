//! Loopback receivers for SignalFoundry's delivery tests: a Standard Webhooks endpoint,
//! Slack and Teams webhooks, PagerDuty Events API v2, TheHive 5 and DFIR-IRIS alert APIs
//! over one HTTPS listener, and an SMTP server with STARTTLS and AUTH. The pipeline (a
//! separate process) delivers to them; the test reads what arrived.
//!
//! Design constraints:
//! - Faithful: each receiver follows its vendor's documented contract (statuses, bodies,
//!   limits, duplicate behaviour), with the source named in the module's doc comment
//!   (from the wave-2 peer research), so a sender that works here works against the real
//!   service; where the documentation is silent the choice is said.
//! - Observable: every accepted request is a `Delivery` (with its idempotency key and a
//!   `duplicate` flag), every invalid one a `Rejection` with the reason, every 429 a
//!   `Throttled`; a correct sender leaves `rejected()` empty.
//! - Fault injection on the HTTP routes (429, 500, slow, lost after processing), seeded,
//!   off by default.
//! - Embeddable: `Receivers::start` runs both listeners on a thread and tokio runtime of
//!   their own; dropping the handle stops them. Loopback only.
//!
//! Layout:
//! - `config`: `ReceiverConfig`, `Faults`.
//! - `error`: `Error`.
//! - `record`: `Delivery`, `Rejection`, `Throttled`, `Kind`, vendor state; the recorder.
//! - `wire`: the request/answer the routes see; rate limiters.
//! - `tls`: the throwaway CA and server certificate.
//! - `server`: HTTPS, routing, faults; `Receivers`, `ReceiverHandle`.
//! - `notify`: Standard Webhooks, Slack, Teams.
//! - `pagerduty`, `thehive`, `iris`: those APIs.
//! - `smtp`: the SMTP server.

mod config;
mod error;
mod iris;
mod notify;
mod pagerduty;
mod record;
mod server;
mod smtp;
mod thehive;
mod tls;
mod wire;

pub use config::{webhook_key, Faults, ReceiverConfig};
pub use error::Error;
pub use notify::TEAMS_MAX_BYTES;
pub use record::{
    Delivery, FaultCounts, IrisAlert, Kind, PdState, Rejection, TheHiveAlert, ThrottleCause,
    Throttled,
};
pub use server::{ReceiverHandle, Receivers};
pub use thehive::DATA_TYPES as THEHIVE_DATA_TYPES;
