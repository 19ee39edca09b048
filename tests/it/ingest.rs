//! `signalfoundry ingest`: deduplication by key, bad lines quarantined with their line number.

use crate::support::{alert_line, canonical_names, num, summary, Env};

#[test]
fn ingesting_the_same_file_twice_adds_nothing() {
    let env = Env::new("");
    let lines: Vec<String> = (0..50).map(|i| alert_line(i, 5, i as u64)).collect();
    let s = summary(&env.ingest_lines(&lines), "ingest:");
    assert_eq!(num(&s, "queued"), 50);
    let s = summary(&env.ingest_lines(&lines), "ingest:");
    assert_eq!((num(&s, "queued"), num(&s, "duplicates")), (0, 50));
    assert_eq!(canonical_names(&env.path("queue")).len(), 50);
    assert_eq!(env.states()["queued"], 50);
}

#[test]
fn indexer_added_fields_make_a_duplicate_and_other_changes_a_conflict() {
    let env = Env::new("");
    let a = alert_line(1, 5, 1);
    let mut v: serde_json::Value = serde_json::from_str(&a).expect("json");
    v["@timestamp"] = "2025-11-24T16:00:01.000Z".into();
    v["input"] = serde_json::json!({"type": "log"});
    let b = v.to_string();
    v["rule"]["level"] = 9.into();
    let c = v.to_string();
    let s = summary(&env.ingest_lines(&[a, b, c]), "ingest:");
    assert_eq!(
        (
            num(&s, "queued"),
            num(&s, "duplicates"),
            num(&s, "conflicts")
        ),
        (1, 1, 1)
    );
    let reasons: Vec<String> = std::fs::read_dir(env.path("quarantine"))
        .expect("read")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "reason"))
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("key conflict"), "{}", reasons[0]);
}

#[test]
fn bad_lines_are_quarantined_with_their_line_number_and_nothing_else_is_lost() {
    let env = Env::new("[triage]\nmax_alert_bytes = 2000\n");
    let lines = vec![
        alert_line(1, 3, 1),
        "{\"truncated\": ".to_string(),
        "[1,2,3]".to_string(),
        r#"{"rule":{"level":1,"level":2}}"#.to_string(),
        String::new(),
        format!("{{\"big\":\"{}\"}}", "x".repeat(3000)),
        alert_line(2, 3, 2),
    ];
    let s = summary(&env.ingest_lines(&lines), "ingest:");
    assert_eq!(num(&s, "queued"), 2);
    assert_eq!(num(&s, "bad_lines"), 4);
    assert_eq!(num(&s, "blank"), 1);
    let mut reasons: Vec<String> = std::fs::read_dir(env.path("quarantine"))
        .expect("read")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "reason"))
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect();
    reasons.sort_by_key(|r| r.find("line ").map(|i| r[i..].to_string()));
    let joined = reasons.join("\n");
    for (line, what) in [
        (2, "invalid JSON"),
        (3, "not an object"),
        (4, "duplicated key"),
        (6, "over max_alert_bytes"),
    ] {
        assert!(
            joined.contains(&format!("line {line}")) && joined.contains(what),
            "line {line} {what}:\n{joined}"
        );
    }
    assert_eq!(env.states()["quarantined"], 4);
    // The quarantined copy of a bad line holds its original bytes.
    let bodies: Vec<Vec<u8>> = std::fs::read_dir(env.path("quarantine"))
        .expect("read")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    assert!(bodies.contains(&b"[1,2,3]".to_vec()));
}

#[test]
fn a_missing_input_file_is_a_usage_error_naming_it() {
    let env = Env::new("");
    let o = env.run(&["ingest", "/nonexistent/alerts.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/alerts.json"));
}

#[test]
fn ingest_from_stdin_queues_lines_as_they_arrive() {
    use std::io::Write as _;
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    env.ingest_lines(&[]); // the state directory and the ledger exist before the stream starts
    let mut child = env
        .cmd(&["ingest", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ingest -");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..3 {
        writeln!(stdin, "{}", alert_line(i, 5, i as u64)).expect("write");
    }
    stdin.flush().expect("flush");
    // Queued while the input is still open (a pause flushes the batch).
    let t = std::time::Instant::now();
    while env.states().get("queued").copied().unwrap_or(0) < 3 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "nothing queued before the end of input"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still reading"
    );
    for i in 3..5 {
        writeln!(stdin, "{}", alert_line(i, 5, i as u64)).expect("write");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let s = summary(&String::from_utf8_lossy(&out.stdout), "ingest:");
    assert_eq!(num(&s, "lines"), 5);
    assert_eq!(num(&s, "queued"), 5);
    assert_eq!(env.states().get("queued"), Some(&5));
}
