//! The `signalfoundry` command line: global options, subcommands, summary lines on stdout,
//! logs on stderr, and exit codes (0 OK, 1 a stage failed, 2 usage or configuration, 75 locked).
//!
//! Design constraints:
//! - Text from disk, alerts or the indexer is escaped before it is printed or logged here
//!   ([`escape_text`]): the `error:` line (each line of it), notices (their entry and reason),
//!   policy file names.

pub mod daemon;
mod debug;
pub mod demo;
pub mod expire;
pub mod incidents;
pub mod ingest;
pub mod outbox;
mod policy;
pub mod policy_stats;
pub mod poll;
pub mod replay;
pub mod requeue;
pub mod run;
pub mod serve;
pub mod status;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::stages::Report as _;
use crate::store::fsx::{escape_text, Durability};
use crate::store::ledger::Ledger;
use crate::store::spool::{Notice, Prioritizer, Spool};
use crate::store::state::{Lock, StateDir, StateError};

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_LOCKED: u8 = 75;

#[derive(Debug, Parser)]
#[command(
    name = "signalfoundry",
    version,
    about = "SOC automation pipeline for Wazuh alerts"
)]
pub struct Cli {
    /// State directory (default: `state_dir` from the configuration, else ./signalfoundry-state).
    #[arg(long, global = true, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Configuration file (default: $SIGNALFOUNDRY_CONFIG, else ./signalfoundry.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read JSON lines (Wazuh's alerts.json, or indexer hits) into the queue.
    Ingest {
        /// The JSON-lines file.
        file: PathBuf,
    },
    /// Poll the Wazuh indexer for new alerts into the queue (with --audit: also sweep for gaps now).
    Poll {
        /// Run the audit now: compare _count per daily index with the ids polled; poll what is missing.
        #[arg(long)]
        audit: bool,
    },
    /// Keep queue/ at or under its cap: defer the lowest-priority, newest alerts to overflow/.
    Cap,
    /// Put alerts back in the queue from overflow/ or quarantine/.
    Requeue {
        #[arg(long, value_enum)]
        from: crate::cmd::requeue::From,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// A triage worker: admission, recovery of dead workers, then triage until drained.
    Triage,
    /// Check the ledger against the disk; the last line is VERDICT=PASS or VERDICT=FAIL.
    Reconcile {
        /// Compare by key: name every orphan and ghost.
        #[arg(long)]
        deep: bool,
        /// One JSON object instead of the block (the exit code carries the verdict).
        #[arg(long)]
        json: bool,
    },
    /// The stages in order: poll, cap, triage (cases, escalation), reconcile, heartbeat.
    Run,
    /// Run the whole pipeline against the built-in indexer simulator on loopback until drained.
    Demo {
        /// How many alerts the simulator holds.
        #[arg(long, default_value_t = crate::cmd::demo::DEFAULT_ALERTS)]
        alerts: usize,
    },
    /// `run` on a cadence until SIGTERM/SIGINT (finishing the batch in hand); SIGHUP reloads
    /// the policy.
    ///
    /// The run lock is held for each run, not between runs: between runs `requeue`,
    /// `reconcile`, `poll --audit` and the other locking commands work as they do without a
    /// daemon. A run that comes due while one of them holds the lock waits for it to finish
    /// (said once in the log), then starts. One daemon per state directory: a second exits 75.
    Daemon {
        /// The cadence, e.g. 5m.
        #[arg(long, value_parser = parse_duration)]
        every: std::time::Duration,
    },
    /// The console: a read-only web view of this state directory (`[serve]` in the
    /// configuration), until SIGTERM/SIGINT.
    Serve {
        /// host:port (default: `[serve] listen`, else 127.0.0.1:8600).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Depths, the last heartbeat and its age, ledger totals, signatures about to expire.
    Status {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Incidents (repeated alerts grouped by the policy's [[group]] rules), latest first.
    Incidents {
        /// Only open incidents (their window plus `[incidents] close_after` not yet passed).
        #[arg(long)]
        open: bool,
        /// Only incidents whose highest member is in this bucket.
        #[arg(long, value_parser = parse_bucket)]
        bucket: Option<sf_policy::Bucket>,
        /// Only incidents with an alert within this long, e.g. 24h.
        #[arg(long, value_parser = parse_duration)]
        since: Option<std::time::Duration>,
        /// Only incidents with a member of this (canonical) agent.
        #[arg(long)]
        agent: Option<String>,
        /// One JSON object per line (the incident.json shape).
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Delivery messages (the outbox): list them, or bring dead ones back (`outbox retry`).
    Outbox {
        #[command(subcommand)]
        command: Option<OutboxCommand>,
        /// Only this route's messages.
        #[arg(long)]
        route: Option<String>,
        /// Only messages in this state: pending, sent, dead or orphaned (a route no longer
        /// configured). (`--state` is the global state directory.)
        #[arg(long, value_name = "STATE")]
        status: Option<String>,
        #[arg(long)]
        json: bool,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send the delivery messages that are due (the deliver stage alone).
    Deliver,
    /// Remove the cases (and packs) older than `[retention]` keeps them, as `run`'s expire
    /// step does: their rows stay as `expired`, so reconcile still adds up.
    Expire {
        /// List what is due and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object per case (due, or removed), then a totals object.
        #[arg(long)]
        json: bool,
    },
    /// One incident.
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Validate a policy file, explain the decision for alerts, show the noise figures of its
    /// signatures, or replay stored alerts with a candidate policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Check an escalation pack against its manifest.
    VerifyPack { dir: PathBuf },
    /// The Wazuh indexer simulator as a standalone HTTPS server (see `indexer-sim --help`).
    #[command(disable_help_flag = true)]
    IndexerSim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Test harness for the claim protocol: claim every queued file as one worker.
    #[command(hide = true)]
    DebugClaim {
        /// Keep the claims and stay alive until killed.
        #[arg(long)]
        hold: bool,
    },
    /// Test harness for race tests: once `--after` holds a canonical file, delete a fraction
    /// of the names listed in `--dir` at start; print each name actually deleted.
    #[command(hide = true)]
    DebugVanish {
        #[arg(long)]
        dir: PathBuf,
        /// Wait until this directory holds a canonical file before deleting.
        #[arg(long)]
        after: Option<PathBuf>,
        /// Wait until `--dir`'s name points at another directory (cap exchanged it), then
        /// delete through the handle opened at the start (the deferred alerts).
        #[arg(long)]
        after_exchange: bool,
        #[arg(long, default_value_t = 0.03)]
        fraction: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// The incident's summary for a person (or its incident.json with --json).
    Show {
        /// The incident id (INC-...).
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Bring a dead message (or, with --dead, every dead one) back: pending, due now.
    Retry {
        /// The message id (msg_...).
        id: Option<String>,
        /// Every dead message (of --route, when given).
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        route: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: every error with line and column. Exit 0 valid, 2 invalid.
    Check { file: PathBuf },
    /// Explain the decision for each alert (a bare alert or an indexer hit), then warn of each
    /// alias without `manager` whose ids matched alerts of several managers.
    Test {
        /// The policy (default: the configured one, else severity thresholds only).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Decide as of this time (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long)]
        at: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        alerts: Vec<PathBuf>,
    },
    /// Noise figures of the configured policy's signatures over the last days: hits per day,
    /// last hit, share of the suppressed alerts, never hit, expired, expiring, held back.
    ///
    /// Days are UTC days of the alerts' times (the day directories of their cases), counted
    /// as each triage batch commits. `hits` are the alerts a signature suppressed; its share is
    /// its hits over every alert suppressed in those days (by signatures and by overrides).
    /// Never hit: active signatures of the policy with no hit in the period (candidates for
    /// removal). Held back: high alerts a signature matched but could not suppress (no
    /// `allow_high`): a signature that keeps matching high alerts is worth a look. Read-only: takes
    /// no lock, changes nothing.
    Stats {
        /// The period: this many days, ending today (UTC; the day of --at), at most 400.
        #[arg(long, default_value_t = crate::model::noise::DEFAULT_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::cmd::policy_stats::MAX_DAYS)))]
        days: u32,
        /// The figures as of this time (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long)]
        at: Option<String>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Re-decide the stored alerts of a period with a candidate policy and show what would
    /// change; writes nothing.
    ///
    /// Reads the ledger and each case's alert.json and case.json (triaged and escalated
    /// alerts; quarantined, lost and queued ones are counted as skipped), decides every alert
    /// with the candidate as triage would now, and compares with what is stored: each case's
    /// bucket, deciding rule and incident as triage fixed them, not the current policy
    /// deciding again. Prints the bucket transitions, per override and signature the alerts
    /// it would newly decide or hold back (or no longer), every alert that would leave high or
    /// medium by case id, and the incident changes. Takes no lock: it can run beside a
    /// daemon.
    ///
    /// Exit codes: 0 no guard hit; 1 an alert of --guard would be suppressed or lowered (or
    /// the ledger could not be read); 2 a usage error, or an invalid candidate (its
    /// diagnostics on stderr, as `policy check` prints them).
    ///
    /// Example, in CI on every policy change: signalfoundry policy replay --policy
    /// candidate.toml --since 30d --guard true-positives.txt
    Replay {
        /// The candidate policy file.
        #[arg(long, value_name = "CANDIDATE.toml")]
        policy: PathBuf,
        /// The period, by alert time: a duration back from now (7d, 36h, 2w) or a time
        /// (RFC 3339, or YYYY-MM-DD for midnight UTC).
        #[arg(long, default_value = "7d", value_name = "DURATION|TIME")]
        since: String,
        /// Only alerts stored in this bucket.
        #[arg(long, value_parser = parse_bucket)]
        bucket: Option<sf_policy::Bucket>,
        /// A file of alert keys or case ids known to be true positives, one per line (#
        /// comments): exit 1 when the candidate would put one in a lower bucket.
        #[arg(long, value_name = "KEYS_FILE")]
        guard: Option<PathBuf>,
        /// One JSON object per changed alert, then a totals object.
        #[arg(long)]
        json: bool,
    },
}

fn parse_bucket(s: &str) -> Result<sf_policy::Bucket, String> {
    sf_policy::Bucket::parse(s)
        .ok_or_else(|| format!("unknown bucket {s:?}; one of suppressed, low, medium, high"))
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. 30s, 5m, 1h"))
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub(crate) fn usage(e: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_USAGE,
            error: e.into(),
        }
    }
    pub(crate) fn failed(e: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_FAILED,
            error: e.into(),
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        let code = match e {
            StateError::Locked(_) | StateError::DaemonRunning(_) => EXIT_LOCKED,
            StateError::Symlink(_)
            | StateError::NotDir(_)
            | StateError::Owner { .. }
            | StateError::SpansFilesystems { .. } => EXIT_USAGE,
            StateError::Fs(_) => EXIT_FAILED,
        };
        Failure {
            code,
            error: e.into(),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            let _ = std::io::stdout().flush();
            eprintln!("signalfoundry: error: {}", shown_error(&f.error));
            ExitCode::from(f.code)
        }
    }
}

/// The error line's text: the whole chain, each of its lines through [`escape_text`], so nothing
/// a message quotes (a path, a name, an answer from the indexer) can drive the terminal.
fn shown_error(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.split('\n')
        .map(escape_text)
        .collect::<Vec<_>>()
        .join("\n")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNALFOUNDRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Configuration and the resolved state directory.
pub struct Context {
    pub config: Config,
    pub state_path: PathBuf,
}

impl Context {
    pub fn resolve(cli: &Cli) -> Result<Context, Failure> {
        let path = cli
            .config
            .clone()
            .or_else(|| std::env::var_os("SIGNALFOUNDRY_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("signalfoundry.toml")).filter(|p| p.exists()));
        let config = match &path {
            Some(p) => Config::load(p).map_err(Failure::usage)?,
            None => Config::default(),
        };
        let state_path = cli
            .state
            .clone()
            .or_else(|| config.state_dir.clone())
            .unwrap_or_else(|| PathBuf::from("signalfoundry-state"));
        if config.durability.fsync == Durability::Off {
            tracing::warn!("[durability] fsync = \"off\": a power loss can lose or corrupt alerts; for tests and benchmarks only");
        }
        Ok(Context { config, state_path })
    }

    pub fn durability(&self) -> Durability {
        self.config.durability.fsync
    }

    /// The configured policy (`[policy] file`), or severity thresholds only.
    pub fn policy(&self) -> Result<sf_policy::Policy, Failure> {
        match &self.config.policy.file {
            None => Ok(sf_policy::Policy::severity_only()),
            Some(p) => {
                let (policy, warnings) = sf_policy::cli::load(p).map_err(Failure::usage)?;
                for w in warnings {
                    tracing::warn!("{}", w.located(&crate::store::fsx::shown(p)));
                }
                Ok(policy)
            }
        }
    }

    /// Logs the policy's expired and expiring signatures: once by each command that triages
    /// (`run`, `triage`, a daemon's start and reload); `status` lists them on stdout.
    pub fn warn_expiring(&self, policy: &sf_policy::Policy) {
        if let Some(p) = &self.config.policy.file {
            for w in policy.expiry_warnings(Utc::now()) {
                tracing::warn!("{}", w.located(&crate::store::fsx::shown(p)));
            }
        }
    }

    pub fn protect_level(&self, policy: &sf_policy::Policy) -> u32 {
        self.config
            .queue
            .protect_level
            .unwrap_or_else(|| policy.thresholds().high)
    }

    /// Queue priority: the level, raised to `high` when a policy override forces the alert there.
    pub fn prioritizer(policy: &sf_policy::Policy) -> Prioritizer {
        let p = policy.clone();
        Prioritizer {
            high: policy.thresholds().high,
            forced_high: Some(Box::new(move |a| p.forced_high(a))),
        }
    }

    /// How incident files are rebuilt by reconcile and the incident commands.
    pub fn incident_rounds(&self) -> crate::stages::incidents::build::RoundOptions {
        crate::stages::incidents::build::RoundOptions {
            close_after: self.config.incidents.close_after,
            durability: self.durability(),
            wait: true,
        }
    }

    /// The delivery routes as incident rounds need them (no secrets).
    pub fn routes(&self) -> Vec<crate::stages::deliver::due::RouteSpec> {
        crate::stages::deliver::due::RouteSpec::all(&self.config.notify)
    }

    pub fn triage_options(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> crate::stages::triage::TriageOptions {
        crate::stages::triage::TriageOptions {
            deadline,
            dashboard_url: self
                .config
                .indexer
                .as_ref()
                .and_then(|i| i.dashboard_url.clone()),
            batch: self.config.triage.batch,
            threads: match self.config.triage.threads {
                0 => crate::stages::triage::TriageOptions::default().threads,
                n => n,
            },
            related_window: chrono::Duration::from_std(self.config.escalation.related_window)
                .unwrap_or(chrono::Duration::minutes(30)),
            incidents_close_after: self.config.incidents.close_after,
            notify: self.routes(),
            ..crate::stages::triage::TriageOptions::default()
        }
    }

    pub fn open(&self, lock: Lock) -> Result<(StateDir, Ledger), Failure> {
        let state = StateDir::open(&self.state_path, lock)?;
        let ledger =
            Ledger::open(&state.ledger_path(), self.durability()).map_err(Failure::failed)?;
        Ok((state, ledger))
    }
}

/// `signalfoundry deliver`: the deliver stage alone (under the run lock, so it never races a
/// run's deliver stage on the same route).
fn deliver(ctx: &Context) -> Result<u8, Failure> {
    use crate::stages::Report;
    let (_state, ledger) = ctx.open(Lock::Run)?;
    if ctx.config.notify.is_empty() {
        stdout_line("deliver: status=SKIPPED reason=no-notify-routes-configured");
        return Ok(EXIT_OK);
    }
    let opts = crate::stages::deliver::DeliverOptions {
        durability: ctx.durability(),
        deadline: std::time::Instant::now() + ctx.config.delivery.max_duration,
        stop: None,
        probe: true,
    };
    let r = crate::stages::deliver::run(
        ledger.path(),
        &ctx.config.notify,
        &ctx.config.delivery,
        &opts,
    )
    .map_err(Failure::failed)?;
    for (name, fig) in &r.routes {
        if let Some(e) = &fig.error {
            tracing::error!("route {name} cannot be used: {e}");
        }
    }
    stdout_line(&r.summary(r.status()));
    Ok(if r.status() == "FAILED" {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

pub(crate) fn print_notices(notices: &[Notice]) {
    for n in notices {
        tracing::warn!(entry = %escape_text(&n.what), "{}", escape_text(&n.reason));
    }
}

pub(crate) fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    // Commands that need no state directory.
    match &cli.command {
        Command::Policy { command } => return policy::command(&cli, command),
        Command::VerifyPack { dir } => return policy::verify_pack(dir),
        Command::Demo { alerts } => return crate::cmd::demo::run(cli.state.as_deref(), *alerts),
        Command::IndexerSim { args } => {
            let argv = std::iter::once(std::ffi::OsString::from("indexer-sim"))
                .chain(args.iter().cloned());
            return Ok(u8::try_from(indexer_sim::cli_main(argv)).unwrap_or(EXIT_FAILED));
        }
        _ => {}
    }
    let ctx = Context::resolve(&cli)?;
    // `ingest` and `status` work with a broken policy file (said in the log): a producer must
    // not be stopped by an operator's typo; the queue priority then ignores overrides.
    let policy = match (&cli.command, ctx.policy()) {
        (_, Ok(p)) => p,
        (
            Command::Ingest { .. }
            | Command::Status { .. }
            | Command::Incidents { .. }
            | Command::Incident { .. }
            | Command::Serve { .. },
            Err(f),
        ) => {
            tracing::error!(
                "the policy cannot be loaded, using severity thresholds only: {:#}",
                f.error
            );
            sf_policy::Policy::severity_only()
        }
        (_, Err(f)) => return Err(f),
    };
    let prio = Context::prioritizer(&policy);
    let now = Utc::now();
    let mut notices = Vec::new();
    match &cli.command {
        Command::Ingest { file } => {
            let (state, mut ledger) = ctx.open(Lock::None)?;
            let sp = spool(&ctx, &state, &prio);
            let r = crate::cmd::ingest::run(&sp, &mut ledger, file, now).map_err(|e| match e {
                crate::cmd::ingest::IngestError::Read { .. } => Failure::usage(e),
                other => Failure::failed(other),
            })?;
            stdout_line(&r.summary("OK"));
            Ok(EXIT_OK)
        }
        Command::Cap => {
            let (state, mut ledger) = ctx.open(Lock::Run)?;
            let sp = spool(&ctx, &state, &prio);
            let r = crate::stages::cap::run_once(
                &sp,
                &mut ledger,
                ctx.config.queue.cap,
                ctx.protect_level(&policy),
                now,
                &mut notices,
            );
            print_notices(&notices);
            match r {
                Ok(r) => {
                    stdout_line(&r.summary("OK"));
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    stdout_line("cap: status=FAILED");
                    Err(Failure::failed(e))
                }
            }
        }
        Command::Requeue { from, limit } => {
            let (state, mut ledger) = ctx.open(Lock::Run)?;
            let sp = spool(&ctx, &state, &prio);
            let r = crate::cmd::requeue::run(&sp, &mut ledger, *from, *limit, now, &mut notices)
                .map_err(Failure::failed)?;
            print_notices(&notices);
            stdout_line(&r.summary("OK"));
            Ok(EXIT_OK)
        }
        Command::Expire { dry_run, json } => expire::command(&ctx, *dry_run, *json),
        Command::Triage => {
            ctx.warn_expiring(&policy);
            let (state, mut ledger) = ctx.open(Lock::None)?;
            let sp = spool(&ctx, &state, &prio);
            let opts = ctx.triage_options(None);
            let t = crate::stages::triage::Triage {
                sp: &sp,
                policy: &policy,
                opts: &opts,
            };
            let r = t.run(&mut ledger, &mut notices);
            print_notices(&notices);
            match r {
                Ok(r) => {
                    stdout_line(&r.summary("OK"));
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    stdout_line("triage: status=FAILED");
                    Err(Failure::failed(e))
                }
            }
        }
        Command::Reconcile { deep, json } => {
            let (state, mut ledger) = ctx.open(Lock::Run)?;
            let r = crate::stages::reconcile::run(
                &state,
                &mut ledger,
                *deep,
                true,
                ctx.incident_rounds(),
                &ctx.routes(),
            )
            .map_err(Failure::failed)?;
            if *json {
                let line = serde_json::to_string(&r).map_err(|e| {
                    Failure::failed(anyhow::Error::new(e).context("serialize the reconcile report"))
                })?;
                stdout_line(&line);
            } else {
                stdout_line(&r.block());
            }
            Ok(if r.passed() { EXIT_OK } else { EXIT_FAILED })
        }
        Command::Poll { audit } => poll::command(&ctx, &prio, *audit),
        Command::Run => {
            ctx.warn_expiring(&policy);
            crate::cmd::run::run(&ctx, &policy, &prio)
        }
        Command::Serve { listen } => crate::cmd::serve::run(&ctx, listen.as_deref()),
        Command::Status { json } => crate::cmd::status::run(&ctx, &policy, *json),
        Command::Incidents {
            open,
            bucket,
            since,
            agent,
            json,
            limit,
        } => incidents::list(
            &ctx,
            &incidents::ListArgs {
                open: *open,
                bucket: *bucket,
                since: *since,
                agent: agent.clone(),
                json: *json,
                limit: *limit,
            },
        ),
        Command::Incident {
            command: IncidentCommand::Show { id, json },
        } => incidents::show(&ctx, id, *json),
        Command::Outbox {
            command: None,
            route,
            status,
            json,
            limit,
        } => outbox::list(
            &ctx,
            &outbox::ListArgs {
                route: route.as_deref(),
                state: status.as_deref(),
                json: *json,
                limit: *limit,
            },
        ),
        Command::Outbox {
            command: Some(OutboxCommand::Retry { id, dead, route }),
            ..
        } => outbox::retry(&ctx, id.as_deref(), *dead, route.as_deref()),
        Command::Deliver => deliver(&ctx),
        Command::Daemon { every } => crate::cmd::daemon::run(&ctx, policy, *every),
        Command::Policy { .. }
        | Command::VerifyPack { .. }
        | Command::IndexerSim { .. }
        | Command::Demo { .. } => Ok(EXIT_OK),
        Command::DebugClaim { hold } => debug::claim(&ctx, &prio, *hold),
        Command::DebugVanish {
            dir,
            after,
            after_exchange,
            fraction,
            seed,
        } => debug::vanish(dir, after.as_deref(), *after_exchange, *fraction, *seed),
    }
}

pub(crate) fn spool<'a>(ctx: &Context, state: &'a StateDir, prio: &'a Prioritizer) -> Spool<'a> {
    Spool {
        state,
        durability: ctx.durability(),
        prio,
        max_alert_bytes: ctx.config.triage.max_alert_bytes,
    }
}
