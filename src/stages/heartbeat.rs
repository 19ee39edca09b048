//! Stage 7, heartbeat: `heartbeat.json` (replaced atomically), one line in `heartbeats.jsonl`,
//! and `metrics.prom` (Prometheus text format, for node_exporter's textfile collector), all
//! rendered from one [`RunReport`]: one source of truth for every figure. A stage's counters
//! are its report's ([`StageReport::of`] takes them from [`Report::counters`]), and
//! `metrics.prom` carries every one of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::stages::Report;
use crate::store::fsx::{DirFd, Durability, FsError};

/// This stage's name in the run report (it has no counters of its own).
pub const NAME: &str = "heartbeat";

/// Why the heartbeat was not written.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Nothing was written: an empty heartbeat would read as no run at all.
    #[error("cannot serialize the run report (nothing written): {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A stage's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StageStatus {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "SKIPPED")]
    Skipped,
    #[serde(rename = "FAILED")]
    Failed,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Ok => "OK",
            StageStatus::Skipped => "SKIPPED",
            StageStatus::Failed => "FAILED",
        }
    }
}

/// One stage in the run report.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub name: &'static str,
    pub status: StageStatus,
    pub duration_ms: u64,
    pub counters: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StageReport {
    /// A stage's entry: its name and counters from its report.
    pub fn of<R: Report>(
        report: &R,
        status: StageStatus,
        duration_ms: u64,
        error: Option<String>,
    ) -> StageReport {
        StageReport {
            name: R::NAME,
            status,
            duration_ms,
            counters: report.counters().to_map(),
            error,
        }
    }

    /// A stage's entry when it has no report (skipped, failed before one, or the heartbeat).
    pub fn bare(
        name: &'static str,
        status: StageStatus,
        duration_ms: u64,
        error: Option<String>,
    ) -> StageReport {
        StageReport {
            name,
            status,
            duration_ms,
            counters: BTreeMap::new(),
            error,
        }
    }
}

/// The run's overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunStatus {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "DEGRADED")]
    Degraded,
    #[serde(rename = "FAILED")]
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "OK",
            RunStatus::Degraded => "DEGRADED",
            RunStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ReconcileSummary {
    pub verdict: String,
    pub mismatches: u64,
    pub newly_lost: u64,
    pub rows: u64,
    pub in_flight: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Lag {
    /// Age in seconds of the newest alert the poller has queued (null when none).
    pub newest_polled_age_s: Option<i64>,
    /// Age in seconds of the oldest alert waiting in queue/ or overflow/.
    pub oldest_queued_age_s: Option<i64>,
    /// When the last poll succeeded (RFC 3339).
    pub last_successful_poll: Option<String>,
}

/// Everything a run did: the heartbeat, the history line and the metrics are all this.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub status: RunStatus,
    pub reasons: Vec<String>,
    pub stages: Vec<StageReport>,
    pub depths: BTreeMap<String, u64>,
    pub ledger: BTreeMap<String, u64>,
    pub reconcile: ReconcileSummary,
    pub lag: Lag,
    pub signature_hits: BTreeMap<String, u64>,
    /// High alerts each signature matched in this run but could not suppress (no
    /// `allow_high`): a signature that keeps matching high alerts is worth a look.
    #[serde(default)]
    pub signature_held_back: BTreeMap<String, u64>,
    /// The policy's signatures: how many, how many active ones had no hit in the last
    /// `days` days, expired, expiring within 7 days (`policy stats` has the figures behind
    /// them). Absent when the ledger could not be read for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<crate::model::noise::SignatureSummary>,
    /// The daemon's cadence, when a daemon ran it (`status` calls a heartbeat older than twice
    /// this stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cadence_s: Option<u64>,
    /// Outbox messages per route and state (`pending`, `sent`, `dead`; `orphaned` for a route
    /// no longer configured).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outbox: BTreeMap<String, BTreeMap<String, u64>>,
    /// Counts since the state directory began (`<stage>.<counter>` → total over every run):
    /// what `signalfoundry_stage_total` exposes as Prometheus counters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub totals: BTreeMap<String, u64>,
    /// The policy in force for this run: its file and version, or none.
    #[serde(default)]
    pub policy: String,
    pub version: String,
}

impl RunReport {
    /// The summary printed before the reconcile block: one `key=value` line (`reasons=N`), then
    /// each reason on a line of its own (`  reason: ...`), readable, escaped for the terminal.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{NAME}: status={} run_id={}",
            self.status.as_str(),
            self.run_id
        );
        if !self.reasons.is_empty() {
            let _ = write!(s, " reasons={}", self.reasons.len());
            for r in &self.reasons {
                // No control, bidi or zero-width character (an error message can carry a name
                // read from disk or an alert key), and one line each.
                let _ = write!(
                    s,
                    "\n  reason: {}",
                    crate::store::fsx::escape_text(r).replace(['\n', '\r'], " ")
                );
            }
        }
        s
    }

    /// The Prometheus text exposition of this report.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        fam(
            &mut out,
            "signalfoundry_run_status",
            "gauge",
            "1 for the status of the last run (OK, DEGRADED, FAILED).",
        );
        for s in [RunStatus::Ok, RunStatus::Degraded, RunStatus::Failed] {
            let _ = writeln!(
                out,
                "signalfoundry_run_status{{status=\"{}\"}} {}",
                s.as_str(),
                u8::from(s == self.status)
            );
        }
        fam(
            &mut out,
            "signalfoundry_stage_ok",
            "gauge",
            "1 when the stage was OK or SKIPPED in the last run.",
        );
        for st in &self.stages {
            let _ = writeln!(
                out,
                "signalfoundry_stage_ok{{stage=\"{}\"}} {}",
                st.name,
                u8::from(st.status != StageStatus::Failed)
            );
        }
        fam(
            &mut out,
            "signalfoundry_stage_duration_milliseconds",
            "gauge",
            "Duration of each stage in the last run.",
        );
        for st in &self.stages {
            let _ = writeln!(
                out,
                "signalfoundry_stage_duration_milliseconds{{stage=\"{}\"}} {}",
                st.name, st.duration_ms
            );
        }
        fam(
            &mut out,
            "signalfoundry_stage_count",
            "gauge",
            "Per-stage counters of the last run: every figure of every stage's summary line.",
        );
        for st in &self.stages {
            for (k, v) in &st.counters {
                let _ = writeln!(
                    out,
                    "signalfoundry_stage_count{{stage=\"{}\",counter=\"{}\"}} {v}",
                    st.name,
                    label(k)
                );
            }
        }
        fam(
            &mut out,
            "signalfoundry_depth",
            "gauge",
            "Files in each place of the state directory after the run.",
        );
        for (k, v) in &self.depths {
            let _ = writeln!(out, "signalfoundry_depth{{place=\"{}\"}} {v}", label(k));
        }
        fam(
            &mut out,
            "signalfoundry_ledger_rows",
            "gauge",
            "Ledger rows per lifecycle state.",
        );
        for (k, v) in &self.ledger {
            let _ = writeln!(
                out,
                "signalfoundry_ledger_rows{{state=\"{}\"}} {v}",
                label(k)
            );
        }
        fam(
            &mut out,
            "signalfoundry_stage_total",
            "counter",
            "Totals over every run of this state directory (alerts per bucket, packs, quarantined, lost, vanished, ...): rate() them.",
        );
        for (k, v) in &self.totals {
            if let Some((stage, counter)) = k.split_once('.') {
                let _ = writeln!(
                    out,
                    "signalfoundry_stage_total{{stage=\"{}\",counter=\"{}\"}} {v}",
                    label(stage),
                    label(counter)
                );
            }
        }
        fam(
            &mut out,
            "signalfoundry_outbox_messages",
            "gauge",
            "Delivery outbox messages per route and state.",
        );
        for (route, states) in &self.outbox {
            for (st, v) in states {
                let _ = writeln!(
                    out,
                    "signalfoundry_outbox_messages{{route=\"{}\",state=\"{}\"}} {v}",
                    label(route),
                    label(st)
                );
            }
        }
        fam(
            &mut out,
            "signalfoundry_reconcile_pass",
            "gauge",
            "1 when the last reconcile said PASS.",
        );
        let _ = writeln!(
            out,
            "signalfoundry_reconcile_pass {}",
            u8::from(self.reconcile.verdict == "PASS")
        );
        fam(
            &mut out,
            "signalfoundry_reconcile_mismatches",
            "gauge",
            "Mismatches found by the last reconcile.",
        );
        let _ = writeln!(
            out,
            "signalfoundry_reconcile_mismatches {}",
            self.reconcile.mismatches
        );
        fam(
            &mut out,
            "signalfoundry_signature_hits",
            "gauge",
            "Alerts suppressed by each signature in the last run.",
        );
        for (k, v) in &self.signature_hits {
            let _ = writeln!(
                out,
                "signalfoundry_signature_hits{{signature=\"{}\"}} {v}",
                label(k)
            );
        }
        fam(
            &mut out,
            "signalfoundry_signature_held_back",
            "gauge",
            "High alerts each signature matched in the last run but could not suppress (no allow_high).",
        );
        for (k, v) in &self.signature_held_back {
            let _ = writeln!(
                out,
                "signalfoundry_signature_held_back{{signature=\"{}\"}} {v}",
                label(k)
            );
        }
        if let Some(sig) = &self.signatures {
            for (name, help, v) in [
                (
                    "signalfoundry_signatures",
                    "False-positive signatures in the policy in force.".to_string(),
                    sig.in_policy,
                ),
                (
                    "signalfoundry_signatures_never_hit",
                    format!(
                        "Active signatures without a hit in the last {} days (candidates for removal; policy stats names them).",
                        sig.days
                    ),
                    sig.never_hit,
                ),
                (
                    "signalfoundry_signatures_expired",
                    "Signatures past their expires date: they match nothing.".to_string(),
                    sig.expired,
                ),
                (
                    "signalfoundry_signatures_expiring",
                    format!(
                        "Signatures that expire within {} days.",
                        crate::model::noise::EXPIRING_DAYS
                    ),
                    sig.expiring,
                ),
            ] {
                fam(&mut out, name, "gauge", &help);
                let _ = writeln!(out, "{name} {v}");
            }
        }
        fam(
            &mut out,
            "signalfoundry_lag_seconds",
            "gauge",
            "Age of the newest polled alert and of the oldest queued alert.",
        );
        if let Some(v) = self.lag.newest_polled_age_s {
            let _ = writeln!(
                out,
                "signalfoundry_lag_seconds{{what=\"newest_polled\"}} {v}"
            );
        }
        if let Some(v) = self.lag.oldest_queued_age_s {
            let _ = writeln!(
                out,
                "signalfoundry_lag_seconds{{what=\"oldest_queued\"}} {v}"
            );
        }
        fam(
            &mut out,
            "signalfoundry_last_successful_poll_timestamp_seconds",
            "gauge",
            "When the last poll succeeded (Unix time).",
        );
        if let Some(t) = self
            .lag
            .last_successful_poll
            .as_deref()
            .and_then(unix_seconds)
        {
            let _ = writeln!(
                out,
                "signalfoundry_last_successful_poll_timestamp_seconds {t}"
            );
        }
        fam(
            &mut out,
            "signalfoundry_run_finished_timestamp_seconds",
            "gauge",
            "When the last run finished (Unix time): alert on its age.",
        );
        if let Some(t) = unix_seconds(&self.finished_at) {
            let _ = writeln!(out, "signalfoundry_run_finished_timestamp_seconds {t}");
        }
        out
    }
}

/// An RFC 3339 time as Unix seconds with milliseconds (`1764000000.123`).
fn unix_seconds(t: &str) -> Option<String> {
    let ms = chrono::DateTime::parse_from_rfc3339(t)
        .ok()?
        .timestamp_millis();
    Some(format!(
        "{}.{:03}",
        ms.div_euclid(1000),
        ms.rem_euclid(1000)
    ))
}

fn fam(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value in the exposition format: backslash, quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the heartbeat, the history line and the metrics file. The report is serialized
/// before anything is written: a report that cannot be is an error, never an empty file.
/// The `(stage, counter)` pairs kept as totals over every run.
pub const TOTALS: [(&str, &str); 18] = [
    ("poll", "fetched"),
    ("poll", "queued"),
    ("poll", "quarantined"),
    ("triage", "triaged"),
    ("triage", "suppressed"),
    ("triage", "low"),
    ("triage", "medium"),
    ("triage", "high"),
    ("triage", "critical"),
    ("triage", "escalated"),
    ("triage", "quarantined"),
    ("triage", "vanished"),
    ("triage", "duplicates"),
    ("reconcile", "newly_lost"),
    ("deliver", "sent"),
    ("deliver", "retried"),
    ("cap", "deferred"),
    ("expire", "expired"),
];

/// Meta key of the totals (JSON).
pub const TOTALS_META: &str = "stage_totals";

/// Adds this run's figures to the totals kept in the ledger and returns them (one
/// transaction; before the heartbeat is written, so the metrics never show more than is kept).
pub fn accumulate(
    ledger: &mut crate::store::ledger::Ledger,
    stages: &[StageReport],
) -> Result<BTreeMap<String, u64>, crate::store::ledger::LedgerError> {
    ledger.write(|tx| {
        let mut totals: BTreeMap<String, u64> = tx
            .meta(TOTALS_META)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        for (stage, counter) in TOTALS {
            let key = format!("{stage}.{counter}");
            let add = stages
                .iter()
                .filter(|s| s.name == stage)
                .filter_map(|s| s.counters.get(counter))
                .sum::<u64>();
            let e = totals.entry(key).or_insert(0);
            *e = e.saturating_add(add);
        }
        let json = serde_json::to_string(&totals).unwrap_or_default();
        tx.meta_set(TOTALS_META, &json)?;
        Ok(totals)
    })
}

/// `heartbeats.jsonl` past `max` bytes becomes `heartbeats.jsonl.1` (the previous `.1` goes):
/// the history is bounded to about twice `max` (under the run lock: one writer).
fn rotate_history(root: &DirFd, max: u64) -> Result<(), HeartbeatError> {
    let size = std::fs::metadata(root.path_of(b"heartbeats.jsonl")).map_or(0, |m| m.len());
    if size < max {
        return Ok(());
    }
    root.remove_file(b"heartbeats.jsonl.1")?;
    root.rename_to(b"heartbeats.jsonl", root, b"heartbeats.jsonl.1")?;
    Ok(())
}

pub fn write(
    root: &DirFd,
    report: &RunReport,
    cfg: &crate::config::HeartbeatConfig,
    durability: Durability,
) -> Result<(), HeartbeatError> {
    let metrics_file = cfg.metrics_file.as_deref();
    let json = serde_json::to_string_pretty(report)?;
    let mut line = serde_json::to_string(report)?;
    line.push('\n');
    // One small file a run: made durable whenever durability is on (in batch mode too), so a
    // power loss never leaves an empty heartbeat for `status` and the alerting to read.
    let beat = if durability == Durability::Off {
        Durability::Off
    } else {
        Durability::Strict
    };
    root.replace("heartbeat.json", json.as_bytes(), beat)?;
    rotate_history(root, cfg.history_max_bytes)?;
    root.append("heartbeats.jsonl", line.as_bytes(), durability)?;
    let metrics = report.metrics();
    match metrics_file {
        None => Ok(root.replace("metrics.prom", metrics.as_bytes(), durability)?),
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("signalfoundry.prom");
            let dir = DirFd::open(dir)?;
            // node_exporter reads the textfile collector's directory as another user: there the
            // metrics (counts, no secret) are made world-readable before they appear, unlike
            // everything in the state directory.
            Ok(dir.replace_with_mode(name, metrics.as_bytes(), 0o644, durability)?)
        }
    }
}

/// The lag figures, from the ledger.
pub fn lag(ledger: &crate::store::ledger::Ledger) -> Lag {
    use chrono::{DateTime, Utc};
    let now = Utc::now();
    let age = |t: Option<String>| -> Option<i64> {
        t.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| (now - t.with_timezone(&Utc)).num_seconds())
    };
    let (newest_polled, oldest_waiting) = ledger.lag_times().unwrap_or_default();
    Lag {
        newest_polled_age_s: age(newest_polled),
        oldest_queued_age_s: age(oldest_waiting),
        last_successful_poll: ledger.meta_get("last_poll_ok").ok().flatten(),
    }
}
