//! Triage, cases, escalation packs, reconcile and `run`, end to end on real files.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support::{alert_line, bin, canonical_names, num, scale, summary, Env};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wazuh-alerts");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// An environment with the default policy written beside the configuration.
fn env_with_default_policy(extra: &str) -> Env {
    let env = Env::new("");
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(&policy, sf_policy::DEFAULT_POLICY_TOML).expect("policy");
    std::fs::write(
        &env.config,
        format!(
            "[policy]\nfile = {:?}\n{extra}",
            policy.display().to_string()
        ),
    )
    .expect("config");
    env
}

/// Every case directory: case id → (bucket, path).
fn cases(env: &Env) -> BTreeMap<String, (String, PathBuf)> {
    let mut out = BTreeMap::new();
    for bucket in ["suppressed", "low", "medium", "high"] {
        let b = env.path("cases").join(bucket);
        if !b.exists() {
            continue;
        }
        for y in std::fs::read_dir(&b).expect("y") {
            for m in std::fs::read_dir(y.expect("y").path()).expect("m") {
                for d in std::fs::read_dir(m.expect("m").path()).expect("d") {
                    for c in std::fs::read_dir(d.expect("d").path()).expect("c") {
                        let c = c.expect("c");
                        out.insert(
                            c.file_name().to_string_lossy().into_owned(),
                            (bucket.to_string(), c.path()),
                        );
                    }
                }
            }
        }
    }
    out
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

#[test]
fn every_real_alert_becomes_a_case_in_its_policy_bucket_and_high_ones_get_verified_packs() {
    let env = env_with_default_policy("");
    let lines: Vec<String> = fixtures()
        .iter()
        .map(|p| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
            v.to_string()
        })
        .collect();
    let s = summary(&env.ingest_lines(&lines), "ingest:");
    assert_eq!(num(&s, "queued"), lines.len() as u64, "{s:?}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    // What the policy says for each fixture, from the engine's own explanation.
    let policy = env.dir.path().join("policy.toml");
    let mut args = vec![
        "policy".to_string(),
        "test".into(),
        "--json".into(),
        "--policy".into(),
        policy.display().to_string(),
    ];
    args.extend(fixtures().iter().map(|p| p.display().to_string()));
    let o = std::process::Command::new(bin())
        .args(&args)
        .output()
        .expect("policy test");
    let expected: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(expected.len(), lines.len());
    let cases = cases(&env);
    assert_eq!(cases.len(), lines.len(), "one case per alert");
    let mut by_bucket: BTreeMap<String, usize> = BTreeMap::new();
    for (case_id, (bucket, path)) in &cases {
        let case: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.join("case.json")).expect("case.json"))
                .expect("json");
        assert_eq!(case["case_id"], case_id.as_str());
        assert_eq!(case["bucket"], bucket.as_str());
        // alert.json is the queued file byte for byte: it parses to one of the fixtures.
        let alert: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.join("alert.json")).expect("alert.json"))
                .expect("json");
        let i = lines
            .iter()
            .position(|l| serde_json::from_str::<serde_json::Value>(l).expect("j") == alert)
            .expect("alert.json is one of the ingested alerts");
        assert_eq!(
            expected[i]["bucket"],
            bucket.as_str(),
            "{}",
            fixtures()[i].display()
        );
        // The incident `policy test` shows is the one triage fixed for the alert.
        let shown = expected[i]["incident"]["id"].as_str().expect("incident id");
        assert!(shown.starts_with("INC-"), "{shown}");
        assert_eq!(
            case["incident"].as_str(),
            Some(shown),
            "{}",
            fixtures()[i].display()
        );
        *by_bucket.entry(bucket.clone()).or_default() += 1;
        if bucket == "high" {
            let pack = env.path("escalations").join(case_id);
            let v = std::process::Command::new(bin())
                .arg("verify-pack")
                .arg(&pack)
                .output()
                .expect("verify");
            assert!(
                v.status.success(),
                "{}: {}",
                pack.display(),
                String::from_utf8_lossy(&v.stdout)
            );
            for f in [
                "summary.md",
                "alert.json",
                "case.json",
                "related.jsonl",
                "observables.json",
                "manifest.json",
            ] {
                assert!(pack.join(f).is_file(), "{f} in {}", pack.display());
            }
        }
    }
    let packs = std::fs::read_dir(env.path("escalations"))
        .expect("read")
        .count();
    assert_eq!(packs, by_bucket.get("high").copied().unwrap_or(0));
    for b in ["suppressed", "low", "medium", "high"] {
        assert!(
            by_bucket.get(b).copied().unwrap_or(0) > 0,
            "no {b} case: {by_bucket:?}"
        );
    }
    // A second run finds nothing to do and still passes.
    assert_eq!(last_line(&env.ok(&["run"])), "VERDICT=PASS");
}

#[test]
fn several_triage_workers_and_a_deleter_triage_every_remaining_alert_exactly_once() {
    let n = scale(20_000, 200_000);
    let env = Env::new("[durability]\nfsync = \"batch\"\n[queue]\ncap = 1000000\n");
    let lines: Vec<String> = (0..n)
        .map(|i| alert_line(i, (i % 16) as u32, i as u64))
        .collect();
    env.ingest_lines(&lines);
    let original: HashSet<String> = canonical_names(&env.path("queue")).into_iter().collect();
    let deleter = env
        .cmd(&[
            "debug-vanish",
            "--dir",
            env.path("queue").to_str().expect("p"),
            "--fraction",
            "0.03",
            "--seed",
            "3",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("deleter");
    let workers: Vec<_> = (0..3)
        .map(|_| {
            env.cmd(&["triage"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("triage")
        })
        .collect();
    let del = deleter.wait_with_output().expect("deleter");
    let deleted: HashSet<String> = String::from_utf8_lossy(&del.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("deleted ").map(str::to_string))
        .collect();
    let mut triaged = 0;
    for w in workers {
        let o = w.wait_with_output().expect("worker");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        triaged += num(
            &summary(&String::from_utf8_lossy(&o.stdout), "triage:"),
            "triaged",
        );
    }
    // Whatever the deleter did not take is triaged exactly once; the rest stays in the queue
    // only if the deleter raced it after the workers finished (it cannot: they ran to empty).
    let cases = cases(&env);
    assert_eq!(cases.len() as u64, triaged, "one case per triaged alert");
    let ids: HashSet<&String> = cases.keys().collect();
    assert_eq!(ids.len(), cases.len(), "no duplicate case ids");
    let remaining = canonical_names(&env.path("queue")).len();
    assert_eq!(remaining, 0);
    let vanished_by_deleter = deleted.iter().filter(|d| original.contains(*d)).count();
    assert_eq!(
        cases.len() + vanished_by_deleter,
        n,
        "every alert is a case or was deleted"
    );
    // The first reconcile records the deleted ones as lost and fails once; the next passes.
    let o = env.run(&["reconcile"]);
    let out = String::from_utf8_lossy(&o.stdout);
    if vanished_by_deleter > 0 {
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert_eq!(last_line(&out), "VERDICT=FAIL");
        assert_eq!(
            out.matches("  lost: ").count(),
            vanished_by_deleter,
            "{out}"
        );
    }
    let again = env.ok(&["reconcile"]);
    assert_eq!(last_line(&again), "VERDICT=PASS", "{again}");
    assert_eq!(
        env.states().get("lost").copied().unwrap_or(0) as usize,
        vanished_by_deleter
    );
}

#[test]
fn reconcile_deep_names_a_deleted_case_and_a_planted_foreign_one() {
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    let lines: Vec<String> = (0..20).map(|i| alert_line(i, 5, i as u64)).collect();
    env.ingest_lines(&lines);
    assert_eq!(last_line(&env.ok(&["run"])), "VERDICT=PASS");
    let all = cases(&env);
    let (victim, (_, path)) = all.iter().next().expect("a case");
    std::fs::remove_dir_all(path).expect("delete case");
    let day = path.parent().expect("day");
    std::fs::create_dir(day.join("SF-planted")).expect("plant");
    let o = env.run(&["reconcile", "--deep"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(last_line(&out), "VERDICT=FAIL");
    assert!(
        out.contains(victim.as_str()),
        "the deleted case is named:\n{out}"
    );
    assert!(
        out.contains("SF-planted"),
        "the planted case is named:\n{out}"
    );
}

#[test]
fn broken_inputs_in_the_queue_are_quarantined_with_reasons_and_high_ones_get_a_q_pack() {
    let env = env_with_default_policy("[triage]\nmax_alert_bytes = 100000\n");
    std::fs::create_dir_all(env.path("incoming")).expect("mkdir");
    let inc = env.path("incoming");
    std::fs::write(inc.join("empty.json"), "").expect("w");
    std::fs::write(inc.join("trunc.json"), "{\"rule\": {\"level\": 3").expect("w");
    std::fs::write(inc.join("latin1.json"), b"{\"a\": \"\xe9\"}").expect("w");
    std::fs::write(
        inc.join("huge.json"),
        format!("{{\"a\":\"{}\"}}", "x".repeat(200_000)),
    )
    .expect("w");
    std::fs::write(
        inc.join("deep.json"),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    )
    .expect("w");
    std::fs::write(
        inc.join("dup.json"),
        r#"{"rule":{"level":3,"level":15},"id":"1","manager":{"name":"m"}}"#,
    )
    .expect("w");
    // Valid JSON, but the decision needs rule.level as a number: quarantined; a readable high
    // level elsewhere gets a Q- pack.
    std::fs::write(
        inc.join("wrongtype.json"),
        r#"{"rule":{"level":"high"},"id":"2","manager":{"name":"m"}}"#,
    )
    .expect("w");
    std::fs::write(
        inc.join("nolevel.json"),
        r#"{"rule":{"id":"5"},"id":"3","manager":{"name":"m"}}"#,
    )
    .expect("w");
    // A number that is not a level (15.5): the decision refuses it, so it is quarantined, and
    // as it reads at or above high, it still gets an escalation pack.
    std::fs::write(
        inc.join("qhigh.json"),
        r#"{"rule":{"level":15.5,"id":"9"},"id":"4","manager":{"name":"m"}}"#,
    )
    .expect("w");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let reasons: Vec<String> = std::fs::read_dir(env.path("quarantine"))
        .expect("read")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "reason"))
        .map(|p| std::fs::read_to_string(p).expect("r"))
        .collect();
    let all = reasons.join("\n");
    for what in [
        "empty input",
        "invalid JSON",
        "UTF-8",
        "over max_alert_bytes",
        "duplicated key",
        "rule.level",
    ] {
        assert!(all.contains(what), "{what} in:\n{all}");
    }
    assert_eq!(reasons.len(), 9, "{all}");
    let qpacks: Vec<String> = std::fs::read_dir(env.path("escalations"))
        .expect("read")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("Q-"))
        .collect();
    assert_eq!(qpacks.len(), 1, "{qpacks:?}");
    let case = std::fs::read_to_string(env.path("escalations").join(&qpacks[0]).join("case.json"))
        .expect("case");
    assert!(case.contains("\"quarantined\": true"), "{case}");
}

#[test]
fn hostile_content_is_triaged_escalated_and_rendered_inert() {
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    let hostile = serde_json::json!({
        "timestamp": "2026-11-27T10:00:00.000+0000",
        "rule": {"level": 13, "id": "100200", "description": "[click](javascript:alert(1)) <img src=x onerror=alert(1)> \u{1b}[31mred"},
        "agent": {"id": "../../etc", "name": "../../../tmp/evil\nname\u{0}", "ip": "10.0.0.1"},
        "manager": {"name": "m/../x"},
        "id": "../../../../tmp/pwned\n",
        "data": {"url": "http://evil.example/x", "srcip": "203.0.113.9"},
        "full_log": "```\n<script>alert(1)</script>\n![i](http://evil.example/a.png)"
    });
    env.ingest_lines(&[hostile.to_string()]);
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let cases = cases(&env);
    assert_eq!(cases.len(), 1);
    let (id, (bucket, _)) = cases.iter().next().expect("case");
    assert_eq!(bucket, "high");
    let summary = std::fs::read_to_string(env.path("escalations").join(id).join("summary.md"))
        .expect("summary");
    assert!(
        !summary.chars().any(|c| c.is_control() && c != '\n'),
        "control character in summary"
    );
    assert!(!summary.contains("http://evil.example"), "undefanged url");
    // Nothing was written outside the state directory.
    assert!(!Path::new("/tmp/pwned").exists());
    assert!(!Path::new("/tmp/evil").exists());
}

/// A worker killed between claiming a file into its temp case and committing the intent leaves
/// `processing/<w>/.tmp-case-<canonical>/alert.json` with a `queued` row. Reconcile counts it
/// as a claim (never lost), and the next triage puts it back and triages it exactly once.
#[test]
fn a_dead_workers_claim_in_a_temp_case_is_neither_lost_nor_doubled() {
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    let lines: Vec<String> = (0..6)
        .map(|i| alert_line(i, 3 + i as u32, i as u64))
        .collect();
    env.ingest_lines(&lines);
    let queued = canonical_names(&env.path("queue"));
    assert_eq!(queued.len(), 6);
    // A dead worker: its folder and an unlocked `.lock`, one claim in a temp case and one
    // temp case made before its rename (empty).
    let w = env.path("processing/w-1-0badf00d");
    std::fs::create_dir_all(&w).expect("worker folder");
    std::fs::write(w.join(".lock"), b"").expect("lock file");
    let claimed = &queued[2];
    let tmp = w.join(format!(".tmp-case-{}", claimed.trim_end_matches(".json")));
    std::fs::create_dir(&tmp).expect("temp case");
    std::fs::rename(env.path("queue").join(claimed), tmp.join("alert.json")).expect("claim");
    std::fs::create_dir(w.join(format!(".tmp-case-{}", queued[3].trim_end_matches(".json"))))
        .expect("empty temp case");
    let out = env.ok(&["reconcile", "--deep"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert!(!env.states().contains_key("lost"), "{:?}", env.states());
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let all = cases(&env);
    assert_eq!(all.len(), 6, "every alert has exactly one case: {all:?}");
    let states = env.states();
    assert_eq!(
        states.get("triaged").copied().unwrap_or(0) + states.get("escalated").copied().unwrap_or(0),
        6,
        "{states:?}"
    );
    assert!(
        std::fs::read_dir(env.path("processing"))
            .expect("processing")
            .next()
            .is_none(),
        "nothing is left in processing/"
    );
}

/// The `Q-*` pack directories in `escalations/`, by name.
fn qpacks(env: &Env) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(env.path("escalations"))
        .expect("escalations")
        .map(|e| e.expect("e"))
        .filter(|e| e.file_name().to_string_lossy().starts_with("Q-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// Quarantined rows: alert key → (name, level, pack, worker).
#[allow(clippy::type_complexity)]
fn quarantined_rows(env: &Env) -> BTreeMap<String, (String, Option<i64>, i64, Option<String>)> {
    let c = env.ledger();
    let mut st = c
        .prepare(
            "SELECT alert_key, name, level, pack, worker FROM alerts WHERE state = 'quarantined'",
        )
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// A queue holding two alerts triage quarantines with a level that reads as high (a fraction
/// the decision refuses): one with a row (ingested), one canonical file without a row
/// (its content's key is its name's, so it gets a row of its own alert key, inserted with the
/// intent: issue 11), and one ordinary alert. Triaged once: two Q packs.
fn two_high_quarantines(env: &Env) {
    env.ingest_lines(&[
        alert_line(1, 3, 1),
        r#"{"rule":{"level":15.5,"id":"9"},"id":"4","manager":{"name":"m"}}"#.to_string(),
    ]);
    // Planted after ingest and triaged by `triage` alone (no cap adopting it first): the claim
    // finds no row for it.
    let rowless = r#"{"rule":{"level":14.5,"id":"9"},"id":"5","manager":{"name":"m"}}"#;
    let map = signalfoundry::model::alert::parse_strict(rowless.as_bytes()).expect("parse");
    let kh = signalfoundry::model::alert::meta(&map, None, chrono::Utc::now()).key_hash;
    std::fs::write(
        env.path("queue")
            .join(format!("85-20251124T160000000-{kh}.json")),
        rowless,
    )
    .expect("rowless canonical file");
    let out = env.ok(&["triage"]);
    let s = summary(&out, "triage:");
    assert_eq!(num(&s, "quarantined"), 2, "{out}");
    assert_eq!(num(&s, "quarantine_packs"), 2, "{out}");
    assert_eq!(num(&s, "quarantine_packs_repaired"), 0, "{out}");
}

/// A crash (SIGKILL) after a quarantined high alert's file moved into quarantine and before its
/// `Q-<entry>` pack was published leaves its row owing the pack (`pack` = 2): the next triage
/// rebuilds the pack from the quarantine entry, once.
#[test]
fn a_q_pack_lost_to_a_crash_after_the_quarantine_move_is_rebuilt_once_at_the_next_triage() {
    let env = env_with_default_policy("[durability]\nfsync = \"off\"\n");
    two_high_quarantines(&env);
    let rows = quarantined_rows(&env);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.keys().all(|k| !k.starts_with("quarantine:")),
        "both are keyed by their alert key: {rows:?}"
    );
    // Both rows record the pack's level, and that it is published.
    let levels: Vec<Option<i64>> = rows.values().map(|r| r.1).collect();
    assert_eq!(levels, vec![Some(15), Some(14)], "{rows:?}");
    assert!(rows.values().all(|r| r.2 == 1 && r.3.is_none()), "{rows:?}");
    let before = qpacks(&env);
    assert_eq!(before.len(), 2, "{before:?}");
    // The crash state: the files are in quarantine, the packs are not published, the rows
    // still owe them (as the intent transaction wrote them, naming the dead worker).
    for dir in before.values() {
        std::fs::remove_dir_all(dir).expect("remove Q pack");
    }
    let n = env
        .ledger()
        .execute(
            "UPDATE alerts SET pack = 2, worker = 'w-1-0badf00d' WHERE state = 'quarantined'",
            [],
        )
        .expect("owe");
    assert_eq!(n, 2);
    let out = env.ok(&["triage"]);
    let s = summary(&out, "triage:");
    assert_eq!(num(&s, "quarantine_packs_repaired"), 2, "{out}");
    let after = qpacks(&env);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same Q packs are back"
    );
    for (name, dir) in &after {
        let o = env.run(&["verify-pack", dir.to_str().expect("utf-8 path")]);
        assert!(
            o.status.success(),
            "verify-pack {name}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let case = std::fs::read_to_string(dir.join("case.json")).expect("case.json");
        let entry = name.strip_prefix("Q-").expect("Q-");
        assert!(case.contains("\"quarantined\": true"), "{case}");
        assert!(case.contains(entry), "case.json names {entry}:\n{case}");
        assert!(
            case.contains("quarantined: rule.level"),
            "the reason is read back from the .reason file:\n{case}"
        );
        assert!(
            env.path("quarantine")
                .join(format!("{entry}.json"))
                .exists(),
            "the entry stays in quarantine"
        );
    }
    let rows = quarantined_rows(&env);
    assert!(rows.values().all(|r| r.2 == 1 && r.3.is_none()), "{rows:?}");
    // Nothing is owed any more: a further triage rebuilds nothing.
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("m"));
    let inodes: Vec<u64> = after.values().map(|p| ino(p)).collect();
    let out = env.ok(&["triage"]);
    assert_eq!(
        num(&summary(&out, "triage:"), "quarantine_packs_repaired"),
        0,
        "{out}"
    );
    assert_eq!(
        qpacks(&env).values().map(|p| ino(p)).collect::<Vec<_>>(),
        inodes,
        "the packs were left alone"
    );
    // A crash after the pack was published but before its row was marked: marked, not rebuilt.
    env.ledger()
        .execute("UPDATE alerts SET pack = 2 WHERE state = 'quarantined'", [])
        .expect("owe");
    let out = env.ok(&["run"]);
    assert_eq!(
        num(&summary(&out, "triage:"), "quarantine_packs_repaired"),
        0,
        "{out}"
    );
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(
        qpacks(&env).values().map(|p| ino(p)).collect::<Vec<_>>(),
        inodes
    );
    let rows = quarantined_rows(&env);
    assert!(rows.values().all(|r| r.2 == 1 && r.3.is_none()), "{rows:?}");
}

/// An owed Q pack whose quarantine entry is gone cannot be rebuilt: triage says so and the row
/// keeps owing it (reconcile reports the missing entry).
#[test]
fn an_owed_q_pack_whose_quarantine_entry_is_gone_is_reported_and_still_owed() {
    let env = env_with_default_policy("[durability]\nfsync = \"off\"\n");
    two_high_quarantines(&env);
    for dir in qpacks(&env).values() {
        std::fs::remove_dir_all(dir).expect("remove Q pack");
    }
    env.ledger()
        .execute("UPDATE alerts SET pack = 2 WHERE state = 'quarantined'", [])
        .expect("owe");
    let rows = quarantined_rows(&env);
    let gone = &rows.values().next().expect("a row").0;
    std::fs::remove_file(env.path("quarantine").join(gone)).expect("remove entry");
    let o = env.run(&["triage"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(
        num(&summary(&out, "triage:"), "quarantine_packs_repaired"),
        1,
        "{out}"
    );
    assert!(
        err.contains(gone.as_str()) && err.contains("owed"),
        "the missing entry is named:\n{err}"
    );
    assert_eq!(qpacks(&env).len(), 1);
    let rows = quarantined_rows(&env);
    let owing: Vec<&String> = rows.values().filter(|r| r.2 == 2).map(|r| &r.0).collect();
    assert_eq!(owing, vec![gone], "{rows:?}");
}

/// One alert key under two canonical names (a copy planted with another level): one case,
/// the other copy quarantined as a key conflict, the row of the published case untouched.
#[test]
fn a_second_canonical_name_of_one_key_never_makes_a_second_case() {
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    let lines: Vec<String> = (0..4).map(|i| alert_line(i, 12, i as u64)).collect();
    env.ingest_lines(&lines);
    let first = canonical_names(&env.path("queue"))[0].clone();
    // The same key (manager m1, the same id) at level 3: priority 3, so `96-...`.
    let original: serde_json::Value = serde_json::from_str(&lines[0]).expect("alert line");
    let mut copy = original.clone();
    copy["rule"]["level"] = serde_json::json!(3);
    let planted = format!("96{}", &first[2..]);
    assert_ne!(planted, first);
    let key_of = |n: &str| n[n.len() - 37..n.len() - 5].to_string();
    assert_eq!(key_of(&planted), key_of(&first), "one key hash");
    std::fs::write(
        env.path("queue").join(&planted),
        serde_json::to_vec(&copy).expect("json"),
    )
    .expect("plant");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let all = cases(&env);
    // Case directories counted by path (the map above is keyed by case id).
    let dirs = ["suppressed", "low", "medium", "high"]
        .iter()
        .map(|b| env.path("cases").join(b))
        .filter(|b| b.exists())
        .flat_map(|b| {
            let mut v = vec![b];
            for _ in 0..4 {
                v = v
                    .iter()
                    .flat_map(|d| std::fs::read_dir(d).expect("dir"))
                    .map(|e| e.expect("entry").path())
                    .collect();
            }
            v
        })
        .count();
    assert_eq!(dirs, 4, "one case per key: {all:?}");
    let key = key_of(&first);
    let (bucket, _) = all.get(&format!("SF-{key}")).expect("the key's case");
    assert_eq!(bucket, "high", "the first copy's case stands");
    let quarantined: Vec<String> = std::fs::read_dir(env.path("quarantine"))
        .expect("quarantine")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".reason"))
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let reason =
        std::fs::read_to_string(env.path("quarantine").join(&quarantined[0])).expect("reason");
    assert!(reason.contains("key conflict"), "{reason}");
    let states = env.states();
    assert_eq!(states.get("escalated").copied(), Some(4), "{states:?}");
}

/// A policy with an alias for `alpine-1` listed first, `web1`'s second, and a signature scoped
/// to the alpine hosts; written beside the configuration and named by it.
fn env_with_forged_hostname_policy() -> (Env, PathBuf) {
    let env = Env::new("");
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
[[alias]]
canonical = "alpine-1"
names = ["alpine-1"]

[[alias]]
canonical = "web1"
names = ["web1"]

[[suppress]]
id = "fp-alpine-syslog"
reason = "alpine test hosts are noisy"
owner = "soc-linux"
match = { "rule.id" = "5716", "agent" = { glob = "alpine-*" } }
"#,
    )
    .expect("policy");
    std::fs::write(
        &env.config,
        format!(
            "[policy]\nfile = {:?}\n[durability]\nfsync = \"off\"\n",
            policy.display().to_string()
        ),
    )
    .expect("config");
    (env, policy)
}

/// Issue 11, item 15: a syslog line whose hostname says `alpine-1` moved a level-10 alert of
/// agent `web1` into the alpine-scoped signature, and it was suppressed. agent.name (what the
/// manager vouches for) now chooses the alias before any name from the event's text.
#[test]
fn a_forged_hostname_in_the_log_line_neither_renames_the_agent_nor_suppresses_its_alert() {
    let (env, policy) = env_with_forged_hostname_policy();
    let mut alert: serde_json::Value = serde_json::from_str(&alert_line(1, 10, 1)).expect("line");
    alert["agent"] = serde_json::json!({"id": "002", "name": "web1"});
    alert["predecoder"] = serde_json::json!({"hostname": "alpine-1", "program_name": "sshd"});
    let file = env.dir.path().join("forged.json");
    std::fs::write(&file, alert.to_string()).expect("alert file");
    let o = std::process::Command::new(bin())
        .args(["policy", "test", "--json", "--policy"])
        .arg(&policy)
        .arg(&file)
        .output()
        .expect("policy test");
    assert!(o.status.success(), "{o:?}");
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one json line");
    assert_eq!(shown["agent"], "web1", "{shown}");
    assert_eq!(shown["bucket"], "medium", "{shown}");
    assert_eq!(shown["matched"], serde_json::Value::Null, "{shown}");
    assert_eq!(
        shown["trace"][0], r#"agent "web1": alias "web1" applied, because agent.name is "web1""#,
        "{shown}"
    );

    env.ingest_lines(&[alert.to_string()]);
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let all = cases(&env);
    let buckets: Vec<&str> = all.values().map(|(b, _)| b.as_str()).collect();
    assert_eq!(buckets, ["medium"], "{all:?}");
    let (_, path) = all.values().next().expect("one case");
    let case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("case.json")).expect("case.json"))
            .expect("json");
    assert_eq!(case["agent"]["canonical"], "web1", "{case}");
}

/// Issue 11, item 14: `rule.level` 12.0 read as no level gave priority 0 (deferred first) and
/// a quarantine without its pack. 12.0 is level 12: a high case with its pack; 12.5 is not a
/// level, so it is quarantined, but as it reads at or above high it gets its `Q-` pack. Both
/// queue at priority 12 (`87-`).
#[test]
fn float_levels_keep_their_queue_priority_and_their_escalation() {
    let env = env_with_default_policy("[durability]\nfsync = \"off\"\n");
    let with_level = |i: usize, level: serde_json::Value| {
        let mut a: serde_json::Value =
            serde_json::from_str(&alert_line(i, 0, i as u64)).expect("line");
        a["rule"]["level"] = level;
        a.to_string()
    };
    let whole = with_level(1, serde_json::json!(12.0));
    let half = with_level(2, serde_json::json!(12.5));
    assert!(whole.contains(r#""level":12.0"#), "{whole}");
    let s = summary(&env.ingest_lines(&[whole, half]), "ingest:");
    assert_eq!(num(&s, "queued"), 2, "{s:?}");
    let names = canonical_names(&env.path("queue"));
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("87-")), "{names:?}");

    let out = env.ok(&["triage"]);
    let s = summary(&out, "triage:");
    assert_eq!(num(&s, "quarantined"), 1, "{out}");
    assert_eq!(num(&s, "quarantine_packs"), 1, "{out}");
    let all = cases(&env);
    assert_eq!(all.len(), 1, "{all:?}");
    let (case_id, (bucket, path)) = all.iter().next().expect("the 12.0 case");
    assert_eq!(bucket, "high", "{all:?}");
    let case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("case.json")).expect("case.json"))
            .expect("json");
    assert_eq!(case["rule"]["level"], 12, "{case}");
    assert!(
        env.path("escalations")
            .join(case_id)
            .join("manifest.json")
            .is_file(),
        "the high case's pack"
    );
    let q = qpacks(&env);
    assert_eq!(q.len(), 1, "{q:?}");
    let (_, qpack) = q.iter().next().expect("the 12.5 pack");
    let qcase = std::fs::read_to_string(qpack.join("case.json")).expect("case.json");
    assert!(qcase.contains("\"quarantined\": true"), "{qcase}");
    let reasons: Vec<String> = std::fs::read_dir(env.path("quarantine"))
        .expect("quarantine")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "reason"))
        .map(|p| std::fs::read_to_string(p).expect("reason"))
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("rule.level is not a whole number"),
        "{reasons:?}"
    );
}

#[test]
fn a_vulnerability_pack_says_the_findings_own_severity_never_not_critical() {
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/wazuh-alerts/partial-windows-vulnerability-23505-thunderbird-cve-2020-12395.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p).expect("fixture")).expect("json");
    let doc = if v.get("_source").is_some() {
        &mut v["_source"]
    } else {
        &mut v
    };
    doc["rule"]["level"] = serde_json::json!(13);
    env.ingest_lines(&[v.to_string()]);
    env.ok(&["triage"]);
    let packs: Vec<_> = std::fs::read_dir(env.path("escalations"))
        .expect("escalations")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let md = std::fs::read_to_string(packs[0].join("summary.md")).expect("summary.md");
    assert!(!md.contains("not critical"), "{md}");
    assert!(
        md.contains("the finding's own severity: `High`, CVSS 10"),
        "{md}"
    );
}

#[test]
fn a_packs_related_alerts_come_from_before_and_after_with_their_bucket_high_ones_first() {
    let env = Env::new("");
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[suppress]]\nid = \"fp-event-1\"\nreason = \"test noise\"\nowner = \"soc\"\n\
         match = { \"full_log\" = \"event 1\" }\n",
    )
    .expect("policy");
    std::fs::write(
        &env.config,
        format!(
            "[durability]\nfsync = \"off\"\n[policy]\nfile = {:?}\n",
            policy.display().to_string()
        ),
    )
    .expect("config");
    // Around the high alert at t = 3600 s on one host: a suppressed one and a low one before,
    // a low one and another high one after, and one outside the 30-minute window.
    env.ingest_lines(&[
        alert_line(1, 3, 3600 - 600),  // suppressed, before
        alert_line(2, 3, 3600 - 300),  // low, before
        alert_line(3, 3, 3600 + 300),  // low, after
        alert_line(4, 12, 3600 + 600), // high, after
        alert_line(5, 3, 3600 + 7200), // outside the window
    ]);
    env.ok(&["triage"]);
    env.ingest_lines(&[alert_line(9, 12, 3600)]);
    env.ok(&["triage"]);
    let pack = std::fs::read_dir(env.path("escalations"))
        .expect("escalations")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            std::fs::read_to_string(p.join("alert.json")).is_ok_and(|a| a.contains("event 9"))
        })
        .expect("the pack of the alert at t = 3600 s");
    let related: Vec<serde_json::Value> = std::fs::read_to_string(pack.join("related.jsonl"))
        .expect("related.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one object per line"))
        .collect();
    let got: Vec<(&str, &str)> = related
        .iter()
        .map(|r| {
            (
                r["time"].as_str().expect("time"),
                r["bucket"].as_str().expect("bucket"),
            )
        })
        .collect();
    let at = |s: i64| {
        chrono::DateTime::from_timestamp(1_764_000_000 + s, 0)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let (t4, t3, t2, t1) = (at(4200), at(3900), at(3300), at(3000));
    assert_eq!(
        got,
        [
            (t4.as_str(), "high"),
            (t3.as_str(), "low"),
            (t2.as_str(), "low"),
            (t1.as_str(), "suppressed"),
        ],
        "{related:?}"
    );
    let md = std::fs::read_to_string(pack.join("summary.md")).expect("summary.md");
    assert!(md.contains("1 high (listed first)"), "{md}");
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("time "))
        .take(5)
        .collect();
    assert!(
        table[0].contains("when") && table[0].contains("bucket"),
        "{md}"
    );
    assert!(
        table[1].contains("after") && table[1].contains("HIGH"),
        "{md}"
    );
    assert!(
        table[2].contains("after") && table[2].contains("low"),
        "{md}"
    );
    assert!(
        table[3].contains("before") && table[3].contains("low"),
        "{md}"
    );
    assert!(
        table[4].contains("before") && table[4].contains("suppressed"),
        "{md}"
    );
}

/// Issue 20, item 14: agent ids are numbered per manager, so `ids = ["001"]` without `manager`
/// merged four managers' hosts. Triage still applies such an alias (backward compatible) but
/// warns, once per alias and id, not once per alert, when it sees it choose the agent of alerts
/// from a second manager; an alias naming its manager merges only that manager's 001.
#[test]
fn triage_warns_once_when_an_id_alias_without_manager_spans_managers() {
    // Agent 001 of four managers (four hosts), and hfw's alerts several times over.
    let files = [
        "linux-rootcheck-510-trojaned-md5sum-alpine.json",
        "linux-sudo-5402-root-executed.json",
        "macos-sudo-5407-sudo-executed.json",
        "windows-fim-594-registry-key-modified.json",
        "windows-fim-750-registry-value-modified.json",
        "windows-logon-60106-success-system-type5.json",
        "windows-logon-60106-success-system-type5-repeat.json",
    ];
    let lines: Vec<String> = files
        .iter()
        .map(|f| {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/wazuh-alerts")
                .join(f);
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).expect("fixture")).expect("json");
            v.to_string()
        })
        .collect();
    let triage = |manager: &str| {
        let env = env_with_default_policy("[durability]\nfsync = \"off\"\n");
        let alias = format!(
            "\n[[alias]]\ncanonical = \"hfw\"\nnames = [\"hfw\"]\nids = [\"001\"]\n{manager}"
        );
        let policy = env.dir.path().join("policy.toml");
        std::fs::write(
            &policy,
            format!("{}{alias}", sf_policy::DEFAULT_POLICY_TOML),
        )
        .expect("policy");
        env.ingest_lines(&lines);
        let o = env.run(&["triage"]);
        assert!(o.status.success(), "{}", crate::support::text(&o));
        let agents: Vec<String> = cases(&env)
            .values()
            .map(|(_, path)| {
                let case: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(path.join("case.json")).expect("case.json"),
                )
                .expect("json");
                case["agent"]["canonical"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        (String::from_utf8_lossy(&o.stderr).into_owned(), agents)
    };

    let (stderr, agents) = triage("");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(r#"policy: alias "hfw" matched agent.id "001" from 2 managers ("#))
        .collect();
    assert_eq!(warned.len(), 1, "once, not per alert: {stderr}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains("name the host's manager in the alias"),
        "{stderr}"
    );
    assert_eq!(agents, vec!["hfw"; files.len()], "merged, as before");

    let (stderr, mut agents) = triage("manager = \"master.instance.cloud.lcpu.dev\"\n");
    assert!(!stderr.contains("matched agent.id"), "{stderr}");
    agents.sort();
    assert_eq!(
        agents,
        [
            "Alpine-fix",
            "agent-1",
            "hfw",
            "hfw",
            "hfw",
            "hfw",
            "macos-13"
        ],
        "only the master's 001 is hfw"
    );
}
