//! The holes a read of the code found (issue 11): each test builds the state a hostile or
//! unlucky production leaves (crash windows through `SIGNALFOUNDRY_DEBUG_CRASH_AT`, which
//! aborts the process at a named point as a SIGKILL would) and checks that every alert is
//! accounted for exactly once, and that reconcile's count pass and `--deep` agree.

use std::path::Path;

use crate::support::{alert_line, num, summary, Env};

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

/// An alert the policy cannot decide: `rule.level` missing.
fn undecidable(i: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&alert_line(i, 5, i as u64)).expect("j");
    v["rule"].as_object_mut().expect("rule").remove("level");
    v.to_string()
}

/// Names in a directory (sorted), dot-named ones included.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn entries(env: &Env, suffix: &str) -> Vec<String> {
    names(&env.path("quarantine"))
        .into_iter()
        .filter(|n| n.ends_with(suffix))
        .collect()
}

/// Runs `args` with the process made to crash at `point`; requires that it did crash.
fn crash_at(env: &Env, point: &str, args: &[&str]) -> String {
    let o = env
        .cmd(args)
        .env("SIGNALFOUNDRY_DEBUG_CRASH_AT", point)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success() && err.contains(&format!("crashing at {point}")),
        "{args:?} did not crash at {point}: {:?}\n{err}",
        o.status
    );
    err
}

/// Reconcile's count pass and `--deep`: both verdicts, which must agree.
fn verdicts(env: &Env) -> (String, String) {
    let count = env.run(&["reconcile"]);
    let deep = env.run(&["reconcile", "--deep"]);
    let c = String::from_utf8_lossy(&count.stdout).into_owned();
    let d = String::from_utf8_lossy(&deep.stdout).into_owned();
    assert_eq!(
        last_line(&c),
        last_line(&d),
        "count pass:\n{c}\n--deep:\n{d}"
    );
    (c, d)
}

fn rows_of(env: &Env, sql: &str) -> u64 {
    env.ledger()
        .query_row(sql, [], |r| r.get::<_, u64>(0))
        .expect("query")
}

/// The canonical queue name of an alert line, as the pipeline computes it.
fn canonical_of(line: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let map = signalfoundry::model::alert::parse_strict(line.as_bytes()).expect("parse");
    let meta = signalfoundry::model::alert::meta(&map, None, chrono::Utc::now());
    signalfoundry::store::names::Canonical::new(meta.level.unwrap_or(0), at, meta.key_hash).name()
}

#[test]
fn requeued_alerts_that_triage_quarantined_are_kept_and_once_fixed_become_cases() {
    // Issue 11 item 1: requeue removed them as duplicates of their own quarantined rows.
    let env = Env::new("");
    env.ingest_lines(&[undecidable(1), undecidable(2)]);
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(entries(&env, ".json").len(), 2);
    // Requeued unchanged: still undecidable, quarantined again; nothing lost or removed.
    let rq = env.ok(&["requeue", "--from", "quarantine"]);
    let s = summary(&rq, "requeue:");
    assert_eq!(num(&s, "duplicates"), 0, "{rq}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(entries(&env, ".json").len(), 2, "{out}");
    assert_eq!(env.states().get("lost"), None, "{:?}", env.states());
    assert_eq!(env.states().get("quarantined"), Some(&2));
    // Fix the cause (give each its level) and requeue: each becomes one case.
    for e in entries(&env, ".json") {
        let p = env.path("quarantine").join(&e);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
        v["rule"]["level"] = serde_json::json!(5);
        std::fs::write(&p, v.to_string()).expect("write");
    }
    env.ok(&["requeue", "--from", "quarantine"]);
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let states = env.states();
    assert_eq!(states.get("triaged"), Some(&2), "{states:?}");
    assert_eq!(states.get("quarantined"), None, "{states:?}");
    assert_eq!(states.get("lost"), None, "{states:?}");
    assert_eq!(rows_of(&env, "SELECT COUNT(*) FROM alerts"), 2);
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
}

#[test]
fn a_requeued_alert_without_its_own_id_keeps_its_row_when_edited() {
    // Review of issue 11 item 1: an alert keyed by its content hash (no manager and id) got a
    // new key when edited, a second row, and its first row was recorded lost.
    let env = Env::new("");
    env.ingest_lines(&[
        r#"{"rule":{"id":"5716","description":"no level"},"full_log":"x"}"#.to_string(),
    ]);
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(
        env.states().get("quarantined"),
        Some(&1),
        "{:?}",
        env.states()
    );
    let entry = entries(&env, ".json").remove(0);
    let p = env.path("quarantine").join(&entry);
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
    v["rule"]["level"] = serde_json::json!(5);
    std::fs::write(&p, v.to_string()).expect("fix");
    env.ok(&["requeue", "--from", "quarantine"]);
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(env.states().get("lost"), None, "{:?}", env.states());
    assert_eq!(env.states().get("triaged"), Some(&1), "{:?}", env.states());
    assert_eq!(
        rows_of(&env, "SELECT COUNT(*) FROM alerts"),
        1,
        "{:?}",
        env.states()
    );
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
}

#[test]
fn a_requeue_killed_between_the_move_and_admission_loses_nothing() {
    // Issue 11 item 1, its crash window: the entry waits in incoming/ with its row.
    let env = Env::new("");
    env.ingest_lines(&[undecidable(1)]);
    env.ok(&["run"]);
    crash_at(&env, "requeue-move", &["requeue", "--from", "quarantine"]);
    assert_eq!(entries(&env, ".json").len(), 0);
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(env.states().get("lost"), None, "{:?}", env.states());
    assert_eq!(env.states().get("quarantined"), Some(&1));
    assert_eq!(rows_of(&env, "SELECT COUNT(*) FROM alerts"), 1);
}

#[test]
fn a_requeued_entry_beside_a_redelivered_copy_of_the_same_alert_keeps_its_row() {
    // Review of issue 11 item 1: the copy sorted first and took the entry for its duplicate.
    let env = Env::new("");
    let line = undecidable(1);
    env.ingest_lines(std::slice::from_ref(&line));
    env.ok(&["run"]);
    let entry = entries(&env, ".json").remove(0);
    // The entry, fixed, is requeued by hand; a producer redelivers the alert as it was.
    let mut v: serde_json::Value = serde_json::from_str(&line).expect("json");
    v["rule"]["level"] = serde_json::json!(5);
    std::fs::rename(
        env.path("quarantine").join(&entry),
        env.path("incoming").join(&entry),
    )
    .expect("requeue by hand");
    std::fs::write(env.path("incoming").join(&entry), v.to_string()).expect("fix");
    std::fs::write(env.path("incoming").join("alerts-1.json"), &line).expect("copy");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(env.states().get("lost"), None, "{:?}", env.states());
    // The alert's own row follows its (fixed) entry to a case; the redelivered copy, other
    // content under the same key, is a key conflict kept in quarantine.
    assert_eq!(
        rows_of(
            &env,
            "SELECT COUNT(*) FROM alerts WHERE state = 'triaged' AND alert_key LIKE 'manager:%'"
        ),
        1,
        "{:?}",
        env.states()
    );
    assert_eq!(
        env.states().get("quarantined"),
        Some(&1),
        "{:?}",
        env.states()
    );
}

#[test]
fn an_admission_killed_before_its_commit_leaves_a_requeued_alert_found_not_lost() {
    // Review of issue 11 item 1: the entry was in queue/ without its row's name, and the
    // row was recorded lost.
    let env = Env::new("");
    env.ingest_lines(&[undecidable(1)]);
    env.ok(&["run"]);
    crash_at(
        &env,
        "admission-commit",
        &["requeue", "--from", "quarantine"],
    );
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(env.states().get("lost"), None, "{:?}", env.states());
    assert_eq!(
        rows_of(&env, "SELECT COUNT(*) FROM alerts"),
        1,
        "{:?}",
        env.states()
    );
}

#[test]
fn canonical_names_in_incoming_and_foreign_names_in_overflow_are_admitted_not_left_waiting() {
    // Issue 11 item 2: admission never listed them, reconcile never looked.
    let env = Env::new("");
    std::fs::create_dir_all(env.path("incoming")).expect("mkdir");
    env.ok(&["reconcile"]); // creates the state directory
    let a = alert_line(1, 5, 1);
    let misdated = canonical_of(&a, chrono::Utc::now() - chrono::Duration::days(400));
    std::fs::write(env.path("incoming").join(&misdated), &a).expect("write");
    std::fs::write(
        env.path("overflow").join("dropped.json"),
        alert_line(2, 5, 2),
    )
    .expect("w");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert!(names(&env.path("incoming")).is_empty(), "{out}");
    assert!(names(&env.path("overflow")).is_empty(), "{out}");
    assert_eq!(env.states().get("triaged"), Some(&2), "{:?}", env.states());
    // What waits for admission is named by reconcile, never silent.
    std::fs::write(env.path("incoming").join("late.json"), alert_line(3, 5, 3)).expect("w");
    let out = env.ok(&["reconcile"]);
    assert!(out.contains("awaiting admission: 1"), "{out}");
    assert!(out.contains("waiting: incoming/late.json"), "{out}");
}

#[test]
fn cap_sends_a_rowless_file_whose_name_does_not_fit_to_incoming_and_it_is_triaged() {
    // Issue 11 item 2: an alert without a timestamp gets the admission time in its name, so
    // the name cap recomputes differs and the file went to incoming/ for ever. A cap of 1 and
    // an alert of a higher priority make cap list the queue (and adopt what has no row).
    let env = Env::new("[queue]\ncap = 1\n");
    env.ingest_lines(&[alert_line(9, 10, 9)]);
    let mut v: serde_json::Value = serde_json::from_str(&alert_line(1, 5, 1)).expect("j");
    v.as_object_mut().expect("o").remove("timestamp");
    let line = v.to_string();
    let name = canonical_of(&line, chrono::Utc::now() - chrono::Duration::hours(1));
    std::fs::write(env.path("queue").join(&name), &line).expect("write");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert!(names(&env.path("incoming")).is_empty(), "{out}");
    assert_eq!(env.states().get("triaged"), Some(&2), "{:?}", env.states());
}

#[test]
fn triage_sends_a_file_whose_content_is_another_alert_back_to_admission_not_to_a_second_case() {
    // Issue 11 item 3: B's bytes under A's name, rows gone.
    let env = Env::new("");
    let (a, b) = (alert_line(1, 5, 1), alert_line(2, 5, 2));
    env.ingest_lines(&[a.clone(), b.clone()]);
    let names_q = names(&env.path("queue"));
    let at = |l: &str| {
        let m = signalfoundry::model::alert::parse_strict(l.as_bytes()).expect("p");
        let kh = signalfoundry::model::alert::meta(&m, None, chrono::Utc::now()).key_hash;
        names_q
            .iter()
            .find(|n| n.contains(kh.as_str()))
            .expect("queued")
            .clone()
    };
    std::fs::write(env.path("queue").join(at(&a)), &b).expect("plant");
    env.ledger()
        .execute("DELETE FROM alerts", [])
        .expect("rows gone");
    let out = env.ok(&["triage"]);
    let s = summary(&out, "triage:");
    assert_eq!(num(&s, "misnamed"), 1, "{out}");
    assert_eq!(num(&s, "triaged"), 1, "{out}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    // B is one case; A's key never got B's bytes as a case.
    let cases = rows_of(&env, "SELECT COUNT(*) FROM alerts WHERE state = 'triaged'");
    assert_eq!(cases, 1, "{:?}", env.states());
    assert_eq!(
        rows_of(
            &env,
            "SELECT COUNT(*) FROM alerts WHERE state = 'quarantined'"
        ),
        0
    );
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
}

#[test]
fn a_quarantine_entry_whose_row_a_kill_took_is_adopted_and_reconcile_passes_from_then_on() {
    // Issue 11 item 4: a kill of ingest after a bad line, and of admission of a malformed file.
    let env = Env::new("");
    let f = env.dir.path().join("bad.jsonl");
    std::fs::write(&f, format!("{}\n{{not json\n", alert_line(1, 5, 1))).expect("w");
    crash_at(
        &env,
        "quarantine-entry-row",
        &["ingest", f.to_str().expect("utf-8")],
    );
    std::fs::write(env.path("incoming").join("broken.json"), "{\"a\":").expect("w");
    crash_at(&env, "quarantine-entry-row", &["triage"]);
    assert_eq!(entries(&env, ".json").len(), 2);
    let first = env.run(&["reconcile"]);
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(last_line(&first), "VERDICT=PASS", "{first}");
    assert!(
        first.contains("adopted quarantine entries (row missing): 2"),
        "{first}"
    );
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
    assert_eq!(env.states().get("quarantined"), Some(&2));
}

#[test]
fn a_rowless_undecidable_file_killed_at_its_quarantine_move_keeps_one_row() {
    // Issue 11 item 5a: the entry row was recorded lost and a second row made for it.
    let env = Env::new("");
    env.ok(&["reconcile"]);
    let line = undecidable(1);
    let name = canonical_of(&line, chrono::Utc::now());
    std::fs::write(env.path("queue").join(&name), &line).expect("write");
    crash_at(&env, "triage-quarantine-move", &["triage"]);
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(
        rows_of(&env, "SELECT COUNT(*) FROM alerts"),
        1,
        "{:?}",
        env.states()
    );
    assert_eq!(env.states().get("quarantined"), Some(&1));
    assert_eq!(entries(&env, ".json").len(), 1);
}

#[test]
fn a_deleted_file_and_a_rowless_one_in_the_same_state_do_not_cancel_out() {
    // Issue 11 item 5b: the count pass passed what --deep failed.
    let env = Env::new("");
    env.ingest_lines(&[alert_line(1, 5, 1), alert_line(2, 5, 2)]);
    let q = names(&env.path("queue"));
    std::fs::remove_file(env.path("queue").join(&q[0])).expect("delete");
    let rowless = alert_line(3, 5, 3);
    std::fs::write(
        env.path("queue")
            .join(canonical_of(&rowless, chrono::Utc::now())),
        &rowless,
    )
    .expect("plant");
    let c = env.run(&["reconcile"]);
    let c = String::from_utf8_lossy(&c.stdout).into_owned();
    assert_eq!(last_line(&c), "VERDICT=FAIL", "{c}");
    assert!(c.contains("lost: manager:\"m1\"/id:\"1764000000."), "{c}");
    assert!(c.contains("orphan: queue/"), "{c}");
    let (c, d) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=FAIL", "{c}\n{d}");
}

#[test]
fn a_deleted_pack_beside_a_stray_entry_in_escalations_fails_reconcile() {
    // Issue 11 item 5b: every non-dot entry of escalations/ counted as a pack.
    let env = Env::new("");
    env.ingest_lines(&[alert_line(1, 13, 1)]);
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let packs = names(&env.path("escalations"));
    assert_eq!(packs.len(), 1);
    std::fs::remove_dir_all(env.path("escalations").join(&packs[0])).expect("rm pack");
    std::fs::create_dir(env.path("escalations").join("notes")).expect("stray");
    let (c, d) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=FAIL", "{c}\n{d}");
    assert!(c.contains("escalations/notes"), "{c}");
    assert!(
        c.contains("escalation packs: ledger 1 disk 0 (of 1 entries)"),
        "{c}"
    );
}

#[test]
fn a_deleted_quarantine_pack_fails_reconcile_in_both_passes() {
    // Issue 11 item 5b: a `Q-` pack was never checked, even by --deep.
    let env = Env::new("");
    env.ingest_lines(&[undecidable(1)]);
    env.ok(&["run"]);
    let entry = entries(&env, ".json").remove(0);
    let entry = entry.trim_end_matches(".json");
    // As a quarantine whose high level was read leaves it: a row saying its pack is done.
    std::fs::create_dir(env.path("escalations").join(format!("Q-{entry}"))).expect("pack");
    env.ledger()
        .execute("UPDATE alerts SET pack = 1 WHERE state = 'quarantined'", [])
        .expect("pack row");
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
    std::fs::remove_dir(env.path("escalations").join(format!("Q-{entry}"))).expect("rm");
    let (c, d) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=FAIL", "{c}");
    assert!(d.contains(&format!("ghost: pack Q-{entry}")), "{d}");
}

#[test]
fn reconcile_after_a_crash_before_a_batch_commit_finishes_it_and_passes() {
    // Issue 11 item 5c: FAIL (`triaging: ledger N disk 0`) until the next triage.
    let env = Env::new("");
    let lines: Vec<String> = (0..30)
        .map(|i| alert_line(i, 3 + (i % 12) as u32, i as u64))
        .collect();
    env.ingest_lines(&lines);
    crash_at(&env, "triage-commit", &["triage"]);
    assert_eq!(
        env.states().get("triaging"),
        Some(&30),
        "{:?}",
        env.states()
    );
    let out = env.ok(&["reconcile"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert!(
        out.contains("finished intents (case published, commit missing): 30"),
        "{out}"
    );
    let (c, _) = verdicts(&env);
    assert_eq!(last_line(&c), "VERDICT=PASS", "{c}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(rows_of(&env, "SELECT COUNT(*) FROM alerts"), 30);
}

#[test]
fn a_dead_workers_claims_are_not_recovered_while_reconcile_holds_its_look() {
    // Issue 11 item 6: reconcile now keeps a shared lock on each dead worker it counted, so
    // no recovery moves that worker's files between its listing and its judgement.
    let env = Env::new("");
    env.ingest_lines(&[alert_line(1, 5, 1)]);
    crash_at(&env, "triage-publish", &["triage"]);
    let rec = env
        .cmd(&["reconcile"])
        .env("SIGNALFOUNDRY_DEBUG_RECONCILE_PAUSE_MS", "3000")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("reconcile");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let during = env.ok(&["triage"]);
    let s = summary(&during, "triage:");
    assert_eq!(
        num(&s, "recovered"),
        0,
        "recovered under reconcile's look: {during}"
    );
    let o = rec.wait_with_output().expect("wait");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!out.contains("lost:"), "{out}");
    let out = env.ok(&["run"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(env.states().get("triaged"), Some(&1), "{:?}", env.states());
}

#[test]
fn a_state_directory_with_a_mount_point_inside_is_refused() {
    // Issue 11 item 7: a barrier syncs one filesystem; cases/ on its own volume was not synced.
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let env = Env::new("");
    env.ok(&["reconcile"]);
    std::fs::create_dir_all(env.path("cases")).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(env.path("cases"))
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount tmpfs");
    let o = env.run(&["run"]);
    let _ = std::process::Command::new("umount")
        .arg(env.path("cases"))
        .status();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("spans filesystems: cases/"), "{err}");
}

#[test]
fn an_unreadable_file_is_quarantined_and_stops_nothing() {
    // Issue 11 item 8: EACCES failed cap and triage on every run.
    let env = Env::new("");
    env.ingest_lines(&[alert_line(1, 5, 1)]);
    let secret = env.path("incoming").join("unreadable.json");
    std::fs::write(&secret, alert_line(2, 5, 2)).expect("w");
    let line = alert_line(3, 5, 3);
    let rowless = env
        .path("queue")
        .join(canonical_of(&line, chrono::Utc::now()));
    std::fs::write(&rowless, &line).expect("w");
    use std::os::unix::fs::PermissionsExt;
    for p in [&secret, &rowless] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    // As root, drop the capabilities that read through permissions, as a service user has.
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            crate::support::bin(),
        ]);
        c
    } else {
        std::process::Command::new(crate::support::bin())
    };
    let o = cmd
        .arg("--state")
        .arg(&env.state)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .output()
        .expect("run");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(entries(&env, ".json").len(), 2, "{out}");
    let reasons: String = entries(&env, ".reason")
        .iter()
        .map(|r| std::fs::read_to_string(env.path("quarantine").join(r)).expect("reason"))
        .collect();
    assert_eq!(
        reasons.matches("not readable by this user").count(),
        2,
        "{reasons}"
    );
    assert_eq!(env.states().get("triaged"), Some(&1));
}

#[test]
fn temp_files_of_killed_writers_are_removed_and_live_ones_kept() {
    // Issue 11 item 9: only dead workers' temp files were removed.
    let env = Env::new("");
    env.ok(&["reconcile"]);
    let mut child = std::process::Command::new("true").spawn().expect("true");
    let dead = child.id();
    child.wait().expect("wait");
    let live = std::process::id();
    let dead_names = [
        format!(".tmp-q-{dead}-0-0badf00d"),
        format!(".tmp-q-{dead}-17-deadbeef"),
    ];
    for n in &dead_names {
        std::fs::write(env.path("queue").join(n), "{}").expect("w");
    }
    std::fs::write(
        env.path("quarantine")
            .join(format!(".tmp-w-{dead}-3-01234567")),
        "x",
    )
    .expect("w");
    let kept = format!(".tmp-q-{live}-0-0badf00d");
    std::fs::write(env.path("queue").join(&kept), "{}").expect("w");
    let foreign = ".tmp-mine-1-2-3".to_string();
    std::fs::write(env.path("queue").join(&foreign), "{}").expect("w");
    let out = env.ok(&["run"]);
    let s = summary(&out, "triage:");
    assert_eq!(num(&s, "temps_removed"), 3, "{out}");
    assert_eq!(names(&env.path("queue")), vec![foreign, kept]);
    assert!(names(&env.path("quarantine")).is_empty());
}
