//! The replay benchmark (issue 17: 100,000 stored alerts replayed in under 10 s): `SF_BENCH_N`
//! alerts (default 100,000) ingested and triaged into a fresh state directory with a small
//! policy, then `policy replay` of every one of them with a candidate that adds a signature
//! (about a tenth of the alerts would change, the high ones held back), readable and `--json`.
//! Prints the seconds and alerts/s of each (the best of three rounds under `cargo bench`).
//!
//! `cargo bench --bench replay`; `SF_BENCH_N`, `SF_BENCH_DIR` (use a fresh filesystem). The
//! replay reads what triage has just written, so its cases are in the page cache: that is the
//! warm figure. A last round first evicts every file of the state directory from the page cache
//! (`posix_fadvise(DONTNEED)` after a `sync`: the files' data is read from the disk again, their
//! directories and inodes stay cached), as a replay of last week's alerts on a busy host may
//! find them. Under `cargo test --benches` it runs at 200 alerts, one round, as a smoke test.

#![allow(clippy::disallowed_methods)] // benchmark scaffolding writes its own inputs

mod common;

use common::{bench_dir, benching, config, field, settle, sf, size, write_alerts};

/// The policy the alerts are triaged with (the "current" one).
const POLICY: &str = "[severity]\nmedium = 7\nhigh = 12\n\n[[suppress]]\nid = \"fp-bench\"\nreason = \"bench noise\"\nowner = \"bench\"\nmatch = { \"rule.id\" = \"5749\" }\n";

/// The change under review: five of the fifty rule ids the generated alerts carry.
const CANDIDATE_EXTRA: &str = "\n[[suppress]]\nid = \"fp-bench-broad\"\nreason = \"the change under review\"\nowner = \"bench\"\nmatch = { \"rule.id\" = [\"5701\", \"5702\", \"5703\", \"5704\", \"5705\"] }\n";

fn main() {
    let bench = benching();
    let n = size("SF_BENCH_N", 100_000, 200);
    let (base, _guard) = bench_dir("replay-bench");
    println!("replay bench: {n} alerts in {}", base.display());
    let jsonl = base.join("alerts.jsonl");
    write_alerts(&jsonl, n);
    let policy = base.join("policy.toml");
    std::fs::write(&policy, POLICY).expect("policy");
    let candidate = base.join("candidate.toml");
    std::fs::write(&candidate, format!("{POLICY}{CANDIDATE_EXTRA}")).expect("candidate");
    let cfg = config(
        &base,
        "replay.toml",
        &format!(
            "[durability]\nfsync = \"off\"\n[queue]\ncap = {}\n[policy]\nfile = {:?}\n",
            n + 1,
            policy.display().to_string()
        ),
    );
    let state = base.join("state");
    sf(&state, &cfg, &["ingest", jsonl.to_str().expect("utf-8")]);
    let (out, secs) = sf(&state, &cfg, &["triage"]);
    assert_eq!(field(&out, "triage:", "triaged"), Some(n as f64), "{out}");
    println!("setup: {n} alerts triaged in {secs:.1}s");
    settle();
    let cand = candidate.to_str().expect("utf-8");
    // The generated alerts are from 2025-11-24 on: the period takes them all.
    let args = [
        "policy",
        "replay",
        "--policy",
        cand,
        "--since",
        "2025-01-01",
    ];
    let rounds = if bench { 3 } else { 1 };
    for json in [false, true] {
        let mut a = args.to_vec();
        if json {
            a.push("--json");
        }
        let mut best = f64::MAX;
        let mut changed = 0.0;
        for _ in 0..rounds {
            let (out, secs) = sf(&state, &cfg, &a);
            best = best.min(secs);
            if json {
                let totals: serde_json::Value =
                    serde_json::from_str(out.lines().last().expect("totals")).expect("json");
                assert_eq!(totals["counters"]["replayed"], n as u64, "{totals}");
                changed = totals["counters"]["changed"].as_f64().unwrap_or(0.0);
            } else {
                assert_eq!(
                    field(&out, "replay: status=", "replayed"),
                    Some(n as f64),
                    "{out}"
                );
                changed = field(&out, "replay: status=", "changed").unwrap_or(0.0);
            }
        }
        assert!(changed > 0.0, "the candidate changes nothing");
        println!(
            "signalfoundry policy replay{}: {n} alerts ({changed} changed) in {best:.2}s = {:.0} alerts/s (target: 100,000 in under 10 s)",
            if json { " --json" } else { "" },
            n as f64 / best
        );
    }
    settle();
    let evicted = evict(&state);
    let (out, secs) = sf(&state, &cfg, &args);
    assert_eq!(
        field(&out, "replay: status=", "replayed"),
        Some(n as f64),
        "{out}"
    );
    println!(
        "signalfoundry policy replay, {evicted} files evicted from the page cache first: {n} alerts in {secs:.2}s = {:.0} alerts/s",
        n as f64 / secs
    );
    if std::env::var_os("SF_BENCH_DIR").is_some() {
        let _ = std::fs::remove_dir_all(&base);
    }
}

/// Drops every file under `dir` from the page cache (clean pages only: call after a `sync`);
/// returns how many files.
fn evict(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("list") {
        let e = e.expect("entry");
        let ft = e.file_type().expect("type");
        if ft.is_dir() {
            n += evict(&e.path());
        } else if ft.is_file() {
            let f = std::fs::File::open(e.path()).expect("open");
            rustix::fs::fadvise(&f, 0, 0, rustix::fs::Advice::DontNeed).expect("fadvise");
            n += 1;
        }
    }
    n
}
