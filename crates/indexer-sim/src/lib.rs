//! A Wazuh indexer simulator: the OpenSearch 2.x HTTP API a Wazuh 4.x indexer speaks, over
//! HTTPS with a throwaway CA and HTTP basic auth, serving a generated or loaded corpus of
//! Wazuh alerts, with live and late indexing and injected faults. SignalFoundry's poller is
//! tested against it; it does not depend on the pipeline.
//!
//! Design constraints:
//! - Faithful where the poller reads: every response shape is checked against real OpenSearch
//!   bodies (`tests/data/opensearch/`), so the simulator and the poller cannot agree on a
//!   wrong shape.
//! - Deterministic: the corpus is a function of (seed, end time, count); the late-indexing
//!   schedule and the fault sequence are seeded too.
//! - Fast: documents are serialized once and kept in the poller's sort order, so 200,000
//!   alerts page at well over 20,000 alerts/s on loopback.
//! - Loopback in tests; nothing here reaches the network beyond the bound socket.
//!
//! Layout:
//! - `config`: `SimConfig`, `FaultKind`.
//! - `error`: `SimError`.
//! - `generate`: the generated corpus (Wazuh-like alerts, levels, managers, ids).
//! - `corpus`: loading JSON lines; the live/late schedule (`visible_at_ms`).
//! - `store`: documents, pre-serialized, in primary order; daily index routing.
//! - `time`: dates (ISO 8601 with offsets, epoch millis, `now` math) and durations.
//! - `query`: parsing the query DSL subset, sort, `search_after`, `pit`.
//! - `search`: executing a search or count over a view; writing hits.
//! - `pit`: point-in-time contexts.
//! - `opensearch`: error bodies, cluster info.
//! - `tls`: the throwaway CA and server certificate.
//! - `server`: HTTPS, auth, routing, faults; `Simulator`, `SimHandle`, `SimStats`.
//! - `cli`: the `indexer-sim` command line.

mod cli;
mod config;
mod corpus;
mod error;
mod generate;
mod opensearch;
mod pit;
mod query;
mod search;
mod server;
mod store;
mod time;
pub mod tls;

pub use cli::cli_main;
pub use config::{FaultKind, SimConfig};
pub use error::SimError;
pub use server::{serve_https, SimHandle, SimStats, Simulator};
