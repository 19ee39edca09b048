//! `signalfoundry daemon --every DURATION`: `run` on a cadence until SIGTERM or SIGINT.
//!
//! Design constraints:
//! - The run lock is held for the daemon's whole life: no `run` or lock-taking command can
//!   interleave with it (they exit 75).
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
use crate::store::state::Lock;

/// Between runs, the daemon's deliver pass runs this often.
const DELIVER_EVERY: Duration = Duration::from_secs(5);

/// One deliver pass between runs, ending by the next run's slot; said only when it did
/// something.
fn deliver_between(
    ctx: &Context,
    ledger: &crate::store::ledger::Ledger,
    until: Instant,
    stop: &Arc<AtomicBool>,
) {
    use crate::stages::Report;
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
    let (state, mut ledger) = ctx.open(Lock::Run)?;
    let mut policy = policy;
    ctx.warn_expiring(&policy);
    tracing::info!(every = %humantime::format_duration(every), state = %crate::store::fsx::shown(state.path()), "daemon started");
    let mut pending_reasons: Vec<String> = Vec::new();
    // A refused reload is said at every run while the file on disk still cannot be loaded
    // (a restart would fail on it), not for one cycle only.
    let mut refused = false;
    loop {
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
        let _ = writeln!(out, "{}", outcome.block);
        let _ = out.flush();
        drop(out);
        if stop.load(Ordering::SeqCst) {
            tracing::info!(
                "stop signal: the batch in hand was finished and the heartbeat written; exiting"
            );
            return Ok(EXIT_OK);
        }
        // Sleep to the next slot (none when the run overran it), waking for signals; delivery
        // goes on meanwhile (retries and held messages as they come due).
        let next = started + every;
        let mut deliver_at = Instant::now() + DELIVER_EVERY;
        while Instant::now() < next {
            if !ctx.config.notify.is_empty() && Instant::now() >= deliver_at {
                deliver_between(ctx, &ledger, next, &stop);
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
