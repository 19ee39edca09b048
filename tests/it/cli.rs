//! The command line: global options anywhere, exit codes, the run lock, configuration errors.

use std::time::{Duration, Instant};

use crate::support::{alert_line, bin, num, summary, text, Env};

/// Everything under a directory: relative path, size and mtime.
fn snapshot(dir: &std::path::Path) -> Vec<(String, u64, i64)> {
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<(String, u64, i64)>) {
        for e in std::fs::read_dir(d).expect("read_dir") {
            let e = e.expect("entry");
            let m = e.metadata().expect("meta");
            let rel = e
                .path()
                .strip_prefix(base)
                .expect("prefix")
                .display()
                .to_string();
            use std::os::unix::fs::MetadataExt;
            out.push((rel, m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000));
            if m.is_dir() {
                walk(base, &e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_second_lock_taking_command_exits_75_at_once_and_writes_nothing() {
    let env = Env::new("");
    // Another process (this test) holds the run lock of a state directory that exists.
    std::fs::create_dir(&env.state).expect("mkdir");
    let lock = std::fs::File::create(env.state.join("run.lock")).expect("lock file");
    lock.try_lock().expect("take lock");
    let before = snapshot(&env.state);
    for args in [
        ["cap"].as_slice(),
        ["requeue", "--from", "overflow"].as_slice(),
    ] {
        let t = Instant::now();
        let o = env.run(args);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{args:?} took {:?}",
            t.elapsed()
        );
        assert_eq!(o.status.code(), Some(75), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("run lock"));
        assert!(o.stdout.is_empty());
    }
    assert_eq!(snapshot(&env.state), before, "nothing written");
    drop(lock);
    assert!(env.run(&["cap"]).status.success());
}

#[test]
fn two_cap_processes_at_once_one_works_and_the_other_exits_75() {
    let env = Env::new("[queue]\ncap = 10\n[durability]\nfsync = \"strict\"\n");
    let lines: Vec<String> = (0..3000).map(|i| alert_line(i, 3, i as u64)).collect();
    env.ingest_lines(&lines);
    let first = env
        .cmd(&["cap"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until the first holds the lock (it has started moving files), then try a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(env.path("overflow"))
        .expect("read")
        .next()
        .is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let t = Instant::now();
    let second = env.run(&["cap"]);
    let took = t.elapsed();
    let first = first.wait_with_output().expect("wait");
    assert!(first.status.success());
    assert_eq!(
        second.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(took < Duration::from_secs(1));
    assert!(second.stdout.is_empty());
    let s = summary(&String::from_utf8_lossy(&first.stdout), "cap:");
    assert_eq!(num(&s, "deferred"), 2990);
}

#[test]
fn global_options_are_accepted_after_the_subcommand() {
    let env = Env::new("");
    let o = std::process::Command::new(bin())
        .args(["cap", "--state"])
        .arg(&env.state)
        .arg("--config")
        .arg(&env.config)
        .args(["--log-format", "json"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(env.state.join("queue").is_dir());
}

#[test]
fn a_configuration_error_names_the_key_and_line_and_exits_2() {
    let env = Env::new("[queue]\ncap = 5\nbogus_key = 1\n");
    let o = env.run(&["cap"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bogus_key") && e.contains("line 3"), "{e}");
    assert!(
        !env.state.exists(),
        "nothing written on a configuration error"
    );
}

#[test]
fn json_logs_are_one_object_per_line_on_stderr() {
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    let o = env.run(&["--log-format", "json", "cap"]);
    assert!(o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.lines().count() >= 1, "the fsync=off warning is logged");
    for line in e.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v.get("level").is_some());
    }
}

#[test]
fn requeue_from_overflow_and_quarantine_puts_alerts_back() {
    let env = Env::new("[queue]\ncap = 2\n[durability]\nfsync = \"off\"\n");
    let lines: Vec<String> = (0..5).map(|i| alert_line(i, 3, i as u64)).collect();
    env.ingest_lines(&lines);
    env.ok(&["cap"]);
    let s = summary(
        &env.ok(&["requeue", "--from", "overflow", "--limit", "2"]),
        "requeue:",
    );
    assert_eq!(num(&s, "moved"), 2);
    assert_eq!(env.states()["queued"], 4);
    // A quarantined entry goes back through admission (and stays quarantined if still bad).
    std::fs::write(env.path("incoming").join("bad.json"), "{not json").expect("write");
    env.ok(&["cap"]);
    assert_eq!(env.states()["quarantined"], 1);
    let s = summary(&env.ok(&["requeue", "--from", "quarantine"]), "requeue:");
    assert_eq!((num(&s, "moved"), num(&s, "quarantined")), (1, 1));
    assert_eq!(env.states()["quarantined"], 1);
    let requeued = std::fs::read_dir(env.path("quarantine"))
        .expect("read")
        .filter(|e| {
            e.as_ref()
                .expect("e")
                .path()
                .extension()
                .is_some_and(|x| x == "requeued")
        })
        .count();
    assert_eq!(requeued, 1, "the first reason is kept");
}

#[test]
fn indexer_configuration_errors_exit_2_before_run_or_daemon_write_anything() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let loose = dir.path().join("loose.pw");
    std::fs::write(&loose, "pw\n").expect("write");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let good = dir.path().join("good.pw");
    std::fs::write(&good, "pw\n").expect("write");
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let cases = [
        (
            format!(
                "url = \"http://wazuh-indexer:9200\"\nusername = \"u\"\npassword_file = {:?}",
                good.display().to_string()
            ),
            "https://",
        ),
        (
            format!(
                "url = \"https://wazuh-indexer:9200\"\nusername = \"u\"\npassword_file = {:?}",
                dir.path().join("missing.pw").display().to_string()
            ),
            "cannot open it",
        ),
        (
            format!(
                "url = \"https://wazuh-indexer:9200\"\nusername = \"u\"\npassword_file = {:?}",
                loose.display().to_string()
            ),
            "chmod 600",
        ),
    ];
    for (ix, needle) in &cases {
        for args in [&["run"][..], &["daemon", "--every", "1m"]] {
            let env = Env::new(&format!("[indexer]\n{ix}\n"));
            let o = env
                .cmd(args)
                .env_remove("SIGNALFOUNDRY_INDEXER_PASSWORD")
                .output()
                .expect("run");
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?} {ix}: {}", text(&o));
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!env.state.exists(), "{args:?}: nothing written");
        }
    }
}
