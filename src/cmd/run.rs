//! `signalfoundry run`: the seven stages in order under the run lock. A stage's failure is
//! recorded and the stages that do not depend on it still run (indexer down: the queue is still
//! capped and triaged). Each stage prints one summary line; then the heartbeat's line; then the
//! reconcile block, whose last line is the verdict.
//!
//! Reports are folded without naming their fields: a stage's line and its heartbeat counters
//! both come from its [`Report`] (`Report::summary`, [`StageReport::of`]), and stages are named
//! by `Report::NAME`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::cmd::{Context, Failure, EXIT_FAILED, EXIT_OK};
use crate::stages::cap::CapReport;
use crate::stages::heartbeat::{
    self, ReconcileSummary, RunReport, RunStatus, StageReport, StageStatus,
};
use crate::stages::poll::PollReport;
use crate::stages::reconcile::ReconcileReport;
use crate::stages::triage::TriageReport;
use crate::stages::Report;
use crate::store::fsx::escape_text;
use crate::store::ledger::Ledger;
use crate::store::spool::{Notice, Prioritizer};
use crate::store::state::{Lock, StateDir};

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// A stage that ran to its report: its line to `out`, its entry (counters from the report).
fn reported<R: Report>(
    out: &mut dyn Write,
    report: &R,
    status: StageStatus,
    duration_ms: u64,
    error: Option<String>,
) -> StageReport {
    let _ = writeln!(out, "{}", report.summary(status.as_str()));
    StageReport::of(report, status, duration_ms, error)
}

/// A stage's status from its error.
fn status_of(err: &Option<String>) -> StageStatus {
    if err.is_some() {
        StageStatus::Failed
    } else {
        StageStatus::Ok
    }
}

/// What a caller adds to a run: the demo's in-memory password, the daemon's stop flag, its
/// cadence and its own reasons (a refused policy reload).
#[derive(Default)]
pub struct RunExtras<'a> {
    pub password: Option<&'a crate::stages::poll::Secret>,
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    pub reasons: Vec<String>,
    pub cadence: Option<std::time::Duration>,
}

/// What one run produced: the report (heartbeat) and the reconcile block.
pub struct RunOutcome {
    pub report: RunReport,
    pub block: String,
    pub exit_code: u8,
}

/// `signalfoundry run`: takes the run lock (exit 75 otherwise, nothing written), runs, prints.
pub fn run(ctx: &Context, policy: &sf_policy::Policy, prio: &Prioritizer) -> Result<u8, Failure> {
    preflight(ctx)?;
    let (state, mut ledger) = ctx.open(Lock::Run)?;
    let mut out = std::io::stdout().lock();
    let outcome = execute(
        ctx,
        policy,
        prio,
        &state,
        &mut ledger,
        RunExtras::default(),
        &mut out,
    );
    let _ = writeln!(out, "{}", outcome.block);
    let _ = out.flush();
    Ok(outcome.exit_code)
}

/// Configuration errors of `[indexer]` (a plain http:// URL, a missing or loose password file,
/// an unreadable CA file) are usage errors, found before anything is opened: exit 2, nothing
/// written. An indexer that cannot be reached is the poll stage's failure, as before.
pub fn preflight(ctx: &Context) -> Result<(), Failure> {
    match &ctx.config.indexer {
        Some(ix) => crate::stages::poll::preflight(ix).map_err(|e| {
            if e.is_config() {
                Failure::usage(anyhow::Error::new(e))
            } else {
                Failure::failed(anyhow::Error::new(e))
            }
        }),
        None => Ok(()),
    }
}

/// Runs every stage once (cap and triage repeated until drained or `max_duration`), writes the
/// heartbeat, and returns the outcome. Stage lines go to `out` as each stage ends.
pub fn execute(
    ctx: &Context,
    policy: &sf_policy::Policy,
    prio: &Prioritizer,
    state: &StateDir,
    ledger: &mut Ledger,
    extras: RunExtras<'_>,
    out: &mut dyn Write,
) -> RunOutcome {
    let password = extras.password;
    let started: DateTime<Utc> = Utc::now();
    let t0 = Instant::now();
    let deadline = t0 + ctx.config.run.max_duration;
    let run_id = format!(
        "r-{}-{}",
        started.format("%Y%m%dT%H%M%S%3fZ"),
        std::process::id()
    );
    let sp = crate::cmd::spool(ctx, state, prio);
    let mut notices: Vec<Notice> = Vec::new();
    let mut stages: Vec<StageReport> = Vec::new();
    let mut reasons: Vec<String> = extras.reasons.clone();

    // 1. poll
    let t = Instant::now();
    let poll = match &ctx.config.indexer {
        None => {
            let _ = writeln!(
                out,
                "{}: status=SKIPPED reason=no-indexer-configured",
                PollReport::NAME
            );
            StageReport::bare(
                PollReport::NAME,
                StageStatus::Skipped,
                ms(t),
                Some("no [indexer] configured".into()),
            )
        }
        Some(ix) => match crate::stages::poll::run(
            ix,
            &sp,
            ledger,
            ctx.config.queue.backlog_limit,
            password,
            false,
        ) {
            Ok(r) => reported(out, &r, StageStatus::Ok, ms(t), None),
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("poll failed: {msg}");
                let _ = writeln!(out, "{}: status=FAILED", PollReport::NAME);
                reasons.push(format!("poll failed: {msg}"));
                StageReport::bare(PollReport::NAME, StageStatus::Failed, ms(t), Some(msg))
            }
        },
    };
    stages.push(poll);

    // 2-5. cap and triage, repeated until drained or the deadline.
    let mut opts = ctx.triage_options(Some(deadline));
    opts.stop = extras.stop.clone();
    let triage = crate::stages::triage::Triage {
        sp: &sp,
        policy,
        opts: &opts,
    };
    let mut cap_total = CapReport::default();
    let mut tri_total = TriageReport::default();
    let (mut cap_ms, mut tri_ms) = (0u64, 0u64);
    let mut cap_err: Option<String> = None;
    let mut tri_err: Option<String> = None;
    loop {
        let t = Instant::now();
        match crate::stages::cap::run_once(
            &sp,
            ledger,
            ctx.config.queue.cap,
            ctx.protect_level(policy),
            Utc::now(),
            &mut notices,
        ) {
            Ok(r) => cap_total.add(&r),
            Err(e) => cap_err = Some(format!("{e:#}")),
        }
        cap_ms += ms(t);
        let t = Instant::now();
        let before = tri_total.claimed;
        match triage.run(ledger, &mut notices) {
            Ok(r) => tri_total.add(&r),
            Err(e) => tri_err = Some(format!("{e:#}")),
        }
        tri_ms += ms(t);
        let left = state.depth_of(&state.queue) + state.depth_of(&state.overflow);
        if cap_err.is_some()
            || tri_err.is_some()
            || left == 0
            || opts.should_stop()
            || tri_total.claimed == before
        {
            break;
        }
    }
    for n in &notices {
        let (what, reason) = (escape_text(&n.what), escape_text(&n.reason));
        tracing::warn!(entry = %what, "{reason}");
    }
    let cap_stage = reported(
        out,
        &cap_total,
        status_of(&cap_err),
        cap_ms,
        cap_err.clone(),
    );
    let tri_stage = reported(
        out,
        &tri_total,
        status_of(&tri_err),
        tri_ms,
        tri_err.clone(),
    );
    if let Some(e) = &cap_err {
        tracing::error!("cap failed: {e}");
        reasons.push(format!("cap failed: {e}"));
    }
    if let Some(e) = &tri_err {
        tracing::error!("triage failed: {e}");
        reasons.push(format!("triage failed: {e}"));
    }
    if tri_total.stopped_by_deadline {
        let signalled = extras
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
        reasons.push(if signalled {
            "stopped by a signal with a backlog left; the next run continues".into()
        } else {
            "max_duration reached with a backlog left".into()
        });
    }
    stages.push(cap_stage);
    stages.push(tri_stage);

    // Delivery: what the incident rounds made due (after the packs: messages point at them).
    if !ctx.config.notify.is_empty() {
        let t = Instant::now();
        let dopts = crate::stages::deliver::DeliverOptions {
            durability: ctx.durability(),
            deadline: Instant::now() + ctx.config.delivery.max_duration,
            stop: extras.stop.clone(),
            probe: true,
        };
        let stage = match crate::stages::deliver::run(
            ledger.path(),
            &ctx.config.notify,
            &ctx.config.delivery,
            &dopts,
        ) {
            Ok(r) => {
                let status = match r.status() {
                    "FAILED" => StageStatus::Failed,
                    _ => StageStatus::Ok,
                };
                for (name, fig) in &r.routes {
                    if let Some(e) = &fig.error {
                        reasons.push(format!("deliver: route {name} cannot be used: {e}"));
                    }
                }
                if r.dead > 0 {
                    reasons.push(format!(
                        "deliver: {} message(s) dead (signalfoundry outbox --status dead)",
                        r.dead
                    ));
                }
                if r.retried > 0 {
                    reasons.push(format!(
                        "deliver: {} attempt(s) failed and wait for a retry",
                        r.retried
                    ));
                }
                let _ = writeln!(out, "{}", r.summary(r.status()));
                StageReport::of(&r, status, ms(t), None)
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("deliver failed: {msg}");
                let _ = writeln!(
                    out,
                    "{}: status=FAILED",
                    crate::stages::deliver::DeliverReport::NAME
                );
                reasons.push(format!("deliver failed: {msg}"));
                StageReport::bare(
                    crate::stages::deliver::DeliverReport::NAME,
                    StageStatus::Failed,
                    ms(t),
                    Some(msg),
                )
            }
        };
        stages.push(stage);
    }

    // Retention: what `[retention]` no longer keeps goes (bounded per run), before reconcile
    // counts the books.
    {
        let t = Instant::now();
        let routes = ctx.routes();
        let eopts = crate::cmd::expire::options(ctx, &routes, false);
        let stage = match crate::stages::expire::run(state, ledger, &eopts) {
            Ok(r) => {
                let status = crate::cmd::expire::status(ctx, &r, false);
                if status == "SKIPPED" {
                    let _ = writeln!(
                        out,
                        "{}: status=SKIPPED reason=no-retention-configured",
                        crate::stages::expire::ExpireReport::NAME
                    );
                    StageReport::bare(
                        crate::stages::expire::ExpireReport::NAME,
                        StageStatus::Skipped,
                        ms(t),
                        Some("no [retention] configured".into()),
                    )
                } else {
                    reported(out, &r, StageStatus::Ok, ms(t), None)
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("expire failed: {msg}");
                let _ = writeln!(
                    out,
                    "{}: status=FAILED",
                    crate::stages::expire::ExpireReport::NAME
                );
                reasons.push(format!("expire failed: {msg}"));
                StageReport::bare(
                    crate::stages::expire::ExpireReport::NAME,
                    StageStatus::Failed,
                    ms(t),
                    Some(msg),
                )
            }
        };
        stages.push(stage);
    }

    // 6. reconcile
    let t = Instant::now();
    let (block, summary, rec_stage) = match crate::stages::reconcile::run(
        state,
        ledger,
        false,
        true,
        ctx.incident_rounds(),
        &ctx.routes(),
    ) {
        Ok(r) => {
            let s = ReconcileSummary {
                verdict: r.verdict.to_string(),
                mismatches: r.mismatches.len() as u64,
                newly_lost: r.newly_lost.len() as u64,
                rows: r.rows,
                in_flight: r.in_flight,
            };
            // The block's first line is `r.summary("OK")`: the same counters.
            let stage = StageReport::of(&r, StageStatus::Ok, ms(t), None);
            (r.block(), s, stage)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            let s = ReconcileSummary {
                verdict: "FAIL".into(),
                ..ReconcileSummary::default()
            };
            (
                format!("{}: status=FAILED\nVERDICT=FAIL", ReconcileReport::NAME),
                s,
                StageReport::bare(ReconcileReport::NAME, StageStatus::Failed, ms(t), Some(msg)),
            )
        }
    };
    if summary.verdict != "PASS" {
        reasons.push(format!(
            "reconcile said {} ({} mismatches, {} newly lost)",
            summary.verdict, summary.mismatches, summary.newly_lost
        ));
    }
    stages.push(rec_stage);

    // 7. heartbeat
    let ledger_counts: BTreeMap<String, u64> = ledger
        .counts()
        .map(|v| {
            v.into_iter()
                .map(|(s, n)| (s.as_str().to_string(), n))
                .collect()
        })
        .unwrap_or_default();
    let quarantined = ledger_counts.get("quarantined").copied().unwrap_or(0);
    if quarantined > ctx.config.triage.quarantine_alarm {
        reasons.push(format!(
            "quarantine holds {quarantined} alerts, over quarantine_alarm ({})",
            ctx.config.triage.quarantine_alarm
        ));
    }
    let any_failed = stages.iter().any(|s| s.status == StageStatus::Failed);
    let core = [TriageReport::NAME, ReconcileReport::NAME];
    let core_failed = stages
        .iter()
        .any(|s| s.status == StageStatus::Failed && core.contains(&s.name))
        || summary.verdict != "PASS";
    let status = if core_failed {
        RunStatus::Failed
    } else if any_failed || !reasons.is_empty() {
        RunStatus::Degraded
    } else {
        RunStatus::Ok
    };
    let mut report = RunReport {
        run_id: run_id.clone(),
        started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        finished_at: String::new(),
        status,
        reasons,
        stages,
        depths: state.depths(),
        ledger: ledger_counts,
        reconcile: summary,
        lag: heartbeat::lag(ledger),
        signature_hits: tri_total.signature_hits.clone(),
        signature_held_back: tri_total.signature_held_back.clone(),
        signatures: match crate::cmd::policy_stats::figures(
            ledger,
            policy,
            "",
            Utc::now(),
            crate::model::noise::DEFAULT_DAYS,
            false,
        ) {
            Ok(f) => Some(f.summary()),
            Err(e) => {
                tracing::warn!("signature figures not in this heartbeat: {e}");
                None
            }
        },
        cadence_s: extras.cadence.map(|c| c.as_secs()),
        outbox: crate::cmd::outbox::by_route(ledger, &ctx.config.notify),
        totals: BTreeMap::new(),
        policy: match &ctx.config.policy.file {
            Some(f) => format!(
                "{} (version {})",
                crate::store::fsx::shown(f),
                policy.version()
            ),
            None => "none: severity thresholds only".into(),
        },
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    match heartbeat::accumulate(ledger, &report.stages) {
        Ok(t) => report.totals = t,
        Err(e) => tracing::warn!("totals not kept for this run: {e}"),
    }
    let t = Instant::now();
    report.finished_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let hb = heartbeat::write(
        &state.root,
        &report,
        &ctx.config.heartbeat,
        ctx.durability(),
    );
    let hb_stage = match &hb {
        Ok(()) => StageReport::bare(heartbeat::NAME, StageStatus::Ok, ms(t), None),
        Err(e) => {
            tracing::error!("heartbeat failed: {e}");
            StageReport::bare(
                heartbeat::NAME,
                StageStatus::Failed,
                ms(t),
                Some(e.to_string()),
            )
        }
    };
    let hb_failed = hb_stage.status == StageStatus::Failed;
    report.stages.push(hb_stage);
    let _ = writeln!(out, "{}", report.summary());
    let mut failed = report
        .stages
        .iter()
        .any(|s| s.status == StageStatus::Failed)
        || hb_failed
        || report.reconcile.verdict != "PASS";
    // The run history row: the report, or no row (an empty report would read as a run that
    // did nothing).
    match serde_json::to_string(&report) {
        Ok(json) => {
            let row = ledger.write(|tx| {
                tx.record_run(
                    &report.run_id,
                    &report.started_at,
                    &report.finished_at,
                    report.status.as_str(),
                    &json,
                    ctx.config.heartbeat.keep_runs,
                )
            });
            if let Err(e) = row {
                tracing::warn!("run history row not written: {e}");
            }
        }
        Err(e) => {
            tracing::error!("run history row not written: cannot serialize the run report: {e}");
            failed = true;
        }
    }
    RunOutcome {
        report,
        block,
        exit_code: if failed { EXIT_FAILED } else { EXIT_OK },
    }
}
