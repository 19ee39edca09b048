//! The poll benchmark: the simulator in-process on loopback (HTTPS, throwaway CA, point in time),
//! polled into a fresh state directory by the real poll stage; prints alerts/s (target 20,000+).
//!
//! `cargo bench --bench poll` polls `SF_BENCH_N` alerts (default 200,000) into `SF_BENCH_DIR`
//! (default: a temp dir; use a fresh filesystem), with `[durability] fsync` from
//! `SF_BENCH_FSYNC` (default `batch`, the production default). Under `cargo test --benches` it
//! runs at 200 alerts as a smoke test (a few seconds), whatever `SF_BENCH_N` says. The corpus is
//! generated before the clock starts.

#![allow(clippy::disallowed_methods)] // benchmark scaffolding writes its own inputs

// The same allocator as the `signalfoundry` binary, so the figure is the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use indexer_sim::{SimConfig, Simulator};
use signalfoundry::config::Config;
use signalfoundry::stages::poll::{self, ClientOptions, Secret};
use signalfoundry::store::ledger::Ledger;
use signalfoundry::store::spool::{Prioritizer, Spool};
use signalfoundry::store::state::{Lock, StateDir};

fn main() {
    let n = common::size("SF_BENCH_N", 200_000, 200);
    let fsync = std::env::var("SF_BENCH_FSYNC").unwrap_or_else(|_| "batch".into());
    let base = match std::env::var_os("SF_BENCH_DIR") {
        Some(d) => PathBuf::from(d).join(format!("poll-bench-{}", std::process::id())),
        None => std::env::temp_dir().join(format!("sf-poll-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&base).expect("bench dir");

    let t = Instant::now();
    let sim = Simulator::start(SimConfig {
        alerts: n,
        seed: 7,
        end_time: Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
        username: "bench".into(),
        password: "bench-pw".into(),
        ..SimConfig::default()
    })
    .expect("start the simulator");
    let ca = base.join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).expect("write ca");
    println!(
        "poll bench: {n} alerts generated in {:.1}s; state in {}; fsync={fsync}",
        t.elapsed().as_secs_f64(),
        base.display()
    );

    let config: Config = toml::from_str(&format!(
        r#"
[indexer]
url = "https://localhost:{port}"
username = "bench"
ca_file = "{ca}"
start_at = "3h"
page_size = 1000
max_per_run = {max}

[durability]
fsync = "{fsync}"
"#,
        port = sim.addr().port(),
        ca = ca.display(),
        max = n * 2
    ))
    .expect("config");
    let ix = config.indexer.as_ref().expect("[indexer]");
    let state = StateDir::open(&base.join("state"), Lock::Run).expect("state dir");
    let mut ledger = Ledger::open(&state.ledger_path(), config.durability.fsync).expect("ledger");
    let prio = Prioritizer::levels_only(12);
    let sp = Spool {
        state: &state,
        durability: config.durability.fsync,
        prio: &prio,
        max_alert_bytes: config.triage.max_alert_bytes,
    };
    let password = Secret::new("bench-pw".into());
    let opts = ClientOptions {
        timeout: Duration::from_secs(30),
        ..ClientOptions::from_config(ix)
    };

    let t = Instant::now();
    let report =
        poll::run_with(ix, &sp, &mut ledger, u64::MAX, Some(&password), false, opts).expect("poll");
    let secs = t.elapsed().as_secs_f64();
    println!("{}", report.summary("OK"));
    assert_eq!(report.queued, n as u64, "every alert queued once");
    println!(
        "poll bench: {} alerts in {secs:.2}s = {:.0} alerts/s (target 20,000+)",
        report.queued,
        report.queued as f64 / secs
    );
    drop(sim);
    if std::env::var_os("SF_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
}
