//! `signalfoundry status [--json]`: depths, the last heartbeat and its age (stale past twice the
//! daemon's cadence is said loudly), ledger totals, and signatures that expire within a week.
//! Takes no lock and changes nothing.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::cmd::{Context, Failure, EXIT_FAILED, EXIT_OK};
use crate::store::fsx::{escape_text, ReadOutcome};
use crate::store::state::{Lock, StateDir};

#[derive(Debug, Serialize)]
pub struct HeartbeatStatus {
    pub status: Option<String>,
    pub run_id: Option<String>,
    pub finished_at: Option<String>,
    pub age_s: Option<i64>,
    pub cadence_s: Option<u64>,
    pub stale: bool,
    pub reasons: Vec<String>,
    /// The policy the last run used (file and version).
    pub policy: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Expiring {
    pub id: String,
    pub expires: String,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub state_dir: String,
    pub depths: BTreeMap<String, u64>,
    pub heartbeat: Option<HeartbeatStatus>,
    pub ledger: BTreeMap<String, u64>,
    pub ledger_total: u64,
    /// Open incidents (their window plus `[incidents] close_after` not yet passed), by their
    /// highest member's bucket.
    pub open_incidents: BTreeMap<String, u64>,
    /// Delivery messages per route and state (`orphaned`: a route no longer configured).
    pub outbox: BTreeMap<String, BTreeMap<String, u64>>,
    pub expiring_within_7_days: Vec<Expiring>,
}

fn heartbeat(
    state: &StateDir,
    now: DateTime<Utc>,
    expected: Option<std::time::Duration>,
) -> Option<HeartbeatStatus> {
    let ReadOutcome::Bytes(b) = state.root.read_regular(b"heartbeat.json", 16 << 20).ok()? else {
        return None;
    };
    let v: Value = serde_json::from_slice(&b).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(escape_text);
    let finished_at = s("finished_at");
    let age_s = v
        .get("finished_at")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (now - t.with_timezone(&Utc)).num_seconds());
    // The daemon's cadence when a daemon wrote it, else the configured expectation (a timer).
    let cadence_s = v
        .get("cadence_s")
        .and_then(Value::as_u64)
        .or_else(|| expected.map(|d| d.as_secs().max(1)));
    let stale = matches!((age_s, cadence_s), (Some(a), Some(c)) if a > 2 * c as i64);
    Some(HeartbeatStatus {
        status: s("status"),
        run_id: s("run_id"),
        finished_at,
        age_s,
        cadence_s,
        stale,
        policy: s("policy").filter(|p| !p.is_empty()),
        reasons: v
            .get("reasons")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(escape_text))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

pub fn run(ctx: &Context, policy: &sf_policy::Policy, json: bool) -> Result<u8, Failure> {
    // Read-only: a state directory that does not exist is reported, not created.
    if std::fs::symlink_metadata(&ctx.state_path).is_err() {
        return Err(Failure {
            code: EXIT_FAILED,
            error: anyhow::anyhow!(
                "no state directory at {} (nothing has run here yet, or --state/state_dir points elsewhere)",
                crate::store::fsx::escape_name(ctx.state_path.as_os_str().as_encoded_bytes())
            ),
        });
    }
    let (state, ledger) = ctx.open(Lock::None)?;
    let now = Utc::now();
    let ledger_counts: BTreeMap<String, u64> = ledger
        .counts()
        .map_err(|e| Failure {
            code: EXIT_FAILED,
            error: e.into(),
        })?
        .into_iter()
        .map(|(s, n)| (s.as_str().to_string(), n))
        .collect();
    let mut open_incidents: BTreeMap<String, u64> = sf_policy::Bucket::ALL
        .iter()
        .map(|b| (b.as_str().to_string(), 0))
        .collect();
    for (b, n) in ledger
        .open_incidents_by_bucket(&crate::store::ledger::incidents::time_text(
            crate::stages::incidents::build::minus(now, ctx.config.incidents.close_after),
        ))
        .map_err(|e| Failure {
            code: EXIT_FAILED,
            error: e.into(),
        })?
    {
        open_incidents.insert(b, n);
    }
    let st = Status {
        open_incidents,
        outbox: crate::cmd::outbox::by_route(&ledger, &ctx.config.notify),
        state_dir: crate::store::fsx::shown(state.path()),
        depths: state.depths(),
        heartbeat: heartbeat(&state, now, ctx.config.heartbeat.expected_every),
        ledger_total: ledger_counts.values().sum(),
        ledger: ledger_counts,
        expiring_within_7_days: policy
            .expiring_within(now, 7)
            .into_iter()
            .map(|(id, d)| Expiring {
                id: escape_text(&id),
                expires: d.to_string(),
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::to_string(&st).map_err(|e| Failure {
            code: EXIT_FAILED,
            error: anyhow::Error::new(e).context("serialize the status"),
        })?;
        let _ = writeln!(out, "{line}");
        return Ok(EXIT_OK);
    }
    let _ = writeln!(out, "state directory: {}", st.state_dir);
    match &st.heartbeat {
        None => {
            let _ = writeln!(out, "heartbeat: none yet (no run has finished here)");
        }
        Some(h) => {
            let age = h.age_s.map_or_else(
                || "unknown".to_string(),
                |a| {
                    humantime::format_duration(std::time::Duration::from_secs(a.max(0) as u64))
                        .to_string()
                },
            );
            let _ = writeln!(
                out,
                "heartbeat: status={} age={age} run_id={}",
                h.status.as_deref().unwrap_or("?"),
                h.run_id.as_deref().unwrap_or("?")
            );
            if h.stale {
                let _ = writeln!(
                    out,
                    "WARNING: the heartbeat is STALE: older than twice the expected cadence ({}s: the daemon's, or [heartbeat] expected_every). Is the daemon or the timer running?",
                    h.cadence_s.unwrap_or(0)
                );
            }
            for r in &h.reasons {
                let _ = writeln!(out, "  reason: {r}");
            }
            if let Some(p) = &h.policy {
                let _ = writeln!(out, "policy in force (last run): {p}");
            }
        }
    }
    let depths: Vec<String> = st.depths.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(out, "depths: {}", depths.join(" "));
    let ledger: Vec<String> = st.ledger.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "ledger: {} total={}",
        ledger.join(" "),
        st.ledger_total
    );
    let _ = writeln!(
        out,
        "open incidents: high={} medium={} low={} suppressed={} (signalfoundry incidents --open)",
        st.open_incidents.get("high").unwrap_or(&0),
        st.open_incidents.get("medium").unwrap_or(&0),
        st.open_incidents.get("low").unwrap_or(&0),
        st.open_incidents.get("suppressed").unwrap_or(&0),
    );
    let mut dead = 0;
    for (route, states) in &st.outbox {
        let n = |k: &str| states.get(k).copied().unwrap_or(0);
        dead += n("dead");
        let orphaned = if n("orphaned") > 0 {
            format!(" orphaned={} (no such route configured)", n("orphaned"))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "outbox {}: pending={} sent={} dead={}{orphaned}",
            escape_text(route),
            n("pending"),
            n("sent"),
            n("dead")
        );
    }
    if dead > 0 {
        let _ = writeln!(
            out,
            "WARNING: {dead} delivery message(s) are DEAD: signalfoundry outbox --status dead shows why; signalfoundry outbox retry --dead sends them again"
        );
    }
    if st.expiring_within_7_days.is_empty() {
        let _ = writeln!(out, "signatures expiring within a week: none");
    }
    for e in &st.expiring_within_7_days {
        let _ = writeln!(
            out,
            "signature {} expires {} (renew it or let it lapse on purpose)",
            e.id, e.expires
        );
    }
    Ok(EXIT_OK)
}
