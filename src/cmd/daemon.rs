//! `signalfoundry daemon --every DURATION`: `run` on a cadence until SIGTERM or SIGINT.
//!
//! Design constraints:
//! - The run lock is held for a run, not between runs: between runs `requeue`, `reconcile`,
//!   `poll --audit`, `cap`, `deliver` and `run` itself take it as they would without a daemon.
//!   A run that comes due while another process holds it waits for it (said once in the log),
//!   still answering SIGTERM/SIGINT, and starts as soon as it is free; no run goes without
//!   it. The daemon's own `daemon.lock`, held for its life, refuses a second daemon (exit 75).
//! - What another process may have changed between runs is read again at each run, under the
//!   lock: `queue/` and `overflow/` are followed by name (a `cap` may have exchanged them);
//!   everything else a run reads (the poll cursor, seen ids, rows) is in the ledger, read by
//!   each stage.
//! - The deliver passes between runs take the run lock for each pass, as `run` and `deliver`
//!   do (so no two processes deliver); a pass that finds it held is skipped.
//! - A run that overruns its slot is not stacked: the next starts when it ends.
//! - SIGTERM/SIGINT set a flag: the batch in hand is finished, no new batch is claimed, the
//!   heartbeat is written, and the daemon exits 0.
//! - SIGHUP reloads the policy; one that fails `policy check` is refused and the old one kept,
//!   said in the log and in the next heartbeat's reasons.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cmd::run::{execute, RunExtras};
use crate::cmd::{Context, Failure, EXIT_OK};
use crate::store::state::{Held, Lock, StateDir, StateError};

/// Between runs, the daemon's deliver pass runs this often.
const DELIVER_EVERY: Duration = Duration::from_secs(5);

/// A run that is due while another process holds the run lock tries it again this often.
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// Waits for the run lock (another process's `requeue`, `reconcile` or `run` holds it until it
/// ends), saying so once; `None` when a stop signal came first. Any other error taking it is
/// the daemon's failure.
fn wait_for_run_lock(state: &StateDir, stop: &AtomicBool) -> Result<Option<Held>, Failure> {
    let mut waiting = false;
    loop {
        match state.take_run_lock() {
            Ok(held) => {
                if waiting {
                    tracing::info!("the run lock is free: the run starts");
                }
                return Ok(Some(held));
            }
            Err(StateError::Locked(path)) => {
                if !waiting {
                    tracing::info!(
                        lock = %crate::store::fsx::shown(&path),
                        "a run is due but another process holds the run lock (a requeue, reconcile, poll, cap, deliver or run); waiting for it to finish"
                    );
                    waiting = true;
                }
            }
            Err(e) => return Err(e.into()),
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        std::thread::sleep(LOCK_RETRY);
    }
}

/// One deliver pass between runs, ending by the next run's slot, under the run lock (as
/// `run` and `deliver` deliver, so that no two processes deliver); skipped when another
/// process holds it. Said only when it did something.
fn deliver_between(
    ctx: &Context,
    state: &StateDir,
    ledger: &crate::store::ledger::Ledger,
    until: Instant,
    stop: &Arc<AtomicBool>,
) {
    use crate::stages::Report;
    let _held = match state.take_run_lock() {
        Ok(held) => held,
        Err(StateError::Locked(_)) => {
            tracing::debug!(
                "deliver between runs: another process holds the run lock; this pass is skipped"
            );
            return;
        }
        Err(e) => {
            tracing::warn!("deliver between runs: {e}");
            return;
        }
    };
    let opts = crate::stages::deliver::DeliverOptions {
        durability: ctx.durability(),
        deadline: until.min(Instant::now() + ctx.config.delivery.max_duration),
        stop: Some(Arc::clone(stop)),
        probe: false,
    };
    match crate::stages::deliver::run(
        ledger.path(),
        &ctx.config.notify,
        &ctx.config.delivery,
        &opts,
    ) {
        Ok(r) if r.sent + r.retried > 0 => tracing::info!("{}", r.summary(r.status())),
        Ok(_) => {}
        Err(e) => tracing::warn!("deliver between runs: {e}"),
    }
}

/// The shortest cadence `daemon --every` takes: below it a daemon would spin, filling the run
/// history and `heartbeats.jsonl` without end.
pub const MIN_EVERY: Duration = Duration::from_secs(10);

pub fn run(ctx: &Context, policy: sf_policy::Policy, every: Duration) -> Result<u8, Failure> {
    // A test hook lowers the floor (tests of the cadence run at 1 s).
    let floor = std::env::var("SIGNALFOUNDRY_DEBUG_MIN_EVERY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(MIN_EVERY, Duration::from_millis);
    if every < floor {
        return Err(Failure::usage(anyhow::anyhow!(
            "daemon --every {} is shorter than {}: a cadence that short only spins; use --every 1m (or the systemd timer)",
            humantime::format_duration(every),
            humantime::format_duration(floor)
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| Failure {
            code: crate::cmd::EXIT_FAILED,
            error: anyhow::anyhow!("cannot install the signal handler: {e}"),
        })?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)).map_err(|e| {
        Failure {
            code: crate::cmd::EXIT_FAILED,
            error: anyhow::anyhow!("cannot install the SIGHUP handler: {e}"),
        }
    })?;
    crate::cmd::run::preflight(ctx)?;
    // `daemon.lock` for the daemon's life; the run lock for each run (below).
    let (state, mut ledger) = ctx.open(Lock::Daemon)?;
    let mut policy = policy;
    ctx.warn_expiring(&policy);
    tracing::info!(every = %humantime::format_duration(every), state = %crate::store::fsx::shown(state.path()), "daemon started");
    let mut pending_reasons: Vec<String> = Vec::new();
    // A refused reload is said at every run while the file on disk still cannot be loaded
    // (a restart would fail on it), not for one cycle only.
    let mut refused = false;
    loop {
        // The run lock for this run only, dropped when it ends (by a `?` or a panic too).
        let Some(held) = wait_for_run_lock(&state, &stop)? else {
            tracing::info!(
                "stop signal while waiting for the run lock: no run was started; exiting"
            );
            return Ok(EXIT_OK);
        };
        // Between runs another process's `cap` may have exchanged queue/ and overflow/: this
        // run works in the directories of those names.
        state.follow_spool_names().map_err(Failure::failed)?;
        // After the wait: a SIGHUP that came during it is this run's.
        if hup.swap(false, Ordering::SeqCst) {
            match ctx.policy() {
                Ok(p) => {
                    tracing::info!(version = p.version(), "policy reloaded");
                    ctx.warn_expiring(&p);
                    policy = p;
                    refused = false;
                }
                Err(f) => {
                    let msg = format!(
                        "policy reload refused, the previous policy is kept: {:#}",
                        f.error
                    );
                    tracing::error!("{msg}");
                    refused = true;
                }
            }
        }
        if refused {
            match ctx.policy() {
                Err(f) => pending_reasons.push(format!(
                    "policy reload refused, the previous policy (version {}) is kept; the file on disk still cannot be loaded, so a restart would fail: {:#}",
                    policy.version(),
                    f.error
                )),
                Ok(p) if p.version() == policy.version() => refused = false,
                Ok(p) => pending_reasons.push(format!(
                    "the policy file on disk (version {}) is not the one in force (version {}): send SIGHUP to load it",
                    p.version(),
                    policy.version()
                )),
            }
        }
        let started = Instant::now();
        let prio = Context::prioritizer(&policy);
        let extras = RunExtras {
            stop: Some(Arc::clone(&stop)),
            reasons: std::mem::take(&mut pending_reasons),
            cadence: Some(every),
            ..RunExtras::default()
        };
        let mut out = std::io::stdout().lock();
        let outcome = execute(ctx, &policy, &prio, &state, &mut ledger, extras, &mut out);
        drop(held);
        let _ = writeln!(out, "{}", outcome.block);
        let _ = out.flush();
        drop(out);
        if stop.load(Ordering::SeqCst) {
            tracing::info!(
                "stop signal: the batch in hand was finished and the heartbeat written; exiting"
            );
            return Ok(EXIT_OK);
        }
        // Sleep to the next slot (none when the run overran it) without the run lock, waking
        // for signals; delivery goes on meanwhile (retries and held messages as they come due),
        // each pass under the lock.
        let next = started + every;
        let mut deliver_at = Instant::now() + DELIVER_EVERY;
        while Instant::now() < next {
            if !ctx.config.notify.is_empty() && Instant::now() >= deliver_at {
                deliver_between(ctx, &state, &ledger, next, &stop);
                deliver_at = Instant::now() + DELIVER_EVERY;
            }
            if stop.load(Ordering::SeqCst) {
                tracing::info!("stop signal between runs: the last heartbeat stands; exiting");
                return Ok(EXIT_OK);
            }
            if hup.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(
                Duration::from_millis(100).min(next.saturating_duration_since(Instant::now())),
            );
        }
    }
}
