//! Decisions, one behaviour per test: a policy, a fixture alert and the expected decision, all
//! through one `check` helper. The expected decision is `Decision`'s one-line form:
//! `bucket=.. [critical] agent=.. [alias=..] matched=id(kind)|- held_back=[..] expired=[..] level=..`.

use serde_json::{json, Value};
use sf_policy::{Bucket, Policy};

use crate::support::{at, merge};

/// The alert every test starts from: rule 510 at level 5 on agent web01 (id 001).
fn alert(extra: Value) -> Value {
    let mut base = json!({
        "rule": { "id": "510", "level": 5, "description": "test", "groups": ["ossec", "rootcheck"] },
        "agent": { "id": "001", "name": "web01" },
        "manager": { "name": "wazuh-manager" },
        "id": "1700000000.1",
    });
    merge(&mut base, extra);
    base
}

/// A policy with one signature `s` whose match table is `m`.
fn signature(m: &str) -> String {
    format!("[[suppress]]\nid = \"s\"\nreason = \"r\"\nowner = \"o\"\nmatch = {{ {m} }}\n")
}

fn compile(policy: &str) -> Policy {
    match Policy::parse(policy) {
        Ok((p, _)) => p,
        Err(errors) => {
            let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("test policy is invalid:\n{}", shown.join("\n"))
        }
    }
}

/// Decides `alert` with `policy` at 2026-01-01T00:00:00Z and compares the one-line decision.
#[track_caller]
fn check(policy: &str, alert: Value, expected: &str) {
    let decision = compile(policy)
        .decide(&alert, at("2026-01-01T00:00:00Z"))
        .unwrap_or_else(|e| panic!("decide failed: {e}"));
    assert_eq!(
        decision.to_string(),
        expected,
        "trace:\n  {}",
        decision.trace.join("\n  ")
    );
}

/// Decides and returns the trace, for tests about the explanation itself.
fn trace(policy: &str, alert: Value) -> Vec<String> {
    compile(policy)
        .decide(&alert, at("2026-01-01T00:00:00Z"))
        .map(|d| d.trace)
        .unwrap_or_else(|e| panic!("decide failed: {e}"))
}

#[track_caller]
fn check_error(alert: Value, expected: &str) {
    let err = Policy::severity_only()
        .decide(&alert, at("2026-01-01T00:00:00Z"))
        .expect_err("the alert should not be decidable");
    assert_eq!(err.to_string(), expected);
}

const SUPPRESSED: &str =
    "bucket=suppressed agent=web01 matched=s(suppress) held_back=[] expired=[] level=5";
const NOT_SUPPRESSED: &str = "bucket=low agent=web01 matched=- held_back=[] expired=[] level=5";

// ---- severity -------------------------------------------------------------------------------

#[test]
fn severity_buckets_follow_wazuh_dashboard_levels_without_a_policy() {
    let p = "";
    check(
        p,
        alert(json!({"rule": {"level": 0}})),
        "bucket=low agent=web01 matched=- held_back=[] expired=[] level=0",
    );
    check(
        p,
        alert(json!({"rule": {"level": 6}})),
        "bucket=low agent=web01 matched=- held_back=[] expired=[] level=6",
    );
    check(
        p,
        alert(json!({"rule": {"level": 7}})),
        "bucket=medium agent=web01 matched=- held_back=[] expired=[] level=7",
    );
    check(
        p,
        alert(json!({"rule": {"level": 11}})),
        "bucket=medium agent=web01 matched=- held_back=[] expired=[] level=11",
    );
    check(
        p,
        alert(json!({"rule": {"level": 12}})),
        "bucket=high agent=web01 matched=- held_back=[] expired=[] level=12",
    );
    check(
        p,
        alert(json!({"rule": {"level": 14}})),
        "bucket=high agent=web01 matched=- held_back=[] expired=[] level=14",
    );
}

#[test]
fn high_alerts_of_level_fifteen_or_more_are_critical() {
    check(
        "",
        alert(json!({"rule": {"level": 15}})),
        "bucket=high critical agent=web01 matched=- held_back=[] expired=[] level=15",
    );
}

#[test]
fn custom_thresholds_move_the_bucket_boundaries() {
    let p = "[severity]\nmedium = 4\nhigh = 10\n";
    check(
        p,
        alert(json!({"rule": {"level": 4}})),
        "bucket=medium agent=web01 matched=- held_back=[] expired=[] level=4",
    );
    check(
        p,
        alert(json!({"rule": {"level": 10}})),
        "bucket=high agent=web01 matched=- held_back=[] expired=[] level=10",
    );
}

#[test]
fn severity_only_policy_uses_seven_and_twelve() {
    let t = Policy::severity_only().thresholds();
    assert_eq!((t.medium, t.high), (7, 12));
    assert_eq!(Policy::severity_only().version(), "severity-only");
}

// ---- each matcher ---------------------------------------------------------------------------

#[test]
fn a_string_literal_equals_the_value() {
    check(
        &signature(r#""rule.id" = "510""#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.id" = "511""#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn a_number_equals_its_numeric_string_and_back() {
    check(
        &signature(r#""rule.id" = 510"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.level" = "5""#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.level" = 5.0"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.id" = 51"#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn a_boolean_literal_equals_a_boolean_value() {
    check(
        &signature(r#""rule.mail" = true"#),
        alert(json!({"rule": {"mail": true}})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.mail" = true"#),
        alert(json!({"rule": {"mail": false}})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn a_list_of_literals_equals_any_of_them() {
    check(
        &signature(r#""rule.id" = ["594", 510]"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.id" = ["594", "750"]"#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn equals_in_a_table_takes_nocase() {
    check(
        &signature(r#""agent.name" = { equals = "WEB01", nocase = true }"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""agent.name" = { equals = "WEB01" }"#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn prefix_matches_the_start_of_the_value() {
    let a = alert(json!({"data": {"title": "Trojaned version of file detected."}}));
    check(
        &signature(r#""data.title" = { prefix = "Trojaned" }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.title" = { prefix = "version" }"#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn suffix_matches_the_end_of_the_value() {
    let a = alert(json!({"full_log": "Signature used: 'bash' (Generic)."}));
    check(
        &signature(r#""full_log" = { suffix = "(Generic)." }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""full_log" = { suffix = "bash" }"#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn contains_matches_anywhere_in_the_value() {
    let a = alert(json!({"full_log": "Accepted publickey for vagrant from 10.0.2.2"}));
    check(
        &signature(r#""full_log" = { contains = "publickey" }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""full_log" = { contains = "password" }"#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn string_tests_take_a_list_meaning_any_of() {
    let a = alert(json!({"full_log": "Accepted publickey for vagrant"}));
    check(
        &signature(r#""full_log" = { contains = ["password", "publickey"] }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""full_log" = { prefix = ["Failed", "Invalid"] }"#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn string_tests_apply_to_the_text_of_numbers() {
    check(
        &signature(r#""rule.id" = { prefix = "51" }"#),
        alert(json!({"rule": {"id": 510}})),
        SUPPRESSED,
    );
}

#[test]
fn nocase_makes_string_tests_case_insensitive() {
    let a =
        alert(json!({"data": {"win": {"eventdata": {"image": "C:\\Windows\\System32\\CMD.EXE"}}}}));
    check(
        &signature(r#""data.win.eventdata.image" = { suffix = "cmd.exe", nocase = true }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.win.eventdata.image" = { suffix = "cmd.exe" }"#),
        a.clone(),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.win.eventdata.image" = { contains = "system32", nocase = true }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.win.eventdata.image" = { prefix = "c:\\windows", nocase = true }"#),
        a,
        SUPPRESSED,
    );
}

#[test]
fn glob_matches_the_whole_value_with_star_and_question_mark() {
    const YES: &str =
        "bucket=suppressed agent=alpine-07 matched=s(suppress) held_back=[] expired=[] level=5";
    const NO: &str = "bucket=low agent=alpine-07 matched=- held_back=[] expired=[] level=5";
    let a = alert(json!({"agent": {"name": "alpine-07"}}));
    check(
        &signature(r#""agent.name" = { glob = "alpine-??" }"#),
        a.clone(),
        YES,
    );
    check(
        &signature(r#""agent.name" = { glob = "alpine*" }"#),
        a.clone(),
        YES,
    );
    check(
        &signature(r#""agent.name" = { glob = "alpine" }"#),
        a.clone(),
        NO,
    );
    check(
        &signature(r#""agent.name" = { glob = "ALPINE-*" }"#),
        a.clone(),
        NO,
    );
    check(
        &signature(r#""agent.name" = { glob = "ALPINE-*", nocase = true }"#),
        a,
        YES,
    );
}

#[test]
fn glob_treats_dots_and_backslashes_literally() {
    let a = alert(json!({"syscheck": {"path": "C:\\a.b\\c"}}));
    check(
        &signature(r#""syscheck.path" = { glob = 'C:\a.b\*' }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""syscheck.path" = { glob = 'C:\a?b\*' }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""syscheck.path" = { glob = 'C:\aXb\*' }"#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn regex_is_searched_in_the_value() {
    let a = alert(json!({"data": {"srcuser": "svc-backup-01"}}));
    check(
        &signature(r#""data.srcuser" = { regex = 'backup-\d+' }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.srcuser" = { regex = '^backup' }"#),
        a.clone(),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.srcuser" = { regex = '^SVC-', nocase = true }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.srcuser" = { regex = ['^x', '\d$'] }"#),
        a,
        SUPPRESSED,
    );
}

#[test]
fn cidr_matches_addresses_inside_the_network() {
    let a = alert(json!({"data": {"srcip": "10.1.2.3"}}));
    check(
        &signature(r#""data.srcip" = { cidr = "10.0.0.0/8" }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.srcip" = { cidr = ["192.168.0.0/16", "10.1.2.3"] }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.srcip" = { cidr = "192.168.0.0/16" }"#),
        a,
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.srcip" = { cidr = "2001:db8::/32" }"#),
        alert(json!({"data": {"srcip": "2001:db8::1"}})),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.srcip" = { cidr = "10.0.0.0/8" }"#),
        alert(json!({"data": {"srcip": "not-an-ip"}})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn gte_and_lte_bound_a_numeric_range_alone_or_together() {
    check(
        &signature(r#""rule.level" = { gte = 3, lte = 6 }"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.level" = { gte = 6 }"#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""rule.level" = { lte = 5 }"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.count" = { gte = 3 }"#),
        alert(json!({"data": {"count": "4"}})),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.count" = { gte = 3 }"#),
        alert(json!({"data": {"count": "many"}})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn exists_checks_presence_and_absence() {
    check(
        &signature(r#""data.title" = { exists = true }"#),
        alert(json!({"data": {"title": "x"}})),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.title" = { exists = true }"#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.title" = { exists = false }"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.title" = { exists = false }"#),
        alert(json!({"data": {"title": null}})),
        SUPPRESSED,
    );
    check(
        &signature(r#""data" = { exists = true }"#),
        alert(json!({"data": {"title": "x"}})),
        SUPPRESSED,
    );
}

#[test]
fn several_tests_in_one_table_must_all_hold() {
    let a = alert(json!({"data": {"file": "/usr/bin/md5sum"}}));
    check(
        &signature(r#""data.file" = { prefix = "/usr/bin/", suffix = "sum" }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.file" = { prefix = "/usr/bin/", suffix = "ls" }"#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn every_field_of_a_match_table_must_hold() {
    check(
        &signature(r#""rule.id" = "510", "agent.name" = "web01""#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.id" = "510", "agent.name" = "web02""#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn unquoted_dotted_keys_are_field_paths_too() {
    check(
        &signature(r#"rule.id = "510", agent.name = { prefix = "web" }"#),
        alert(json!({})),
        SUPPRESSED,
    );
    check(
        &signature(r#"rule.id = "511""#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
}

// ---- not, lists, missing and wrong-typed fields ----------------------------------------------

#[test]
fn not_is_true_when_the_field_is_missing() {
    check(
        &signature(r#""data.dstuser" = { not = "root" }"#),
        alert(json!({})),
        SUPPRESSED,
    );
}

#[test]
fn not_is_true_when_no_value_matches() {
    check(
        &signature(r#""data.dstuser" = { not = "root" }"#),
        alert(json!({"data": {"dstuser": "vagrant"}})),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.dstuser" = { not = "root" }"#),
        alert(json!({"data": {"dstuser": "root"}})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn not_on_a_list_field_is_false_when_any_element_matches() {
    let a = alert(json!({"rule": {"groups": ["syslog", "sshd", "authentication_success"]}}));
    check(
        &signature(r#""rule.groups" = { not = "sshd" }"#),
        a.clone(),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""rule.groups" = { not = ["pam", "sudo"] }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.groups" = { not = { prefix = "auth" } }"#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn not_inherits_nocase_from_its_table() {
    let a = alert(json!({"data": {"dstuser": "ROOT"}}));
    check(
        &signature(r#""data.dstuser" = { not = "root", nocase = true }"#),
        a.clone(),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.dstuser" = { not = "root" }"#),
        a,
        SUPPRESSED,
    );
}

#[test]
fn a_list_field_matches_if_any_element_does() {
    let a = alert(
        json!({"rule": {"groups": ["ossec", "rootcheck"], "mitre": {"id": ["T1014", "T1112"]}}}),
    );
    check(
        &signature(r#""rule.groups" = "rootcheck""#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.mitre.id" = { prefix = "T11" }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""rule.groups" = "syscheck""#),
        a,
        NOT_SUPPRESSED,
    );
}

#[test]
fn paths_walk_into_arrays_of_objects() {
    let a = alert(json!({"data": {"changes": [{"name": "a"}, {"name": "b"}]}}));
    check(&signature(r#""data.changes.name" = "b""#), a, SUPPRESSED);
}

#[test]
fn a_missing_field_matches_no_test() {
    check(
        &signature(r#""data.title" = { contains = "x" }"#),
        alert(json!({})),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.nothing.deeper" = "x""#),
        alert(json!({"data": {"nothing": "flat"}})),
        NOT_SUPPRESSED,
    );
}

#[test]
fn a_field_of_the_wrong_type_matches_no_string_test() {
    let a = alert(json!({"data": {"title": {"nested": "Trojaned"}}}));
    check(
        &signature(r#""data.title" = { contains = "Trojaned" }"#),
        a.clone(),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.title" = "Trojaned""#),
        a.clone(),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.title" = { gte = 1 }"#),
        a.clone(),
        NOT_SUPPRESSED,
    );
    check(
        &signature(r#""data.title" = { exists = true }"#),
        a,
        SUPPRESSED,
    );
}

#[test]
fn rule_level_as_a_numeric_string_is_accepted() {
    check(
        "",
        alert(json!({"rule": {"level": "12"}})),
        "bucket=high agent=web01 matched=- held_back=[] expired=[] level=12",
    );
}

#[test]
fn rule_level_as_an_integral_float_is_that_level() {
    check(
        "",
        alert(json!({"rule": {"level": 12.0}})),
        "bucket=high agent=web01 matched=- held_back=[] expired=[] level=12",
    );
    let tenth_power: Value = serde_json::from_str(r#"{"rule": {"level": 1e1}}"#).expect("json");
    check(
        "",
        alert(tenth_power),
        "bucket=medium agent=web01 matched=- held_back=[] expired=[] level=10",
    );
}

#[test]
fn rule_level_as_a_padded_numeric_string_is_read_as_the_pipeline_reads_it() {
    // The spool (queue priority, the ledger) reads " 12" as 12; so does the decision.
    check(
        "",
        alert(json!({"rule": {"level": " 12\t"}})),
        "bucket=high agent=web01 matched=- held_back=[] expired=[] level=12",
    );
}

#[test]
fn a_number_beyond_the_wazuh_levels_cannot_be_decided() {
    let thousand: Value = serde_json::from_str(r#"{"rule": {"level": 1e3}}"#).expect("json");
    check_error(alert(thousand), "rule.level is out of range (0 to 16)");
    check_error(
        alert(json!({"rule": {"level": 17}})),
        "rule.level is out of range (0 to 16)",
    );
    check_error(
        alert(json!({"rule": {"level": "1000"}})),
        "rule.level is out of range (0 to 16)",
    );
}

#[test]
fn a_missing_rule_level_cannot_be_decided() {
    check_error(json!({"rule": {"id": "510"}}), "rule.level is missing");
    check_error(json!({"agent": {"name": "x"}}), "rule.level is missing");
}

#[test]
fn a_wrong_typed_rule_level_cannot_be_decided() {
    check_error(
        alert(json!({"rule": {"level": "high"}})),
        "rule.level is a string that is not a whole number, expected a number such as 12",
    );
    check_error(
        alert(json!({"rule": {"level": true}})),
        "rule.level is a boolean, expected a number",
    );
    check_error(
        alert(json!({"rule": {"level": {"n": 1}}})),
        "rule.level is an object, expected a number",
    );
    check_error(
        alert(json!({"rule": {"level": -1}})),
        "rule.level is negative, expected 0 or more",
    );
    check_error(
        alert(json!({"rule": {"level": 7.5}})),
        "rule.level is not a whole number, expected a whole number such as 12",
    );
    check_error(
        alert(json!({"rule": {"level": 12.5}})),
        "rule.level is not a whole number, expected a whole number such as 12",
    );
    check_error(
        alert(json!({"rule": {"level": 4_294_967_296_u64}})),
        "rule.level is out of range (0 to 16)",
    );
    for signed in ["+12", "-1", "12.0", "1e1", "", " "] {
        check_error(
            alert(json!({"rule": {"level": signed}})),
            "rule.level is a string that is not a whole number, expected a number such as 12",
        );
    }
    check_error(
        alert(json!({"rule": {"level": null}})),
        "rule.level is null, expected a number",
    );
    check_error(
        json!({"rule": "510"}),
        "rule is a string, expected an object",
    );
    check_error(
        json!(["not", "an", "alert"]),
        "alert is an array, expected an object",
    );
}

#[test]
fn a_missing_agent_name_is_agent_unknown() {
    check(
        "",
        json!({"rule": {"level": 3}}),
        "bucket=low agent=unknown matched=- held_back=[] expired=[] level=3",
    );
    check(
        "",
        json!({"rule": {"level": 3}, "agent": {"name": {"x": 1}}}),
        "bucket=low agent=unknown matched=- held_back=[] expired=[] level=3",
    );
}

// ---- backslashes ----------------------------------------------------------------------------

#[test]
fn doubled_backslashes_in_values_match_single_backslashes_in_the_policy() {
    // Wazuh eventchannel fields carry doubled backslashes: "C:\\\\Windows" in the JSON text.
    let a = alert(
        json!({"data": {"win": {"eventdata": {"image": "C:\\\\Windows\\\\System32\\\\cmd.exe"}}}}),
    );
    check(
        &signature(r#""data.win.eventdata.image" = 'C:\Windows\System32\cmd.exe'"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.win.eventdata.image" = { prefix = 'C:\Windows\' }"#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""data.win.eventdata.image" = { glob = 'C:\Windows\*\cmd.exe' }"#),
        a,
        SUPPRESSED,
    );
}

#[test]
fn doubled_backslashes_in_policy_literals_are_collapsed_too() {
    let a = alert(json!({"syscheck": {"path": "C:\\Windows\\hosts"}}));
    check(
        &signature(r#""syscheck.path" = "C:\\\\Windows\\\\hosts""#),
        a.clone(),
        SUPPRESSED,
    );
    check(
        &signature(r#""syscheck.path" = { suffix = '\\hosts' }"#),
        a,
        SUPPRESSED,
    );
}

#[test]
fn regexes_see_collapsed_values_but_keep_their_own_escapes() {
    let a =
        alert(json!({"data": {"win": {"eventdata": {"image": "C:\\\\Windows\\\\mscorsvw.exe"}}}}));
    check(
        &signature(r#""data.win.eventdata.image" = { regex = '^C:\\Windows\\mscorsvw\.exe$' }"#),
        a,
        SUPPRESSED,
    );
}

// ---- aliases and the agent field -------------------------------------------------------------

const ALIASES: &str = r#"
[[alias]]
canonical = "hfw"
names = ["HFW", "desktop-uojj5r1"]
ids = ["017"]

[[alias]]
canonical = "dc01"
names = ["dc01.corp.local", "WIN-8F3K2"]

[[alias]]
canonical = "late"
names = ["web01"]
ids = ["001"]
"#;

#[test]
fn an_alias_applies_by_agent_name_without_regard_to_case() {
    check(
        ALIASES,
        alert(json!({"agent": {"id": "500", "name": "WIN-8f3k2"}})),
        "bucket=low agent=dc01 alias=dc01 matched=- held_back=[] expired=[] level=5",
    );
}

#[test]
fn an_alias_applies_by_agent_id() {
    check(
        ALIASES,
        alert(json!({"agent": {"id": "017", "name": "renamed-host"}})),
        "bucket=low agent=hfw alias=hfw matched=- held_back=[] expired=[] level=5",
    );
}

#[test]
fn an_alias_applies_by_windows_computer_name() {
    let a = alert(
        json!({"agent": {"id": "500", "name": "x"}, "data": {"win": {"system": {"computer": "DESKTOP-UOJJ5R1"}}}}),
    );
    check(
        ALIASES,
        a,
        "bucket=low agent=hfw alias=hfw matched=- held_back=[] expired=[] level=5",
    );
}

#[test]
fn an_alias_applies_by_predecoder_hostname() {
    let a = alert(
        json!({"agent": {"id": "000", "name": "manager"}, "predecoder": {"hostname": "DC01.corp.local"}}),
    );
    check(
        ALIASES,
        a,
        "bucket=low agent=dc01 alias=dc01 matched=- held_back=[] expired=[] level=5",
    );
}

#[test]
fn agent_id_and_agent_name_choose_the_alias_before_names_from_the_events_text() {
    // agent.name web01 and agent.id 001 point at "late"; the computer name (text of the event)
    // at "hfw", listed first: what the manager vouches for wins over the file's order.
    let a = alert(json!({"data": {"win": {"system": {"computer": "hfw"}}}}));
    check(
        ALIASES,
        a,
        "bucket=low agent=late alias=late matched=- held_back=[] expired=[] level=5",
    );
    let a = alert(json!({"predecoder": {"hostname": "dc01.corp.local"}}));
    check(
        ALIASES,
        a,
        "bucket=low agent=late alias=late matched=- held_back=[] expired=[] level=5",
    );
}

#[test]
fn among_agent_id_and_agent_name_the_first_alias_in_the_file_wins() {
    // agent.id 017 is "hfw" (first), agent.name web01 is "late" (third).
    check(
        ALIASES,
        alert(json!({"agent": {"id": "017", "name": "web01"}})),
        "bucket=low agent=hfw alias=hfw matched=- held_back=[] expired=[] level=5",
    );
}

/// An alias for `alpine-1` listed first, `web1`'s second, and a signature scoped to the alpine
/// hosts (issue 11, item 15: a forged syslog hostname moved web1's alert into it).
const FORGED_HOSTNAME: &str = r#"
[[alias]]
canonical = "alpine-1"
names = ["alpine-1", "alpine-1.lab"]

[[alias]]
canonical = "web1"
names = ["web1", "web1.corp.local"]
ids = ["001"]

[[suppress]]
id = "fp-alpine"
reason = "r"
owner = "o"
match = { "rule.id" = "510", "agent" = { glob = "alpine-*" } }
"#;

#[test]
fn a_hostname_in_the_log_line_does_not_choose_the_agent_over_agent_name() {
    let a = alert(json!({
        "rule": {"level": 10},
        "agent": {"id": "500", "name": "web1"},
        "predecoder": {"hostname": "alpine-1"},
    }));
    check(
        FORGED_HOSTNAME,
        a.clone(),
        "bucket=medium agent=web1 alias=web1 matched=- held_back=[] expired=[] level=10",
    );
    assert_eq!(
        trace(FORGED_HOSTNAME, a)[0],
        r#"agent "web1": alias "web1" applied, because agent.name is "web1""#
    );
}

#[test]
fn a_name_from_the_events_text_picks_the_alias_when_agent_id_and_name_match_none() {
    let a = alert(json!({
        "agent": {"id": "000", "name": "wazuh-manager"},
        "predecoder": {"hostname": "alpine-1"},
    }));
    check(
        FORGED_HOSTNAME,
        a.clone(),
        "bucket=suppressed agent=alpine-1 alias=alpine-1 matched=fp-alpine(suppress) held_back=[] expired=[] level=5",
    );
    assert_eq!(
        trace(FORGED_HOSTNAME, a)[0],
        r#"agent "alpine-1": alias "alpine-1" applied, because predecoder.hostname is "alpine-1" (a name from the event's text: no alias matches agent.id or agent.name)"#
    );
}

#[test]
fn without_an_alias_the_agent_is_agent_name_as_written() {
    check(
        ALIASES,
        alert(json!({"agent": {"id": "500", "name": "Other-Host"}})),
        "bucket=low agent=Other-Host matched=- held_back=[] expired=[] level=5",
    );
}

#[test]
fn the_agent_match_field_is_the_canonical_agent() {
    let p = format!("{ALIASES}\n{}", signature(r#""agent" = "hfw""#));
    check(
        &p,
        alert(json!({"agent": {"id": "017", "name": "renamed"}})),
        "bucket=suppressed agent=hfw alias=hfw matched=s(suppress) held_back=[] expired=[] level=5",
    );
    check(
        &p,
        alert(json!({"agent": {"id": "500", "name": "hfw-lookalike"}})),
        "bucket=low agent=hfw-lookalike matched=- held_back=[] expired=[] level=5",
    );
}

#[test]
fn the_alias_is_named_in_the_trace() {
    let t = trace(
        ALIASES,
        alert(json!({"agent": {"id": "017", "name": "renamed"}})),
    );
    assert_eq!(
        t[0],
        r#"agent "hfw": alias "hfw" applied, because agent.id is "017""#
    );
}

// ---- order, overrides, expiry, held back -------------------------------------------------------

const TWO_SIGNATURES: &str = r#"
[[suppress]]
id = "first"
reason = "r"
owner = "o"
match = { "rule.id" = "510", "agent.name" = { prefix = "web" } }

[[suppress]]
id = "second"
reason = "r"
owner = "o"
match = { "rule.id" = "510" }
"#;

#[test]
fn the_first_matching_signature_wins() {
    check(
        TWO_SIGNATURES,
        alert(json!({})),
        "bucket=suppressed agent=web01 matched=first(suppress) held_back=[] expired=[] level=5",
    );
    check(
        TWO_SIGNATURES,
        alert(json!({"agent": {"name": "db01"}})),
        "bucket=suppressed agent=db01 matched=second(suppress) held_back=[] expired=[] level=5",
    );
}

#[test]
fn signatures_keep_file_order_whichever_index_holds_them() {
    // Indexed by rule.id, by another field (agent.name), and by nothing (a glob): all three
    // match; whichever comes first in the file decides.
    let by_rule = ("by-rule", r#""rule.id" = "510""#);
    let by_field = ("by-field", r#""agent.name" = "web01""#);
    let by_nothing = ("by-nothing", r#""agent.name" = { glob = "web*" }"#);
    for order in [
        [by_rule, by_field, by_nothing],
        [by_field, by_nothing, by_rule],
        [by_nothing, by_rule, by_field],
    ] {
        let policy: String = order
            .iter()
            .map(|(id, m)| signature(m).replace("id = \"s\"", &format!("id = \"{id}\"")))
            .collect();
        let first = order[0].0;
        check(
            &policy,
            alert(json!({})),
            &format!("bucket=suppressed agent=web01 matched={first}(suppress) held_back=[] expired=[] level=5"),
        );
    }
}

const OVERRIDES: &str = r#"
[[override]]
id = "force-high"
bucket = "high"
match = { "data.win.eventdata.originalFileName" = { equals = "mimikatz.exe", nocase = true } }

[[override]]
id = "force-low"
bucket = "low"
match = { "rule.id" = "510" }

[[suppress]]
id = "s"
reason = "r"
owner = "o"
match = { "rule.id" = "510" }
"#;

#[test]
fn an_override_forces_its_bucket_before_any_signature() {
    let a = alert(json!({"data": {"win": {"eventdata": {"originalFileName": "MIMIKATZ.EXE"}}}}));
    check(
        OVERRIDES,
        a,
        "bucket=high agent=web01 matched=force-high(override) held_back=[] expired=[] level=5",
    );
    check(
        OVERRIDES,
        alert(json!({})),
        "bucket=low agent=web01 matched=force-low(override) held_back=[] expired=[] level=5",
    );
}

#[test]
fn an_override_to_high_marks_level_fifteen_critical() {
    let a = alert(
        json!({"rule": {"level": 15}, "data": {"win": {"eventdata": {"originalFileName": "mimikatz.exe"}}}}),
    );
    check(OVERRIDES, a, "bucket=high critical agent=web01 matched=force-high(override) held_back=[] expired=[] level=15");
}

#[test]
fn forced_high_reports_overrides_that_force_high() {
    let p = compile(OVERRIDES);
    let mimikatz =
        alert(json!({"data": {"win": {"eventdata": {"originalFileName": "mimikatz.exe"}}}}));
    assert!(p.forced_high(&mimikatz));
    assert!(!p.forced_high(&alert(json!({}))), "force-low is not high");
    assert!(
        p.forced_high(
            &json!({"data": {"win": {"eventdata": {"originalFileName": "mimikatz.exe"}}}})
        ),
        "no rule.level needed"
    );
}

#[test]
fn an_expired_signature_matches_nothing_and_is_reported() {
    let p = r#"
[[suppress]]
id = "old"
reason = "r"
owner = "o"
expires = "2025-12-31"
match = { "rule.id" = "510" }
"#;
    check(
        p,
        alert(json!({})),
        "bucket=low agent=web01 matched=- held_back=[] expired=[old] level=5",
    );
    let t = trace(p, alert(json!({})));
    assert!(
        t.iter()
            .any(|l| l
                == "signature old: would match, but it expired on 2025-12-31 and matches nothing"),
        "{t:#?}"
    );
}

#[test]
fn a_signature_is_active_through_its_expiry_date() {
    let p = signature(r#""rule.id" = "510""#).replace("match", "expires = 2026-01-01\nmatch");
    check(&p, alert(json!({})), SUPPRESSED);
}

#[test]
fn an_expired_signature_that_would_not_match_is_not_listed() {
    let p = signature(r#""rule.id" = "510", "agent.name" = "db01""#)
        .replace("match", "expires = \"2020-01-01\"\nmatch");
    check(&p, alert(json!({})), NOT_SUPPRESSED);
}

#[test]
fn a_signature_never_suppresses_a_high_alert_without_allow_high() {
    let a = alert(json!({"rule": {"level": 12}}));
    check(
        &signature(r#""rule.id" = "510""#),
        a.clone(),
        "bucket=high agent=web01 matched=- held_back=[s] expired=[] level=12",
    );
    let t = trace(&signature(r#""rule.id" = "510""#), a);
    assert!(t.iter().any(|l| l == "signature s: matched, but held back: level 12 is at or above high (12) and it does not set allow_high"), "{t:#?}");
}

#[test]
fn allow_high_lets_a_signature_suppress_a_high_alert() {
    let p = signature(r#""rule.id" = "510""#).replace("match", "allow_high = true\nmatch");
    check(
        &p,
        alert(json!({"rule": {"level": 13}})),
        "bucket=suppressed agent=web01 matched=s(suppress) held_back=[] expired=[] level=13",
    );
}

#[test]
fn a_later_allow_high_signature_can_suppress_after_one_is_held_back() {
    let p = format!(
        "{TWO_SIGNATURES}\n[[suppress]]\nid = \"third\"\nreason = \"r\"\nowner = \"o\"\nallow_high = true\nmatch = {{ \"rule.id\" = \"510\", \"agent.name\" = \"web01\" }}\n"
    );
    check(&p, alert(json!({"rule": {"level": 12}})), "bucket=suppressed agent=web01 matched=third(suppress) held_back=[first,second] expired=[] level=12");
}

#[test]
fn the_held_back_rule_uses_the_configured_high_threshold() {
    let p = format!(
        "[severity]\nhigh = 9\n{}",
        signature(r#""rule.id" = "510""#)
    );
    check(
        &p,
        alert(json!({"rule": {"level": 9}})),
        "bucket=high agent=web01 matched=- held_back=[s] expired=[] level=9",
    );
    check(
        &p,
        alert(json!({"rule": {"level": 8}})),
        "bucket=suppressed agent=web01 matched=s(suppress) held_back=[] expired=[] level=8",
    );
}

// ---- the trace ------------------------------------------------------------------------------

#[test]
fn the_trace_names_each_candidate_and_why_it_did_not_match() {
    let t = trace(TWO_SIGNATURES, alert(json!({"agent": {"name": "db01"}})));
    assert_eq!(
        t,
        [
            r#"agent "db01": from agent.name"#,
            r#"signatures: 2 of 2 are candidates for rule.id "510""#,
            r#"signature first: no match, fails agent.name prefix "web""#,
            "signature second: matched, suppressing",
            "bucket suppressed: decided by signature second (level 5)",
        ]
    );
}

#[test]
fn the_trace_says_when_a_failing_field_is_missing() {
    let t = trace(
        &signature(r#""data.title" = { contains = "x" }"#),
        alert(json!({})),
    );
    assert!(
        t.contains(
            &r#"signature s: no match, fails data.title contains "x" (the field is missing)"#
                .to_string()
        ),
        "{t:#?}"
    );
}

#[test]
fn signatures_pinned_to_another_rule_id_are_not_candidates() {
    let t = trace(TWO_SIGNATURES, alert(json!({"rule": {"id": "5501"}})));
    assert!(
        t.contains(&r#"signatures: 0 of 2 are candidates for rule.id "5501""#.to_string()),
        "{t:#?}"
    );
    let t = trace(TWO_SIGNATURES, alert(json!({"rule": {"id": 510}})));
    assert!(
        t.contains(&r#"signatures: 2 of 2 are candidates for rule.id "510""#.to_string()),
        "numbers meet numeric strings: {t:#?}"
    );
}

#[test]
fn alert_values_in_the_trace_are_escaped() {
    let t = trace(
        "",
        alert(json!({"agent": {"name": "evil\u{1b}[31m\nhost"}})),
    );
    assert_eq!(t[0], r#"agent "evil\u{1b}[31m\nhost": from agent.name"#);
}

// ---- indexer hits, buckets ------------------------------------------------------------------

#[test]
fn an_indexer_hit_is_decided_by_its_source() {
    let hit =
        json!({"_index": "wazuh-alerts-4.x-2025.09.12", "_id": "abc", "_source": alert(json!({}))});
    let d = compile(&signature(r#""rule.id" = "510""#))
        .decide(sf_policy::alert_document(&hit), at("2026-01-01T00:00:00Z"))
        .expect("decidable");
    assert_eq!(d.to_string(), SUPPRESSED);
}

#[test]
fn buckets_have_lowercase_names_in_json() {
    for b in Bucket::ALL {
        assert_eq!(
            serde_json::to_value(b).ok(),
            Some(Value::String(b.as_str().to_string()))
        );
        assert_eq!(Bucket::parse(b.as_str()), Some(b));
    }
}
