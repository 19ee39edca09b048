//! What reaches a terminal, a log or a file from hostile names (issue 11, items 10 to 12): paths
//! and heartbeat text holding terminal escapes, alert keys holding bidi, C1 and zero-width
//! characters, and a password inside `[indexer] url`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{alert_line, canonical_names, Env};

/// Characters that must never reach a terminal or a log raw: C0 controls but LF, DEL, C1, bidi
/// controls and zero-width characters.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{61c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `bytes` are UTF-8 (no lone C1 byte either) without a [`hidden`] character.
fn assert_printable(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes)
        .unwrap_or_else(|e| panic!("{what} is not UTF-8 ({e}): {bytes:?}"));
    if let Some((i, c)) = text.char_indices().find(|(_, c)| hidden(*c)) {
        panic!(
            "{what}: raw U+{:04X} at byte {i}:\n{}",
            c as u32,
            text.escape_debug()
        );
    }
}

fn assert_output_printable(args: &[&str], o: &Output) {
    assert_printable(&format!("stdout of {args:?}"), &o.stdout);
    assert_printable(&format!("stderr of {args:?}"), &o.stderr);
}

#[test]
fn an_error_naming_a_path_with_terminal_escapes_prints_them_escaped() {
    let mut env = Env::new("");
    // OSC (set the window title), CSI (colour) and a C1 CSI in the state directory's name; a
    // file where `queue/` should be makes every command fail naming `<state>/queue`.
    env.state = env
        .dir
        .path()
        .join("st\u{1b}]0;owned\u{7}\u{1b}[31m\u{9b}2J");
    std::fs::create_dir(&env.state).expect("mkdir");
    std::fs::write(env.state.join("queue"), b"not a directory").expect("write");
    let shown = "st\\u{1b}]0;owned\\u{7}\\u{1b}[31m\\u{9b}2J";
    for args in [
        ["status"].as_slice(),
        ["reconcile"].as_slice(),
        ["cap"].as_slice(),
    ] {
        let o = env.run(args);
        assert!(!o.status.success(), "{args:?} must fail");
        assert_output_printable(args, &o);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains(&format!("{shown}/queue: not a directory")),
            "{args:?}: {e}"
        );
    }
    // Another error that names a path: an input file that is not there.
    let missing = env.dir.path().join("in\u{1b}[2Jput\u{202e}.jsonl");
    let args = ["ingest", missing.to_str().expect("utf-8")];
    let mut fine = Env::new("");
    fine.state = env.dir.path().join("fine");
    let o = fine.run(&args);
    assert_eq!(o.status.code(), Some(2));
    assert_output_printable(&args, &o);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("in\\u{1b}[2Jput\\u{202e}.jsonl"), "{e}");
}

#[test]
fn status_prints_a_heartbeats_reasons_and_names_escaped() {
    let env = Env::new("");
    env.ok(&["reconcile"]);
    let heartbeat = serde_json::json!({
        "status": "\u{1b}[32mOK",
        "run_id": "r\u{9b}1\u{202e}",
        "finished_at": chrono::Utc::now().to_rfc3339(),
        "cadence_s": 300,
        "reasons": [
            "poll failed: \u{1b}]8;;http://evil.example/\u{7}click\u{1b}]8;;\u{7}",
            "lost m\u{202e}1\u{200b}\u{2066}\u{feff}\u{85}\u{7f}",
        ],
    });
    std::fs::write(env.path("heartbeat.json"), heartbeat.to_string()).expect("write");
    let o = env.run(&["status"]);
    assert!(o.status.success());
    assert_output_printable(&["status"], &o);
    let out = String::from_utf8_lossy(&o.stdout);
    for shown in [
        "reason: poll failed: \\u{1b}]8;;http://evil.example/\\u{7}click\\u{1b}]8;;\\u{7}",
        "reason: lost m\\u{202e}1\\u{200b}\\u{2066}\\u{feff}\\u{85}\\u{7f}",
        "status=\\u{1b}[32mOK",
        "run_id=r\\u{9b}1\\u{202e}",
    ] {
        assert!(out.contains(shown), "missing {shown:?} in:\n{out}");
    }
    let o = env.run(&["status", "--json"]);
    assert!(o.status.success());
    assert_output_printable(&["status", "--json"], &o);
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(
        v["heartbeat"]["reasons"][1],
        "lost m\\u{202e}1\\u{200b}\\u{2066}\\u{feff}\\u{85}\\u{7f}"
    );
    assert_eq!(v["heartbeat"]["run_id"], "r\\u{9b}1\\u{202e}");
}

#[test]
fn a_lost_alert_whose_key_holds_bidi_c1_and_zero_width_characters_is_named_escaped() {
    let hostile = "m\u{202e}1\u{85}\u{7f}\u{200b}\u{2066}\u{feff}\u{61c}";
    let shown = "manager:\"m\\u{202e}1\\u{85}\\u{7f}\\u{200b}\\u{2066}\\u{feff}\\u{61c}\"/id:";
    for json in [false, true] {
        let env = Env::new("[durability]\nfsync = \"off\"\n");
        let mut v: Value = serde_json::from_str(&alert_line(1, 3, 1)).expect("json");
        v["manager"]["name"] = hostile.into();
        env.ingest_lines(&[v.to_string()]);
        let names = canonical_names(&env.path("queue"));
        assert_eq!(names.len(), 1);
        std::fs::remove_file(env.path("queue").join(&names[0])).expect("delete");
        let args: &[&str] = if json {
            &["--log-format", "json", "reconcile", "--json"]
        } else {
            &["reconcile"]
        };
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(1), "the loss fails reconcile");
        assert_output_printable(args, &o);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        if json {
            let r: Value = serde_json::from_str(&out).expect("one JSON object");
            let lost = r["newly_lost"][0].as_str().expect("a lost key");
            assert!(lost.starts_with(shown), "{lost}");
            let logged = err
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| {
                    l["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("alert lost"))
                })
                .unwrap_or_else(|| panic!("no loss logged in:\n{err}"));
            let key = logged["fields"]["key"].as_str().expect("key field");
            assert!(key.starts_with(shown), "{key}");
        } else {
            assert!(out.contains(&format!("  lost: {shown}")), "{out}");
            assert!(err.contains("alert lost") && err.contains(shown), "{err}");
        }
    }
}

/// Every file below `dir`.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn a_password_in_the_indexer_url_is_refused_at_configuration_and_quoted_nowhere() {
    const CANARY: &str = "CANARY-url-7c1";
    for url in [
        format!("https://u:{CANARY}@127.0.0.1:notaport"),
        format!("https://u:{CANARY}@localhost:9200"),
        format!("ftp://u:{CANARY}@h"),
    ] {
        let env = Env::new("[durability]\nfsync = \"off\"\n");
        // A state directory with a history: runs before the indexer was configured.
        env.ingest_lines(&[alert_line(1, 3, 1)]);
        env.ok(&["run"]);
        std::fs::write(
            &env.config,
            format!(
                "[durability]\nfsync = \"off\"\n[indexer]\nurl = \"{url}\"\nusername = \"sf\"\n"
            ),
        )
        .expect("write config");
        for args in [
            ["run"].as_slice(),
            ["poll"].as_slice(),
            ["poll", "--audit"].as_slice(),
            ["status"].as_slice(),
            ["status", "--json"].as_slice(),
            ["--log-format", "json", "run"].as_slice(),
        ] {
            let o = env
                .cmd(args)
                .env("SIGNALFOUNDRY_LOG", "trace")
                .env("SIGNALFOUNDRY_INDEXER_PASSWORD", "pw-not-the-canary")
                .output()
                .expect("run");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!text.contains(CANARY), "{url}: {args:?} leaked:\n{text}");
            assert_eq!(o.status.code(), Some(2), "{url}: {args:?}:\n{text}");
            assert!(
                text.contains("[indexer] url")
                    && text.contains("user name or password")
                    && text.contains("password_file"),
                "{url}: {args:?} does not say what is wrong:\n{text}"
            );
        }
        let mut files = Vec::new();
        files_under(&env.state, &mut files);
        assert!(files.iter().any(|f| f.ends_with("ledger.db")));
        for f in files {
            let bytes = std::fs::read(&f).expect("read");
            assert!(
                !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
                "{url}: the password is in {}",
                f.display()
            );
        }
    }
}
