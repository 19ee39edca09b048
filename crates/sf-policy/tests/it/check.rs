//! `policy check`: every error of a file, each with its line, column and hint; warnings that do
//! not invalidate it; the default policy is clean.

use sf_policy::{Diagnostic, Policy, Severity};

use crate::support::at;

fn errors(src: &str) -> Vec<Diagnostic> {
    match Policy::parse(src) {
        Ok(_) => panic!("the policy should be invalid"),
        Err(diags) => diags,
    }
}

fn warnings(src: &str) -> Vec<Diagnostic> {
    match Policy::parse(src) {
        Ok((_, w)) => w,
        Err(e) => panic!("the policy should be valid: {e:#?}"),
    }
}

/// Ten different mistakes, one per numbered line below.
const TEN_MISTAKES: &str = r#"[severity]
medium = 7
high = "12"

[[alias]]
names = ["dc01"]

[[suppress]]
id = "fp-one"
reason = "noise"
match = { "rule.id" = "510" }

[[suppress]]
id = "fp-one"
reason = "noise"
owner = "soc"
match = { "data.title" = { contians = "Trojaned" } }

[[suppress]]
id = "fp-three"
reason = "noise"
owner = "soc"
expires = "2026-02-30"
match = { "data.srcip" = { cidr = "10.0.0.0/33" } }

[[suppress]]
id = "fp-four"
owner = "soc"
match = { "data.win.eventdata.image" = { regex = '(?<!x)mimikatz' } }

[[override]]
id = "ov-one"
bucket = "critical"
match = { "rule.id" = "92151" }

[[suppress]]
id = "fp-five"
reason = "noise"
owner = "soc"
colour = "red"
match = { "rule.id" = "5501" }
"#;

#[test]
fn a_file_with_ten_mistakes_reports_all_ten_each_with_its_line() {
    let diags = errors(TEN_MISTAKES);
    let expected: [(usize, &str); 10] = [
        (3, "severity `high` must be an integer, found a string"),
        (5, "[[alias]] #1 is missing `canonical`"),
        (8, "signature `fp-one` is missing `owner`"),
        (14, "duplicate id `fp-one`: already used on line 9"),
        (17, "unknown matcher `contians`"),
        (23, "signature `fp-three`: `expires` is not a valid date: \"2026-02-30\""),
        (24, "bad cidr \"10.0.0.0/33\": not an ip network"),
        (26, "signature `fp-four` is missing `reason`"),
        (29, "bad regex \"(?<!x)mimikatz\": look-around, including look-ahead and look-behind, is not supported"),
        (33, "override `ov-one`: unknown bucket `critical`"),
    ];
    for (line, message) in expected {
        assert!(
            diags
                .iter()
                .any(|d| d.line == line && d.message == message && d.severity == Severity::Error),
            "missing line {line}: {message}\ngot:\n{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        diags
            .iter()
            .any(|d| d.line == 40 && d.message == "unknown key `colour` in [[suppress]]"),
        "the eleventh, a bonus: {diags:#?}"
    );
    assert_eq!(diags.len(), 11, "{diags:#?}");
    let cidr = diags
        .iter()
        .find(|d| d.message.starts_with("bad cidr"))
        .map(|d| (d.line, d.column));
    assert_eq!(cidr, Some((24, 35)), "as the README shows");
    assert!(
        diags.iter().all(|d| d.hint.is_some()),
        "every error has a hint: {diags:#?}"
    );
}

#[test]
fn errors_carry_the_column_of_the_offending_token() {
    let diags = errors(TEN_MISTAKES);
    let unknown = diags
        .iter()
        .find(|d| d.message.starts_with("unknown matcher"))
        .expect("reported");
    assert_eq!((unknown.line, unknown.column), (17, 28));
    assert_eq!(
        unknown.to_string(),
        "17:28: error: unknown matcher `contians` (hint: did you mean `contains`? matchers: equals, prefix, suffix, contains, glob, regex, cidr, gte, lte, exists, not, nocase)"
    );
    assert_eq!(
        unknown.located("policy.toml").to_string(),
        format!("policy.toml:{unknown}")
    );
}

#[test]
fn a_toml_syntax_error_is_reported_with_its_position() {
    let diags = errors("[severity]\nmedium = 7\nhigh = \n");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].line, 3);
    assert!(diags[0].message.starts_with("invalid toml"), "{}", diags[0]);
}

#[test]
fn more_mistakes_are_each_named_precisely() {
    let cases: [(&str, &str); 14] = [
        ("[severity]\nmedium = 12\nhigh = 7\n", "severity `high` (7) is below `medium` (12)"),
        ("[severity]\ncritical = 15\n", "unknown key `critical` in [severity]"),
        ("[sevrity]\nhigh = 1\n", "unknown top-level key `sevrity`"),
        ("[suppress]\nid = \"x\"\n", "`suppress` must be an array of tables, found a table"),
        ("[[alias]]\ncanonical = \"a\"\n", "[[alias]] #1 has neither `names` nor `ids`"),
        ("[[alias]]\ncanonical = \"a\"\nids = [17]\n", "[[alias]] #1: `ids` must hold strings, found an integer"),
        ("[[override]]\nid = \"o\"\nmatch = { \"rule.id\" = \"1\" }\n", "override `o` is missing `bucket`"),
        ("[[override]]\nid = \"has space\"\nbucket = \"high\"\nmatch = { a = 1 }\n", "id `has space` has characters outside letters, digits, '-', '_' and '.'"),
        ("[[override]]\nid = \"o\"\nbucket = \"high\"\nmatch = {}\n", "override `o`: `match` is empty, so it would match every alert"),
        ("[[override]]\nid = \"o\"\nbucket = \"high\"\nmatch = { a = { gte = 9, lte = 1 } }\n", "range is empty: gte 9 is above lte 1"),
        ("[[override]]\nid = \"o\"\nbucket = \"high\"\nmatch = { a = { gte = 1, nocase = true } }\n", "`nocase` has no string test to apply to"),
        ("[[override]]\nid = \"o\"\nbucket = \"high\"\nmatch = { a = { prefix = \"x\", exists = false } }\n", "`exists = false` contradicts the other tests of this matcher: it can never match"),
        ("[[override]]\nid = \"o\"\nbucket = \"high\"\nmatch = { a = [] }\n", "an empty list matches nothing"),
        ("[[override]]\nid = \"o\"\nbucket = \"high\"\nmatch = { a = { contains = \"\" } }\n", "an empty `contains` string matches every value"),
    ];
    for (src, message) in cases {
        let diags = errors(src);
        assert!(
            diags.iter().any(|d| d.message == message),
            "{src:?}: expected {message:?}, got {diags:#?}"
        );
    }
}

#[test]
fn a_signature_shadowed_by_an_earlier_one_is_a_warning() {
    let src = r#"
[[suppress]]
id = "broad"
reason = "r"
owner = "o"
match = { "rule.id" = "510" }

[[suppress]]
id = "narrow"
reason = "r"
owner = "o"
match = { "agent.name" = "web01", "rule.id" = "510" }
"#;
    let w = warnings(src);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!(w[0].line, 9);
    assert_eq!(
        w[0].message,
        "signature `narrow` is shadowed by `broad` (line 3): every alert it matches, `broad` matches first"
    );
}

#[test]
fn a_later_signature_is_not_shadowed_when_it_can_act_where_the_earlier_cannot() {
    let base = "[[suppress]]\nid = \"a\"\nreason = \"r\"\nowner = \"o\"\nEXTRA_A\nmatch = { \"rule.id\" = \"510\" }\n\n[[suppress]]\nid = \"b\"\nreason = \"r\"\nowner = \"o\"\nEXTRA_B\nmatch = { \"rule.id\" = \"510\" }\n";
    let allow_high = base
        .replace("EXTRA_A", "")
        .replace("EXTRA_B", "allow_high = true");
    assert!(
        warnings(&allow_high).is_empty(),
        "b may suppress high alerts, a may not"
    );
    let outlives = base
        .replace("EXTRA_A", "expires = \"2026-06-30\"")
        .replace("EXTRA_B", "");
    assert!(warnings(&outlives).is_empty(), "b goes on after a expires");
    let same = base.replace("EXTRA_A", "").replace("EXTRA_B", "");
    assert_eq!(warnings(&same).len(), 1, "identical match: shadowed");
}

#[test]
fn an_alias_name_listed_twice_is_a_warning() {
    let w = warnings("[[alias]]\ncanonical = \"a\"\nnames = [\"DC01\"]\n\n[[alias]]\ncanonical = \"b\"\nnames = [\"dc01\"]\n");
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].line, 7);
}

/// An alias of `canonical`: `ids = ["001"]` and, when not empty, `manager = <manager>`.
fn id_alias(canonical: &str, manager: &str) -> String {
    let manager = if manager.is_empty() {
        String::new()
    } else {
        format!("manager = {manager}\n")
    };
    format!("[[alias]]\ncanonical = \"{canonical}\"\nids = [\"001\"]\n{manager}\n")
}

#[test]
fn an_alias_id_claimed_twice_for_the_same_manager_is_a_warning() {
    // (first alias's manager, second's, the warning on the second, if any): the first claim in
    // the file wins, so a later one gets only the managers no earlier claim holds.
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("", "", Some("alias id `001` is already claimed by alias `a` (line 3) on every manager: it never applies here")),
        ("", "\"m1\"", Some("alias id `001` is already claimed by alias `a` (line 3) on every manager: it never applies here")),
        ("\"M1\"", "\"m1\"", Some("alias id `001` on manager `m1` is already claimed by alias `a` (line 3): it never applies here")),
        ("\"m1\"", "[\"m1\", \"m2\"]", Some("alias id `001` on manager `m1` is already claimed by alias `a` (line 3): it applies here only on the other managers")),
        // A scoped claim first, then every other manager's 001: both apply.
        ("\"m1\"", "", None),
        ("\"m1\"", "\"m2\"", None),
    ];
    for (first, second, expected) in cases {
        let src = format!("{}{}", id_alias("a", first), id_alias("b", second));
        let w = warnings(&src);
        let messages: Vec<&str> = w.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, Vec::from_iter(expected), "{src}");
        if expected.is_some() {
            let second_ids = if first.is_empty() { 7 } else { 8 };
            assert_eq!(w[0].line, second_ids, "at the second alias's id: {src}");
        }
    }
}

#[test]
fn alias_manager_mistakes_are_each_named_precisely() {
    let cases: [(&str, &str); 3] = [
        (
            "[[alias]]\ncanonical = \"a\"\nnames = [\"x\"]\nmanager = \"m1\"\n",
            "[[alias]] #1: `manager` scopes `ids`, and it has none",
        ),
        (
            "[[alias]]\ncanonical = \"a\"\nids = [\"001\"]\nmanager = 3\n",
            "[[alias]] #1: `manager` must hold strings, found an integer",
        ),
        (
            "[[alias]]\ncanonical = \"a\"\nids = [\"001\"]\nmanager = []\n",
            "[[alias]] #1: `manager` is empty",
        ),
    ];
    for (src, message) in cases {
        let diags = errors(src);
        assert!(
            diags.iter().any(|d| d.message == message),
            "{src:?}: expected {message:?}, got {diags:#?}"
        );
    }
    let w = warnings("[[alias]]\ncanonical = \"a\"\nids = [\"001\"]\nmanager = [\"m1\", \"M1\"]\n");
    let messages: Vec<&str> = w.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages, ["[[alias]] #1: manager `M1` is listed twice"]);
}

#[test]
fn expired_signatures_are_warnings_relative_to_the_time_given() {
    let src = "[[suppress]]\nid = \"old\"\nreason = \"r\"\nowner = \"o\"\nexpires = \"2025-06-30\"\nmatch = { \"rule.id\" = \"510\" }\n";
    let (policy, w) = Policy::parse(src).expect("valid");
    assert!(w.is_empty());
    assert!(policy
        .expiry_warnings(at("2025-06-30T23:59:59Z"))
        .is_empty());
    let expired = policy.expiry_warnings(at("2025-07-01T00:00:00Z"));
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].line, expired[0].column), (5, 11));
    assert_eq!(
        expired[0].message,
        "signature `old` expired on 2025-06-30: it matches nothing"
    );
}

#[test]
fn signatures_about_to_expire_are_listed_soonest_first() {
    let src = "[[suppress]]\nid = \"later\"\nreason = \"r\"\nowner = \"o\"\nexpires = \"2026-01-20\"\nmatch = { a = 1 }\n\n[[suppress]]\nid = \"sooner\"\nreason = \"r\"\nowner = \"o\"\nexpires = 2026-01-05\nmatch = { b = 1 }\n\n[[suppress]]\nid = \"gone\"\nreason = \"r\"\nowner = \"o\"\nexpires = \"2025-12-01\"\nmatch = { c = 1 }\n";
    let (policy, _) = Policy::parse(src).expect("valid");
    let soon = policy.expiring_within(at("2026-01-01T12:00:00Z"), 30);
    let ids: Vec<String> = soon.iter().map(|(id, d)| format!("{id}@{d}")).collect();
    assert_eq!(ids, ["sooner@2026-01-05", "later@2026-01-20"]);
    assert!(policy
        .expiring_within(at("2026-01-01T12:00:00Z"), 3)
        .is_empty());
}

#[test]
fn the_default_policy_is_valid_without_warnings() {
    let (policy, warnings) = Policy::parse(sf_policy::DEFAULT_POLICY_TOML).expect("valid");
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(
        policy.signature_ids(),
        [
            "always-mimikatz",
            "fp-rootcheck-trojan-busybox",
            "fp-fim-registry-w32time",
            "fp-fim-registry-bam",
            "fp-sysmon-ngen-mscorsvw",
            "fp-windows-service-logon-system",
        ]
    );
    assert_eq!(
        (policy.thresholds().medium, policy.thresholds().high),
        (7, 12)
    );
}

#[test]
fn the_version_is_a_stable_hash_of_the_source_text() {
    let a = Policy::parse("[severity]\nhigh = 12\n").expect("valid").0;
    let b = Policy::parse("[severity]\nhigh = 12\n").expect("valid").0;
    let c = Policy::parse("[severity]\nhigh = 13\n").expect("valid").0;
    assert_eq!(a.version(), b.version());
    assert_ne!(a.version(), c.version());
    assert_eq!(a.version().len(), 12);
    assert!(a.version().bytes().all(|b| b.is_ascii_hexdigit()));
}

/// Group rule mistakes, one or two per rule; the line of each is in the comment.
const GROUP_MISTAKES: &str = r#"[grouping]
window = "abc"

[[group]]
id = "zero"
by = ["data.srcip"]
window = "0s"

[[group]]
id = "no-fields"
by = []

[[group]]
id = "zero"
by = ["agent"]

[[group]]
id = "bad-bucket"
by = ["agent"]
buckets = ["high", "critical"]

[[group]]
id = "bad-matcher"
by = ["agent"]
match = { "rule.id" = { contians = "57" }, "data.srcip" = { cidr = "10.0.0.0/33" } }

[[group]]
id = "default"
by = ["agent", "agent", "data..x"]
window = 60

[[group]]
by = ["agent"]
window = "400d"
wndow = "1h"

[[group]]
id = "no-by"

[[group]]
id = "empty-buckets"
by = ["agent"]
buckets = []
"#;

#[test]
fn group_rule_mistakes_are_each_reported_with_the_rule_and_its_line() {
    let diags = errors(GROUP_MISTAKES);
    let expected: [(usize, usize, &str); 16] = [
        (
            2,
            10,
            "[grouping]: `window` \"abc\" has 'a', which is not a digit or a unit (s, m, h, d, w)",
        ),
        (7, 10, "group `zero`: `window` \"0s\" is zero"),
        (
            11,
            6,
            "group `no-fields`: `by` lists 0 fields; it takes 1 to 8",
        ),
        (14, 6, "duplicate id `zero`: already used on line 5"),
        (
            20,
            20,
            "group `bad-bucket`: `buckets` holds `critical`, not a bucket name",
        ),
        (25, 25, "unknown matcher `contians`"),
        (25, 68, "bad cidr \"10.0.0.0/33\": not an ip network"),
        (28, 6, "id `default` is the name of the [grouping] default"),
        (29, 16, "group `default`: `by` lists `agent` twice"),
        (
            29,
            25,
            "group `default`: `by` field path `data..x` is empty or has an empty segment",
        ),
        (
            30,
            10,
            "group `default`: `window` must be a duration string, found an integer",
        ),
        (32, 1, "[[group]] #7 is missing `id`"),
        (
            34,
            10,
            "[[group]] #7: `window` \"400d\" is longer than a year (366d)",
        ),
        (35, 1, "unknown key `wndow` in [[group]]"),
        (37, 1, "group `no-by` is missing `by`"),
        (
            43,
            11,
            "group `empty-buckets`: `buckets` is empty, so the rule would group no alert",
        ),
    ];
    for (line, column, message) in expected {
        assert!(
            diags.iter().any(|d| d.line == line
                && d.column == column
                && d.message == message
                && d.severity == Severity::Error),
            "missing {line}:{column}: {message}\ngot:\n{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(diags.len(), 16, "{diags:#?}");
    assert!(
        diags.iter().all(|d| d.hint.is_some()),
        "every error has a hint: {diags:#?}"
    );
}

#[test]
fn more_group_mistakes_are_each_named_precisely() {
    let cases: [(&str, &str); 7] = [
        ("[group]\nid = \"g\"\nby = [\"agent\"]\n", "`group` must be an array of tables, found a table"),
        ("[[grouping]]\nby = [\"agent\"]\n", "`grouping` must be a table, found an array of tables"),
        ("[grouping]\nby = \"agent\"\n", "[grouping]: `by` must be a list of field paths, found a string"),
        ("[grouping]\nwindow = \"1x\"\n", "[grouping]: `window` \"1x\" has 'x', which is not a digit or a unit (s, m, h, d, w)"),
        ("[[group]]\nid = \"g\"\nby = [\"agent\"]\nwindow = \"10\"\n", "group `g`: `window` \"10\" ends in \"10\" without a unit (s, m, h, d, w)"),
        ("[[group]]\nid = \"g\"\nby = [\"agent\"]\nmatch = {}\n", "group `g`: `match` is empty, so it would match every alert"),
        ("[[suppress]]\nid = \"g\"\nreason = \"r\"\nowner = \"o\"\nmatch = { a = 1 }\n\n[[group]]\nid = \"g\"\nby = [\"agent\"]\n", "duplicate id `g`: already used on line 2"),
    ];
    for (src, message) in cases {
        let diags = errors(src);
        assert!(
            diags.iter().any(|d| d.message == message),
            "{src:?}: expected {message:?}, got {diags:#?}"
        );
    }
}

#[test]
fn valid_group_rules_compile_and_a_shadowed_one_is_a_warning() {
    let src = r#"
[grouping]
by = ["rule.id"]
window = "1h30m"

[[group]]
id = "sshd"
by = ["data.srcip"]
window = "10m"
match = { "rule.id" = ["5710", "5716"] }
buckets = ["low", "medium"]

[[group]]
id = "sshd-web"
by = ["data.srcip", "agent"]
match = { "rule.id" = ["5710", "5716"], "agent" = { glob = "web*" } }
buckets = ["medium"]

[[group]]
id = "sshd-high"
by = ["data.srcip"]
match = { "rule.id" = ["5710", "5716"] }
buckets = ["high"]
"#;
    let (policy, w) = Policy::parse(src).expect("valid");
    assert_eq!(policy.group_ids(), ["sshd", "sshd-web", "sshd-high"]);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].severity, Severity::Warning);
    assert_eq!(w[0].line, 14);
    assert_eq!(
        w[0].message,
        "group `sshd-web` is shadowed by `sshd` (line 7): every alert it would group, `sshd` groups first"
    );
    let alert = serde_json::json!({"rule": {"id": "5716"}, "data": {"srcip": "10.1.2.3"}});
    let high = policy.incident(
        &alert,
        "web1",
        sf_policy::Bucket::High,
        at("2026-01-01T00:00:00Z"),
    );
    assert_eq!(high.group, "sshd-high");
    assert_eq!(high.window_secs, 5400, "the default's window");
}

#[test]
fn a_group_rule_without_match_or_buckets_shadows_every_later_one() {
    let w = warnings("[[group]]\nid = \"all\"\nby = [\"agent\"]\n\n[[group]]\nid = \"later\"\nby = [\"agent\"]\nbuckets = [\"high\"]\n");
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].line, 6);
    assert!(
        w[0].message
            .starts_with("group `later` is shadowed by `all`"),
        "{w:#?}"
    );
}

/// The first ```toml block of a README after `heading`.
fn first_toml_block<'a>(readme: &'a str, heading: &str) -> &'a str {
    let section = readme
        .find(heading)
        .map(|i| &readme[i..])
        .unwrap_or_default();
    let start = section.find("```toml\n").map(|i| i + "```toml\n".len());
    let block = start.map(|s| &section[s..]).unwrap_or_default();
    block.find("```").map(|e| &block[..e]).unwrap_or_default()
}

#[test]
fn the_readme_policies_are_valid_and_group_as_documented() {
    for (readme, heading) in [
        (include_str!("../../README.md"), "## A policy"),
        (include_str!("../../../../README.md"), "## The policy"),
    ] {
        let src = first_toml_block(readme, heading);
        assert!(src.contains("[[group]]"), "{src}");
        let (policy, w) = Policy::parse(src).expect("the README's policy is valid");
        assert!(w.is_empty(), "{w:#?}");
        assert_eq!(policy.group_ids(), ["sshd-bruteforce"]);
        let alert = serde_json::json!({"rule": {"id": "5716", "level": 5}, "data": {"srcip": "203.0.113.7"}});
        let k = policy.incident(
            &alert,
            "web1",
            sf_policy::Bucket::Low,
            at("2026-01-01T10:17:00Z"),
        );
        assert_eq!((k.group.as_str(), k.window_secs), ("sshd-bruteforce", 600));
        let other = serde_json::json!({"rule": {"id": "5402", "level": 3}});
        let k = policy.incident(
            &other,
            "web1",
            sf_policy::Bucket::Low,
            at("2026-01-01T10:17:00Z"),
        );
        assert_eq!((k.group.as_str(), k.window_secs), ("default", 3600));
        assert_eq!(k.key.len(), 2, "by rule.id and agent");
    }
}
