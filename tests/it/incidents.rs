//! Incidents: repeated alerts grouped into one incident exactly once (issue 13). Known bursts
//! make known incidents; several worker processes and crashes change neither the ids nor the
//! counts; a window boundary and an alias do what the policy says; the files are views of the
//! ledger that reconcile checks and repairs; the backfill of rows from before incidents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support::{num, scale, summary, Env};

/// 2025-11-24T16:00:00Z: an hour boundary (1,764,000,000 is a multiple of 3,600).
const T0: i64 = 1_764_000_000;

/// One alert: unique `id`, rule, agent name, level, seconds after [`T0`].
pub fn alert(i: usize, rule: &str, agent: &str, level: u32, second: i64) -> String {
    let t = chrono::DateTime::from_timestamp(T0 + second, 0).expect("time");
    serde_json::json!({
        "timestamp": t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "rule": {"level": level, "description": format!("rule {rule}"), "id": rule, "groups": ["sshd"]},
        "agent": {"id": format!("{:03}", agent.len()), "name": agent},
        "manager": {"name": "m1"},
        "id": format!("{T0}.{i}"),
        "data": {"srcip": "203.0.113.7", "srcuser": "root"},
        "full_log": format!("event {i}"),
        "location": "/var/log/auth.log"
    })
    .to_string()
}

/// Every incident in the ledger: id → (members, suppressed, low, medium, high).
pub fn incident_counts(env: &Env) -> BTreeMap<String, [u64; 5]> {
    let c = env.ledger();
    let mut st = c
        .prepare(
            "SELECT id, members, suppressed, low, medium, high FROM incidents WHERE members > 0",
        )
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
            ))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// Every row's incident: key hash → incident (member rows only).
pub fn row_incidents(env: &Env) -> BTreeMap<String, String> {
    let c = env.ledger();
    let mut st = c
        .prepare(
            "SELECT key_hash, COALESCE(incident, '') FROM alerts WHERE state IN ('triaged', 'escalated')",
        )
        .expect("prepare");
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// Every `incident.json` below `incidents/`: id → its JSON.
pub fn incident_files(state: &Path) -> BTreeMap<String, serde_json::Value> {
    fn walk(d: &Path, depth: usize, out: &mut BTreeMap<String, serde_json::Value>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd {
            let p = e.expect("entry").path();
            if depth == 3 {
                let f = p.join("incident.json");
                if f.exists() {
                    let v: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(&f).expect("read")).expect("json");
                    out.insert(
                        p.file_name().expect("name").to_string_lossy().into_owned(),
                        v,
                    );
                }
            } else if p.is_dir() {
                walk(&p, depth + 1, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&state.join("incidents"), 0, &mut out);
    out
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

/// Reconcile `--deep` says PASS, with every member in one incident.
pub fn assert_deep_pass(env: &Env) -> BTreeMap<String, String> {
    let out = env.ok(&["reconcile", "--deep"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    let s = summary(&out, "reconcile:");
    let states = env.states();
    let members =
        states.get("triaged").copied().unwrap_or(0) + states.get("escalated").copied().unwrap_or(0);
    assert_eq!(num(&s, "incident_members"), members, "{out}");
    s
}

/// (rule, host) → (members, high members).
type Expected = BTreeMap<(String, String), (u64, u64)>;

/// The bursts: K = 4 (rule, host) pairs in one hour, with their sizes and levels.
fn bursts() -> (Vec<String>, Expected) {
    let pairs = [
        ("5716", "web-01", 40usize),
        ("5716", "db-01", 25),
        ("5710", "web-01", 15),
        ("31101", "proxy-02", 7),
    ];
    let mut lines = Vec::new();
    let mut expect = BTreeMap::new();
    let mut i = 0;
    for (k, (rule, host, n)) in pairs.iter().enumerate() {
        let mut high = 0;
        for j in 0..*n {
            // Low alerts first; the pair 0 burst turns high two thirds of the way in.
            let level = if k == 0 && j == n * 2 / 3 { 12 } else { 5 };
            high += u64::from(level >= 12);
            lines.push(alert(i, rule, host, level, (j as i64) * 60 + k as i64));
            i += 1;
        }
        expect.insert((rule.to_string(), host.to_string()), (*n as u64, high));
    }
    (lines, expect)
}

#[test]
fn bursts_from_k_rule_host_pairs_in_one_window_make_exactly_k_incidents_with_their_counts() {
    let env = Env::new("");
    let (lines, expect) = bursts();
    env.ingest_lines(&lines);
    let out = env.ok(&["triage"]);
    assert_eq!(
        num(&summary(&out, "triage:"), "triaged"),
        lines.len() as u64
    );
    let counts = incident_counts(&env);
    assert_eq!(counts.len(), expect.len(), "{counts:?}");
    let files = incident_files(&env.state);
    assert_eq!(files.len(), expect.len(), "one directory per incident");
    for ((rule, host), (n, high)) in &expect {
        let (id, v) = files
            .iter()
            .find(|(_, v)| {
                v["key"][0]["value"] == rule.as_str() && v["key"][1]["value"] == host.as_str()
            })
            .unwrap_or_else(|| panic!("no incident for {rule} on {host}: {files:?}"));
        assert_eq!(v["members"]["total"], *n, "{id}");
        assert_eq!(v["members"]["high"], *high, "{id}");
        assert_eq!(counts[id][0], *n, "{id}");
        assert_eq!(
            v["cases"]["ids"].as_array().map(Vec::len),
            Some(*n as usize)
        );
        assert_eq!(v["group"], "default");
        assert_eq!(v["window"]["start"], "2025-11-24T16:00:00Z");
        let dir = env.path(&format!("incidents/2025/11/24/{id}"));
        assert_eq!(dir.join("summary.md").exists(), *high > 0, "{id}");
        if *high > 0 {
            // A high member joined a low incident: raised, by that member, at its time.
            assert_eq!(v["bucket"], "high");
            let by = v["escalated_by"].as_str().expect("escalated_by");
            let case = find_case(&env.state, by);
            let c: serde_json::Value =
                serde_json::from_slice(&std::fs::read(case.join("case.json")).expect("case"))
                    .expect("json");
            assert_eq!(c["rule"]["level"], 12);
            let t = |x: &serde_json::Value| {
                chrono::DateTime::parse_from_rfc3339(x.as_str().expect("a time")).expect("time")
            };
            assert_eq!(t(&v["escalated_at"]), t(&c["alert_time"]));
        } else {
            assert!(v["escalated_at"].is_null());
        }
    }
    // Each case names its incident, and the incident lists the case.
    for (id, v) in &files {
        for case_id in v["cases"]["ids"].as_array().expect("ids") {
            let case = find_case(&env.state, case_id.as_str().expect("id"));
            let c: serde_json::Value =
                serde_json::from_slice(&std::fs::read(case.join("case.json")).expect("case"))
                    .expect("json");
            assert_eq!(c["incident"], id.as_str());
        }
    }
    assert_deep_pass(&env);
    // The command lines agree with the files.
    let listed = env.ok(&["incidents", "--json"]);
    assert_eq!(listed.lines().count(), expect.len(), "{listed}");
    for l in listed.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json line");
        let id = v["id"].as_str().expect("id");
        assert_eq!(v, files[id], "incidents --json is the incident.json shape");
    }
    let high = env.ok(&["incidents", "--bucket", "high"]);
    assert_eq!(high.lines().count(), 1, "{high}");
    let web = env.ok(&["incidents", "--agent", "web-01", "--json"]);
    assert_eq!(web.lines().count(), 2, "{web}");
}

/// The case directory of a case id.
fn find_case(state: &Path, id: &str) -> PathBuf {
    for b in ["suppressed", "low", "medium", "high"] {
        let Ok(years) = std::fs::read_dir(state.join("cases").join(b)) else {
            continue;
        };
        for y in years {
            for m in std::fs::read_dir(y.expect("y").path()).expect("m") {
                for d in std::fs::read_dir(m.expect("m").path()).expect("d") {
                    let p = d.expect("d").path().join(id);
                    if p.exists() {
                        return p;
                    }
                }
            }
        }
    }
    panic!("no case {id}")
}

#[test]
fn three_triage_processes_at_once_make_the_same_incident_ids_and_counts_as_one() {
    let (lines, _) = bursts();
    let one = Env::new("[triage]\nbatch = 16\nthreads = 1\n");
    one.ingest_lines(&lines);
    one.ok(&["triage"]);
    let three = Env::new("[triage]\nbatch = 16\nthreads = 1\n");
    three.ingest_lines(&lines);
    let children: Vec<_> = (0..3)
        .map(|_| {
            three
                .cmd(&["triage"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn triage")
        })
        .collect();
    let mut triaged = 0;
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        triaged += num(
            &summary(&String::from_utf8_lossy(&o.stdout), "triage:"),
            "triaged",
        );
    }
    assert_eq!(triaged, lines.len() as u64, "each alert triaged once");
    assert_eq!(incident_counts(&three), incident_counts(&one));
    assert_eq!(row_incidents(&three), row_incidents(&one));
    let files = |e: &Env| -> BTreeMap<String, serde_json::Value> {
        incident_files(&e.state)
            .into_iter()
            .map(|(k, v)| (k, v["members"].clone()))
            .collect()
    };
    assert_eq!(files(&three), files(&one));
    assert_deep_pass(&three);
}

#[test]
fn a_burst_across_a_window_boundary_makes_two_incidents_the_second_continuing_the_first() {
    let env = Env::new("");
    // 20 alerts, one a minute, from 16:50 to 17:09: ten in each hour.
    let lines: Vec<String> = (0..20)
        .map(|i| alert(i, "5716", "web-01", 5, 3000 + (i as i64) * 60))
        .collect();
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    let files = incident_files(&env.state);
    assert_eq!(files.len(), 2, "{files:?}");
    let first = files
        .values()
        .find(|v| v["window"]["start"] == "2025-11-24T16:00:00Z")
        .expect("the 16:00 incident");
    let second = files
        .values()
        .find(|v| v["window"]["start"] == "2025-11-24T17:00:00Z")
        .expect("the 17:00 incident");
    assert_eq!(first["members"]["total"], 10);
    assert_eq!(second["members"]["total"], 10);
    assert!(first["continues"].is_null());
    assert_eq!(second["continues"], first["id"]);
    assert_deep_pass(&env);
}

#[test]
fn an_alias_puts_two_agent_names_of_one_host_in_one_incident() {
    let env = Env::new("");
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[alias]]\ncanonical = \"web-01\"\nnames = [\"web-01\", \"WEB-01.corp.example\"]\n",
    )
    .expect("policy");
    std::fs::write(
        &env.config,
        format!("[policy]\nfile = {:?}\n", policy.display().to_string()),
    )
    .expect("config");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            let name = if i % 2 == 0 {
                "web-01"
            } else {
                "WEB-01.corp.example"
            };
            alert(i, "5716", name, 5, i as i64 * 30)
        })
        .collect();
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    let files = incident_files(&env.state);
    assert_eq!(files.len(), 1, "{files:?}");
    let v = files.values().next().expect("one");
    assert_eq!(v["members"]["total"], 12);
    assert_eq!(v["key"][1]["value"], "web-01");
    assert_eq!(v["agents"], serde_json::json!(["web-01"]));
    assert_deep_pass(&env);
}

#[test]
fn a_missing_or_stale_incident_json_is_repaired_by_reconcile_and_is_not_a_mismatch() {
    let env = Env::new("");
    let (lines, _) = bursts();
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    let files = incident_files(&env.state);
    let mut ids = files.keys();
    let (gone, stale) = (ids.next().expect("one"), ids.next().expect("two"));
    let dir = |id: &str| env.path(&format!("incidents/2025/11/24/{id}"));
    std::fs::remove_file(dir(gone).join("incident.json")).expect("remove");
    let mut v = files[stale].clone();
    v["members"]["total"] = serde_json::json!(9999);
    std::fs::write(dir(stale).join("incident.json"), v.to_string()).expect("tamper");
    // Without --deep the missing one is found (by presence); --deep reads every file.
    let out = env.ok(&["reconcile"]);
    assert_eq!(last_line(&out), "VERDICT=PASS", "{out}");
    assert_eq!(
        num(&summary(&out, "reconcile:"), "incidents_repaired"),
        1,
        "{out}"
    );
    let s = assert_deep_pass(&env);
    assert_eq!(num(&s, "incidents_repaired"), 1);
    assert_eq!(incident_files(&env.state), files, "rebuilt as they were");
    // A member count the ledger contradicts (the table edited behind its back) is a mismatch.
    env.ledger()
        .execute(
            "UPDATE incidents SET members = members + 1 WHERE id = ?1",
            [gone],
        )
        .expect("edit");
    let o = env.run(&["reconcile", "--deep"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(last_line(&out), "VERDICT=FAIL", "{out}");
    assert!(out.contains(&format!("mismatch: incident {gone}")), "{out}");
}

#[test]
fn a_hostile_incident_summary_renders_no_link_image_html_or_control_character() {
    let env = Env::new("");
    let policy = env.dir.path().join("policy.toml");
    // Every hostile fixture high, all in one incident (a field none has: missing groups together).
    std::fs::write(
        &policy,
        "[severity]\nmedium = 0\nhigh = 0\n\n[[group]]\nid = \"all\"\nby = [\"no.such.field\"]\nwindow = \"366d\"\n",
    )
    .expect("policy");
    std::fs::write(
        &env.config,
        format!("[policy]\nfile = {:?}\n", policy.display().to_string()),
    )
    .expect("config");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut lines = Vec::new();
    for e in std::fs::read_dir(&dir).expect("hostile") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
            lines.push(v.to_string());
        }
    }
    assert!(lines.len() >= 5);
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    let files = incident_files(&env.state);
    let total: u64 = files
        .values()
        .map(|v| v["members"]["total"].as_u64().expect("n"))
        .sum();
    assert_eq!(total, lines.len() as u64);
    let mut summaries = 0;
    for e in walkdir(&env.path("incidents")) {
        if e.file_name().is_some_and(|n| n == "summary.md") {
            summaries += 1;
            let md = std::fs::read_to_string(&e).expect("utf-8 summary");
            assert_renders_inert(&md);
        }
    }
    assert!(summaries >= 1, "a high incident has its summary.md");
    assert_deep_pass(&env);
}

fn walkdir(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// No link but the pack links, no image, no HTML, no control character but newlines.
fn assert_renders_inert(md: &str) {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    for c in md.chars() {
        assert!(
            c == '\n'
                || !(c.is_control()
                    || ('\u{200b}'..='\u{200f}').contains(&c)
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2060}'..='\u{206f}').contains(&c)),
            "control or format character {c:?} in:\n{md}"
        );
    }
    for ev in Parser::new_ext(md, Options::all()) {
        match ev {
            Event::Start(Tag::Link { dest_url, .. }) => {
                let d = dest_url.to_string();
                let id = d
                    .strip_prefix("../../../../../escalations/")
                    .and_then(|r| r.strip_suffix("/summary.md"))
                    .unwrap_or_else(|| panic!("a link that is not a pack link: {d}"));
                assert!(
                    id.starts_with("SF-")
                        && id[3..]
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                    "{d}"
                );
            }
            Event::Start(Tag::Image { .. }) => panic!("an image in:\n{md}"),
            Event::Html(h) | Event::InlineHtml(h) => panic!("HTML {h:?} in:\n{md}"),
            _ => {}
        }
    }
}

/// Strips what incidents added to a state directory: the state a ledger from before incidents
/// left (rows triaged, no incident, no `incidents/`), with the backfill owed as migration 5
/// records it.
fn as_before_incidents(env: &Env) {
    let c = env.ledger();
    c.execute_batch(
        "UPDATE alerts SET incident = NULL;
         DELETE FROM incidents;
         INSERT OR REPLACE INTO meta (k, v) VALUES ('incident_backfill', 'pending');",
    )
    .expect("strip");
    std::fs::remove_dir_all(env.path("incidents")).expect("rm incidents");
}

#[test]
fn the_backfill_of_rows_from_before_incidents_killed_twice_then_finished_puts_every_row_in_one_incident(
) {
    let n = scale(20_000, 100_000);
    let env = Env::new("[durability]\nfsync = \"off\"\n[triage]\nbatch = 2048\n");
    let rules = ["5716", "5710", "5715", "5501", "31101", "550", "92032"];
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let level = if i % 97 == 0 { 12 } else { 3 + (i % 7) as u32 };
            let host = format!("host-{:02}", i % 40);
            alert(
                i,
                rules[i % rules.len()],
                &host,
                level,
                (i as i64 * 7) % (6 * 3600),
            )
        })
        .collect();
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    let want_rows = row_incidents(&env);
    let want = incident_counts(&env);
    assert_eq!(want_rows.len(), n);
    as_before_incidents(&env);
    assert!(row_incidents(&env).values().all(String::is_empty));
    // Killed after its first batch of rows, then killed while writing incident directories.
    for point in ["incident-backfill", "incident-rebuild"] {
        let o = env
            .cmd(&["triage"])
            .env("SIGNALFOUNDRY_DEBUG_CRASH_AT", point)
            .output()
            .expect("triage");
        assert!(!o.status.success(), "{point}: the run was to be killed");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("crashing at {point}")),
            "{point}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let partly = row_incidents(&env);
    assert!(partly.values().any(String::is_empty) || incident_files(&env.state).len() < want.len());
    let out = env.ok(&["triage"]);
    assert!(
        num(&summary(&out, "triage:"), "incidents_built") > 0,
        "{out}"
    );
    assert_eq!(row_incidents(&env), want_rows, "every row in its incident");
    assert_eq!(incident_counts(&env), want);
    assert_eq!(incident_files(&env.state).len(), want.len());
    assert_deep_pass(&env);
}

#[test]
fn incidents_json_on_stdout_escapes_bidi_and_control_characters_of_the_alert() {
    let env = Env::new("");
    let lines: Vec<String> = (0..3)
        .map(|i| alert(i, "5716", "web\u{202e}\u{85}01", 5, i as i64))
        .collect();
    env.ingest_lines(&lines);
    env.ok(&["triage"]);
    for args in [&["incidents", "--json"][..], &["incidents"][..]] {
        let out = env.ok(args);
        assert!(out.contains("web"), "{out}");
        assert!(
            !out.contains('\u{202e}') && !out.contains('\u{85}'),
            "{args:?}: raw bidi or C1 character on stdout: {out:?}"
        );
    }
}
