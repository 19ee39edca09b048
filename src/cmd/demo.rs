//! `signalfoundry demo [--alerts N]`: the whole pipeline against the built-in Wazuh indexer
//! simulator on loopback, until the simulated backlog is drained.
//!
//! Design constraints:
//! - Everything is real but the indexer: HTTPS with a throwaway CA the poller pins, a real
//!   configuration file and the default policy written into the state directory, the real
//!   stages run several times as a timer would.
//! - The demo's password is made up at start and handed to the poller in memory; it is never
//!   written to a file (the configuration says so in a comment).
//! - The output ends with the reconcile block, whose last line is the verdict.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::cmd::run::{execute, RunExtras};
use crate::cmd::{Context, Failure, EXIT_FAILED, EXIT_OK};
use crate::config::Config;
use crate::stages::poll::Secret;
use crate::stages::Report as _;
use crate::store::state::{Lock, StateDir};

/// The default number of alerts: every bucket and several escalations, well under a minute.
pub const DEFAULT_ALERTS: usize = 3000;

/// The poller's `settle` in the demo's configuration, in seconds.
const DEMO_SETTLE_S: i64 = 1;

/// How many runs at most (the poller takes a third of the backlog per run).
const MAX_RUNS: usize = 12;

fn fresh_state_path() -> PathBuf {
    PathBuf::from(format!(
        "signalfoundry-demo-{}",
        Utc::now().format("%Y%m%d-%H%M%S")
    ))
}

fn demo_password() -> String {
    (0..4)
        .map(|_| format!("{:08x}", crate::store::fsx::rand_u32()))
        .collect()
}

fn failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_FAILED,
        error: e.into(),
    }
}

/// The demo's configuration text: a real `signalfoundry.toml`.
fn config_text(state: &Path, port: u16, alerts: usize) -> String {
    // TOML strings, escaped as TOML escapes them (a path may hold `"` or `\`).
    let q = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let (st, ca, policy) = (
        q(state),
        q(&state.join("demo").join("root-ca.pem")),
        q(&state.join("demo").join("policy.toml")),
    );
    format!(
        r#"# Written by `signalfoundry demo`: a real configuration for the built-in simulator.
# The simulator's password was handed to the poller in memory and is written nowhere; a real
# deployment sets password_file (mode 0600) or SIGNALFOUNDRY_INDEXER_PASSWORD.
state_dir = {st}

[indexer]
url = "https://127.0.0.1:{port}"
index = "wazuh-alerts-4.x-*"
username = "signalfoundry"
ca_file = {ca}
start_at = "2h"
page_size = 500
overlap = "2m"
settle = "{settle}s"
max_per_run = {per_run}
timeout = "10s"

[queue]
cap = {cap}

[policy]
file = {policy}

[durability]
fsync = "batch"

[run]
max_duration = "4m"
"#,
        per_run = alerts.div_ceil(3).max(1),
        cap = (alerts / 4).max(10),
        settle = DEMO_SETTLE_S,
    )
}

pub fn run(state_arg: Option<&Path>, alerts: usize) -> Result<u8, Failure> {
    let state_path = match state_arg {
        Some(p) => p.to_path_buf(),
        None => fresh_state_path(),
    };
    let state = StateDir::open(&state_path, Lock::Run)?;
    let abs = std::fs::canonicalize(&state_path).map_err(failed)?;
    let password = demo_password();
    // The corpus ends a little before now, further back than the poller's `settle`: every alert
    // is inside the poll window of the first run, so "drained" means all N alerts are cases
    // (ending at now, alerts of the last second could still be unpolled when a run polls none).
    let end_time = Utc::now() - chrono::Duration::seconds(DEMO_SETTLE_S + 2);
    let sim = indexer_sim::Simulator::start(indexer_sim::SimConfig {
        alerts,
        seed: 42,
        end_time: Some(end_time),
        username: "signalfoundry".into(),
        password: password.clone(),
        ..indexer_sim::SimConfig::default()
    })
    .map_err(failed)?;
    let secret = Secret::new(password);
    let demo_dir = state.root.ensure_subdir("demo").map_err(failed)?;
    let durability = crate::store::fsx::Durability::Batch;
    demo_dir
        .replace("root-ca.pem", sim.ca_pem().as_bytes(), durability)
        .map_err(failed)?;
    demo_dir
        .replace(
            "policy.toml",
            sf_policy::DEFAULT_POLICY_TOML.as_bytes(),
            durability,
        )
        .map_err(failed)?;
    let text = config_text(&abs, sim.addr().port(), alerts);
    state
        .root
        .replace("signalfoundry.toml", text.as_bytes(), durability)
        .map_err(failed)?;
    let config_path = abs.join("signalfoundry.toml");
    let config = Config::parse(&text, &config_path).map_err(failed)?;
    let ctx = Context {
        config,
        state_path: abs.clone(),
    };
    let policy = ctx.policy()?;
    let prio = Context::prioritizer(&policy);
    let mut ledger = crate::store::ledger::Ledger::open(&state.ledger_path(), ctx.durability())
        .map_err(failed)?;

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "demo: simulator on https://{} with {alerts} alerts (the hour before it started); state directory {}",
        sim.addr(),
        abs.display()
    );
    let mut last = None;
    for i in 1..=MAX_RUNS {
        let _ = writeln!(out, "== run {i} ==");
        let extras = RunExtras {
            password: Some(&secret),
            ..RunExtras::default()
        };
        let outcome = execute(&ctx, &policy, &prio, &state, &mut ledger, extras, &mut out);
        let polled = outcome
            .report
            .stages
            .iter()
            .find(|s| s.name == crate::stages::poll::PollReport::NAME)
            .and_then(|s| s.counters.get("queued").copied())
            .unwrap_or(0);
        let waiting = outcome.report.depths.get("queue").copied().unwrap_or(0)
            + outcome.report.depths.get("overflow").copied().unwrap_or(0);
        let done = polled == 0 && waiting == 0;
        let failed_run = outcome.exit_code != EXIT_OK;
        last = Some(outcome);
        if done || failed_run {
            break;
        }
    }
    sim.shutdown();
    let Some(last) = last else {
        return Err(failed(anyhow::anyhow!("the demo ran no stage")));
    };
    let _ = writeln!(out, "== where to look ==");
    let _ = writeln!(out, "state directory:  {}", abs.display());
    let _ = writeln!(out, "configuration:    {}", config_path.display());
    if let Some((case, pack)) = first_high_case(&ledger, &abs) {
        let _ = writeln!(out, "a high case:      {}", case.display());
        let _ = writeln!(
            out,
            "its pack:         {}  (check it: signalfoundry verify-pack {})",
            pack.display(),
            pack.display()
        );
        let _ = writeln!(
            out,
            "for a person:     {}",
            pack.join("summary.md").display()
        );
    }
    let _ = writeln!(
        out,
        "heartbeat:        {}",
        abs.join("heartbeat.json").display()
    );
    let _ = writeln!(
        out,
        "metrics:          {}",
        abs.join("metrics.prom").display()
    );
    let _ = writeln!(
        out,
        "status:           signalfoundry --state {} status",
        abs.display()
    );
    let _ = writeln!(out, "{}", last.block);
    let _ = out.flush();
    Ok(last.exit_code)
}

/// The newest high case and its pack.
fn first_high_case(
    ledger: &crate::store::ledger::Ledger,
    state: &Path,
) -> Option<(PathBuf, PathBuf)> {
    let (case_id, case_path) = ledger.top_escalated().ok().flatten()?;
    Some((
        state.join("cases").join(case_path),
        state.join("escalations").join(case_id),
    ))
}
