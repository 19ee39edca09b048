//! The `policy check` and `policy test` functions the binary calls: exit codes, output shapes,
//! and files that cannot be read.

use serde_json::{json, Value};
use sf_policy::{cli, Policy};
use std::path::{Path, PathBuf};

use crate::support::{at, real_alerts_dir};

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    use std::io::Write as _;
    // (std::fs::write is reserved to the pipeline's fsx module by clippy.toml.)
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("create test file");
    file.write_all(content.as_bytes()).expect("write test file");
    path
}

fn run_check(path: &Path) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::check(path, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn run_test(policy: &Policy, json: bool, files: &[PathBuf]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::test(
        policy,
        "test-policy",
        at("2026-01-01T00:00:00Z"),
        json,
        files,
        &mut out,
        &mut err,
    );
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
fn check_accepts_a_valid_policy_with_exit_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "policy.toml", sf_policy::DEFAULT_POLICY_TOML);
    let (code, out, err) = run_check(&path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid (version "), "{out}");
    assert!(
        out.ends_with("0 aliases, 1 override, 5 signatures, 0 group rules, 0 warnings\n"),
        "{out}"
    );
}

#[test]
fn check_prints_every_error_located_in_the_file_and_exits_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bad.toml",
        "[sevrity]\n\n[[suppress]]\nid = \"x\"\n",
    );
    let (code, out, _) = run_check(&path);
    assert_eq!(code, 2);
    let file = path.display().to_string();
    assert!(
        out.contains(&format!(
            "{file}:1:2: error: unknown top-level key `sevrity`"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{file}:3:1: error: signature `x` is missing `reason`"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{file}:3:1: error: signature `x` is missing `owner`"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{file}:3:1: error: signature `x` is missing `match`"
        )),
        "{out}"
    );
    assert!(out.ends_with("invalid: 4 errors, 0 warnings\n"), "{out}");
}

#[test]
fn check_names_the_file_and_the_group_rule_of_each_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = "[[group]]\nid = \"sshd\"\nby = []\nwindow = \"0s\"\n\n[[group]]\nid = \"sshd\"\nby = [\"agent\"]\nbuckets = [\"urgent\"]\nmatch = { \"rule.id\" = { regex = '(?<!x)1' } }\n";
    let path = write(dir.path(), "groups.toml", src);
    let (code, out, _) = run_check(&path);
    assert_eq!(code, 2, "{out}");
    let file = path.display().to_string();
    for line in [
        "3:6: error: group `sshd`: `by` lists 0 fields; it takes 1 to 8",
        "4:10: error: group `sshd`: `window` \"0s\" is zero",
        "7:6: error: duplicate id `sshd`: already used on line 2",
        "9:12: error: group `sshd`: `buckets` holds `urgent`, not a bucket name",
        "10:33: error: bad regex \"(?<!x)1\": look-around, including look-ahead and look-behind, is not supported",
    ] {
        assert!(out.contains(&format!("{file}:{line} (hint: ")), "{line}\n{out}");
    }
    assert!(out.ends_with("invalid: 5 errors, 0 warnings\n"), "{out}");
}

#[test]
fn check_counts_group_rules_in_a_valid_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = "[grouping]\nwindow = \"30m\"\n\n[[group]]\nid = \"sshd\"\nby = [\"data.srcip\"]\nmatch = { \"rule.id\" = \"5716\" }\n";
    let path = write(dir.path(), "groups.toml", src);
    let (code, out, _) = run_check(&path);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("0 aliases, 0 overrides, 0 signatures, 1 group rule, 0 warnings\n"),
        "{out}"
    );
}

#[test]
fn check_warns_about_signatures_expired_by_the_clock_but_stays_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = "[[suppress]]\nid = \"old\"\nreason = \"r\"\nowner = \"o\"\nexpires = \"2001-01-01\"\nmatch = { \"rule.id\" = \"1\" }\n";
    let path = write(dir.path(), "old.toml", src);
    let (code, out, _) = run_check(&path);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(":5:11: warning: signature `old` expired on 2001-01-01: it matches nothing"),
        "{out}"
    );
}

#[test]
fn check_of_an_unreadable_file_names_the_path_and_exits_two() {
    let (code, out, err) = run_check(Path::new("/nonexistent/policy.toml"));
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.starts_with("policy check: cannot read policy file /nonexistent/policy.toml: "),
        "{err}"
    );
}

#[test]
fn load_reports_the_first_error_and_how_many_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bad.toml",
        "[sevrity]\n[[override]]\nid = \"o\"\n",
    );
    let err = cli::load(&path).expect_err("invalid");
    let file = path.display().to_string();
    assert_eq!(
        err.to_string(),
        format!("policy file {file} is invalid: {file}:1:2: error: unknown top-level key `sevrity` (hint: did you mean `severity`? expected one of: severity, alias, suppress, override, group, grouping) (and 2 more errors: run `signalfoundry policy check {file}`)")
    );
}

#[test]
fn test_json_prints_exactly_the_design_keys_in_order() {
    let file = real_alerts_dir().join("windows-fim-594-registry-key-modified.json");
    let (code, out, err) = run_test(&Policy::default_policy(), true, std::slice::from_ref(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let line = out.lines().next().unwrap_or_default();
    let keys: Vec<&str> = [
        "\"file\":",
        "\"policy\":",
        "\"bucket\":",
        "\"agent\":",
        "\"matched\":",
        "\"held_back\":",
        "\"expired\":",
        "\"trace\":",
        "\"incident\":",
    ]
    .into_iter()
    .collect();
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| line.find(k).unwrap_or(usize::MAX))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "keys in DESIGN.md order: {line}"
    );
    let v: Value = serde_json::from_str(line).expect("json");
    let object = v.as_object().expect("object");
    assert_eq!(object.len(), 9, "exactly nine keys: {line}");
    assert_eq!(v["policy"], json!("test-policy"));
    assert_eq!(v["file"], json!(file.display().to_string()));
    assert_eq!(v["bucket"], json!("suppressed"));
    assert_eq!(v["agent"], json!("hfw"));
    assert_eq!(v["matched"], json!("fp-fim-registry-w32time"));
    assert_eq!(v["held_back"], json!([]));
    assert_eq!(v["expired"], json!([]));
    assert!(
        v["trace"]
            .as_array()
            .is_some_and(|t| t.iter().all(Value::is_string) && t.len() >= 3),
        "{line}"
    );
}

#[test]
fn test_json_writes_null_when_nothing_matched() {
    let file = real_alerts_dir().join("linux-sshd-5715-auth-success-publickey.json");
    let (_, out, _) = run_test(&Policy::default_policy(), true, &[file]);
    let v: Value = serde_json::from_str(out.trim_end()).expect("json");
    assert_eq!(v["matched"], Value::Null);
    assert_eq!(v["bucket"], json!("low"));
}

#[test]
fn test_reads_indexer_hits_as_well_as_bare_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = std::fs::read_to_string(
        real_alerts_dir().join("windows-fim-750-registry-value-modified.json"),
    )
    .expect("fixture");
    let source: Value = serde_json::from_str(&bare).expect("json");
    let hit = json!({"_index": "wazuh-alerts-4.x-2025.09.12", "_id": "I1YBPZkBNAigJEvDyhEH", "_source": source});
    let path = write(dir.path(), "hit.json", &hit.to_string());
    let (code, out, _) = run_test(&Policy::default_policy(), true, &[path]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim_end()).expect("json");
    assert_eq!(v["matched"], json!("fp-fim-registry-w32time"));
}

#[test]
fn test_goes_on_past_bad_files_and_exits_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = real_alerts_dir().join("linux-sudo-5402-root-executed.json");
    let broken = write(dir.path(), "broken.json", "{\"rule\": ");
    let no_level = write(dir.path(), "no-level.json", "{\"rule\": {\"id\": \"1\"}}");
    let missing = dir.path().join("missing.json");
    let files = [
        broken.clone(),
        good.clone(),
        no_level.clone(),
        missing.clone(),
        good,
    ];
    let (code, out, err) = run_test(&Policy::default_policy(), true, &files);
    assert_eq!(code, 2);
    assert_eq!(
        out.lines().count(),
        2,
        "the two good files are still printed: {out}"
    );
    let err_lines: Vec<&str> = err.lines().collect();
    assert_eq!(err_lines.len(), 3, "{err}");
    assert!(
        err_lines[0].starts_with(&format!(
            "policy test: {}: not valid json: ",
            broken.display()
        )),
        "{err}"
    );
    assert_eq!(
        err_lines[1],
        format!(
            "policy test: {}: cannot be decided: rule.level is missing",
            no_level.display()
        )
    );
    assert!(
        err_lines[2].starts_with(&format!("policy test: cannot read {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn test_prints_a_readable_report_by_default() {
    let file = real_alerts_dir().join("windows-sysmon-92151-mscorsvw-loads-automation-dll.json");
    let (code, out, _) = run_test(
        &Policy::default_policy(),
        false,
        std::slice::from_ref(&file),
    );
    assert_eq!(code, 0);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("policy: test-policy"),
        "which policy decided"
    );
    let first = lines.next().unwrap_or_default();
    assert_eq!(
        first,
        format!("{}: suppressed  level=12 agent=WIN-1T5RE39Q2K5 matched=suppress:fp-sysmon-ngen-mscorsvw", file.display())
    );
    assert!(out.contains("  - signature fp-sysmon-ngen-mscorsvw: matched, suppressing (level 12 is at or above high (12); it sets allow_high)\n"), "{out}");
}

#[test]
fn test_at_decides_expiry_at_the_time_given() {
    let src = "[[suppress]]\nid = \"sudo\"\nreason = \"r\"\nowner = \"o\"\nexpires = \"2025-12-31\"\nmatch = { \"rule.id\" = \"5402\" }\n";
    let policy = Policy::parse(src).expect("valid").0;
    let file = real_alerts_dir().join("linux-sudo-5402-root-executed.json");
    let decide_at = |t: &str| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let now = cli::parse_at(t).expect("valid --at");
        cli::test(
            &policy,
            "test-policy",
            now,
            true,
            std::slice::from_ref(&file),
            &mut out,
            &mut err,
        );
        let v: Value = serde_json::from_slice(&out).expect("json");
        (v["bucket"].clone(), v["expired"].clone())
    };
    assert_eq!(decide_at("2025-12-31"), (json!("suppressed"), json!([])));
    assert_eq!(
        decide_at("2026-01-01T00:00:00+00:00"),
        (json!("low"), json!(["sudo"]))
    );
}

#[test]
fn parse_at_takes_rfc3339_or_a_date() {
    assert_eq!(
        cli::parse_at("2025-09-12").map(|t| t.to_rfc3339()),
        Ok("2025-09-12T00:00:00+00:00".to_string())
    );
    assert_eq!(
        cli::parse_at("2025-09-12T10:00:00+02:00").map(|t| t.to_rfc3339()),
        Ok("2025-09-12T08:00:00+00:00".to_string())
    );
    assert_eq!(
        cli::parse_at("yesterday"),
        Err("invalid time \"yesterday\": expected RFC 3339 (2025-09-12T10:00:00Z) or a date (2025-09-12)".to_string())
    );
}

#[test]
fn the_readme_json_example_is_what_policy_test_prints() {
    let readme = include_str!("../../README.md");
    let documented = readme
        .lines()
        .find(|l| l.starts_with("{\"file\":\"windows-fim-594"))
        .expect("the README shows a --json line");
    let file = real_alerts_dir().join("windows-fim-594-registry-key-modified.json");
    let (_, out, _) = run_test(&Policy::default_policy(), true, std::slice::from_ref(&file));
    let printed = out
        .trim_end()
        .replace(
            &file.display().to_string(),
            "windows-fim-594-registry-key-modified.json",
        )
        .replace(
            "\"policy\":\"test-policy\"",
            "\"policy\":\"default-policy.toml (version {..})\"",
        );
    assert_eq!(printed, documented);
}

#[test]
fn test_takes_json_lines_and_names_each_alert_by_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = std::fs::read_to_string(
        real_alerts_dir().join("windows-fim-594-registry-key-modified.json"),
    )
    .expect("fixture");
    let v: Value = serde_json::from_str(&one).expect("json");
    let lines = write(dir.path(), "alerts.json", &format!("{v}\n{v}\n\n{v}\n"));
    let (code, out, err) = run_test(
        &Policy::default_policy(),
        true,
        std::slice::from_ref(&lines),
    );
    assert_eq!(code, 0, "{err}");
    let files: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["file"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let p = lines.display().to_string();
    assert_eq!(
        files,
        vec![format!("{p}:1"), format!("{p}:2"), format!("{p}:4")]
    );
    // A bad line is said by its line; the lines before it are still decided.
    let lines = write(dir.path(), "alerts.json", &format!("{v}\n{{not json\n"));
    let (code, out, err) = run_test(
        &Policy::default_policy(),
        true,
        std::slice::from_ref(&lines),
    );
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 1);
    assert!(err.contains("not valid json"), "{err}");
}

#[test]
fn test_shows_bidi_c1_and_zero_width_characters_of_names_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = "web\u{202e}01\u{85}\u{200b}\u{2066}\u{feff}\u{7f}";
    let alert = json!({"rule": {"level": 3, "id": "5716"}, "agent": {"name": hostile}});
    let file = write(
        dir.path(),
        "a\u{202e}lert.json",
        &serde_json::to_string(&alert).expect("json"),
    );
    let (code, out, err) = run_test(&Policy::severity_only(), false, &[file]);
    assert_eq!(code, 0, "{out}{err}");
    let raw = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    assert!(!out.chars().any(raw), "{}", out.escape_debug());
    assert!(
        out.contains("agent=web\\u{202e}01\\u{85}\\u{200b}\\u{2066}\\u{feff}\\u{7f}"),
        "{out}"
    );
    assert!(out.contains("a\\u{202e}lert.json"), "{out}");
}

/// `policy test` at `--at` on one file: (stdout, stderr), the exit code asserted 0.
fn run_test_at(policy: &Policy, now: &str, json: bool, file: &Path) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::test(
        policy,
        "test-policy",
        at(now),
        json,
        std::slice::from_ref(&file.to_path_buf()),
        &mut out,
        &mut err,
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    String::from_utf8_lossy(&out).into_owned()
}

/// A policy with one group rule for sshd failures (by source ip, 10 minutes) and the default
/// (by rule and agent, 2 hours).
const GROUPING: &str = r#"
[grouping]
by = ["rule.id", "agent"]
window = "2h"

[[group]]
id = "sshd-bruteforce"
by = ["data.srcip"]
window = "10m"
match = { "rule.id" = ["5710", "5716"] }
"#;

fn sshd_alert(with_timestamp: bool) -> Value {
    let mut alert = json!({
        "rule": {"id": "5716", "level": 5},
        "agent": {"id": "002", "name": "web1"},
        "data": {"srcip": "203.0.113.7"}
    });
    if with_timestamp {
        alert["timestamp"] = json!("2025-09-12T10:17:03.120+0000");
    }
    alert
}

#[test]
fn test_json_shows_the_incident_of_the_alert_at_its_own_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::parse(GROUPING).expect("valid").0;
    let alert = sshd_alert(true);
    let file = write(dir.path(), "sshd.json", &alert.to_string());
    // `--at` is months away: the alert's timestamp places it, as triage does.
    let out = run_test_at(&policy, "2026-01-01T00:00:00Z", true, &file);
    let v: Value = serde_json::from_str(out.trim_end()).expect("json");
    let expected = policy.incident(
        &alert,
        "web1",
        sf_policy::Bucket::Low,
        at("2025-09-12T10:17:03.120Z"),
    );
    assert_eq!(v["bucket"], json!("low"), "{v}");
    assert_eq!(v["incident"]["id"], json!(expected.id), "{v}");
    assert_eq!(
        v["incident"],
        json!({
            "id": expected.id,
            "group": "sshd-bruteforce",
            "key": [{"field": "data.srcip", "value": "203.0.113.7"}],
            "window_secs": 600,
            "window_start": "2025-09-12T10:10:00Z",
            "window_end": "2025-09-12T10:20:00Z",
            "previous": expected.previous,
        }),
        "{v}"
    );
    assert!(
        v["incident"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("INC-") && id.len() == 24),
        "{v}"
    );
    assert_ne!(v["incident"]["id"], v["incident"]["previous"]);
    assert!(
        !v["trace"].as_array().is_some_and(|t| t
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with("incident ")))),
        "the decision's trace is unchanged: {v}"
    );
}

#[test]
fn test_json_of_an_indexer_hit_reads_the_time_in_its_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::parse(GROUPING).expect("valid").0;
    let alert = sshd_alert(true);
    let hit = json!({"_index": "wazuh-alerts-4.x-2025.09.12", "_id": "x1", "_source": alert});
    let file = write(dir.path(), "hit.json", &hit.to_string());
    let out = run_test_at(&policy, "2026-01-01T00:00:00Z", true, &file);
    let v: Value = serde_json::from_str(out.trim_end()).expect("json");
    let expected = policy.incident(
        &alert,
        "web1",
        sf_policy::Bucket::Low,
        at("2025-09-12T10:17:03Z"),
    );
    assert_eq!(v["incident"]["id"], json!(expected.id), "{v}");
    assert_eq!(v["incident"]["window_start"], json!("2025-09-12T10:10:00Z"));
}

#[test]
fn test_places_an_alert_without_a_timestamp_at_the_time_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::parse(GROUPING).expect("valid").0;
    let alert = sshd_alert(false);
    let file = write(dir.path(), "no-time.json", &alert.to_string());
    let incident_at = |now: &str| -> Value {
        let out = run_test_at(&policy, now, true, &file);
        let v: Value = serde_json::from_str(out.trim_end()).expect("json");
        v["incident"].clone()
    };
    let first = incident_at("2025-09-12T10:01:00Z");
    let expected = policy.incident(
        &alert,
        "web1",
        sf_policy::Bucket::Low,
        at("2025-09-12T10:01:00Z"),
    );
    assert_eq!(first["id"], json!(expected.id), "{first}");
    assert_eq!(first["window_start"], json!("2025-09-12T10:00:00Z"));
    assert_eq!(
        incident_at("2025-09-12T10:09:59Z")["id"],
        first["id"],
        "the same window"
    );
    let next = incident_at("2025-09-12T10:10:00Z");
    assert_ne!(next["id"], first["id"], "the next window");
    assert_eq!(next["previous"], first["id"], "continues the one before");
}

#[test]
fn test_readable_trace_ends_with_the_group_rules_tried_and_the_incident() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::parse(GROUPING).expect("valid").0;
    let mut alert = sshd_alert(true);
    alert["rule"]["id"] = json!("5402");
    let file = write(dir.path(), "sudo.json", &alert.to_string());
    let out = run_test_at(&policy, "2026-01-01T00:00:00Z", false, &file);
    let expected = policy.incident(
        &alert,
        "web1",
        sf_policy::Bucket::Low,
        at("2025-09-12T10:17:03Z"),
    );
    assert_eq!(expected.group, "default");
    let lines: Vec<&str> = out.lines().collect();
    let n = lines.len();
    assert!(n >= 4, "{out}");
    assert!(
        lines[n - 2].starts_with("  - group sshd-bruteforce: rule.id"),
        "the rule tried first: {out}"
    );
    assert!(lines[n - 1].starts_with("  - incident INC-"), "{out}");
    assert_eq!(
        lines[n - 1],
        format!("  - {}", expected.trace_line()),
        "{out}"
    );
    assert_eq!(
        lines[n - 1],
        format!(
            "  - incident {}: group default by rule.id=\"5402\", agent=\"web1\", window 2h from 2025-09-12T10:00:00Z",
            expected.id
        )
    );
}

#[test]
fn test_readable_trace_escapes_the_incident_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::parse(GROUPING).expect("valid").0;
    let mut alert = sshd_alert(true);
    alert["data"]["srcip"] = json!("203.0.113.7\u{202e}\u{85}");
    let file = write(dir.path(), "hostile.json", &alert.to_string());
    let out = run_test_at(&policy, "2026-01-01T00:00:00Z", false, &file);
    let incident = out
        .lines()
        .find(|l| l.starts_with("  - incident INC-"))
        .unwrap_or_default();
    assert!(
        !incident.chars().any(sf_policy::cli::must_escape),
        "{}",
        incident.escape_debug()
    );
    assert!(incident.contains("data.srcip="), "{incident}");
}

#[test]
fn check_warns_loudly_on_a_signature_that_matches_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = write(
        dir.path(),
        "all.toml",
        "[[suppress]]\nid = \"everything\"\nreason = \"r\"\nowner = \"o\"\nallow_high = true\nmatch = { agent = { glob = \"*\" } }\n",
    );
    let (code, out, err) = run_check(&all);
    let said = format!("{out}{err}");
    assert_eq!(code, 0, "a warning, not an error: {said}");
    assert!(
        said.contains("signature `everything` matches every sample alert")
            && said.contains("EVERY alert, high and critical ones included"),
        "{said}"
    );
    let narrow = write(
        dir.path(),
        "narrow.toml",
        "[[suppress]]\nid = \"ngen\"\nreason = \"r\"\nowner = \"o\"\nmatch = { \"rule.id\" = \"92151\", agent = { glob = \"*\" } }\n",
    );
    let (_, out, err) = run_check(&narrow);
    assert!(
        !format!("{out}{err}").contains("matches every sample alert"),
        "{out}{err}"
    );
}
