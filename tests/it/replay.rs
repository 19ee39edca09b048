//! `signalfoundry policy replay` on the real fixtures (issue 17): a candidate with a broad
//! signature names the alerts it would suppress and the high ones it holds back, a `--guard`
//! on a true positive it would lower exits 1, and the state directory is byte for byte as it
//! was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

use crate::support::{text, Env};

/// The broad signature every candidate adds: any alert in Wazuh's `windows` rule group.
const BROAD: &str = r#"
[[suppress]]
id = "fp-broad-windows"
reason = "too broad on purpose: every Windows alert"
owner = "test"
match = { "rule.groups" = "windows" }
"#;

/// The fixtures `rule.groups` "windows" catches that the default policy leaves unsuppressed:
/// (rule id, stored bucket). The high ones are held back without `allow_high`.
const NEWLY_SUPPRESSED: [(&str, &str); 5] = [
    ("60642", "low"),
    ("91551", "medium"),
    ("100500", "medium"),
    ("92027", "low"),
    ("92032", "low"),
];
const HELD_BACK: [&str; 2] = ["91550", "91560"];

fn fixture_lines() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wazuh-alerts");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
            v.to_string()
        })
        .collect()
}

/// A state directory holding the 31 real alerts triaged with the default policy, and each
/// rule id's (case id, alert key) for the rule ids that occur once.
struct Triaged {
    env: Env,
    by_rule: BTreeMap<String, (String, String)>,
}

impl Triaged {
    fn new(extra_lines: &[String]) -> Triaged {
        let env = Env::new("");
        let policy = env.dir.path().join("policy.toml");
        std::fs::write(&policy, sf_policy::DEFAULT_POLICY_TOML).expect("policy");
        std::fs::write(&env.config, format!("[policy]\nfile = {:?}\n", policy)).expect("config");
        let mut lines = fixture_lines();
        lines.extend_from_slice(extra_lines);
        env.ingest_lines(&lines);
        let out = env.ok(&["triage"]);
        if extra_lines.is_empty() {
            assert!(
                out.contains("triaged=31 suppressed=6 low=10 medium=12 high=3"),
                "{out}"
            );
        }
        let mut by_rule = BTreeMap::new();
        let mut twice = BTreeSet::new();
        {
            let c = env.ledger();
            let mut st = c
                .prepare("SELECT rule_id, case_id, alert_key FROM alerts WHERE case_id IS NOT NULL")
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
            for r in rows {
                let (rule, case, key) = r.expect("row");
                if by_rule.insert(rule.clone(), (case, key)).is_some() {
                    twice.insert(rule);
                }
            }
        }
        for r in twice {
            by_rule.remove(&r);
        }
        Triaged { env, by_rule }
    }

    fn case(&self, rule: &str) -> &str {
        &self.by_rule[rule].0
    }

    fn key(&self, rule: &str) -> &str {
        &self.by_rule[rule].1
    }

    /// The default policy plus `extra`, as a candidate file.
    fn candidate(&self, name: &str, extra: &str) -> String {
        let p = self.env.dir.path().join(name);
        std::fs::write(&p, format!("{}{extra}", sf_policy::DEFAULT_POLICY_TOML)).expect("write");
        p.display().to_string()
    }

    fn guard(&self, name: &str, body: &str) -> String {
        let p = self.env.dir.path().join(name);
        std::fs::write(&p, body).expect("write guard");
        p.display().to_string()
    }

    /// `policy replay --policy CANDIDATE --since 2000-01-01 ARGS...` (the fixtures are years old).
    fn replay(&self, candidate: &str, args: &[&str]) -> Output {
        let mut a = vec![
            "policy",
            "replay",
            "--policy",
            candidate,
            "--since",
            "2000-01-01",
        ];
        a.extend_from_slice(args);
        self.env.run(&a)
    }
}

/// Every entry under `dir`: files with their bytes and mtime, directories with their mtime
/// (all but `dir` itself, whose mtime SQLite's WAL files change by coming and going).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, SystemTime)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Option<Vec<u8>>, SystemTime)>) {
        for e in std::fs::read_dir(dir).expect("list") {
            let e = e.expect("entry");
            let m = std::fs::symlink_metadata(e.path()).expect("metadata");
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("under root")
                .to_path_buf();
            let mtime = m.modified().expect("mtime");
            if m.is_dir() {
                out.insert(rel, (None, mtime));
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, (Some(std::fs::read(e.path()).expect("read")), mtime));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

/// The readable report's transitions table: stored bucket → counts per candidate bucket.
fn transitions(out: &str) -> BTreeMap<String, Vec<u64>> {
    let mut lines = out
        .lines()
        .skip_while(|l| !l.starts_with("bucket transitions"));
    lines.next();
    lines.next();
    lines
        .take(4)
        .map(|l| {
            let mut w = l.split_whitespace();
            let from = w.next().expect("bucket").to_string();
            (from, w.map(|n| n.parse().expect("count")).collect())
        })
        .collect()
}

/// The lines of a section: after the line starting with `header`, up to a blank line.
fn section<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

fn json_lines(out: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let totals = v.pop().expect("a totals line");
    assert_eq!(totals["kind"], "totals", "{totals}");
    assert!(v.iter().all(|c| c["kind"] == "change"), "{out}");
    (v, totals)
}

fn set<'a>(v: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    v.into_iter().map(str::to_string).collect()
}

#[test]
fn replay_names_the_alerts_a_broad_signature_would_suppress_holds_back_the_high_ones_and_writes_nothing(
) {
    let t = Triaged::new(&[]);
    let cand = t.candidate("candidate.toml", BROAD);
    let before = snapshot(&t.env.state);

    let o = t.replay(&cand, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    let tr = transitions(&out);
    assert_eq!(tr["suppressed"], [6, 0, 0, 0], "{out}");
    assert_eq!(tr["low"], [3, 7, 0, 0], "{out}");
    assert_eq!(tr["medium"], [2, 0, 10, 0], "{out}");
    assert_eq!(tr["high"], [0, 0, 0, 3], "{out}");
    assert!(
        out.contains("against the stored decisions of 31 alerts,"),
        "{out}"
    );
    assert!(out.contains("baseline: what is stored"), "{out}");
    // Every alert leaving high or medium, by case id.
    let leaving = section(&out, "leaving high or medium: 2 alerts");
    let named: BTreeSet<String> = leaving
        .iter()
        .map(|l| l.split_whitespace().next().expect("case id").to_string())
        .collect();
    assert_eq!(named, set([t.case("91551"), t.case("100500")]), "{out}");
    assert!(
        leaving
            .iter()
            .all(|l| l.contains("medium -> suppressed  level 10")),
        "{out}"
    );
    // The signature's line: what it would decide, and the high alerts it is held back on.
    let rules = section(&out, "rules (");
    assert_eq!(
        rules[0].trim(),
        "suppress:fp-broad-windows  decides +5 -0  held back +2 -0",
        "{out}"
    );
    let held: BTreeSet<String> = rules
        .iter()
        .find_map(|l| l.trim().strip_prefix("+ held back"))
        .expect("a held-back line")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(held, set(HELD_BACK.map(|r| t.case(r))), "{out}");
    assert!(
        out.contains("incidents (of the replayed alerts): 30 stored, 30 with the candidate; 0 alerts regrouped"),
        "{out}"
    );
    assert!(
        out.contains("highest bucket low -> suppressed: 3 incidents"),
        "{out}"
    );
    assert!(
        out.contains("highest bucket medium -> suppressed: 2 incidents"),
        "{out}"
    );
    assert!(
        out.contains("would itself put 0 of these 31 in another bucket"),
        "{out}"
    );
    assert!(
        out.lines().last().is_some_and(|l| l.starts_with(
            "replay: status=OK replayed=31 changed=7 lowered=5 raised=0 left_high_or_medium=2 newly_held_back=2 regrouped=0 skipped=0 unreadable=0 guard_hits=0"
        )),
        "{out}"
    );

    // --json: one object per changed alert, then the totals.
    let o = t.replay(&cand, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (changes, totals) = json_lines(&stdout(&o));
    let suppressed: BTreeSet<String> = changes
        .iter()
        .filter(|c| c["candidate"]["bucket"] == "suppressed")
        .map(|c| c["case_id"].as_str().expect("case id").to_string())
        .collect();
    assert_eq!(suppressed, set(NEWLY_SUPPRESSED.map(|(r, _)| t.case(r))));
    for (rule, bucket) in NEWLY_SUPPRESSED {
        let c = changes
            .iter()
            .find(|c| c["case_id"] == t.case(rule))
            .expect("its line");
        assert_eq!(c["stored"]["bucket"], bucket, "{c}");
        assert_eq!(c["stored"]["matched"], serde_json::Value::Null, "{c}");
        assert_eq!(c["candidate"]["matched"], "fp-broad-windows", "{c}");
        assert_eq!(c["candidate"]["matched_kind"], "suppress", "{c}");
        assert_eq!(c["alert_key"], t.key(rule), "{c}");
        assert_eq!(c["lowered"], true, "{c}");
        assert_eq!(c["stored"]["incident"], c["candidate"]["incident"], "{c}");
    }
    let held: BTreeSet<String> = changes
        .iter()
        .filter(|c| c["candidate"]["held_back"] == serde_json::json!(["fp-broad-windows"]))
        .map(|c| {
            assert_eq!(c["stored"]["bucket"], "high", "{c}");
            assert_eq!(c["candidate"]["bucket"], "high", "{c}");
            assert_eq!(c["lowered"], false, "{c}");
            c["case_id"].as_str().expect("case id").to_string()
        })
        .collect();
    assert_eq!(held, set(HELD_BACK.map(|r| t.case(r))));
    assert_eq!(changes.len(), 7);
    assert_eq!(totals["baseline"], "stored decisions");
    assert_eq!(totals["counters"]["replayed"], 31);
    assert_eq!(totals["counters"]["guard_hits"], 0);
    assert_eq!(
        totals["rules"],
        serde_json::json!([{"kind": "suppress", "id": "fp-broad-windows", "decides_added": 5,
            "decides_removed": 0, "held_back_added": 2, "held_back_removed": 0}])
    );
    let tr: BTreeSet<(String, String, u64)> = totals["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|x| {
            (
                x["from"].as_str().expect("from").to_string(),
                x["to"].as_str().expect("to").to_string(),
                x["count"].as_u64().expect("count"),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, u64)> = [
        ("suppressed", "suppressed", 6),
        ("low", "suppressed", 3),
        ("low", "low", 7),
        ("medium", "suppressed", 2),
        ("medium", "medium", 10),
        ("high", "high", 3),
    ]
    .into_iter()
    .map(|(a, b, n)| (a.to_string(), b.to_string(), n))
    .collect();
    assert_eq!(tr, expected);
    assert_eq!(
        set(totals["leaving_high_or_medium"]
            .as_array()
            .expect("list")
            .iter()
            .map(|v| v.as_str().expect("id"))),
        set([t.case("91551"), t.case("100500")])
    );

    // A guard naming the held-back high alert: it is not lowered, so no hit.
    let g = t.guard(
        "guard-high.txt",
        &format!("# known true positives\n\n  {}  \n", t.key("91550")),
    );
    let o = t.replay(&cand, &["--guard", &g]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains(": 1 entry, 1 of them among the replayed alerts"),
        "{}",
        text(&o)
    );
    assert!(!stdout(&o).contains("GUARD HIT"), "{}", text(&o));

    // A guard naming an alert it would suppress, by key and by case id: exit 1, named.
    for (name, entry) in [
        ("guard-key.txt", t.key("91551")),
        ("guard-case.txt", t.case("91551")),
    ] {
        let g = t.guard(name, &format!("{entry}\nnot-an-alert-of-this-period\n"));
        let o = t.replay(&cand, &["--guard", &g]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let out = stdout(&o);
        assert!(
            out.contains(": 2 entries, 1 of them among the replayed alerts"),
            "{out}"
        );
        let hit = format!(
            "GUARD HIT: {} ({}) would go medium -> suppressed",
            t.case("91551"),
            t.key("91551")
        );
        assert!(out.contains(&hit), "{out}");
        assert!(out.trim_end().ends_with("guard_hits=1"), "{out}");
        let o = t.replay(&cand, &["--guard", &g, "--json"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let (changes, totals) = json_lines(&stdout(&o));
        let hits: Vec<&serde_json::Value> =
            changes.iter().filter(|c| c["guard_hit"] == true).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0]["case_id"], t.case("91551"));
        assert_eq!(
            totals["guard"]["hits"],
            serde_json::json!([t.case("91551")])
        );
        assert_eq!(totals["guard"]["checked"], 1);
    }

    assert!(
        snapshot(&t.env.state) == before,
        "the state directory changed"
    );
}

#[test]
fn replay_with_allow_high_would_suppress_the_high_ones_and_a_guard_on_one_exits_1() {
    let t = Triaged::new(&[]);
    // The broad signature with allow_high, and a group rule that regroups every Windows alert.
    let cand = t.candidate(
        "candidate-allow-high.toml",
        &format!(
            "{BROAD}allow_high = true\n\n[[group]]\nid = \"windows-by-host\"\nby = [\"agent\"]\nmatch = {{ \"rule.groups\" = \"windows\" }}\n"
        ),
    );
    let before = snapshot(&t.env.state);
    let o = t.replay(&cand, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert_eq!(transitions(&out)["high"], [2, 0, 0, 1], "{out}");
    let leaving: BTreeSet<String> = section(&out, "leaving high or medium: 4 alerts")
        .iter()
        .map(|l| l.split_whitespace().next().expect("id").to_string())
        .collect();
    assert_eq!(
        leaving,
        set([
            t.case("91550"),
            t.case("91560"),
            t.case("91551"),
            t.case("100500")
        ]),
        "{out}"
    );
    // Ten fixtures are in the windows group: each now in its host's incident.
    assert!(out.contains("; 10 alerts regrouped"), "{out}");
    assert!(out.contains("decides +7 -0  held back +0 -0"), "{out}");
    for entry in [t.key("91550"), t.case("91550")] {
        let g = t.guard("guard.txt", &format!("{entry}\n"));
        let o = t.replay(&cand, &["--guard", &g]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            stdout(&o).contains(&format!("GUARD HIT: {} ", t.case("91550"))),
            "{}",
            text(&o)
        );
        assert!(
            stdout(&o).contains("would go high -> suppressed"),
            "{}",
            text(&o)
        );
    }
    assert!(
        snapshot(&t.env.state) == before,
        "the state directory changed"
    );
}

#[test]
fn replay_of_an_invalid_candidate_prints_its_diagnostics_as_policy_check_does_and_exits_2() {
    let t = Triaged::new(&[]);
    let broken =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/sf-policy/examples/broken-policy.toml");
    let broken = broken.display().to_string();
    let check = t.env.run(&["policy", "check", &broken]);
    assert_eq!(check.status.code(), Some(2));
    let o = t.replay(&broken, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&*String::from_utf8_lossy(&check.stdout)),
        "{}",
        text(&o)
    );
    assert!(err.contains("nothing was replayed"), "{}", text(&o));
    // A bad --since, a missing guard file, a missing state directory: usage errors.
    let good = t.candidate("ok.toml", "");
    for args in [
        vec![
            "policy",
            "replay",
            "--policy",
            &good,
            "--since",
            "last tuesday",
        ],
        vec![
            "policy",
            "replay",
            "--policy",
            &good,
            "--guard",
            "/nonexistent/guard",
        ],
    ] {
        let o = t.env.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
    let elsewhere = Env::new("");
    let o = elsewhere.run(&["policy", "replay", "--policy", &good]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        !elsewhere.state.exists(),
        "replay created a state directory"
    );
}

#[test]
fn replay_takes_the_period_by_alert_time_skips_what_is_not_a_published_case_and_escapes_alert_text()
{
    // Besides the fixtures: a fresh Windows alert (within the default 7 days) whose agent name
    // is hostile, and a line that is not JSON (quarantined; its row's time is the ingest's).
    let now = chrono::Utc::now() - chrono::Duration::hours(1);
    let hostile = serde_json::json!({
        "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "rule": {"level": 8, "description": "evil \u{1b}]0;title\u{7} \u{202e}txt.exe", "id": "60642", "groups": ["windows"]},
        "agent": {"id": "099", "name": "host\u{1b}[2J\u{202e}"},
        "manager": {"name": "m-replay"},
        "id": "1.1",
    })
    .to_string();
    let t = Triaged::new(&[hostile, "{not json".into()]);
    let cand = t.candidate("candidate.toml", BROAD);
    let before = snapshot(&t.env.state);
    let o = t.env.run(&["policy", "replay", "--policy", &cand]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains("against the stored decisions of 1 alert,"),
        "{out}"
    );
    assert!(
        out.contains("not replayed: 31 before the period; not published cases: quarantined=1;"),
        "{out}"
    );
    assert_eq!(transitions(&out)["medium"], [1, 0, 0, 0], "{out}");
    for bad in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!out.contains(bad), "{bad:?} reached the terminal: {out}");
    }
    assert!(out.contains("host\\u{1b}[2J\\u{202e}"), "{out}");
    let o = t
        .env
        .run(&["policy", "replay", "--policy", &cand, "--json"]);
    let json = stdout(&o);
    assert!(!json.contains('\u{202e}'), "{json}");
    let (changes, totals) = json_lines(&json);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["agent"], "host\\u{1b}[2J\\u{202e}");
    assert_eq!(totals["skipped"], serde_json::json!({"quarantined": 1}));
    assert_eq!(totals["before_period"], 31);
    // --bucket: only what is stored in that bucket.
    let o = t.replay(&cand, &["--bucket", "high"]);
    let out = stdout(&o);
    assert!(
        out.contains("against the stored decisions of 3 alerts,"),
        "{out}"
    );
    assert!(out.contains("stored high only"), "{out}");
    assert_eq!(transitions(&out)["high"], [0, 0, 0, 3], "{out}");
    assert!(
        snapshot(&t.env.state) == before,
        "the state directory changed"
    );
}

#[test]
fn replay_example_candidate_is_the_default_policy_and_one_signature_so_the_readme_session_stays_true(
) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/sf-policy/examples/candidate-policy.toml");
    let text = std::fs::read_to_string(&p).expect("candidate-policy.toml");
    let added = text
        .strip_prefix(sf_policy::DEFAULT_POLICY_TOML)
        .expect("the example starts with the default policy, as shipped");
    assert_eq!(added.matches("[[").count(), 1, "{added}");
    assert!(
        added.contains("[[suppress]]\nid = \"fp-web-scanner-sqli\""),
        "{added}"
    );
}

#[test]
fn replay_names_a_case_it_cannot_read_and_replays_the_others() {
    let t = Triaged::new(&[]);
    let path_of = |rule: &str| -> PathBuf {
        let c = t.env.ledger();
        let rel: String = c
            .query_row(
                "SELECT case_path FROM alerts WHERE case_id = ?1",
                [t.case(rule)],
                |r| r.get(0),
            )
            .expect("case path");
        t.env.path("cases").join(rel)
    };
    // Someone removed one case's alert.json, and another case whole.
    std::fs::remove_file(path_of("91551").join("alert.json")).expect("remove alert.json");
    std::fs::remove_dir_all(path_of("100500")).expect("remove case");
    let cand = t.candidate("candidate.toml", BROAD);
    let before = snapshot(&t.env.state);
    let o = t.replay(&cand, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains("against the stored decisions of 29 alerts,"),
        "{out}"
    );
    assert!(out.contains("unreadable: 2\n"), "{out}");
    assert!(
        out.contains(&format!(
            "    unreadable {}: alert.json is gone",
            t.case("91551")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("    unreadable {}: cases/", t.case("100500"))),
        "{out}"
    );
    assert!(out.contains("unreadable=2 guard_hits=0"), "{out}");
    let o = t.replay(&cand, &["--json"]);
    let (_, totals) = json_lines(&stdout(&o));
    assert_eq!(
        totals["unreadable"].as_array().map(Vec::len),
        Some(2),
        "{totals}"
    );
    assert!(
        snapshot(&t.env.state) == before,
        "the state directory changed"
    );
}
