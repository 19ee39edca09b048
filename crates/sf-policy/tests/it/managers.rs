//! Agent ids are numbered per Wazuh manager (issue 20, item 14): in a four-manager corpus agent
//! `001` is four different hosts, and `ids = ["001"]` merged them, so that the busybox signature
//! stopped matching the Alpine host. An alias's `manager` scopes its ids; one without `manager`
//! still matches every manager, and `policy test` (and triage) say when it did.
//!
//! The corpus is four real alerts of `tests/data/wazuh-alerts/`, unchanged: agent `001` of four
//! managers, four hosts.

use serde_json::{json, Value};
use sf_policy::{cli, ManagerSpan, Policy};
use std::path::PathBuf;

use crate::support::{at, merge, real_alerts_dir};

/// (fixture, its `manager.name`, its `agent.name`): agent `001` of each.
const CORPUS: [(&str, &str, &str); 4] = [
    (
        "linux-rootcheck-510-trojaned-md5sum-alpine.json",
        "c3",
        "Alpine-fix",
    ),
    ("linux-sudo-5402-root-executed.json", "vagrant", "agent-1"),
    (
        "macos-sudo-5407-sudo-executed.json",
        "ip-x-x-x-x",
        "macos-13",
    ),
    (
        "windows-fim-594-registry-key-modified.json",
        "master.instance.cloud.lcpu.dev",
        "hfw",
    ),
];

/// The busybox host: under the default policy its rootcheck alert is the busybox noise.
const ALPINE: &str = "linux-rootcheck-510-trojaned-md5sum-alpine.json";
const ALPINE_SUPPRESSED: &str = "bucket=suppressed agent=Alpine-fix matched=fp-rootcheck-trojan-busybox(suppress) held_back=[] expired=[] level=7";

fn path(file: &str) -> PathBuf {
    real_alerts_dir().join(file)
}

fn load(file: &str) -> Value {
    let p = path(file);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// The default policy with `aliases` (TOML) after it.
fn with_aliases(aliases: &str) -> Policy {
    let src = format!("{}\n{aliases}", sf_policy::DEFAULT_POLICY_TOML);
    match Policy::parse(&src) {
        Ok((p, _)) => p,
        Err(errors) => {
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("test policy is invalid:\n{}", shown.join("\n"))
        }
    }
}

fn decide(policy: &Policy, alert: &Value) -> sf_policy::Decision {
    policy
        .decide(alert, at("2026-01-01T00:00:00Z"))
        .unwrap_or_else(|e| panic!("decide: {e}"))
}

/// The one-line decision of each corpus alert, in corpus order.
fn decisions(policy: &Policy) -> Vec<String> {
    CORPUS
        .iter()
        .map(|(file, _, _)| decide(policy, &load(file)).to_string())
        .collect()
}

/// The default-policy comment's example, `hfw`'s id without its manager.
const UNSCOPED: &str = r#"
[[alias]]
canonical = "hfw"
names = ["hfw", "DESKTOP-UOJJ5R1"]
ids = ["001"]
"#;

/// The same alias naming hfw's manager (in another case than the alerts write it).
const SCOPED: &str = r#"
[[alias]]
canonical = "hfw"
names = ["hfw", "DESKTOP-UOJJ5R1"]
ids = ["001"]
manager = "Master.Instance.Cloud.LCPU.dev"
"#;

#[test]
fn the_corpus_is_agent_001_of_four_managers_and_four_hosts() {
    for (file, manager, name) in CORPUS {
        let a = load(file);
        assert_eq!(a["agent"]["id"], "001", "{file}");
        assert_eq!(a["manager"]["name"], manager, "{file}");
        assert_eq!(a["agent"]["name"], name, "{file}");
    }
}

/// The bug, kept as the behaviour of an alias without `manager` (backward compatible): every
/// manager's 001 becomes hfw and the Alpine host's busybox noise is no longer suppressed.
#[test]
fn an_id_alias_without_manager_merges_agent_001_of_every_manager() {
    let policy = with_aliases(UNSCOPED);
    let d = decisions(&policy);
    assert!(
        d.iter().all(|d| d.contains(" agent=hfw alias=hfw ")),
        "{d:#?}"
    );
    assert!(d[0].starts_with("bucket=medium "), "{}", d[0]);
}

#[test]
fn an_alias_naming_its_manager_merges_only_that_managers_agent_001() {
    let policy = with_aliases(SCOPED);
    assert_eq!(
        decisions(&policy),
        [
            ALPINE_SUPPRESSED,
            "bucket=low agent=agent-1 matched=- held_back=[] expired=[] level=3",
            "bucket=low agent=macos-13 matched=- held_back=[] expired=[] level=3",
            "bucket=suppressed agent=hfw alias=hfw matched=fp-fim-registry-w32time(suppress) held_back=[] expired=[] level=5",
        ]
    );
}

#[test]
fn a_signature_matching_by_agent_name_still_matches_the_other_managers_hosts() {
    // The busybox signature's `agent` glob (*alpine*) sees Alpine-fix, not hfw, once the alias
    // names hfw's manager; a site signature on macos-13's name matches it too.
    let site = r#"
[[suppress]]
id = "fp-macos-sudo"
reason = "r"
owner = "o"
match = { "rule.id" = "5407", "agent" = "macos-13" }
"#;
    let policy = with_aliases(&format!("{SCOPED}\n{site}"));
    assert_eq!(
        decide(&policy, &load(ALPINE)).to_string(),
        ALPINE_SUPPRESSED
    );
    assert_eq!(
        decide(&policy, &load("macos-sudo-5407-sudo-executed.json")).to_string(),
        "bucket=suppressed agent=macos-13 matched=fp-macos-sudo(suppress) held_back=[] expired=[] level=3"
    );
}

#[test]
fn the_trace_names_the_manager_of_a_scoped_id() {
    let policy = with_aliases(SCOPED);
    let d = decide(&policy, &load("windows-fim-594-registry-key-modified.json"));
    assert_eq!(
        d.trace[0],
        r#"agent "hfw": alias "hfw" applied, because agent.id is "001" and manager.name is "master.instance.cloud.lcpu.dev""#
    );
}

#[test]
fn a_manager_may_be_a_list_for_the_nodes_of_one_cluster() {
    let policy = with_aliases(
        r#"
[[alias]]
canonical = "lab-001"
ids = ["001"]
manager = ["vagrant", "c3"]
"#,
    );
    let d = decisions(&policy);
    assert!(d[0].contains(" agent=lab-001 "), "{}", d[0]);
    assert!(d[1].contains(" agent=lab-001 "), "{}", d[1]);
    assert!(d[2].contains(" agent=macos-13 "), "{}", d[2]);
    assert!(d[3].contains(" agent=hfw "), "{}", d[3]);
}

#[test]
fn names_match_on_every_manager_and_a_scoped_id_needs_manager_name() {
    // `manager` scopes ids only: hfw's alert is still found by its name under an alias whose
    // id belongs to another manager.
    let policy = with_aliases(
        r#"
[[alias]]
canonical = "alpine-lab"
names = ["hfw"]
ids = ["001"]
manager = "c3"
"#,
    );
    let hfw = decide(&policy, &load("windows-fim-594-registry-key-modified.json"));
    assert_eq!(hfw.agent, "alpine-lab");
    assert_eq!(
        hfw.trace[0],
        r#"agent "alpine-lab": alias "alpine-lab" applied, because agent.name is "hfw""#
    );
    // An alert without manager.name cannot show its id is c3's.
    let mut alpine = load(ALPINE);
    alpine.as_object_mut().expect("an object").remove("manager");
    assert_eq!(decide(&policy, &alpine).to_string(), ALPINE_SUPPRESSED);
}

#[test]
fn the_first_alias_in_the_file_that_claims_the_id_for_the_alerts_manager_wins() {
    // A scoped alias before one without manager: c3's 001 is the first's, every other
    // manager's the second's.
    let policy = with_aliases(
        r#"
[[alias]]
canonical = "alpine-lab"
ids = ["001"]
manager = "c3"

[[alias]]
canonical = "any-001"
ids = ["001"]
"#,
    );
    let agents: Vec<String> = CORPUS
        .iter()
        .map(|(f, _, _)| decide(&policy, &load(f)).agent)
        .collect();
    assert_eq!(agents, ["alpine-lab", "any-001", "any-001", "any-001"]);
}

fn span(alias: &str, id: &str, managers: &[&str]) -> ManagerSpan {
    ManagerSpan {
        alias: alias.into(),
        id: id.into(),
        managers: managers.iter().map(|m| m.to_string()).collect(),
    }
}

#[test]
fn an_id_alias_without_manager_is_reported_once_when_a_second_manager_shows_up() {
    let policy = with_aliases(UNSCOPED);
    let mut first_reports = Vec::new();
    // The hfw alerts (one manager, many times) first: nothing to say yet.
    for _ in 0..3 {
        let a = load("windows-logon-60106-success-system-type5.json");
        let d = decide(&policy, &a);
        assert_eq!(policy.note_manager(&a, &d), None);
    }
    assert_eq!(policy.manager_spans(), []);
    for (file, _, _) in CORPUS.iter().chain(CORPUS.iter()) {
        let a = load(file);
        let d = decide(&policy, &a);
        first_reports.extend(policy.note_manager(&a, &d));
    }
    assert_eq!(
        first_reports,
        [span(
            "hfw",
            "001",
            &["master.instance.cloud.lcpu.dev", "c3"]
        )],
        "said once, when the second manager (c3) showed up"
    );
    assert_eq!(
        policy.manager_spans(),
        [span(
            "hfw",
            "001",
            &[
                "master.instance.cloud.lcpu.dev",
                "c3",
                "vagrant",
                "ip-x-x-x-x"
            ]
        )]
    );
}

#[test]
fn a_scoped_alias_is_never_reported() {
    let policy = with_aliases(SCOPED);
    for (file, _, _) in CORPUS {
        let a = load(file);
        let d = decide(&policy, &a);
        assert_eq!(policy.note_manager(&a, &d), None, "{file}");
    }
    assert_eq!(policy.manager_spans(), []);
}

#[test]
fn alerts_without_manager_name_are_no_evidence_of_a_span() {
    let policy = with_aliases(UNSCOPED);
    for (file, _, _) in CORPUS {
        let mut a = load(file);
        merge(&mut a, json!({"manager": null}));
        let d = decide(&policy, &a);
        assert_eq!(d.agent, "hfw", "{file}");
        assert_eq!(policy.note_manager(&a, &d), None, "{file}");
    }
    assert_eq!(policy.manager_spans(), []);
}

fn policy_test(policy: &Policy, json: bool) -> String {
    let files: Vec<PathBuf> = CORPUS.iter().map(|(f, _, _)| path(f)).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::test(
        policy,
        "test-policy",
        at("2026-01-01T00:00:00Z"),
        json,
        &files,
        &mut out,
        &mut err,
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    String::from_utf8(out).expect("utf-8")
}

const SPAN_TEXT: &str = r#"alias "hfw" matched agent.id "001" from 4 managers ("c3", "vagrant", "ip-x-x-x-x", "master.instance.cloud.lcpu.dev"): agent ids are numbered per manager, so these may be different hosts merged into one (hint: name the host's manager in the alias, manager = "...", and give each other manager's host an alias of its own; the nodes of one Wazuh cluster share agent ids: list them all, manager = [...])"#;

#[test]
fn policy_test_reports_an_id_alias_spanning_managers_after_the_decisions() {
    let out = policy_test(&with_aliases(UNSCOPED), false);
    let last = out.lines().last().unwrap_or_default();
    assert_eq!(last, format!("warning: {SPAN_TEXT}"), "{out}");
    assert_eq!(out.matches("warning:").count(), 1, "{out}");

    let scoped = policy_test(&with_aliases(SCOPED), false);
    assert!(!scoped.contains("warning:"), "{scoped}");
}

#[test]
fn policy_test_json_reports_it_as_a_warning_line_after_the_decision_lines() {
    let out = policy_test(&with_aliases(UNSCOPED), true);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a json line"))
        .collect();
    assert_eq!(lines.len(), 5, "four decisions, one warning: {out}");
    for (line, (file, _, _)) in lines.iter().zip(CORPUS) {
        assert_eq!(line["file"], json!(path(file).display().to_string()));
        assert_eq!(line["agent"], json!("hfw"), "{line}");
    }
    assert_eq!(
        lines[4],
        json!({
            "warning": "alias-id-spans-managers",
            "alias": "hfw",
            "id": "001",
            "managers": ["c3", "vagrant", "ip-x-x-x-x", "master.instance.cloud.lcpu.dev"],
            "message": SPAN_TEXT,
        })
    );

    let scoped = policy_test(&with_aliases(SCOPED), true);
    assert_eq!(scoped.lines().count(), 4, "decisions only: {scoped}");
    assert!(!scoped.contains("\"warning\""), "{scoped}");
}

#[test]
fn a_span_escapes_control_characters_of_the_alerts_manager_names() {
    let policy = with_aliases(UNSCOPED);
    for manager in ["one", "two\u{1b}[2J\u{202e}"] {
        let mut a = load(ALPINE);
        merge(&mut a, json!({"manager": {"name": manager}}));
        let d = decide(&policy, &a);
        let _ = policy.note_manager(&a, &d);
    }
    let spans = policy.manager_spans();
    assert_eq!(spans.len(), 1);
    let shown = spans[0].to_string();
    assert!(
        shown.contains(r#"("one", "two\u{1b}[2J\u{202e}")"#),
        "{shown}"
    );
}

const README: &str = include_str!("../../README.md");

#[test]
fn the_readme_alias_naming_its_manager_decides_the_corpus_as_documented() {
    let section = README
        .split("### Agent ids are per manager")
        .nth(1)
        .expect("the README has the section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section shows an alias");
    let policy = with_aliases(block);
    assert_eq!(
        decisions(&policy),
        decisions(&with_aliases(SCOPED)),
        "{block}"
    );
    let agents: Vec<String> = CORPUS
        .iter()
        .map(|(f, _, _)| decide(&policy, &load(f)).agent)
        .collect();
    assert_eq!(agents, ["Alpine-fix", "agent-1", "macos-13", "hfw"]);
}

#[test]
fn the_readme_warning_example_is_what_policy_test_prints() {
    let files = [
        path(ALPINE),
        path("windows-fim-594-registry-key-modified.json"),
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let policy = with_aliases(UNSCOPED);
    let now = at("2026-01-01T00:00:00Z");
    cli::test(&policy, "p", now, false, &files, &mut out, &mut err);
    let out = String::from_utf8(out).expect("utf-8");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("warning: "), "{out}");
    assert!(
        README.lines().any(|l| l == last),
        "the README shows: {last}"
    );
}
