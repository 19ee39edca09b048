//! The `indexer-sim` command line: flags as DESIGN.md states them, the CA written atomically
//! before `listening on <ip>:<port>` is printed, then serving until SIGTERM or SIGINT.
//!
//! Promises: the password file is read once and its content never printed; errors print their
//! whole chain to stderr; exit 0 after a signal, 2 for usage or configuration errors, 1 when
//! the server cannot start.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::Parser;

use crate::config::{FaultKind, SimConfig};
use crate::error::SimError;
use crate::server::Simulator;

/// A Wazuh indexer (OpenSearch API) simulator over HTTPS with a throwaway CA.
#[derive(Parser, Debug)]
#[command(name = "indexer-sim", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port), e.g. 127.0.0.1:0.
    #[arg(long)]
    listen: SocketAddr,
    /// Alerts to generate.
    #[arg(long, default_value_t = 1000)]
    alerts: usize,
    /// Seed of the generated corpus, late indexing and faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// JSON-lines corpus to serve instead of generating (bare alerts or indexer hits).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Live mode: alerts become searchable at this many per second, in timestamp order.
    #[arg(long)]
    rate: Option<f64>,
    /// Fraction of alerts indexed late (searchable only after later ones).
    #[arg(long, default_value_t = 0.0)]
    late_rate: f64,
    /// Probability of a fault per search/count/PIT request (default 0.1 when --faults is given).
    #[arg(long)]
    fault_rate: Option<f64>,
    /// Fault kinds: 429,500,503,slow,truncated,malformed,partial,401 (default: all but 401).
    #[arg(long, value_parser = FaultKind::parse_list)]
    faults: Option<Vec<FaultKind>>,
    /// OpenSearch version to report; point in time exists from 2.4.
    #[arg(long, default_value = "2.19.1")]
    server_version: String,
    /// Answer GET / as a Wazuh 4.x indexer does: version.number 7.10.2, no distribution.
    #[arg(long)]
    wazuh_compat: bool,
    /// Where to write the CA certificate (PEM), atomically, before listening.
    #[arg(long)]
    ca_out: PathBuf,
    /// HTTP basic auth user.
    #[arg(long)]
    username: String,
    /// File holding the HTTP basic auth password (read once at start).
    #[arg(long)]
    password_file: PathBuf,
    /// The generated corpus covers the hour before this RFC 3339 time (default: now).
    #[arg(long)]
    end_time: Option<DateTime<Utc>>,
    /// Also write the corpus as JSON lines (_index, _id, _source) to this file.
    #[arg(long)]
    dump_corpus: Option<PathBuf>,
    /// Delay of a `slow` fault, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    slow_ms: u64,
}

/// Runs the `indexer-sim` command line; returns the exit code.
pub fn cli_main<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(args) {
        Ok(()) => 0,
        Err((code, e)) => {
            let mut msg = format!("indexer-sim: error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            code
        }
    }
}

fn read_password(path: &Path) -> Result<String, SimError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SimError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    let pw = raw
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&raw)
        .to_string();
    if pw.is_empty() {
        return Err(SimError::Config(format!(
            "password file {} is empty",
            path.display()
        )));
    }
    Ok(pw)
}

/// Writes `bytes` to `path` atomically: a dot-named temp file in the same directory, fsync,
/// rename over the target, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let err = |source| SimError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no file name",
        ))
    })?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    // The workspace bans std::fs::rename and remove_file so that the pipeline publishes and
    // removes through its fsx module; this crate does not depend on the pipeline and needs one
    // replacing rename for its CA and corpus files (a restart overwrites them), so it does its
    // own here.
    #[allow(clippy::disallowed_methods)]
    let renamed = std::fs::rename(&tmp, path);
    if let Err(e) = renamed {
        #[allow(clippy::disallowed_methods)]
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    File::open(&dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(())
}

fn run(a: Args) -> Result<(), (i32, SimError)> {
    let usage = |e: SimError| (2, e);
    let password = read_password(&a.password_file).map_err(usage)?;
    let fault_rate = a
        .fault_rate
        .unwrap_or(if a.faults.is_some() { 0.1 } else { 0.0 });
    let cfg = SimConfig {
        listen: a.listen,
        alerts: a.alerts,
        seed: a.seed,
        corpus: a.corpus,
        end_time: a.end_time,
        rate: a.rate,
        late_rate: a.late_rate,
        fault_rate,
        faults: a.faults,
        server_version: a.server_version,
        wazuh_compat: a.wazuh_compat,
        username: a.username,
        password,
        slow_ms: a.slow_ms,
    };
    let handle = Simulator::start(cfg).map_err(|e| match e {
        SimError::Config(_) | SimError::CorpusLine { .. } | SimError::CorpusRead { .. } => (2, e),
        other => (1, other),
    })?;
    if let Some(path) = &a.dump_corpus {
        let mut buf = Vec::new();
        handle.write_corpus_jsonl(&mut buf).map_err(|source| {
            (
                1,
                SimError::Write {
                    path: path.clone(),
                    source,
                },
            )
        })?;
        write_atomic(path, &buf).map_err(|e| (1, e))?;
    }
    write_atomic(&a.ca_out, handle.ca_pem().as_bytes()).map_err(|e| (1, e))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", handle.addr());
        let _ = out.flush();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (1, SimError::Runtime(e)))?;
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    });
    handle.shutdown();
    Ok(())
}
