//! The harness: a temp state directory with a configuration, the binary, alert generators,
//! `SF_SCALE`, and ledger queries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A finished command for a failure message: its exit status, stdout and stderr.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_signalfoundry")
}

/// The size a heavy test runs at: `SF_SCALE` unset gives `default`, a number gives that number,
/// `full` gives `full` (the figure DESIGN.md and the issues name).
pub fn scale(default: usize, full: usize) -> usize {
    match std::env::var("SF_SCALE").ok().as_deref() {
        None | Some("") => default,
        Some("full") => full,
        Some(n) => n.parse().unwrap_or(default),
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Env {
    /// A fresh state directory and a configuration with `extra` appended.
    pub fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let config = dir.path().join("signalfoundry.toml");
        std::fs::write(&config, extra).expect("write config");
        Env { dir, state, config }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--state")
            .arg(&self.state)
            .arg("--config")
            .arg(&self.config)
            .args(args);
        c.env_remove("SIGNALFOUNDRY_CONFIG")
            .env_remove("SIGNALFOUNDRY_LOG");
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run signalfoundry")
    }

    /// Runs and requires exit 0, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?} failed: {}", text(&o));
        String::from_utf8(o.stdout).expect("utf-8 stdout")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.state.join(rel)
    }

    /// Writes JSON lines to a file in the temp dir and ingests them.
    pub fn ingest_lines(&self, lines: &[String]) -> String {
        let f = self
            .dir
            .path()
            .join(format!("ingest-{}.jsonl", lines.len()));
        std::fs::write(&f, lines.join("\n") + "\n").expect("write jsonl");
        self.ok(&["ingest", f.to_str().expect("utf-8 path")])
    }

    pub fn ledger(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.state.join("ledger.db")).expect("open ledger");
        c.busy_timeout(std::time::Duration::from_secs(30))
            .expect("busy timeout");
        c
    }

    /// Rows per state.
    pub fn states(&self) -> BTreeMap<String, u64> {
        let c = self.ledger();
        let mut st = c
            .prepare("SELECT state, COUNT(*) FROM alerts GROUP BY state")
            .expect("prepare");
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }
}

/// One Wazuh-like alert line: manager `m1`, id unique per `i`, the given level and second.
pub fn alert_line(i: usize, level: u32, second: u64) -> String {
    let t = chrono::DateTime::from_timestamp(1_764_000_000 + second as i64, 0).expect("time");
    serde_json::json!({
        "timestamp": t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "rule": {"level": level, "description": "generated", "id": "5716", "groups": ["sshd"]},
        "agent": {"id": "001", "name": "web-01"},
        "manager": {"name": "m1"},
        "id": format!("1764000000.{i}"),
        "full_log": format!("event {i}"),
        "location": "/var/log/auth.log"
    })
    .to_string()
}

/// Names of the canonical files in a directory (sorted).
pub fn canonical_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 59 && n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

/// The `key=value` pairs of the summary line that starts with `prefix`.
pub fn summary(stdout: &str, prefix: &str) -> BTreeMap<String, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{stdout}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn num(m: &BTreeMap<String, String>, k: &str) -> u64 {
    m.get(k)
        .unwrap_or_else(|| panic!("no {k} in {m:?}"))
        .parse()
        .expect("number")
}

/// The alert key of every document of a simulator's corpus, as the pipeline computes it.
pub fn corpus_keys(sim: &indexer_sim::SimHandle) -> std::collections::BTreeSet<String> {
    sim.corpus()
        .iter()
        .map(|h| {
            let src = h["_source"].as_object().expect("source").clone();
            let idx = h["_index"].as_str().expect("index");
            let id = h["_id"].as_str().expect("id");
            signalfoundry::model::alert::meta(&src, Some((idx, id)), chrono::Utc::now())
                .key
                .as_str()
                .to_string()
        })
        .collect()
}
