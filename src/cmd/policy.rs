//! `signalfoundry policy check|test` (the policy engine's own command line, with this
//! configuration's policy as the default) and `verify-pack DIR`. Neither needs a state
//! directory. (`policy stats` reads one: `policy_stats.rs`; `policy replay` too: `cmd::replay`.)

use chrono::Utc;

use super::{stdout_line, Cli, Context, Failure, PolicyCommand, EXIT_FAILED, EXIT_OK, EXIT_USAGE};

pub fn command(cli: &Cli, command: &PolicyCommand) -> Result<u8, Failure> {
    // `policy stats` reads the state directory's ledger (no lock).
    if let PolicyCommand::Stats { days, at, json } = command {
        return super::policy_stats::run(cli, *days, at.as_deref(), *json);
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = match command {
        PolicyCommand::Check { file } => sf_policy::cli::check(file, &mut out, &mut err),
        PolicyCommand::Test {
            policy,
            at,
            json,
            alerts,
        } => {
            let now = match at {
                Some(a) => {
                    sf_policy::cli::parse_at(a).map_err(|e| Failure::usage(anyhow::anyhow!(e)))?
                }
                None => Utc::now(),
            };
            let (policy, file) = match policy {
                Some(p) => (
                    sf_policy::cli::load(p).map_err(Failure::usage)?.0,
                    Some(p.clone()),
                ),
                None => {
                    let ctx = Context::resolve(cli)?;
                    (ctx.policy()?, ctx.config.policy.file.clone())
                }
            };
            // Said with every report: which policy decided.
            let source = match file {
                Some(f) => format!(
                    "{} (version {})",
                    crate::store::fsx::shown(&f),
                    policy.version()
                ),
                None => "none: severity thresholds only (no --policy, no [policy] file)".into(),
            };
            sf_policy::cli::test(&policy, &source, now, *json, alerts, &mut out, &mut err)
        }
        PolicyCommand::Stats { .. } => EXIT_OK as i32,
        PolicyCommand::Replay {
            policy,
            since,
            bucket,
            guard,
            json,
        } => {
            drop((out, err));
            return super::replay::run(
                cli,
                &super::replay::Args {
                    candidate: policy,
                    since,
                    bucket: *bucket,
                    guard: guard.as_deref(),
                    json: *json,
                },
            );
        }
    };
    Ok(u8::try_from(code).unwrap_or(EXIT_USAGE))
}

pub fn verify_pack(dir: &std::path::Path) -> Result<u8, Failure> {
    let r = crate::stages::escalate::verify_pack(dir).map_err(Failure::failed)?;
    stdout_line(&r.to_string());
    Ok(if r.is_ok() { EXIT_OK } else { EXIT_FAILED })
}
