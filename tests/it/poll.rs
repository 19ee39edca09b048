//! The poll stage against the indexer simulator (in-process, HTTPS with a throwaway CA on
//! loopback): exactly once over a live stream with late indexing and faults, SIGKILL at random
//! moments, TLS and credential failures, the password canary, the real OpenSearch bodies, and
//! short client timeouts (issue 3's acceptance list).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexer_sim::{FaultKind, SimConfig, SimHandle, Simulator};
use serde_json::Value;
use signalfoundry::stages::poll::wire;

use crate::support::{canonical_names, num, scale, summary, text, Env};

const USER: &str = "sf-poller";
const PASSWORD: &str = "sim-Pw-31415";

fn sim_cfg(alerts: usize) -> SimConfig {
    SimConfig {
        alerts,
        seed: 11,
        // Everything is older than `settle`, so every alert is in the window.
        end_time: Some(chrono::Utc::now() - chrono::Duration::minutes(2)),
        username: USER.into(),
        password: PASSWORD.into(),
        ..SimConfig::default()
    }
}

/// A simulator, its CA and a password file (mode 0600) in a temp dir of their own.
struct Rig {
    sim: SimHandle,
    dir: tempfile::TempDir,
    ca: PathBuf,
    pw: PathBuf,
}

impl Rig {
    fn start(cfg: SimConfig) -> Rig {
        Rig::start_with_password(cfg, PASSWORD)
    }

    /// `password` is what the poller will send (the simulator expects `cfg.password`).
    fn start_with_password(cfg: SimConfig, password: &str) -> Rig {
        let sim = Simulator::start(cfg).expect("start the simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("root-ca.pem");
        std::fs::write(&ca, sim.ca_pem()).expect("write ca");
        let pw = dir.path().join("indexer.password");
        std::fs::write(&pw, format!("{password}\n")).expect("write password");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Rig { sim, dir, ca, pw }
    }

    fn port(&self) -> u16 {
        self.sim.addr().port()
    }

    /// An `[indexer]` section; `extra` lines override or add keys.
    fn indexer(&self, extra: &str) -> String {
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in [
            ("url", format!("\"https://localhost:{}\"", self.port())),
            ("username", format!("\"{USER}\"")),
            ("password_file", format!("\"{}\"", self.pw.display())),
            ("ca_file", format!("\"{}\"", self.ca.display())),
            ("start_at", "\"3h\"".into()),
            ("page_size", "100".into()),
            ("timeout", "\"1s\"".into()),
        ] {
            keys.insert(k.into(), v);
        }
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').expect("key = value");
            let k = k.trim().to_string();
            if v.trim() == "REMOVE" {
                keys.remove(&k);
            } else {
                keys.insert(k, v.trim().to_string());
            }
        }
        let mut s = String::from("[indexer]\n");
        for (k, v) in keys {
            s.push_str(&format!("{k} = {v}\n"));
        }
        s
    }

    fn env(&self, indexer_extra: &str, rest: &str) -> Env {
        Env::new(&format!(
            "{}\n[durability]\nfsync = \"off\"\n{rest}\n",
            self.indexer(indexer_extra)
        ))
    }

    /// The key of every corpus document, as the pipeline computes it.
    fn corpus_keys(&self) -> BTreeSet<String> {
        crate::support::corpus_keys(&self.sim)
    }
}

fn poll_ok(env: &Env, args: &[&str]) -> BTreeMap<String, String> {
    let out = env.ok(args);
    summary(&out, "poll:")
}

/// Every ledger row (key -> (state, name)); fails on a key with two rows (impossible by schema,
/// checked anyway) and on a queued row without its file.
fn ledger_rows(env: &Env) -> BTreeMap<String, (String, String)> {
    let c = env.ledger();
    // A poll killed before its first schema migration committed leaves a ledger without tables:
    // it holds no row.
    let migrated: bool = c
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'alerts'",
            [],
            |r| r.get(0),
        )
        .expect("sqlite_master");
    if !migrated {
        return BTreeMap::new();
    }
    let mut st = c
        .prepare("SELECT alert_key, state, name FROM alerts")
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .expect("query");
    let mut out = BTreeMap::new();
    for r in rows {
        let (k, s, n) = r.expect("row");
        assert!(out.insert(k.clone(), (s, n)).is_none(), "two rows for {k}");
    }
    out
}

/// Every corpus alert is queued exactly once (one row per key, one file per row, no stray file).
fn assert_exactly_once(env: &Env, expected: &BTreeSet<String>) {
    let rows = ledger_rows(env);
    let keys: BTreeSet<String> = rows.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&keys).take(5).collect();
    let extra: Vec<_> = keys.difference(expected).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} alerts missing, e.g. {missing:?}",
        expected.difference(&keys).count()
    );
    assert!(extra.is_empty(), "unexpected rows, e.g. {extra:?}");
    let files: BTreeSet<String> = canonical_names(&env.path("queue")).into_iter().collect();
    let names: BTreeSet<String> = rows
        .values()
        .inspect(|(s, _)| assert_eq!(s, "queued"))
        .map(|(_, n)| n.clone())
        .collect();
    assert_eq!(files.len(), rows.len(), "one queue file per row");
    assert_eq!(files, names, "the files are the rows' files");
}

fn cursor(env: &Env) -> Option<chrono::DateTime<chrono::Utc>> {
    env.ledger()
        .query_row("SELECT v FROM meta WHERE k = 'poll_cursor'", [], |r| {
            r.get::<_, String>(0)
        })
        .ok()
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[test]
fn every_alert_of_a_live_stream_with_late_indexing_and_faults_is_queued_exactly_once() {
    let rig = Rig::start(SimConfig {
        rate: Some(500.0),
        late_rate: 0.1,
        fault_rate: 0.1,
        slow_ms: 1500,
        ..sim_cfg(1500)
    });
    // A short overlap, so that some late alerts arrive beyond it and only the audit finds them.
    let env = rig.env("overlap = \"30s\"", "");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut retries, mut partial) = (0, 0);
    loop {
        let done = rig.sim.fully_indexed();
        let s = poll_ok(&env, &["poll"]);
        retries += num(&s, "retries");
        partial += num(&s, "partial_retries");
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the stream did not end");
        std::thread::sleep(Duration::from_millis(150));
    }
    let audit = poll_ok(&env, &["poll", "--audit"]);
    assert_eq!(num(&audit, "audit"), 1);
    assert!(
        num(&audit, "audit_unseen") > 0,
        "some alerts were indexed later than the overlap and found by the audit: {audit:?}"
    );
    assert_exactly_once(&env, &rig.corpus_keys());
    let stats = rig.sim.stats();
    assert!(stats.faults_total() > 0, "faults were injected: {stats:?}");
    assert!(retries > 0, "and retried");
    let _ = partial;
    // The audit converged: a second one finds every day equal.
    let again = poll_ok(&env, &["poll", "--audit"]);
    assert_eq!(num(&again, "audit_differing"), 0, "{again:?}");
    assert_eq!(num(&again, "queued"), 0);
}

/// A tiny deterministic generator for kill delays (the seed is printed on failure).
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn sigkill_at_random_moments_loses_nothing_duplicates_nothing_and_the_cursor_never_runs_ahead() {
    let rig = Rig::start(sim_cfg(1000));
    let expected = rig.corpus_keys();
    // (alert time, key) of every corpus alert.
    let timed: Vec<(chrono::DateTime<chrono::Utc>, String)> = rig
        .sim
        .corpus()
        .iter()
        .map(|h| {
            let src = h["_source"].as_object().expect("source").clone();
            let idx = h["_index"].as_str().expect("index");
            let id = h["_id"].as_str().expect("id");
            let m = signalfoundry::model::alert::meta(&src, Some((idx, id)), chrono::Utc::now());
            (m.time, m.key.as_str().to_string())
        })
        .collect();
    let extra = "page_size = 25";
    // Calibrate: how long one full poll takes here.
    let t = Instant::now();
    let calib = rig.env(extra, "");
    poll_ok(&calib, &["poll"]);
    let full_ms = t.elapsed().as_millis().max(50) as u64;
    let trials = scale(20, 1000);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let first_seed = seed;
    let mut killed_mid_way = 0;
    for trial in 0..trials {
        let env = rig.env(extra, "");
        let delay = lcg(&mut seed) % (full_ms * 11 / 10);
        let mut child = env
            .cmd(&["poll"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn poll");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let ctx = format!("trial {trial}, kill after {delay} ms (seed {first_seed})");
        // The cursor is never ahead of what is durable: every alert older than the cursor
        // has its row, and every row its file.
        if env.path("ledger.db").exists() {
            let rows = ledger_rows(&env);
            let files: BTreeSet<String> = canonical_names(&env.path("queue")).into_iter().collect();
            for (k, (_, name)) in &rows {
                assert!(
                    files.contains(name),
                    "{ctx}: row {k} without its file {name}"
                );
            }
            if let Some(c) = cursor(&env) {
                let behind: Vec<&String> = timed
                    .iter()
                    .filter(|(t, k)| *t < c && !rows.contains_key(k))
                    .map(|(_, k)| k)
                    .collect();
                assert!(
                    behind.is_empty(),
                    "{ctx}: cursor {c} is ahead of {} alerts not in the ledger, e.g. {:?}",
                    behind.len(),
                    behind.first()
                );
                if rows.len() < expected.len() {
                    killed_mid_way += 1;
                }
            }
        }
        // The next poll finishes the job exactly once.
        poll_ok(&env, &["poll"]);
        assert_exactly_once(&env, &expected);
    }
    assert!(
        killed_mid_way > 0,
        "some kills landed between two commits (seed {first_seed})"
    );
}

#[test]
fn tls_and_credential_failures_fail_fast_each_with_its_own_message() {
    let rig = Rig::start(sim_cfg(50));
    let other = Simulator::start(sim_cfg(1)).expect("a second simulator, for its CA");
    let other_ca = rig.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.ca_pem()).expect("write");
    let wrong_pw = rig.dir.path().join("wrong.password");
    std::fs::write(&wrong_pw, "not-the-password\n").expect("write");
    std::fs::set_permissions(&wrong_pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ip_url = format!("url = \"https://127.0.0.1:{}\"", rig.port());
    let cases = [
        (
            "wrong CA",
            format!("ca_file = \"{}\"", other_ca.display()),
            "not signed by the CA in ca_file",
        ),
        (
            "wrong host name",
            format!("{ip_url}\ntls_server_name = \"node-9.example\""),
            "tls_server_name",
        ),
        (
            "untrusted self-signed",
            "ca_file = REMOVE".to_string(),
            "set [indexer] ca_file to the indexer's root-ca.pem",
        ),
        (
            "wrong password",
            format!("password_file = \"{}\"", wrong_pw.display()),
            "wrong username or password",
        ),
    ];
    let mut messages = BTreeSet::new();
    for (what, extra, needle) in &cases {
        let env = rig.env(extra, "");
        let before = rig.sim.stats().requests;
        let t = Instant::now();
        let o = env.run(&["poll"]);
        let took = t.elapsed();
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(err.contains(needle), "{what}: {err}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("poll: status=FAILED"),
            "{what}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{what} took {took:?}: no retries"
        );
        let sent = rig.sim.stats().requests - before;
        assert!(
            sent <= 1,
            "{what}: {sent} requests reached the indexer (no retry storm)"
        );
        let line = err
            .lines()
            .find(|l| l.contains("error:"))
            .unwrap_or_default()
            .to_string();
        messages.insert(line);
    }
    assert_eq!(
        messages.len(),
        cases.len(),
        "four different messages: {messages:#?}"
    );
    // The name override itself works: the IP in the url, a name the certificate carries.
    let env = rig.env(&format!("{ip_url}\ntls_server_name = \"localhost\""), "");
    let s = poll_ok(&env, &["poll"]);
    assert_eq!(num(&s, "queued"), 50);
}

/// Standard base64 (what the `Authorization: Basic` header carries).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

#[test]
fn the_password_canary_appears_in_no_log_file_error_or_help() {
    const CANARY: &str = "canary-Zq7-pw-4e1f";
    let basic = base64(format!("{USER}:{CANARY}").as_bytes());
    let good = Rig::start_with_password(
        SimConfig {
            password: CANARY.into(),
            ..sim_cfg(200)
        },
        CANARY,
    );
    // The indexer expects another password: the error path.
    let bad = Rig::start_with_password(sim_cfg(10), CANARY);
    let mut outputs: Vec<String> = Vec::new();
    let mut envs = Vec::new();
    for (rig, ok) in [(&good, true), (&bad, false)] {
        for (level, format) in [("debug", "text"), ("trace", "json"), ("info", "text")] {
            let env = rig.env("", "");
            let o = env
                .cmd(&["--log-format", format, "poll", "--audit"])
                .env("SIGNALFOUNDRY_LOG", level)
                .output()
                .expect("run");
            assert_eq!(o.status.success(), ok, "{}", text(&o));
            outputs.push(text(&o));
            envs.push(env);
        }
        // The environment variable path, too.
        let env = rig.env("password_file = REMOVE", "");
        let o = env
            .cmd(&["poll"])
            .env("SIGNALFOUNDRY_LOG", "debug")
            .env("SIGNALFOUNDRY_INDEXER_PASSWORD", CANARY)
            .output()
            .expect("run");
        assert_eq!(o.status.success(), ok, "{}", text(&o));
        outputs.push(text(&o));
        envs.push(env);
    }
    for args in [
        vec!["--help"],
        vec!["poll", "--help"],
        vec!["run", "--help"],
    ] {
        let o = envs[0].run(&args);
        outputs.push(text(&o));
    }
    for o in &outputs {
        assert!(
            !o.contains(CANARY) && !o.contains(&basic),
            "the password leaked:\n{o}"
        );
    }
    assert!(
        outputs.iter().any(|o| o.contains("DEBUG")),
        "debug logs were on"
    );
    let mut files = Vec::new();
    for env in &envs {
        files_under(&env.state, &mut files);
    }
    assert!(
        files.len() > 100,
        "the state directories hold the polled alerts"
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let hit = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(
            !hit(CANARY) && !hit(&basic),
            "the password is in {}",
            f.display()
        );
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/indexer-sim/tests/data/opensearch");
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_pollers_response_types_read_real_opensearch_bodies() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/indexer-sim/tests/data/opensearch");
    let mut covered = BTreeSet::new();
    let mut read = |name: &str| {
        covered.insert(name.to_string());
        fixture(name)
    };
    let w: wire::ClusterInfo =
        serde_json::from_slice(&read("cluster-info-wazuh-4.13.json")).expect("wazuh info");
    assert_eq!(w.version.number, "7.10.2");
    assert!(
        !w.version.is_opensearch(),
        "a Wazuh 4.x indexer does not name its distribution"
    );
    let o: wire::ClusterInfo =
        serde_json::from_slice(&read("cluster-info-opensearch-distribution.json"))
            .expect("os info");
    assert!(o.version.is_opensearch());
    assert_eq!(o.version.major_minor(), (3, 6));

    let s: wire::SearchResponse =
        serde_json::from_slice(&read("search-sorted-hits.json")).expect("search");
    assert_eq!(s.partial(), None);
    assert_eq!(s.hits.hits.len(), 2);
    assert_eq!(s.hits.hits[0].id, "32435");
    assert_eq!(
        s.hits.hits[1].sort,
        vec![Value::from(1), Value::from("32634")]
    );
    let src = s.hits.hits[0].source.as_ref().expect("_source");
    let m = signalfoundry::model::alert::parse_strict(src.get().as_bytes())
        .expect("strict parse of _source");
    assert_eq!(m["speaker"], "BERNARDO");
    assert_eq!(
        s.hits.total.as_ref().map(|t| t.relation.as_str()),
        Some("eq")
    );

    let p: wire::SearchResponse =
        serde_json::from_slice(&read("search-shard-failure.json")).expect("partial");
    let why = p.partial().expect("a shard failure is a partial answer");
    assert!(
        why.contains("1 of 2 shards failed") && why.contains("No mapping found"),
        "{why}"
    );

    let c: wire::CountResponse = serde_json::from_slice(&read("count.json")).expect("count");
    assert_eq!((c.count, c.partial()), (14074, None));
    let pc: wire::PitCreated = serde_json::from_slice(&read("pit-create.json")).expect("pit");
    assert!(pc.pit_id.starts_with("o463QQ") && pc.shards.failed == 0);
    let pd: wire::PitDeleted =
        serde_json::from_slice(&read("pit-delete.json")).expect("pit delete");
    assert_eq!(
        pd.pits.iter().map(|p| p.successful).collect::<Vec<_>>(),
        vec![true, false]
    );

    for (name, kind) in [
        ("result-window-400.json", "illegal_argument_exception"),
        (
            "search-context-missing-404.json",
            "search_context_missing_exception",
        ),
    ] {
        let e: wire::ErrorBody = serde_json::from_slice(&read(name)).expect(name);
        assert_eq!(e.kind_reason().0, kind, "{name}");
    }
    // The 401 is recognized by its status; its body is plain text, not an error object.
    let s401: Value = serde_json::from_slice(&read("security-401.json")).expect("401");
    assert_eq!(s401["status"], 401);
    assert!(
        serde_json::from_str::<wire::ErrorBody>(s401["body"].as_str().unwrap_or_default()).is_err()
    );

    let all: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(all, covered, "every fixture is read by the poller's types");
}

#[test]
fn slow_answers_and_partial_results_are_retried_with_a_short_timeout_and_never_committed() {
    let rig = Rig::start(SimConfig {
        fault_rate: 0.3,
        faults: Some(vec![FaultKind::Slow, FaultKind::Partial]),
        slow_ms: 2000,
        ..sim_cfg(600)
    });
    let env = rig.env("timeout = \"400ms\"\npage_size = 50", "");
    let t = Instant::now();
    let s = poll_ok(&env, &["poll"]);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(num(&s, "retries") > 0, "{s:?}");
    assert!(num(&s, "partial_retries") > 0, "{s:?}");
    assert_eq!(num(&s, "queued"), 600);
    assert_exactly_once(&env, &rig.corpus_keys());
}

#[test]
fn point_in_time_is_used_when_the_indexer_has_it_and_search_after_alone_otherwise() {
    for (version, compat, pit) in [
        ("2.19.1", false, 1),
        ("2.3.0", false, 0),
        ("2.19.1", true, 1),
        ("2.3.0", true, 0),
    ] {
        let rig = Rig::start(SimConfig {
            server_version: version.into(),
            wazuh_compat: compat,
            ..sim_cfg(300)
        });
        let env = rig.env("", "");
        let s = poll_ok(&env, &["poll"]);
        assert_eq!(num(&s, "pit"), pit, "{version} compat={compat}: {s:?}");
        assert_eq!(num(&s, "queued"), 300);
        assert_eq!(rig.sim.stats().pits_open, 0, "the point in time is closed");
    }
}

#[test]
fn a_wazuh_5_indexer_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = dir.path().join("findings.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| {
            serde_json::json!({
                "_index": ".ds-wazuh-findings-v5-system-activity-000001",
                "_id": format!("f{i}"),
                "_source": {"@timestamp": "2026-05-21T19:04:13.108Z", "wazuh": {"rule": {"level": "medium", "sigma_id": "x"}, "agent": {"name": "a"}}}
            })
            .to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n")).expect("write corpus");
    let rig = Rig::start(SimConfig {
        server_version: "3.6.0".into(),
        corpus: Some(corpus),
        ..sim_cfg(0)
    });
    let env = rig.env("", "");
    let o = env.run(&["poll"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Wazuh 5 indexer") && err.contains("wazuh-findings-v5"),
        "{err}"
    );
}

#[test]
fn backpressure_defers_past_backlog_limit_and_max_per_run_bounds_a_poll() {
    let rig = Rig::start(sim_cfg(500));
    let env = rig.env("page_size = 50", "[queue]\nbacklog_limit = 120");
    let s = poll_ok(&env, &["poll"]);
    assert_eq!(num(&s, "deferred"), 1, "{s:?}");
    let queued = num(&s, "queued");
    assert!((120..500).contains(&queued), "{s:?}");
    let c = cursor(&env);
    let s = poll_ok(&env, &["poll"]);
    assert_eq!((num(&s, "deferred"), num(&s, "fetched")), (1, 0), "{s:?}");
    assert_eq!(cursor(&env), c, "a deferred poll leaves the cursor");

    let env = rig.env("page_size = 50\nmax_per_run = 120", "");
    let s = poll_ok(&env, &["poll"]);
    assert_eq!((num(&s, "fetched"), num(&s, "limited")), (120, 1), "{s:?}");
    for _ in 0..6 {
        poll_ok(&env, &["poll"]);
    }
    assert_exactly_once(&env, &rig.corpus_keys());
}

#[test]
fn a_password_file_readable_by_others_or_missing_is_a_configuration_error() {
    let rig = Rig::start(sim_cfg(5));
    std::fs::set_permissions(&rig.pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let env = rig.env("", "");
    let o = env.run(&["poll"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("chmod 600 it") && err.contains(&rig.pw.display().to_string()),
        "{err}"
    );
    let env = rig.env("password_file = REMOVE", "");
    let o = env
        .cmd(&["poll"])
        .env_remove("SIGNALFOUNDRY_INDEXER_PASSWORD")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SIGNALFOUNDRY_INDEXER_PASSWORD"));
}
