//! `signalfoundry policy replay --policy CANDIDATE.toml [--since 7d] [--bucket B] [--guard
//! KEYS_FILE] [--json]`: the stored alerts of a period decided again with a candidate policy,
//! and what would change (`stages::replay`). Takes no lock and writes nothing: the state
//! directory is opened by descriptor (not adopted: nothing is created or tightened), the
//! ledger on a connection that cannot write.
//!
//! Exit codes: 0 no guard hit; 1 a guarded alert would be lowered, or the state could not be
//! read; 2 usage, configuration, or an invalid candidate (its diagnostics on stderr as
//! `policy check` prints them).

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::{Cli, Context, Failure, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::stages::replay::compare::Guard;
use crate::stages::replay::report::Labels;
use crate::stages::replay::{self, ReplayOptions};
use crate::store::fsx::{shown, DirFd};
use crate::store::ledger::readonly::ReadOnlyLedger;

/// What `policy replay` was asked.
pub struct Args<'a> {
    pub candidate: &'a Path,
    pub since: &'a str,
    pub bucket: Option<sf_policy::Bucket>,
    pub guard: Option<&'a Path>,
    pub json: bool,
}

/// `--since`: a duration back from `now` (`7d`, `36h`), or a time (RFC 3339, or a date for
/// midnight UTC).
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = humantime::parse_duration(s.trim()) {
        return chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| format!("--since {s:?} reaches before any time"));
    }
    sf_policy::cli::parse_at(s).map_err(|_| {
        format!(
            "invalid --since {:?}: write a duration back from now (7d, 36h, 2w) or a time (2026-01-31, or RFC 3339)",
            crate::store::fsx::escape_text(s)
        )
    })
}

/// The candidate, compiled; an invalid one's diagnostics go to stderr as `policy check` prints
/// them (`Err(None)`: exit 2 with nothing more to say).
fn candidate(path: &Path, now: DateTime<Utc>) -> Result<sf_policy::Policy, Option<Failure>> {
    match sf_policy::cli::load(path) {
        Ok((policy, warnings)) => {
            let file = shown(path);
            for w in warnings.iter().chain(policy.expiry_warnings(now).iter()) {
                tracing::warn!("{}", w.located(&file));
            }
            Ok(policy)
        }
        Err(sf_policy::cli::LoadError::Invalid { .. }) => {
            let mut report = Vec::new();
            sf_policy::cli::check(path, &mut report, &mut std::io::sink());
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&report);
            let _ = writeln!(
                err,
                "signalfoundry: error: the candidate policy {} is invalid; nothing was replayed",
                shown(path)
            );
            Err(None)
        }
        Err(e) => Err(Some(Failure::usage(e))),
    }
}

/// `signalfoundry policy replay`.
pub fn run(cli: &Cli, args: &Args<'_>) -> Result<u8, Failure> {
    let now = Utc::now();
    let since = parse_since(args.since, now).map_err(|e| Failure::usage(anyhow::anyhow!(e)))?;
    let candidate = match candidate(args.candidate, now) {
        Ok(p) => p,
        Err(None) => return Ok(EXIT_USAGE),
        Err(Some(f)) => return Err(f),
    };
    let guard = match args.guard {
        None => Guard::default(),
        Some(g) => Guard::parse(&std::fs::read_to_string(g).map_err(|e| {
            Failure::usage(anyhow::anyhow!(
                "cannot read the guard file {}: {e}",
                shown(g)
            ))
        })?),
    };
    let ctx = Context::resolve(cli)?;
    // The current policy is asked only to say how far the stored decisions are from it.
    let current = match ctx.policy() {
        Ok(p) => Some(p),
        Err(f) => {
            tracing::warn!(
                "the configured policy cannot be loaded, so the report cannot say how the current policy differs: {:#}",
                f.error
            );
            None
        }
    };
    let current_label = current.as_ref().map(|p| match &ctx.config.policy.file {
        Some(f) => format!("{}, version {}", shown(f), p.version()),
        None => "none: severity thresholds only".to_string(),
    });
    let state = &ctx.state_path;
    if std::fs::symlink_metadata(state).is_err() {
        return Err(Failure::usage(anyhow::anyhow!(
            "no state directory at {} (nothing has run here yet, or --state/state_dir points elsewhere)",
            shown(state)
        )));
    }
    let root = DirFd::open(state).map_err(Failure::usage)?;
    if !root.has_entry("ledger.db").map_err(Failure::failed)? {
        return Err(Failure::usage(anyhow::anyhow!(
            "no ledger.db in {} (nothing has been triaged here)",
            shown(state)
        )));
    }
    let ledger = ReadOnlyLedger::open(&state.join("ledger.db")).map_err(Failure::failed)?;
    let opts = ReplayOptions {
        candidate: &candidate,
        current: current.as_ref(),
        since,
        bucket: args.bucket,
        guard: &guard,
        now,
        max_alert_bytes: ctx.config.triage.max_alert_bytes,
        threads: replay::default_threads(),
    };
    let report = replay::run(&root, &ledger, &opts).map_err(Failure::failed)?;
    let candidate_label = shown(args.candidate);
    let guard_label = args.guard.map(shown);
    let labels = Labels {
        candidate: &candidate_label,
        current: current_label.as_deref(),
        guard: guard_label.as_deref(),
    };
    let text = if args.json {
        report.json_lines(&labels).map_err(|e| {
            Failure::failed(anyhow::Error::new(e).context("serialize the replay report"))
        })?
    } else {
        report.block(&labels)
    };
    // A closed pipe (`| head`) is the reader's choice; the exit code still carries the guard.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(if report.guard_hit() {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn since_is_a_duration_back_from_now_or_a_time() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 6, 12, 0, 0)
            .single()
            .expect("now");
        let at = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("t");
        assert_eq!(parse_since("7d", now), Ok(at(2026, 11, 29, 12)));
        assert_eq!(parse_since("36h", now), Ok(at(2026, 12, 5, 0)));
        assert_eq!(parse_since("2026-01-31", now), Ok(at(2026, 1, 31, 0)));
        assert_eq!(
            parse_since("2026-01-31T05:00:00+01:00", now),
            Ok(at(2026, 1, 31, 4))
        );
        assert!(parse_since("last tuesday", now).is_err());
    }
}
