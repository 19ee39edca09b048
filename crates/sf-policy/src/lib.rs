//! sf-policy: SignalFoundry's policy engine. It compiles a policy file once and decides, for each
//! Wazuh alert, its canonical agent, its bucket and why.
//!
//! # Design constraints
//!
//! - **Pure.** Deciding does no IO and never reads the clock: "now" is an argument
//!   ([`Policy::decide`]). Only [`cli`] touches files and the clock.
//! - **Noise goes, attacks stay.** A false-positive signature never suppresses an alert at or
//!   above the `high` threshold unless it says `allow_high = true`; the signature is then *held
//!   back* and named in the decision.
//! - **The manager's word over the log's.** An alias matched by `agent.id` or `agent.name` wins
//!   over one matched by a name from the event's text (`data.win.system.computer`,
//!   `predecoder.hostname`), whatever the file's order: whoever writes a log line must not choose
//!   the canonical agent, and with it the signatures scoped to it.
//! - **Agent ids are per manager.** Every Wazuh manager numbers its agents from `001`; an alias
//!   naming a `manager` claims its `ids` on that manager only. One that names none still claims
//!   them on every manager, and the policy remembers which managers it was seen from
//!   ([`Policy::note_manager`]) so that `policy test` and triage can say when it merged hosts of
//!   different managers. That record is the only state a policy keeps; deciding stays pure.
//! - **Explained.** Every decision carries a readable trace: the alias that applied, each
//!   candidate tried and why it did or did not match, and the bucket's reason.
//! - **Checked whole.** [`Policy::parse`] reports every error of a file with its line and column
//!   and a hint, never only the first.
//! - **Compiled once.** Matchers, globs and regexes are compiled when the policy is parsed;
//!   overrides and signatures are indexed by the `rule.id` they pin (else by another field they
//!   require to equal a value), so an alert meets only its candidates and the few unindexed
//!   rules, in file order. A decision takes about 2 µs against 1,000 signatures
//!   (`cargo bench -p sf-policy --bench decide`).
//!
//! The policy format is documented in this crate's `README.md`.
//!
//! # Layout
//!
//! - `alias`: the `[[alias]]` tables (names global, agent ids per manager) and the managers seen
//!   per id alias without `manager` ([`ManagerSpan`]).
//! - [`bucket`]: `Bucket`, `MatchedKind` and the severity `Thresholds`.
//! - [`diagnostic`]: `Diagnostic`, the errors and warnings of a policy file, with line and column.
//! - [`level`]: [`Level`], `rule.level` read one way for the whole pipeline (decision, queue
//!   priority, quarantine packs).
//! - `value`: alert values as matchers see them (field paths, backslash collapsing, numbers).
//! - `matcher`: compiled matchers (equals, prefix, glob, regex, cidr, range, exists, not) and the
//!   `Subject` they are evaluated against.
//! - `compile`: the policy file (TOML) to a compiled [`Policy`], collecting every diagnostic.
//! - [`decide`]: [`Policy`], [`Decision`], [`DecideError`]: aliases, overrides, signatures, severity.
//! - [`inventory`]: the `[[suppress]]` signatures as a list ([`SignatureInfo`]: id, expiry),
//!   for figures about them.
//! - [`group`]: `[[group]]` rules and the `[grouping]` default: an alert's [`IncidentKey`], and
//!   the alert time ([`alert_time`]) the pipeline reads too.
//! - [`cli`]: `policy check` and `policy test`, the only code here that does IO.

mod alias;
pub mod bucket;
pub mod cli;
mod compile;
pub mod decide;
pub mod diagnostic;
pub mod group;
pub mod inventory;
pub mod level;
mod matcher;
mod route_match;
mod value;

pub use alias::ManagerSpan;
pub use bucket::{Bucket, MatchedKind, Thresholds, CRITICAL_LEVEL};
pub use decide::{alert_document, DecideError, Decision, Policy};
pub use diagnostic::{Diagnostic, Severity};
pub use group::{alert_time, format_duration, IncidentKey, KeyField};
pub use inventory::SignatureInfo;
pub use level::{Level, MAX_LEVEL};
pub use route_match::MatchTable;
pub use value::collapse_backslashes;

/// The default policy shipped with SignalFoundry (`crates/sf-policy/default-policy.toml`):
/// Wazuh's dashboard thresholds and signatures for well-known Wazuh noise, each with its reason.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../default-policy.toml");
