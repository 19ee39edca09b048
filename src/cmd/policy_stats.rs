//! `signalfoundry policy stats [--days 30] [--at TIME] [--json]`: the noise figures of the
//! configured policy's signatures (`model::noise`) from the ledger's per-day tables
//! (`store::ledger::noise`): hits per day, last hit, share of every suppressed alert, never hit,
//! expired and expiring, held back. Takes no lock and changes nothing, as `status`; the
//! heartbeat's `signatures` are [`figures`] too.
//!
//! Design constraints:
//! - Text from the policy (signature ids) and paths are escaped for the terminal
//!   ([`escape_text`], `fsx::shown`), in the JSON as in the text, as `status` does.

use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{DateTime, Utc};

use crate::cmd::{Cli, Context, Failure, EXIT_FAILED, EXIT_OK};
use crate::model::noise::{self, NoiseFigures};
use crate::store::fsx::escape_text;
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::state::Lock;

/// The longest period (the ledger keeps this many days before today).
pub const MAX_DAYS: u32 = crate::store::ledger::noise::KEEP_DAYS;

/// The policy in force as the heartbeat and these figures name it: its file and version.
pub fn policy_label(ctx: &Context, policy: &sf_policy::Policy) -> String {
    match &ctx.config.policy.file {
        Some(f) => format!(
            "{} (version {})",
            crate::store::fsx::shown(f),
            policy.version()
        ),
        None => "none: severity thresholds only".into(),
    }
}

/// The figures of the `days` days ending with the day of `now` (each signature's last hit
/// looked up over every kept day only when `with_last_hits`: the heartbeat does without).
pub fn figures(
    ledger: &Ledger,
    policy: &sf_policy::Policy,
    label: &str,
    now: DateTime<Utc>,
    days: u32,
    with_last_hits: bool,
) -> Result<NoiseFigures, LedgerError> {
    let to = now.date_naive();
    let rows = ledger.noise_rows(noise::period_start(to, days), to, with_last_hits)?;
    Ok(noise::figures(&rows, policy, label, now, days))
}

/// Every signature id through [`escape_text`] (dates and figures are ours).
fn escaped(mut f: NoiseFigures) -> NoiseFigures {
    for s in &mut f.signatures {
        s.id = escape_text(&s.id);
    }
    for n in &mut f.never_hit {
        n.id = escape_text(&n.id);
    }
    for e in f.expired.iter_mut().chain(&mut f.expiring_within_7_days) {
        e.id = escape_text(&e.id);
    }
    for h in &mut f.held_back {
        h.id = escape_text(&h.id);
    }
    f
}

pub fn run(cli: &Cli, days: u32, at: Option<&str>, json: bool) -> Result<u8, Failure> {
    let ctx = Context::resolve(cli)?;
    let policy = ctx.policy()?;
    let now = match at {
        Some(a) => sf_policy::cli::parse_at(a).map_err(|e| Failure::usage(anyhow::anyhow!(e)))?,
        None => Utc::now(),
    };
    // Read-only: a state directory that does not exist is reported, not created.
    if std::fs::symlink_metadata(&ctx.state_path).is_err() {
        return Err(Failure {
            code: EXIT_FAILED,
            error: anyhow::anyhow!(
                "no state directory at {} (nothing has run here yet, or --state/state_dir points elsewhere)",
                crate::store::fsx::shown(&ctx.state_path)
            ),
        });
    }
    let (_state, ledger) = ctx.open(Lock::None)?;
    let f = figures(
        &ledger,
        &policy,
        &policy_label(&ctx, &policy),
        now,
        days,
        true,
    )
    .map_err(Failure::failed)?;
    let f = escaped(f);
    let out = if json {
        serde_json::to_string(&f).map_err(|e| {
            Failure::failed(anyhow::Error::new(e).context("serialize the noise figures"))
        })? + "\n"
    } else {
        text(&f)
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    Ok(EXIT_OK)
}

/// The text report: the period, the table (most hits first), then the hits per day and the
/// lists, each headed by its count.
pub fn text(f: &NoiseFigures) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "policy stats: {} days, {} to {} (UTC days of the alerts' times)",
        f.days, f.from, f.to
    );
    let _ = writeln!(
        s,
        "policy: {}: {} signatures",
        f.policy, f.signatures_in_policy
    );
    if let Some(since) = &f.counted_from {
        let _ = writeln!(
            s,
            "note: only alerts triaged since {since} are counted (the ledger was upgraded then)"
        );
    }
    let _ = writeln!(
        s,
        "suppressed alerts: {} (by signatures and overrides)",
        f.suppressed
    );
    if f.signatures.is_empty() {
        let _ = writeln!(s, "no signature matched an alert in these days");
    } else {
        let w = f
            .signatures
            .iter()
            .map(|x| x.id.chars().count() + usize::from(!x.in_policy) * 2)
            .chain([9])
            .max()
            .unwrap_or(9);
        let _ = writeln!(
            s,
            "{:<w$}  {:>7}  {:>7}  {:>6}  {:>9}  last hit",
            "signature", "hits", "per day", "share", "held back"
        );
        for x in &f.signatures {
            // A signature that is no longer in the policy is starred.
            let id = if x.in_policy {
                x.id.clone()
            } else {
                format!("{} *", x.id)
            };
            let _ = writeln!(
                s,
                "{id:<w$}  {:>7}  {:>7.2}  {:>5.1}%  {:>9}  {}",
                x.hits,
                x.hits_per_day,
                x.share * 100.0,
                x.held_back,
                x.last_hit.as_deref().unwrap_or("never")
            );
        }
        if f.signatures.iter().any(|x| !x.in_policy) {
            let _ = writeln!(s, "(* not in the policy in force)");
        }
        let mut days: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for x in &f.signatures {
            for (d, n) in &x.per_day {
                if n.hits > 0 {
                    days.entry(d)
                        .or_default()
                        .push(format!("{}={}", x.id, n.hits));
                }
            }
        }
        let _ = writeln!(s, "hits per day:");
        for (d, list) in &days {
            let _ = writeln!(s, "  {d}  {}", list.join(" "));
        }
    }
    let _ = writeln!(
        s,
        "never hit in {} days (candidates for removal): {}",
        f.days,
        f.never_hit.len()
    );
    for n in &f.never_hit {
        let _ = writeln!(
            s,
            "  {}  last hit: {}",
            n.id,
            n.last_hit.as_deref().unwrap_or("never")
        );
    }
    let _ = writeln!(s, "expired: {}", f.expired.len());
    for e in &f.expired {
        let _ = writeln!(
            s,
            "  {}  expired {}: it matches nothing (renew it or remove it)",
            e.id, e.expires
        );
    }
    let _ = writeln!(
        s,
        "expiring within {} days: {}",
        noise::EXPIRING_DAYS,
        f.expiring_within_7_days.len()
    );
    for e in &f.expiring_within_7_days {
        let _ = writeln!(s, "  {}  expires {}", e.id, e.expires);
    }
    let _ = writeln!(s, "held back (matched high alerts): {}", f.held_back.len());
    for h in &f.held_back {
        let days: Vec<String> = f
            .signatures
            .iter()
            .find(|x| x.id == h.id)
            .map(|x| {
                x.per_day
                    .iter()
                    .filter(|(_, n)| n.held_back > 0)
                    .map(|(d, n)| format!("{d}: {}", n.held_back))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {}  {} high alert{} not suppressed ({}): worth a look",
            h.id,
            h.held_back,
            if h.held_back == 1 { "" } else { "s" },
            days.join(", ")
        );
    }
    s
}
