//! Crash: `signalfoundry run` is SIGKILLed at random moments spread over the whole run (cap,
//! claims, building, publishing, packs, commits, reconcile, heartbeat), then run again: every
//! alert is a case exactly once, every high case has a verified pack, reconcile says PASS and
//! nothing is left in `processing/` or as a `.tmp-*` entry (DESIGN.md, "Reliability figures":
//! Crash).
//!
//! Every other trial runs `reconcile` between the kill and the recovery (it may see mismatches
//! but must record nothing as lost), and every fourth kills the recovering run too.
//!
//! The kill delay is calibrated from a timed uninterrupted run of the same queue, per durability
//! mode (`fsync = "batch"` and `"strict"` trials alternate), and stratified: trial `i` of `n`
//! lands uniformly inside the `i`-th `n`th of the calibrated duration plus a quarter (runs vary;
//! a run that ends before its kill lowers the calibration for the trials after it), so the kills
//! cover the whole run. The seed is printed; `SF_SCALE` sets the number of trials.
//!
//! The state directories live on `/dev/shm` (tmpfs) when there is one: a SIGKILL does not drop
//! the page cache, so the disk adds nothing to what this test can see, while `syncfs` on a
//! shared disk pays for every other job's writes and makes each trial slow and its timing noisy.
//! The code paths (`fsync`, `syncfs`, their order) are the same.
//!
//! The checks here (`assert_drained_exactly_once`) are shared with the disk-full test.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{alert_line, num, scale, summary, Env};

/// Alerts in the crash queue: long enough a run to be killed in every phase.
const ALERTS: usize = 3000;

/// The configuration of a crash or disk-full environment: a cap below the queue (so cap defers
/// and triage refills from overflow) and the given durability mode.
pub fn config(fsync: &str, cap: usize) -> String {
    // Small batches, so that a kill can land between batches as well as inside one.
    format!("[durability]\nfsync = \"{fsync}\"\n[queue]\ncap = {cap}\n[triage]\nbatch = 200\n")
}

/// `n` alerts, ~3% high (levels 12 to 15, some critical), the rest spread over low and medium,
/// over a few days so cases land in several day directories. Returns the lines and, per alert
/// id, its level.
pub fn alerts(n: usize) -> (Vec<String>, BTreeMap<String, u32>) {
    let mut lines = Vec::with_capacity(n);
    let mut levels = BTreeMap::new();
    for i in 0..n {
        let level = if i % 100 < 3 {
            12 + (i % 4) as u32
        } else {
            [3, 5, 7, 9, 10, 4][i % 6]
        };
        lines.push(alert_line(i, level, (i as u64) * 97));
        levels.insert(format!("1764000000.{i}"), level);
    }
    (lines, levels)
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// An environment like [`Env::new`], on tmpfs (`/dev/shm`) when there is one.
pub fn env_on_tmpfs(extra: &str) -> Env {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("sf-crash-")
            .tempdir_in(shm)
            .or_else(|_| tempfile::tempdir())
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let state = dir.path().join("state");
    let config = dir.path().join("signalfoundry.toml");
    std::fs::write(&config, extra).expect("write config");
    Env { dir, state, config }
}

/// Copies a prepared state directory into `env` (the template is ingested once).
fn copy_state(from: &Path, env: &Env) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(&env.state)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {} failed", from.display());
}

fn names(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

/// Every `.tmp-*` entry at any depth below `dir`.
fn temps_below(dir: &Path, out: &mut Vec<PathBuf>) {
    for n in names(dir) {
        let p = dir.join(&n);
        if n.starts_with(".tmp-") {
            out.push(p.clone());
        }
        if p.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
            temps_below(&p, out);
        }
    }
}

/// One case directory as found on disk.
pub struct CaseDir {
    pub id: String,
    pub bucket: String,
    pub path: PathBuf,
}

/// Every entry at case depth (`cases/<bucket>/YYYY/MM/DD/<entry>`), dot-named ones included.
pub fn case_dirs(state: &Path) -> Vec<CaseDir> {
    let mut out = Vec::new();
    for bucket in ["suppressed", "low", "medium", "high"] {
        let b = state.join("cases").join(bucket);
        for y in names(&b) {
            for m in names(&b.join(&y)) {
                for d in names(&b.join(&y).join(&m)) {
                    let day = b.join(&y).join(&m).join(&d);
                    for c in names(&day) {
                        out.push(CaseDir {
                            id: c.clone(),
                            bucket: bucket.to_string(),
                            path: day.join(c),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Checks that every published case and pack is whole: a case directory holds exactly
/// `case.json` and `alert.json`, both valid JSON naming the same case; every pack verifies.
/// Returns the number of cases.
pub fn assert_nothing_half_written(state: &Path, ctx: &str) -> usize {
    let cases = case_dirs(state);
    for c in &cases {
        assert!(
            !c.id.starts_with('.'),
            "{ctx}: dot entry among cases: {}",
            c.path.display()
        );
        let mut files = names(&c.path);
        files.sort();
        assert_eq!(
            files,
            ["alert.json", "case.json"],
            "{ctx}: partial case {}",
            c.path.display()
        );
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.path.join("case.json")).expect("case.json"))
                .unwrap_or_else(|e| panic!("{ctx}: {}: case.json: {e}", c.path.display()));
        assert_eq!(case["case_id"], c.id.as_str(), "{ctx}");
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(c.path.join("alert.json")).expect("alert.json"),
        )
        .unwrap_or_else(|e| panic!("{ctx}: {}: alert.json: {e}", c.path.display()));
    }
    for p in names(&state.join("escalations")) {
        if p.starts_with('.') {
            continue;
        }
        let dir = state.join("escalations").join(&p);
        let r = signalfoundry::stages::escalate::verify_pack(&dir)
            .unwrap_or_else(|e| panic!("{ctx}: pack {}: {e}", dir.display()));
        assert!(r.is_ok(), "{ctx}: pack {}: {r}", dir.display());
    }
    cases.len()
}

/// After a run that drained the queue: every alert of `levels` is exactly one case in the bucket
/// its level says, every row is triaged or escalated (nothing lost), every high case has its
/// pack and every pack verifies, and nothing is left in `queue/`, `overflow/`, `processing/`,
/// nor as a `.tmp-*` entry under `cases/` or `escalations/`.
pub fn assert_drained_exactly_once(env: &Env, levels: &BTreeMap<String, u32>, ctx: &str) {
    let state = &env.state;
    assert_nothing_half_written(state, ctx);
    let cases = case_dirs(state);
    let ids: HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), cases.len(), "{ctx}: a case id appears twice");
    let mut keys = HashSet::new();
    let mut seen_alerts: BTreeMap<String, usize> = BTreeMap::new();
    let mut high = BTreeSet::new();
    for c in &cases {
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.path.join("case.json")).expect("case.json"))
                .expect("json");
        let key = case["alert_key"].as_str().expect("alert_key").to_string();
        assert!(keys.insert(key.clone()), "{ctx}: two cases for key {key}");
        assert_eq!(case["bucket"], c.bucket.as_str(), "{ctx}: {}", c.id);
        let alert: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.path.join("alert.json")).expect("alert.json"))
                .expect("json");
        let id = alert["id"].as_str().expect("alert id").to_string();
        let level = *levels
            .get(&id)
            .unwrap_or_else(|| panic!("{ctx}: case {} holds an alien alert {id}", c.id));
        let want = match level {
            0..=6 => "low",
            7..=11 => "medium",
            _ => "high",
        };
        assert_eq!(c.bucket, want, "{ctx}: alert {id} (level {level})");
        *seen_alerts.entry(id).or_default() += 1;
        if c.bucket == "high" {
            high.insert(c.id.clone());
        }
    }
    let missing: Vec<&String> = levels
        .keys()
        .filter(|k| !seen_alerts.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{ctx}: {} alerts are not a case, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(cases.len(), levels.len(), "{ctx}: one case per alert");
    // Every high case has its pack (verified above), and there is no other pack.
    let packs: BTreeSet<String> = names(&state.join("escalations"))
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(packs, high, "{ctx}: packs are exactly the high cases");
    // The ledger: one row per alert, all finished; nothing lost.
    let states = env.states();
    let done =
        states.get("triaged").copied().unwrap_or(0) + states.get("escalated").copied().unwrap_or(0);
    assert_eq!(
        done,
        levels.len() as u64,
        "{ctx}: rows per state {states:?}"
    );
    assert_eq!(
        states.values().sum::<u64>(),
        levels.len() as u64,
        "{ctx}: rows per state {states:?}"
    );
    assert_eq!(
        states.get("escalated").copied().unwrap_or(0),
        high.len() as u64,
        "{ctx}: {states:?}"
    );
    // Nothing left behind.
    for d in ["queue", "overflow", "processing"] {
        let left = names(&state.join(d));
        assert!(left.is_empty(), "{ctx}: left in {d}/: {left:?}");
    }
    let mut temps = Vec::new();
    temps_below(&state.join("cases"), &mut temps);
    temps_below(&state.join("escalations"), &mut temps);
    temps_below(&state.join("incidents"), &mut temps);
    assert!(temps.is_empty(), "{ctx}: temp entries left: {temps:?}");
    assert_incidents_exact(env, &cases, ctx);
}

/// Incidents under the default grouping (no policy: same `rule.id` and agent, one hour): the
/// cases of one (rule, agent, hour) are one incident, each case names it, and the ledger's
/// counts and every `incident.json` say exactly that many members; `reconcile --deep` passes.
fn assert_incidents_exact(env: &Env, cases: &[CaseDir], ctx: &str) {
    let mut by_key: BTreeMap<(String, String, i64), BTreeSet<String>> = BTreeMap::new();
    let mut members: BTreeMap<String, u64> = BTreeMap::new();
    for c in cases {
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.path.join("case.json")).expect("case.json"))
                .expect("json");
        let t = chrono::DateTime::parse_from_rfc3339(case["alert_time"].as_str().expect("time"))
            .expect("alert time");
        let key = (
            case["rule"]["id"].to_string(),
            case["agent"]["canonical"].to_string(),
            t.timestamp().div_euclid(3600),
        );
        let inc = case["incident"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: case {} names no incident", c.id))
            .to_string();
        by_key.entry(key).or_default().insert(inc.clone());
        *members.entry(inc).or_default() += 1;
    }
    for (k, ids) in &by_key {
        assert_eq!(ids.len(), 1, "{ctx}: the alerts of {k:?} are in {ids:?}");
    }
    assert_eq!(members.len(), by_key.len(), "{ctx}: one incident per key");
    let table = crate::incidents::incident_counts(env);
    let table: BTreeMap<String, u64> = table.into_iter().map(|(k, v)| (k, v[0])).collect();
    assert_eq!(table, members, "{ctx}: the ledger's incident counts");
    let files: BTreeMap<String, u64> = crate::incidents::incident_files(&env.state)
        .into_iter()
        .map(|(k, v)| (k, v["members"]["total"].as_u64().expect("total")))
        .collect();
    assert_eq!(files, members, "{ctx}: incident.json counts");
    crate::incidents::assert_deep_pass(env);
}

/// Where a kill landed, judged from what it left on disk and in the ledger.
fn phase_of(env: &Env, total: usize) -> Vec<&'static str> {
    let state = &env.state;
    let mut out = Vec::new();
    let cases = case_dirs(state).len();
    let mut claims = 0;
    let mut temp_cases = 0;
    for w in names(&state.join("processing")) {
        let p = state.join("processing").join(&w);
        for e in names(&p) {
            if e.starts_with(".tmp-case-") {
                temp_cases += 1;
            } else if e.ends_with(".json") {
                claims += 1;
            }
        }
    }
    let temp_packs = names(&state.join("escalations"))
        .iter()
        .filter(|n| n.starts_with(".tmp-"))
        .count();
    let states = env.states();
    let get = |s: &str| states.get(s).copied().unwrap_or(0) as usize;
    let done = get("triaged") + get("escalated");
    let overflow_files = names(&state.join("overflow")).len();
    if cases == 0 && claims == 0 && temp_cases == 0 {
        out.push(if overflow_files > 0 || get("overflow") > 0 {
            "cap"
        } else {
            "start"
        });
    }
    if claims > 0 && temp_cases == 0 {
        out.push("claims");
    }
    if temp_cases > 0 {
        out.push("building/publishing");
    }
    if temp_packs > 0 {
        out.push("packs");
    }
    if get("triaging") > 0 && cases > done {
        out.push("published, not committed");
    }
    if cases == total && done == total {
        out.push(if state.join("heartbeat.json").exists() {
            "heartbeat/after"
        } else {
            "reconcile"
        });
    } else if cases > 0 && claims == 0 && temp_cases == 0 && temp_packs == 0 {
        out.push("between batches");
    }
    out
}

#[test]
fn sigkill_at_random_moments_of_a_run_then_one_more_run_loses_nothing_duplicates_nothing_and_passes(
) {
    let trials = scale(20, 200);
    let (lines, levels) = alerts(ALERTS);
    // Low enough that cap defers by exchanging queue/ and overflow/ (2,500 of 3,000 alerts).
    let cap = 500;
    // The queue, ingested once (with batch durability: strict ingest is slow and not under test).
    let template = env_on_tmpfs(&config("batch", cap));
    let s = summary(&template.ingest_lines(&lines), "ingest:");
    assert_eq!(num(&s, "queued"), ALERTS as u64);
    // Calibrate: uninterrupted runs per mode (the quicker of two: the first pays for cold
    // caches); each must pass the same checks.
    let mut full_ms: BTreeMap<&str, u64> = BTreeMap::new();
    for mode in ["batch", "strict", "batch", "strict"] {
        let env = env_on_tmpfs(&config(mode, cap));
        copy_state(&template.state, &env);
        let t = Instant::now();
        let out = env.ok(&["run"]);
        let ms = t.elapsed().as_millis().max(100) as u64;
        let e = full_ms.entry(mode).or_insert(ms);
        *e = (*e).min(ms);
        assert_eq!(out.lines().last(), Some("VERDICT=PASS"), "{out}");
        assert_drained_exactly_once(&env, &levels, &format!("calibration ({mode})"));
    }
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    if let Ok(s) = std::env::var("SF_CRASH_SEED") {
        seed = s.parse().expect("SF_CRASH_SEED is a number");
    }
    let first_seed = seed;
    eprintln!(
        "crash: {trials} trials, {ALERTS} alerts, uninterrupted run {full_ms:?} ms, seed {first_seed} (SF_CRASH_SEED to replay)"
    );
    let mut phases: BTreeMap<&str, u64> = BTreeMap::new();
    let mut mid_triage = 0;
    let mut finished_before_kill = 0;
    let t_all = Instant::now();
    for trial in 0..trials {
        let mode = if trial % 3 == 1 { "strict" } else { "batch" };
        let span = full_ms[mode] * 5 / 4;
        let u = lcg(&mut seed) % 1_000_000;
        let delay = span * (trial as u64 * 1_000_000 + u) / (trials as u64 * 1_000_000);
        let env = env_on_tmpfs(&config(mode, cap));
        copy_state(&template.state, &env);
        let mut child = env
            .cmd(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn run");
        // Wait for the kill moment, watching for an early end.
        let started = Instant::now();
        let mut early = None;
        while started.elapsed() < Duration::from_millis(delay) {
            if let Some(st) = child.try_wait().expect("try_wait") {
                early = Some((st, started.elapsed().as_millis() as u64));
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let ctx = format!("trial {trial} ({mode}), kill after {delay} ms (seed {first_seed})");
        if let Some((st, took)) = early {
            finished_before_kill += 1;
            assert!(st.success(), "{ctx}: the run ended by itself and failed");
            // Runs got quicker than the calibration (the machine is shared): later kills
            // aim at the quicker figure.
            let f = full_ms.get_mut(mode).expect("mode");
            *f = (*f).min(took.max(100));
        }
        let found = phase_of(&env, ALERTS);
        let cases_now = case_dirs(&env.state).len();
        if cases_now > 0 && cases_now < ALERTS {
            mid_triage += 1;
        }
        for p in &found {
            *phases.entry(p).or_default() += 1;
        }
        // Every other trial, a reconcile runs before any recovery: the crash's leftovers may
        // be mismatches, but none of them is a lost alert (each has a recovery rule).
        if trial % 2 == 1 {
            let o = env.run(&["reconcile"]);
            let out = String::from_utf8_lossy(&o.stdout);
            let r = summary(&out, "reconcile:");
            assert_eq!(
                num(&r, "newly_lost"),
                0,
                "{ctx}: reconcile before recovery recorded a recoverable alert as lost ({found:?}):\n{out}"
            );
        }
        // Every fourth trial, the recovering run is killed too (recovery must survive a crash
        // of its own), at a random moment of its first half.
        if trial % 4 == 3 {
            let again = lcg(&mut seed) % (span / 2).max(1);
            let mut child = env
                .cmd(&["run"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn run");
            std::thread::sleep(Duration::from_millis(again));
            let _ = child.kill();
            let _ = child.wait();
            *phases.entry("recovery killed too").or_default() += 1;
        }
        // The next run, not killed, finishes the job exactly once.
        let o = env.run(&["run"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.lines().last() == Some("VERDICT=PASS"),
            "{ctx}: the run after the crash ({found:?}) did not pass: {:?}\nstdout:\n{out}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        assert_drained_exactly_once(&env, &levels, &format!("{ctx} ({found:?})"));
    }
    eprintln!(
        "crash: {trials} trials in {:.1} s; kills landed in: {phases:?}; mid-triage: {mid_triage}; finished before the kill: {finished_before_kill} (seed {first_seed})",
        t_all.elapsed().as_secs_f64()
    );
    assert!(
        mid_triage > 0,
        "no kill landed while triage was part-way (seed {first_seed})"
    );
}
