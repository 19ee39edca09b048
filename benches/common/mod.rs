//! Shared benchmark scaffolding: Wazuh-like alerts, running the real binary, the bench directory,
//! and the predecessor model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One Wazuh-like alert line; levels in a Wazuh-like mix (~2.6% at 12 or more).
pub fn alert_line(i: usize) -> String {
    let level = match i % 1000 {
        0..=25 => 12 + (i % 4) as u32,
        26..=300 => 7 + (i % 5) as u32,
        _ => (i % 7) as u32,
    };
    let t = chrono::DateTime::from_timestamp(1_764_000_000 + (i / 10) as i64, 0).expect("time");
    serde_json::json!({
        "timestamp": t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "rule": {"level": level, "description": "bench alert", "id": format!("{}", 5700 + i % 50), "groups": ["sshd"]},
        "agent": {"id": format!("{:03}", i % 40), "name": format!("host-{}", i % 40)},
        "manager": {"name": "bench"},
        "id": format!("1764000000.{i}"),
        "full_log": format!("event {i} from 10.0.{}.{}", i % 255, i % 200),
        "data": {"srcip": format!("10.0.{}.{}", i % 255, i % 200)},
        "location": "/var/log/auth.log"
    })
    .to_string()
}

/// Writes `n` alert lines to `path`.
pub fn write_alerts(path: &Path, n: usize) {
    let mut text = String::with_capacity(n * 330);
    for i in 0..n {
        text.push_str(&alert_line(i));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write jsonl");
}

/// Runs the real binary; returns stdout and seconds.
pub fn sf(state: &Path, config: &Path, args: &[&str]) -> (String, f64) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_signalfoundry"))
        .arg("--state")
        .arg(state)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run signalfoundry");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        o.status.code().is_some_and(|c| c == 0 || c == 1),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (String::from_utf8_lossy(&o.stdout).into_owned(), secs)
}

/// Flushes what a setup step left dirty, so the measured step starts from a queue at rest
/// (otherwise its first barrier, or the kernel's writeback during the model, pays for the setup).
pub fn settle() {
    let _ = Command::new("sync").status();
}

/// True under `cargo bench`; false under `cargo test --benches` (smoke size). Cargo passes
/// `--bench` to a `harness = false` benchmark only under `cargo bench`, as criterion also reads it.
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A benchmark's size. Under `cargo bench` ([`benching`]): the number in the environment
/// variable `var` (`SF_BENCH_N`, `SF_BENCH_INCIDENT_N`), or `full` when it is unset or not a
/// number. Under `cargo test --benches`: `small`, whatever the environment says, so the smoke
/// run stays a few seconds.
pub fn size(var: &str, full: usize, small: usize) -> usize {
    if !benching() {
        return small;
    }
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(full)
}

/// The bench directory: `SF_BENCH_DIR/<name>-<pid>` or a temp dir (kept alive by the guard).
pub fn bench_dir(name: &str) -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("SF_BENCH_DIR") {
        Some(d) => {
            let p = PathBuf::from(d).join(format!("{name}-{}", std::process::id()));
            std::fs::create_dir_all(&p).expect("bench dir");
            (p, None)
        }
        None => {
            let t = tempfile::tempdir().expect("tempdir");
            (t.path().to_path_buf(), Some(t))
        }
    }
}

/// Writes a configuration file.
pub fn config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("config");
    p
}

/// The predecessor model, when present.
pub fn seed_pipeline() -> Option<PathBuf> {
    let p = std::env::var_os("SF_SEED_PIPELINE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/baseline/seed_pipeline.py")
        });
    p.exists().then_some(p)
}

/// The first `key=value` number in a summary line.
pub fn field(out: &str, prefix: &str, key: &str) -> Option<f64> {
    let line = out.lines().find(|l| l.starts_with(prefix))?;
    line.split_whitespace().find_map(|kv| {
        kv.strip_prefix(&format!("{key}="))
            .and_then(|v| v.parse().ok())
    })
}
