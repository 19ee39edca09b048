//! Decision throughput against a generated 1,000-signature policy (target: 500,000+ decisions/s
//! per core). `cargo bench -p sf-policy --bench decide` prints the figure, then criterion's
//! measurement; `cargo test --benches` runs it once as a test.

use criterion::{black_box, Criterion, Throughput};
use sf_policy::{Bucket, Policy};
use std::time::{Duration, Instant};

#[path = "support/workload.rs"]
mod workload;

const SIGNATURES: usize = 1_000;
/// Alerts generated; the first `HOT` are the measured set (they stay in cache, as an alert does
/// between being parsed and decided in triage); the whole set shows the cost with cache misses.
const ALERTS: usize = 10_000;
const HOT: usize = 1_000;

fn setup() -> (
    Policy,
    Vec<serde_json::Value>,
    chrono::DateTime<chrono::Utc>,
) {
    let src = workload::policy_toml(SIGNATURES, 42);
    let policy = match Policy::parse(&src) {
        Ok((policy, _warnings)) => policy,
        Err(errors) => panic!("generated policy is invalid: {errors:?}"),
    };
    let alerts = workload::alerts(ALERTS, 7);
    let now = sf_policy::cli::parse_at("2026-01-01").expect("a valid date");
    (policy, alerts, now)
}

/// Time this thread has spent on a CPU (Linux: /proc/thread-self/schedstat, in ns), so that the
/// figure stays "per core" when other processes share the machine. None elsewhere.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Decides the alerts over and over on this thread for at least `min` of wall time; returns
/// decisions per second of wall time and, where the OS tells, per second of CPU time.
fn rate(
    policy: &Policy,
    alerts: &[serde_json::Value],
    now: chrono::DateTime<chrono::Utc>,
    min: Duration,
) -> (f64, Option<f64>) {
    let start = Instant::now();
    let cpu_start = cpu_time();
    let mut decided = 0u64;
    while start.elapsed() < min {
        for alert in alerts {
            let d = policy.decide(black_box(alert), now);
            black_box(&d);
            decided += 1;
        }
    }
    let wall = decided as f64 / start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, cpu_time()) {
        (Some(a), Some(b)) if b > a => Some(decided as f64 / (b - a).as_secs_f64()),
        _ => None,
    };
    (wall, cpu)
}

fn report(what: &str, (wall, cpu): (f64, Option<f64>)) {
    let per_core = cpu.unwrap_or(wall);
    println!(
        "decide: {per_core:.0} decisions/s per core ({:.2} µs per decision; {wall:.0}/s by wall clock) {what}",
        1e6 / per_core
    );
}

fn main() {
    let (policy, alerts, now) = setup();
    let mut counts = [0usize; 4];
    let (mut held_back, mut expired) = (0usize, 0usize);
    for alert in &alerts {
        let d = policy
            .decide(alert, now)
            .expect("generated alerts are decidable");
        counts[Bucket::ALL.iter().position(|b| *b == d.bucket).unwrap_or(0)] += 1;
        held_back += usize::from(!d.held_back.is_empty());
        expired += usize::from(!d.expired.is_empty());
    }
    println!(
        "workload: {SIGNATURES} signatures, {ALERTS} alerts: suppressed {} low {} medium {} high {} (held back {held_back}, expired {expired})",
        counts[0], counts[1], counts[2], counts[3]
    );

    if std::env::args().any(|a| a == "--bench") {
        let hot = rate(&policy, &alerts[..HOT], now, Duration::from_secs(3));
        report(&format!("[{HOT} alerts, in cache]"), hot);
        let cold = rate(&policy, &alerts, now, Duration::from_secs(3));
        report(
            &format!("[cycling {ALERTS} alerts, cache misses included]"),
            cold,
        );
    }
    let alerts = &alerts[..HOT];

    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(alerts.len() as u64));
    group.bench_function("1000_signatures_1000_alerts", |b| {
        b.iter(|| {
            for alert in alerts {
                black_box(policy.decide(black_box(alert), now).is_ok());
            }
        })
    });
    group.finish();
    c.final_summary();
}
