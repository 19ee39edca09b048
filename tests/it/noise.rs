//! Noise figures (issue 17): `policy stats` and the heartbeat's signature figures, from a real
//! `run` over the real alerts of `tests/data/wazuh-alerts/` and generated ones, spread over the
//! last days (their `timestamp` rewritten: the figures go by the alerts' days), under the
//! default policy plus a signature that hits, one that never does, one whose hits are all older
//! than the period, one expired, one expiring soon, one held back by a high alert, and an
//! override that suppresses.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::support::{alert_line, text, Env};

/// The real alerts, in file-name order: (file name, alert).
fn fixtures() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wazuh-alerts");
    let mut v: Vec<(String, Value)> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v = serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                v,
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// `v` with its `timestamp` at `t` (as Wazuh writes it).
fn at_time(mut v: Value, t: DateTime<Utc>) -> Value {
    v["timestamp"] = Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    v
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The default policy and the signatures under test.
fn policy_text(today: NaiveDate) -> String {
    format!(
        r#"{default}
[[override]]
id = "ov-software-protection"
bucket = "suppressed"
reason = "the Software Protection service's routine restarts"
match = {{ "rule.id" = "60642" }}

[[suppress]]
id = "fp-generated-sshd"
reason = "generated noise: hits, and is held back by the high ones"
owner = "soc"
match = {{ "rule.id" = "5716", "agent" = "web-01", "full_log" = {{ prefix = "event " }} }}

[[suppress]]
id = "fp-old-sshd"
reason = "hit only before the period"
owner = "soc"
match = {{ "rule.id" = "5716", "full_log" = {{ prefix = "old event " }} }}

[[suppress]]
id = "fp-fim-keyword"
reason = "matches the level-12 FIM alert only: held back, never suppresses"
owner = "soc"
match = {{ "rule.id" = "100010" }}

[[suppress]]
id = "fp-never"
reason = "matches nothing"
owner = "soc"
match = {{ "rule.id" = "99999" }}

[[suppress]]
id = "fp-sudo-expired"
reason = "expired: the sudo alert it would match stays low"
owner = "soc"
expires = "{expired}"
match = {{ "rule.id" = "5402" }}

[[suppress]]
id = "fp-pam-soon"
reason = "session opened noise, expiring soon"
owner = "soc"
expires = "{soon}"
match = {{ "rule.id" = "5501" }}
"#,
        default = sf_policy::DEFAULT_POLICY_TOML,
        expired = today - Duration::days(5),
        soon = today + Duration::days(3),
    )
}

/// One alert as triaged: its time and what the policy decided.
struct Triaged {
    time: DateTime<Utc>,
    decision: sf_policy::Decision,
}

/// A signature's expected figures: per day (hits, held back), and its last hit ("" for none).
type SigExpected = (BTreeMap<String, (u64, u64)>, String);

/// What the figures of `days` days ending `today` must be, computed from the alerts' times and
/// the engine's decisions: per signature, and the suppressed alerts.
type Expected = (BTreeMap<String, SigExpected>, u64);

fn expected(alerts: &[Triaged], today: NaiveDate, days: i64) -> Expected {
    let from = today - Duration::days(days - 1);
    let mut sigs: BTreeMap<String, SigExpected> = BTreeMap::new();
    let mut suppressed = 0;
    for a in alerts {
        let day = a.time.date_naive();
        let d = &a.decision;
        let by = (d.matched_kind == Some(sf_policy::MatchedKind::Suppress))
            .then(|| d.matched.clone())
            .flatten();
        if let Some(id) = &by {
            // Last hit over every kept day, not only the period.
            let e = sigs.entry(id.clone()).or_default();
            e.1 = e.1.clone().max(rfc(a.time));
        }
        if day < from || day > today {
            continue;
        }
        if d.bucket == sf_policy::Bucket::Suppressed {
            suppressed += 1;
        }
        if let Some(id) = by {
            sigs.entry(id)
                .or_default()
                .0
                .entry(day.to_string())
                .or_default()
                .0 += 1;
        }
        for h in &d.held_back {
            sigs.entry(h.clone())
                .or_default()
                .0
                .entry(day.to_string())
                .or_default()
                .1 += 1;
        }
    }
    (sigs, suppressed)
}

/// `got` is `want`, numbers that are not integers within 1e-12 (a JSON parser may read the
/// last digit of a float one unit off).
fn same_json(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) if !(g.is_f64() || w.is_f64()) => g == w,
        (Value::Number(g), Value::Number(w)) => match (g.as_f64(), w.as_f64()) {
            (Some(g), Some(w)) => (g - w).abs() <= 1e-12,
            _ => false,
        },
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(g, w)| same_json(g, w))
        }
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len()
                && g.iter()
                    .all(|(k, g)| w.get(k).is_some_and(|w| same_json(g, w)))
        }
        (g, w) => g == w,
    }
}

/// Takes the run lock as `run` would (it must be free) and holds it until dropped.
fn hold_run_lock(state: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(state.join("run.lock"))
        .expect("open run.lock");
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .expect("the run lock is free");
    f
}

#[test]
fn policy_stats_and_the_heartbeat_give_each_signatures_hits_per_alert_day_share_and_lists() {
    let now = Utc::now();
    let today = now.date_naive();
    // Day `k` days ago, at `h` hours and `s` seconds: always in the past.
    let day_at = |k: i64, h: i64, s: i64| {
        (today - Duration::days(k))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            + Duration::hours(h)
            + Duration::seconds(s)
    };
    let env = Env::new("");
    let policy_path = env.dir.path().join("policy.toml");
    let policy_src = policy_text(today);
    std::fs::write(&policy_path, &policy_src).expect("policy");
    std::fs::write(
        &env.config,
        format!(
            "[policy]\nfile = {:?}\n[durability]\nfsync = \"off\"\n",
            policy_path.display().to_string()
        ),
    )
    .expect("config");
    let (policy, _) = sf_policy::Policy::parse(&policy_src).expect("the policy compiles");

    // The real alerts over the three days before today (09:00 plus a second each), and the
    // generated ones: (index, level, days ago, second past 10:00, full_log).
    let mut lines = Vec::new();
    let mut triaged = Vec::new();
    for (i, (_, v)) in fixtures().into_iter().enumerate() {
        let t = day_at(1 + (i as i64 % 3), 9, i as i64);
        lines.push(at_time(v, t));
    }
    let generated: [(usize, u32, i64, i64, &str); 11] = [
        (0, 3, 1, 0, "event"),
        (1, 3, 1, 60, "event"),
        (2, 5, 1, 120, "event"),
        (3, 3, 1, 180, "event"),
        (4, 3, 2, 0, "event"),
        (5, 3, 2, 60, "event"),
        (6, 12, 2, 120, "event"), // high: held back
        (7, 13, 3, 0, "event"),   // high: held back
        (8, 3, 4, 0, "event"),
        (9, 3, 40, 0, "old event"), // fp-old-sshd, before a 30-day period
        (10, 3, 45, 0, "event"),    // fp-generated-sshd, before a 30-day period
    ];
    for (i, level, k, s, log) in generated {
        let mut v: Value = serde_json::from_str(&alert_line(i, level, 0)).expect("json");
        v["full_log"] = Value::String(format!("{log} {i}"));
        lines.push(at_time(v, day_at(k, 10, s)));
    }
    for v in &lines {
        let time = sf_policy::alert_time(v.as_object().expect("object")).expect("time");
        let decision = policy
            .decide(sf_policy::alert_document(v), now)
            .expect("decided");
        triaged.push(Triaged { time, decision });
    }
    let as_text: Vec<String> = lines.iter().map(Value::to_string).collect();
    env.ingest_lines(&as_text);
    let out = env.ok(&["run"]);
    assert_eq!(out.lines().last(), Some("VERDICT=PASS"), "{out}");

    // The figures the engine's decisions and the alerts' days give, and literally for the
    // signatures under test.
    let (sigs, suppressed) = expected(&triaged, today, 30);
    assert_eq!(
        suppressed, 16,
        "9 real (6 default signatures, 2 fp-pam-soon, 1 override) and 7 generated"
    );
    let d = |k: i64| (today - Duration::days(k)).to_string();
    assert_eq!(
        sigs["fp-generated-sshd"],
        (
            BTreeMap::from([
                (d(1), (4, 0)),
                (d(2), (2, 1)),
                (d(3), (0, 1)),
                (d(4), (1, 0)),
            ]),
            rfc(day_at(1, 10, 180))
        )
    );
    assert_eq!(
        sigs["fp-fim-keyword"].0.values().map(|x| x.1).sum::<u64>(),
        1
    );
    assert!(!sigs.contains_key("fp-never") && !sigs.contains_key("fp-sudo-expired"));

    let at = now.to_rfc3339();
    let stats = |days: &str| -> Value {
        let o = env.ok(&["policy", "stats", "--json", "--days", days, "--at", &at]);
        assert_eq!(o.lines().count(), 1, "one object: {o}");
        serde_json::from_str(&o).expect("json")
    };
    // With the run lock held by someone else: stats takes none.
    let lock = hold_run_lock(&env.state);
    let j = stats("30");
    let shown_text = env.ok(&["policy", "stats", "--at", &at]);
    drop(lock);

    let policy_label = format!("{} (version {})", policy_path.display(), policy.version());
    let mut rows: Vec<(&String, u64, u64)> = sigs
        .iter()
        .map(|(id, (days, _))| {
            (
                id,
                days.values().map(|x| x.0).sum::<u64>(),
                days.values().map(|x| x.1).sum::<u64>(),
            )
        })
        .filter(|(_, h, b)| h + b > 0)
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
    let signatures: Vec<Value> = rows
        .iter()
        .map(|(id, hits, held)| {
            let (days, last) = &sigs[*id];
            json!({
                "id": id,
                "in_policy": true,
                "hits": hits,
                "hits_per_day": *hits as f64 / 30.0,
                "share": *hits as f64 / suppressed as f64,
                "held_back": held,
                "last_hit": if last.is_empty() { Value::Null } else { json!(last) },
                "per_day": days.iter().map(|(d, (h, b))| (d.clone(), json!({"hits": h, "held_back": b}))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "fp-generated-sshd",
            "fp-fim-registry-w32time",
            "fp-pam-soon",
            "fp-windows-service-logon-system",
            "fp-rootcheck-trojan-busybox",
            "fp-sysmon-ngen-mscorsvw",
            "fp-fim-keyword"
        ],
        "most hits first, then most held back, then by id"
    );
    let want = json!({
        "policy": policy_label,
        "days": 30,
        "from": d(29),
        "to": d(0),
        "counted_from": null,
        "signatures_in_policy": 11,
        "suppressed": 16,
        "signatures": signatures,
        "never_hit": [
            {"id": "fp-fim-registry-bam", "last_hit": null},
            {"id": "fp-old-sshd", "last_hit": rfc(day_at(40, 10, 0))},
            {"id": "fp-fim-keyword", "last_hit": null},
            {"id": "fp-never", "last_hit": null},
        ],
        "expired": [{"id": "fp-sudo-expired", "expires": d(5)}],
        "expiring_within_7_days": [{"id": "fp-pam-soon", "expires": (today + Duration::days(3)).to_string()}],
        "held_back": [
            {"id": "fp-generated-sshd", "held_back": 2},
            {"id": "fp-fim-keyword", "held_back": 1},
        ],
    });
    assert!(
        same_json(&j, &want),
        "policy stats --json:\n{j:#}\nwanted:\n{want:#}"
    );

    // The text: the same figures, a table by hits, then the days and the lists.
    let mut want_text = vec![
        format!(
            "policy stats: 30 days, {} to {} (UTC days of the alerts' times)",
            d(29),
            d(0)
        ),
        format!("policy: {policy_label}: 11 signatures"),
        "suppressed alerts: 16 (by signatures and overrides)".to_string(),
        format!(
            "{:<31}     hits  per day   share  held back  last hit",
            "signature"
        ),
    ];
    for (id, hits, held) in &rows {
        let last = &sigs[*id].1;
        want_text.push(format!(
            "{id:<31}  {hits:>7}  {:>7.2}  {:>5.1}%  {held:>9}  {}",
            *hits as f64 / 30.0,
            *hits as f64 * 100.0 / 16.0,
            if last.is_empty() { "never" } else { last }
        ));
    }
    assert_eq!(
        want_text[4],
        format!(
            "fp-generated-sshd                      7     0.23   43.8%          2  {}",
            rfc(day_at(1, 10, 180))
        )
    );
    want_text.push("hits per day:".into());
    let mut per_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, _, _) in &rows {
        for (day, (h, _)) in &sigs[*id].0 {
            if *h > 0 {
                per_day
                    .entry(day.clone())
                    .or_default()
                    .push(format!("{id}={h}"));
            }
        }
    }
    for (day, list) in &per_day {
        want_text.push(format!("  {day}  {}", list.join(" ")));
    }
    assert_eq!(
        per_day.len(),
        4,
        "the real alerts' three days and D-4: {per_day:?}"
    );
    want_text.extend([
        "never hit in 30 days (candidates for removal): 4".to_string(),
        "  fp-fim-registry-bam  last hit: never".into(),
        format!("  fp-old-sshd  last hit: {}", rfc(day_at(40, 10, 0))),
        "  fp-fim-keyword  last hit: never".into(),
        "  fp-never  last hit: never".into(),
        "expired: 1".into(),
        format!(
            "  fp-sudo-expired  expired {}: it matches nothing (renew it or remove it)",
            d(5)
        ),
        "expiring within 7 days: 1".into(),
        format!("  fp-pam-soon  expires {}", today + Duration::days(3)),
        "held back (matched high alerts): 2".into(),
        format!(
            "  fp-generated-sshd  2 high alerts not suppressed ({}: 1, {}: 1): worth a look",
            d(3),
            d(2)
        ),
        format!(
            "  fp-fim-keyword  1 high alert not suppressed ({}: 1): worth a look",
            sigs["fp-fim-keyword"].0.keys().next().expect("a day")
        ),
    ]);
    assert_eq!(
        shown_text.lines().collect::<Vec<_>>(),
        want_text,
        "policy stats:\n{shown_text}"
    );

    // A longer period takes the older hits in: fp-old-sshd is no longer never hit.
    let j60 = stats("60");
    assert_eq!(j60["suppressed"], 18);
    assert_eq!(j60["signatures"][0]["id"], "fp-generated-sshd");
    assert_eq!(j60["signatures"][0]["hits"], 8);
    let never: Vec<&str> = j60["never_hit"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    assert_eq!(never, ["fp-fim-registry-bam", "fp-fim-keyword", "fp-never"]);
    // A period longer than the ledger keeps is refused (usage).
    let o = env.run(&["policy", "stats", "--days", "401"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // The heartbeat and the metrics carry the run's held-back matches and the summary.
    let hb: Value = serde_json::from_slice(&std::fs::read(env.path("heartbeat.json")).expect("hb"))
        .expect("json");
    assert_eq!(
        hb["signature_held_back"],
        json!({"fp-generated-sshd": 2, "fp-fim-keyword": 1})
    );
    assert_eq!(
        hb["signature_hits"]["fp-generated-sshd"], 8,
        "this run's hits, every day"
    );
    assert_eq!(
        hb["signatures"],
        json!({"in_policy": 11, "never_hit": 4, "expired": 1, "expiring": 1, "days": 30})
    );
    let prom = std::fs::read_to_string(env.path("metrics.prom")).expect("metrics");
    for line in [
        "signalfoundry_signature_held_back{signature=\"fp-generated-sshd\"} 2",
        "signalfoundry_signature_held_back{signature=\"fp-fim-keyword\"} 1",
        "signalfoundry_signatures 11",
        "signalfoundry_signatures_never_hit 4",
        "signalfoundry_signatures_expired 1",
        "signalfoundry_signatures_expiring 1",
        "# TYPE signalfoundry_signatures_never_hit gauge",
    ] {
        assert!(
            prom.lines().any(|l| l == line),
            "{line} not in metrics.prom:\n{prom}"
        );
    }
}

#[test]
fn policy_stats_without_a_state_directory_says_so_and_creates_nothing() {
    let env = Env::new("");
    let o = env.run(&["policy", "stats"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no state directory"),
        "{}",
        text(&o)
    );
    assert!(!env.state.exists());
}
