//! Retention (issue 17): `[retention]` per bucket, `expire [--dry-run] [--json]` and `run`'s
//! expire step, on real files: due cases and their packs go, their rows stay `expired`, the
//! books still add up, and a crash anywhere in it is finished by the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use crate::support::{text, Env};

const RETENTION: &str = "[durability]\nfsync = \"batch\"\n[retention]\nsuppressed = \"14d\"\nlow = \"30d\"\nmedium = \"90d\"\nhigh = \"365d\"\n";
/// Ages in days of the alerts of each bucket; due: older than the bucket's retention.
/// (All under the default 400 days after which expired rows themselves are deleted.)
const AGES: [i64; 5] = [1, 20, 60, 200, 380];

/// A policy whose one signature makes the `noise` alerts suppressed.
fn env(extra: &str) -> Env {
    let env = Env::new("");
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[suppress]]\nid = \"fp-noise\"\nreason = \"test noise\"\nowner = \"soc\"\n\
         match = { \"rule.id\" = \"99001\" }\n",
    )
    .expect("policy");
    std::fs::write(
        &env.config,
        format!(
            "{RETENTION}{extra}[policy]\nfile = {:?}\n",
            policy.display().to_string()
        ),
    )
    .expect("config");
    env
}

/// One alert of `bucket`, `age` days old, `n` apart from the others.
fn line(bucket: &str, age: i64, n: usize) -> String {
    let t = chrono::Utc::now() - chrono::Duration::days(age) - chrono::Duration::seconds(n as i64);
    let (level, rule) = match bucket {
        "suppressed" => (3, "99001"),
        "low" => (3, "5501"),
        "medium" => (7, "550"),
        _ => (12, "92151"),
    };
    serde_json::json!({
        "timestamp": t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "rule": {"level": level, "description": format!("{bucket} {age}d"), "id": rule, "groups": ["test"]},
        "agent": {"id": "001", "name": format!("host-{}", n % 3)},
        "manager": {"name": "m1"},
        "id": format!("{}.{bucket}-{age}-{n}", t.timestamp()),
        "full_log": format!("{bucket} alert {n}, {age} days old"),
    })
    .to_string()
}

fn retention_days(bucket: &str) -> i64 {
    match bucket {
        "suppressed" => 14,
        "low" => 30,
        "medium" => 90,
        _ => 365,
    }
}

/// Every alert of every age in every bucket, and the lines that are due.
fn corpus(per_age: usize) -> (Vec<String>, BTreeSet<String>) {
    let mut lines = Vec::new();
    let mut due = BTreeSet::new();
    let mut n = 0;
    for bucket in ["suppressed", "low", "medium", "high"] {
        for age in AGES {
            for _ in 0..per_age {
                let l = line(bucket, age, n);
                if age > retention_days(bucket) {
                    due.insert(l.clone());
                }
                lines.push(l);
                n += 1;
            }
        }
    }
    (lines, due)
}

/// Every file under `dir`: relative path → bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            if e.file_type().expect("type").is_dir() {
                out.insert(rel.join(""), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `case id → (state, bucket, full_log)` from the ledger and the cases on disk.
fn rows(env: &Env) -> BTreeMap<String, (String, String, String)> {
    let c = env.ledger();
    let mut st = c
        .prepare("SELECT case_id, state, bucket, case_path FROM alerts WHERE case_id IS NOT NULL")
        .expect("prepare");
    let rows: Vec<(String, String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    rows.into_iter()
        .map(|(id, state, bucket, path)| {
            let f = env.path("cases").join(&path).join("alert.json");
            let log = std::fs::read_to_string(&f)
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["full_log"].as_str().map(str::to_string))
                .unwrap_or_default();
            (id, (state, bucket, log))
        })
        .collect()
}

/// How many files named `name` are under `dir`.
fn walk_files(dir: &Path, name: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            n += walk_files(&e.path(), name);
        } else if e.file_name() == name {
            n += 1;
        }
    }
    n
}

fn log_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    v["full_log"].as_str().expect("full_log").to_string()
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn expire_removes_exactly_the_due_cases_keeps_their_rows_and_the_books_add_up() {
    let env = env("");
    let (lines, due) = corpus(1);
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    let before = rows(&env);
    assert_eq!(before.len(), 20, "{before:?}");
    let due_logs: BTreeSet<String> = due.iter().map(|l| log_of(l)).collect();
    let due_ids: BTreeSet<String> = before
        .iter()
        .filter(|(_, (_, _, log))| due_logs.contains(log))
        .map(|(id, _)| id.clone())
        .collect();
    // suppressed: 20, 60, 200, 380 days; low: 60, 200, 380; medium: 200, 380; high: 380.
    assert_eq!(due_ids.len(), 10);

    // A dry run lists exactly the due cases and changes nothing at all.
    let snap = snapshot(&env.state);
    let dry = env.ok(&["expire", "--dry-run"]);
    let listed: BTreeSet<String> = dry
        .lines()
        .filter_map(|l| l.strip_prefix("due: "))
        .map(|l| l.split(' ').next().expect("case id").to_string())
        .collect();
    assert_eq!(listed, due_ids, "{dry}");
    assert!(
        last_line(&dry).starts_with("expire: status=DRY-RUN due=10 expired=0"),
        "{dry}"
    );
    let json = env.ok(&["expire", "--dry-run", "--json"]);
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(objects.len(), 11, "{json}");
    assert!(objects[..10].iter().all(|o| o["action"] == "due"));
    assert_eq!(objects[10]["totals"]["due"], 10, "{json}");
    assert_eq!(
        snapshot(&env.state),
        snap,
        "a dry run changed the state directory"
    );

    // The real thing: the due cases and the high one's pack go, their rows stay expired.
    let high_pack = before
        .iter()
        .find(|(id, (_, b, _))| b == "high" && due_ids.contains(*id))
        .map(|(id, _)| env.path("escalations").join(id))
        .expect("a due high case");
    assert!(high_pack.join("summary.md").exists());
    let out = env.ok(&["expire"]);
    assert!(
        last_line(&out).starts_with(
            "expire: status=OK due=10 expired=10 suppressed=4 low=3 medium=2 high=1 packs=1 finished=0 left=0"
        ),
        "{out}"
    );
    assert!(!high_pack.exists(), "the pack of an expired high case");
    let after = rows(&env);
    for (id, (state, _, log)) in &after {
        if due_ids.contains(id) {
            assert_eq!(state, "expired", "{id}");
            assert!(log.is_empty(), "{id}: its case is still on disk");
        } else {
            assert!(["triaged", "escalated"].contains(&state.as_str()), "{id}");
            assert!(!log.is_empty(), "{id}: a case that was not due is gone");
        }
    }
    // Incidents lose their expired members, and their files once they have none.
    let live_incidents: u64 = env
        .ledger()
        .query_row(
            "SELECT COUNT(DISTINCT incident) FROM alerts WHERE state IN ('triaged', 'escalated')",
            [],
            |r| r.get(0),
        )
        .expect("count");
    let expired_only: u64 = env
        .ledger()
        .query_row(
            "SELECT COUNT(*) FROM incidents WHERE members = 0",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(expired_only > 0, "no incident lost all its members");
    let files = walk_files(&env.path("incidents"), "incident.json");
    assert_eq!(
        files as u64, live_incidents,
        "incident files left for emptied incidents"
    );
    let deep = env.run(&["reconcile", "--deep"]);
    let deep_out = String::from_utf8_lossy(&deep.stdout).into_owned();
    assert!(deep.status.success(), "{}", text(&deep));
    assert_eq!(last_line(&deep_out), "VERDICT=PASS", "{deep_out}");
    assert!(
        deep_out
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["expired", "10", "-"]),
        "{deep_out}"
    );
    // A second expire has nothing to do.
    let again = env.ok(&["expire"]);
    assert!(
        last_line(&again).starts_with("expire: status=OK due=0 expired=0"),
        "{again}"
    );

    // An expired key polled or ingested again is a duplicate, not a new alert.
    let one = due.iter().next().expect("a due line").clone();
    let ing = env.ingest_lines(&[one]);
    let tri = env.ok(&["triage"]);
    assert_eq!(rows(&env).len(), 20, "ingest: {ing}\ntriage: {tri}");
    let run = env.ok(&["run"]);
    assert_eq!(last_line(&run), "VERDICT=PASS", "{run}");
    assert_eq!(env.states().get("expired").copied(), Some(10));

    // Expired rows older than `[retention] rows` are deleted: 200 and 380 days old.
    let config = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        config.replace("[retention]\n", "[retention]\nrows = \"100d\"\n"),
    )
    .expect("config");
    let out = env.ok(&["expire"]);
    assert!(last_line(&out).contains(" compacted=7 "), "{out}");
    assert_eq!(env.states().get("expired").copied(), Some(3));
    let deep = env.ok(&["reconcile", "--deep"]);
    assert_eq!(last_line(&deep), "VERDICT=PASS", "{deep}");
}

#[test]
fn run_expires_at_most_max_per_run_and_the_rest_next_time() {
    let env = env("max_per_run = 3\n");
    // `max_per_run` belongs to [retention]: the extra text lands inside that section.
    let (lines, _) = corpus(1);
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    let first = env.ok(&["run"]);
    let line = first
        .lines()
        .find(|l| l.starts_with("expire: "))
        .expect("an expire line");
    assert!(line.contains(" due=10 expired=3 "), "{line}");
    assert!(line.contains(" left=7 "), "{line}");
    assert_eq!(last_line(&first), "VERDICT=PASS", "{first}");
    for _ in 0..3 {
        env.ok(&["run"]);
    }
    assert_eq!(env.states().get("expired").copied(), Some(10));
    // A counter over every run, for Prometheus' rate(): in the heartbeat and the metrics.
    let hb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("heartbeat.json")).expect("heartbeat"))
            .expect("json");
    assert_eq!(hb["totals"]["expire.expired"], 10, "{hb}");
    let metrics = std::fs::read_to_string(env.path("metrics.prom")).expect("metrics");
    assert!(
        metrics.contains("signalfoundry_stage_total{stage=\"expire\",counter=\"expired\"} 10"),
        "{metrics}"
    );
}

/// 20 trials: an expire killed at a random moment (and at each of its crash points) leaves
/// nothing that the next run does not finish: VERDICT=PASS, every due case gone and `expired`,
/// every other case in place.
#[test]
fn an_expire_killed_anywhere_is_finished_by_the_next_run() {
    let template = env("");
    let (lines, due) = corpus(crate::support::scale(12, 60));
    template.ingest_lines(&lines);
    template.ok(&["triage"]);
    let due_logs: BTreeSet<String> = due.iter().map(|l| log_of(l)).collect();
    let before = rows(&template);
    let due_ids: BTreeSet<String> = before
        .iter()
        .filter(|(_, (_, _, log))| due_logs.contains(log))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(due_ids.len(), due.len());
    let mut seed: u64 = 0x5eed_2026;
    for trial in 0..20 {
        let env = env("");
        // The same triaged state for every trial.
        let copy = std::process::Command::new("cp")
            .arg("-a")
            .arg(&template.state)
            .arg(&env.state)
            .status()
            .expect("cp");
        assert!(copy.success());
        let mut cmd = env.cmd(&["expire"]);
        match trial {
            0 => {
                cmd.env("SIGNALFOUNDRY_DEBUG_CRASH_AT", "expire-marked");
            }
            1 => {
                cmd.env("SIGNALFOUNDRY_DEBUG_CRASH_AT", "expire-removed");
            }
            _ => {}
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("expire");
        if trial >= 2 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            std::thread::sleep(Duration::from_micros((seed >> 33) % 60_000));
            let _ = kill_process(Pid::from_child(&child), Signal::Kill);
        }
        let _ = child.wait();
        // Half the trials finish by reconcile first (it removes what an interrupted expire
        // left before it counts), half by the next run's expire step.
        let order: [&[&str]; 2] = if trial % 2 == 0 {
            [&["reconcile", "--deep"], &["run"]]
        } else {
            [&["run"], &["reconcile", "--deep"]]
        };
        for args in order {
            let out = env.ok(args);
            assert_eq!(
                last_line(&out),
                "VERDICT=PASS",
                "trial {trial}, {args:?}:\n{out}"
            );
        }
        let after = rows(&env);
        for (id, (state, _, log)) in &after {
            if due_ids.contains(id) {
                assert_eq!(state, "expired", "trial {trial}: {id}");
                assert!(log.is_empty(), "trial {trial}: {id} still on disk");
            } else {
                assert!(!log.is_empty(), "trial {trial}: {id} removed");
            }
        }
        assert!(
            !env.path("escalations")
                .read_dir()
                .expect("escalations")
                .any(
                    |e| due_ids.contains(&e.expect("e").file_name().to_string_lossy().into_owned())
                ),
            "trial {trial}: a pack of an expired case"
        );
    }
}
