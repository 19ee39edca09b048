//! Test hooks for crash windows: `SIGNALFOUNDRY_DEBUG_CRASH_AT=<point>` makes the process abort
//! (no destructors, no unwinding: as a SIGKILL would leave things) when it reaches the named
//! point, so that a test can build the exact state a crash in that window leaves and check
//! its recovery rule. Unset (as in production), each point is one relaxed load.
//!
//! Points: `triage-publish` (a batch built and its intent rows committed, before anything is
//! published), `triage-quarantine-move` (the intent rows committed, before a quarantined file
//! moves), `quarantine-entry-row` (a file moved into quarantine, before its entry row
//! commits), `triage-commit` (a batch published, before its commit), `requeue-move` (a
//! quarantine entry moved to `incoming/`, before admission), `admission-commit` (admission's
//! files moved, before its batch commits), `incident-backfill` (a batch of the incident
//! backfill committed), `incident-rebuild` (a round's incident files written, before the
//! ledger records them built).

use std::sync::OnceLock;

const VAR: &str = "SIGNALFOUNDRY_DEBUG_CRASH_AT";

/// Sleeps for `SIGNALFOUNDRY_DEBUG_<name>_PAUSE_MS` milliseconds when that is set: a test holds
/// a process still inside a window to act in it.
pub fn pause_point(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Aborts the process when `SIGNALFOUNDRY_DEBUG_CRASH_AT` names `point`.
pub fn crash_point(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(VAR).ok().filter(|v| !v.is_empty()));
    if at.as_deref() == Some(point) {
        eprintln!("debug: crashing at {point} ({VAR})");
        std::process::abort();
    }
}
