//! The console benchmark (issue 15): a ledger with `SF_BENCH_CASES` cases (default 1,000,000,
//! in 100,000 incidents of 10) built directly in SQLite, then each list page answered through
//! the console's router (authentication, ledger query, HTML or JSON) several times; prints the
//! median and the worst per page (the target: under 200 ms).
//!
//! `cargo bench --bench console`; under `cargo test --bench console` it runs at 2,000 cases as
//! a smoke test. The ledger is built before the clock starts.

#![allow(clippy::disallowed_methods)] // benchmark scaffolding writes its own inputs

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Instant;

use signalfoundry::serve::{auth, data, router, App};
use signalfoundry::store::fsx::Durability;
use signalfoundry::store::ledger::Ledger;
use tower::ServiceExt;

const TOKEN: &str = "bench-token-0123456789";

fn build_ledger(dir: &std::path::Path, n: usize) {
    let path = dir.join("ledger.db");
    drop(Ledger::open(&path, Durability::Off).expect("ledger"));
    let mut c = rusqlite::Connection::open(&path).expect("open");
    c.pragma_update(None, "synchronous", "OFF").expect("pragma");
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    let step = (30.0 * 86400.0) / n as f64;
    let t = |i: usize| {
        (base + chrono::Duration::milliseconds((i as f64 * step * 1000.0) as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let tx = c.transaction().expect("tx");
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO alerts (key_hash, alert_key, state, name, content_hash, level, priority,
                   alert_time, source, created_at, updated_at, bucket, critical, case_id, case_path,
                   agent, rule_id, description, pack, incident)
                 VALUES (?1, ?2, ?3, ?4, 'h', ?5, ?5, ?6, 'ingest', ?6, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .expect("prepare");
        for i in 0..n {
            let inc = i / 10;
            let level = match i % 1000 {
                0..=25 => 12,
                26..=300 => 8,
                _ => 3 + (i % 4) as u32,
            };
            let bucket = match level {
                12.. => "high",
                7..=11 => "medium",
                4..=6 => "low",
                _ => "suppressed",
            };
            let hash = format!("{i:032x}");
            let case_id = format!("SF-{hash}");
            let time = t(i);
            let state = if bucket == "high" {
                "escalated"
            } else {
                "triaged"
            };
            let desc = if inc % 1000 == 7 {
                format!("needle in incident {inc}")
            } else {
                format!("bench alert {}", i % 97)
            };
            ins.execute(rusqlite::params![
                hash,
                format!("bench/{i}"),
                state,
                format!("{hash}.json"),
                level,
                time,
                bucket,
                case_id,
                format!("{bucket}/{}/{case_id}", &time[..10].replace('-', "/")),
                format!("host-{}", inc % 500),
                format!("{}", 5700 + inc % 40),
                desc,
                i64::from(bucket == "high"),
                format!("INC-{inc:020x}"),
            ])
            .expect("insert");
        }
    }
    tx.execute_batch(
        "INSERT INTO incidents (id, group_id, key, window_secs, window_start, window_end, previous,
           members, suppressed, low, medium, high, critical, max_level, first_time, last_time,
           rev, built_rev, built_status, created_at)
         SELECT incident, 'default',
           '[{\"field\":\"rule.id\",\"value\":\"' || MIN(rule_id) || '\"},{\"field\":\"agent\",\"value\":\"' || MIN(agent) || '\"}]',
           3600, strftime('%Y-%m-%dT%H:00:00.000Z', MIN(alert_time)),
           strftime('%Y-%m-%dT%H:00:00.000Z', MIN(alert_time), '+1 hour'), '',
           COUNT(*), SUM(bucket = 'suppressed'), SUM(bucket = 'low'), SUM(bucket = 'medium'),
           SUM(bucket = 'high'), 0, MAX(level), MIN(alert_time), MAX(alert_time), 1, 1, 'open', MIN(alert_time)
         FROM alerts GROUP BY incident;",
    )
    .expect("incidents");
    tx.commit().expect("commit");
    c.execute_batch("ANALYZE;").expect("analyze");
}

fn main() {
    let n = common::size("SF_BENCH_CASES", 1_000_000, 2_000);
    let reps = if common::benching() { 7 } else { 1 };
    let (dir, _guard) = common::bench_dir("console-bench");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state");
    for sub in [
        "incoming",
        "queue",
        "overflow",
        "processing",
        "quarantine",
        "cases",
        "escalations",
        "incidents",
    ] {
        std::fs::create_dir_all(state.join(sub)).expect("subdir");
    }
    let t = Instant::now();
    build_ledger(&state, n);
    println!(
        "console bench: {n} cases in {} incidents built in {:.1}s ({})",
        n / 10,
        t.elapsed().as_secs_f64(),
        state.display()
    );
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let app = Arc::new(App {
        source: data::Source {
            state_path: state.clone(),
            close_after: std::time::Duration::from_secs(900),
        },
        creds: auth::Credentials::load(Some(&token), None).expect("credentials"),
        sessions: auth::Sessions::default(),
        policy_file: None,
        tls: false,
    });
    let r = router(app);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let agent = "host-123";
    let deep = n as i64 / 2;
    let pages = [
        "/incidents".to_string(),
        "/incidents?page=100".to_string(),
        "/incidents?sort=level".to_string(),
        "/incidents?bucket=high".to_string(),
        "/incidents?status=open".to_string(),
        "/incidents?status=closed".to_string(),
        format!("/incidents?agent={agent}"),
        "/incidents?rule=5711".to_string(),
        "/incidents?group=default&limit=200".to_string(),
        "/incidents?q=needle".to_string(),
        "/api/v1/incidents?bucket=medium&limit=200".to_string(),
        "/cases".to_string(),
        format!("/cases?before={deep}"),
        "/cases?bucket=high".to_string(),
        format!("/cases?agent={agent}"),
        "/cases?rule=5711".to_string(),
        "/api/v1/cases?limit=200".to_string(),
        "/".to_string(),
    ];
    println!(
        "{:<48} {:>10} {:>10}  status",
        "page", "median ms", "worst ms"
    );
    let mut over = Vec::new();
    for p in &pages {
        let mut times = Vec::new();
        let mut status = 0;
        for _ in 0..reps {
            let req = axum::http::Request::get(p.as_str())
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(axum::body::Body::empty())
                .expect("request");
            let t = Instant::now();
            let resp = rt.block_on(async {
                let resp = r.clone().oneshot(req).await.expect("answer");
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
                    .await
                    .expect("body");
                (status, body.len())
            });
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            status = resp.0;
        }
        assert_eq!(status, 200, "{p}");
        times.sort_by(f64::total_cmp);
        let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
        println!("{p:<48} {median:>10.1} {worst:>10.1}  {status}");
        if median > 200.0 {
            over.push(p.clone());
        }
    }
    if over.is_empty() {
        println!("console bench: every page's median under 200 ms at {n} cases");
    } else {
        println!("console bench: OVER 200 ms at {n} cases: {over:?}");
    }
}
