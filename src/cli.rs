//! The `signalfoundry` command line: global options, subcommands, summary lines on stdout,
//! logs on stderr, and exit codes (0 OK, 1 a stage failed, 2 usage or configuration, 75 locked).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::fsx::Durability;
use crate::ledger::Ledger;
use crate::spool::{Notice, Prioritizer, Spool};
use crate::state::{Lock, StateDir, StateError};

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
    /// Keep queue/ at or under its cap: defer the lowest-priority, newest alerts to overflow/.
    Cap,
    /// Put alerts back in the queue from overflow/ or quarantine/.
    Requeue {
        #[arg(long, value_enum)]
        from: crate::requeue::From,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
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
        #[arg(long, default_value_t = 0.03)]
        fraction: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    fn usage(e: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_USAGE,
            error: e.into(),
        }
    }
    fn failed(e: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_FAILED,
            error: e.into(),
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        let code = match e {
            StateError::Locked(_) => EXIT_LOCKED,
            StateError::Symlink(_) | StateError::NotDir(_) | StateError::Owner { .. } => EXIT_USAGE,
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
            eprintln!("signalfoundry: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNALFOUNDRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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

    /// The `high` threshold (the protect level's default). The policy engine supplies it
    /// once it is wired in; until then Wazuh's dashboard default.
    pub fn high_threshold(&self) -> u32 {
        12
    }

    pub fn protect_level(&self) -> u32 {
        self.config
            .queue
            .protect_level
            .unwrap_or_else(|| self.high_threshold())
    }

    pub fn open(&self, lock: Lock) -> Result<(StateDir, Ledger), Failure> {
        let state = StateDir::open(&self.state_path, lock)?;
        let ledger =
            Ledger::open(&state.ledger_path(), self.durability()).map_err(Failure::failed)?;
        Ok((state, ledger))
    }
}

fn print_notices(notices: &[Notice]) {
    for n in notices {
        tracing::warn!(entry = %n.what, "{}", n.reason);
    }
}

fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    let ctx = Context::resolve(&cli)?;
    let prio = Prioritizer::levels_only(ctx.high_threshold());
    let now = Utc::now();
    let mut notices = Vec::new();
    match &cli.command {
        Command::Ingest { file } => {
            let (state, mut ledger) = ctx.open(Lock::None)?;
            let sp = spool(&ctx, &state, &prio);
            let r = crate::ingest::run(&sp, &mut ledger, file, now).map_err(|e| match e {
                crate::ingest::IngestError::Read { .. } => Failure::usage(e),
                other => Failure::failed(other),
            })?;
            stdout_line(&r.summary("OK"));
            Ok(EXIT_OK)
        }
        Command::Cap => {
            let (state, mut ledger) = ctx.open(Lock::Run)?;
            let sp = spool(&ctx, &state, &prio);
            let r = crate::cap::run_once(
                &sp,
                &mut ledger,
                ctx.config.queue.cap,
                ctx.protect_level(),
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
            let r = crate::requeue::run(&sp, &mut ledger, *from, *limit, now, &mut notices)
                .map_err(Failure::failed)?;
            print_notices(&notices);
            stdout_line(&r.summary("OK"));
            Ok(EXIT_OK)
        }
        Command::DebugClaim { hold } => debug_claim(&ctx, &prio, *hold),
        Command::DebugVanish {
            dir,
            after,
            fraction,
            seed,
        } => debug_vanish(dir, after.as_deref(), *fraction, *seed),
    }
}

fn spool<'a>(ctx: &Context, state: &'a StateDir, prio: &'a Prioritizer) -> Spool<'a> {
    Spool {
        state,
        durability: ctx.durability(),
        prio,
        max_alert_bytes: ctx.config.triage.max_alert_bytes,
    }
}

fn debug_claim(ctx: &Context, prio: &Prioritizer, hold: bool) -> Result<u8, Failure> {
    let (state, mut ledger) = ctx.open(Lock::None)?;
    let sp = spool(ctx, &state, prio);
    let worker = crate::claim::Worker::start(&state)
        .context("start worker")
        .map_err(Failure::failed)?;
    let mut notices = Vec::new();
    let rec = crate::claim::recover_dead(
        &sp,
        &mut ledger,
        Some(worker.id()),
        Utc::now(),
        &mut notices,
    )
    .map_err(Failure::failed)?;
    print_notices(&notices);
    let names = crate::spool::list_sorted(&state.queue).map_err(Failure::failed)?;
    let listed = names.len();
    let mut claimed = 0u64;
    let mut vanished = 0u64;
    let mut out = std::io::stdout().lock();
    for chunk in names.chunks(crate::spool::BATCH) {
        let (won, v) =
            crate::claim::claim_batch(&sp, &mut ledger, &worker, chunk).map_err(Failure::failed)?;
        vanished += v;
        claimed += won.len() as u64;
        for n in won {
            let _ = writeln!(out, "claimed {}", String::from_utf8_lossy(&n));
        }
    }
    let _ = writeln!(
        out,
        "claim: status=OK worker={} listed={listed} claimed={claimed} vanished={vanished} recovered_workers={} requeued={} live_workers={}",
        worker.id(),
        rec.dead_workers,
        rec.requeued,
        rec.live_workers
    );
    let _ = out.flush();
    drop(out);
    if hold {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    Ok(EXIT_OK)
}

fn debug_vanish(
    dir: &std::path::Path,
    after: Option<&std::path::Path>,
    fraction: f64,
    seed: u64,
) -> Result<u8, Failure> {
    let d = crate::fsx::DirFd::open(dir).map_err(Failure::usage)?;
    let names = crate::spool::list_sorted(&d).map_err(Failure::failed)?;
    if let Some(a) = after {
        let a = crate::fsx::DirFd::open(a).map_err(Failure::usage)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let mut found = false;
            a.for_each_entry(|e| found |= crate::spool::is_canonical(&e.name))
                .map_err(Failure::failed)?;
            if found || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    // A small deterministic generator (splitmix64): the same seed deletes the same names.
    let mut x = seed;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = std::io::stdout().lock();
    let mut deleted = 0u64;
    for n in names {
        if (next() >> 11) as f64 / (1u64 << 53) as f64 >= fraction {
            continue;
        }
        if d.remove_file(&n).map_err(Failure::failed)? {
            deleted += 1;
            let _ = writeln!(out, "deleted {}", String::from_utf8_lossy(&n));
        }
    }
    let _ = writeln!(out, "vanish: status=OK deleted={deleted}");
    Ok(EXIT_OK)
}
