//! Delivery (issue 14): incidents' messages from the durable outbox to real receivers on
//! loopback (`receiver-sim`: Standard Webhooks, Slack, Teams, PagerDuty, TheHive, IRIS over
//! HTTPS with their vendors' contracts, and SMTP with STARTTLS), through faults, rate limits,
//! SIGKILLs and hostile alert text; every message accounted for, no secret anywhere.
//!
//! The vendor contracts the receivers check are written down, with their sources, in
//! `crates/receiver-sim/src/*.rs` (Slack Block Kit limits, Teams' 28 KB Adaptive Card envelope,
//! PagerDuty Events API v2, TheHive 5's alert API and its 400 on a duplicate `sourceRef`,
//! DFIR-IRIS's alerts API and its filter).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use receiver_sim::{Faults, Kind, ReceiverConfig, ReceiverHandle, Receivers};

use crate::incidents::alert;
use crate::support::{scale, text, Env};

/// Writes a 0600 file in the test's temp dir.
fn secret(env: &Env, name: &str, content: &str) -> PathBuf {
    let p = env.dir.path().join(name);
    std::fs::write(&p, content).expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn start(cfg: ReceiverConfig) -> ReceiverHandle {
    Receivers::start(cfg).expect("start receivers")
}

/// The CA file, the webhook secret file and the base config for a receiver set.
fn base(env: &Env, rx: &ReceiverHandle, cfg: &ReceiverConfig) -> String {
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, rx.ca_pem()).expect("write ca");
    secret(env, "webhook.secret", &cfg.webhook_secret);
    "[durability]\nfsync = \"off\"\n[delivery]\nretry_base = \"50ms\"\nmax_duration = \"60s\"\n"
        .to_string()
}

fn webhook_route(env: &Env, rx: &ReceiverHandle, name: &str, extra: &str) -> String {
    format!(
        "[[notify]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{}/webhook/{name}\"\nsecret_file = \"{}\"\nca_file = \"{}\"\ntimeout = \"2s\"\n{extra}\n",
        rx.https_url(),
        env.dir.path().join("webhook.secret").display(),
        env.dir.path().join("ca.pem").display()
    )
}

fn write_config(env: &Env, text: &str) {
    std::fs::write(&env.config, text).expect("write config");
}

/// `k` high incidents of `per` alerts each (distinct rule per incident, one host).
fn high_bursts(k: usize, per: usize) -> Vec<String> {
    let mut out = Vec::new();
    for inc in 0..k {
        for j in 0..per {
            out.push(alert(
                inc * 10_000 + j,
                &format!("{}", 100_000 + inc),
                "web-01",
                12,
                j as i64,
            ));
        }
    }
    out
}

/// Outbox rows: id → (route, incident, seq, type, state).
fn outbox(env: &Env) -> BTreeMap<String, (String, String, u32, String, String)> {
    let c = env.ledger();
    let mut st = c
        .prepare("SELECT id, route, incident, seq, type, state FROM outbox")
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
            ))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

fn pending(env: &Env) -> usize {
    outbox(env).values().filter(|m| m.4 == "pending").count()
}

/// Runs `run` until the outbox has nothing pending (at most `tries` runs).
fn run_until_delivered(env: &Env, tries: usize) -> String {
    let mut last = String::new();
    for _ in 0..tries {
        let o = env.run(&["run"]);
        last = text(&o);
        if pending(env) == 0 {
            return last;
        }
    }
    panic!(
        "messages still pending after {tries} runs: {:?}\n{last}",
        outbox(env)
    );
}

fn incident_ids(env: &Env) -> BTreeSet<String> {
    crate::incidents::incident_counts(env).into_keys().collect()
}

#[test]
fn every_incident_is_opened_on_the_signed_webhook_through_faults_within_max_per_hour() {
    let cfg = ReceiverConfig {
        seed: 7,
        faults: Faults {
            p429: 0.15,
            retry_after_secs: 1,
            p500: 0.15,
            p_slow: 0.1,
            slow: Duration::from_millis(300),
            p_lost: 0.1,
        },
        ..ReceiverConfig::default()
    };
    let rx = start(cfg.clone());
    let env = Env::new("");
    let conf = base(&env, &rx, &cfg)
        + &webhook_route(
            &env,
            &rx,
            "soc-webhook",
            "max_per_hour = 8\nupdate_every = \"1h\"",
        );
    write_config(&env, &conf);
    env.ingest_lines(&high_bursts(10, 3));
    // Runs (a 429 pauses the route until its Retry-After) until nothing is pending: within
    // the hour's 8 requests, the last one a digest of what was held.
    let mut out = String::new();
    for _ in 0..8 {
        let o = env.run(&["run"]);
        out.push_str(&text(&o));
        assert!(o.status.success(), "{out}");
        if pending(&env) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1_100));
    }
    assert_eq!(pending(&env), 0, "{out}");
    // 10 incidents, 8 requests in the hour: messages, and one digest of what is held.
    let hooks = rx.deliveries_of(Kind::Webhook);
    let ids: BTreeSet<String> = hooks.iter().filter_map(|h| h.id.clone()).collect();
    // Requests sent in the hour, as the outbox counts them (a digest is one)...
    let requests: u64 = env
        .ledger()
        .query_row(
            "SELECT COUNT(DISTINCT COALESCE(digest, id)) FROM outbox WHERE state = 'sent'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(
        requests <= 8,
        "never more than max_per_hour requests in the hour: {requests}\n{out}"
    );
    // ...and as the receiver saw them: more only by answers it lost (their retries went in the
    // digest or wait).
    let lost = rx.faults_injected().lost as usize;
    assert!(
        ids.len() <= 8 + lost,
        "{ids:?} with {lost} lost answers\n{out}"
    );
    // Duplicates only under the same webhook-id, with the same body.
    let mut bodies: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for h in &hooks {
        let id = h.id.clone().expect("webhook-id");
        if let Some(b) = bodies.get(&id) {
            assert_eq!(b, &h.body, "a duplicate of {id} changed its body");
        }
        bodies.insert(id, h.body.clone());
    }
    // Raise the budget: whatever is still held goes out.
    let conf = base(&env, &rx, &cfg)
        + &webhook_route(
            &env,
            &rx,
            "soc-webhook",
            "max_per_hour = 60\nupdate_every = \"1h\"",
        );
    write_config(&env, &conf);
    let first = out;
    let out = run_until_delivered(&env, 5);
    let book = outbox(&env);
    let opened: BTreeMap<String, String> = book
        .iter()
        .filter(|(_, m)| m.2 == 0)
        .map(|(id, m)| (m.1.clone(), id.clone()))
        .collect();
    assert_eq!(
        opened.keys().cloned().collect::<BTreeSet<_>>(),
        incident_ids(&env),
        "{out}"
    );
    // Every message arrived on its own or inside a digest; no id the outbox never made.
    let expected: BTreeSet<String> = book.keys().cloned().collect();
    let mut seen = BTreeSet::new();
    let mut digests = 0;
    for h in rx.deliveries_of(Kind::Webhook) {
        let id = h.id.clone().expect("webhook-id");
        assert_eq!(h.body["id"].as_str(), Some(id.as_str()));
        if h.body["type"] == "incident.digest" {
            assert!(id.starts_with("dig_"), "{id}");
            digests += 1;
            for m in h.body["messages"].as_array().expect("messages") {
                seen.insert(m["id"].as_str().unwrap_or("").to_string());
            }
        } else {
            assert_eq!(h.body["type"], "incident.opened");
            seen.insert(id);
        }
    }
    assert!(digests >= 1, "the held messages were summarised: {first}");
    assert!(seen.is_subset(&expected), "an id the outbox never made");
    for id in opened.values() {
        assert!(seen.contains(id), "incident.opened {id} never arrived");
    }
    assert!(rx.rejected().is_empty(), "{:?}", rx.rejected());
    assert!(
        rx.faults_injected().lost + rx.faults_injected().internal > 0,
        "faults were injected"
    );
    let rec = env.ok(&["reconcile", "--deep"]);
    assert!(rec.contains("VERDICT=PASS"), "{rec}");
    assert!(
        rec.contains("outbox soc-webhook: pending=0 sent=10 dead=0"),
        "{rec}"
    );
}

#[test]
fn a_burst_of_a_thousand_high_alerts_is_one_opened_and_coalesced_updates() {
    let cfg = ReceiverConfig::default();
    let rx = start(cfg.clone());
    let env = Env::new("");
    let n = scale(1_000, 1_000);
    let conf = base(&env, &rx, &cfg) + &webhook_route(&env, &rx, "burst", "update_every = \"1h\"");
    write_config(&env, &conf);
    // Two halves, so the second run's members come after the opening message.
    let lines = high_bursts(1, n);
    env.ingest_lines(&lines[..n / 2]);
    env.ok(&["run"]);
    env.ingest_lines(&lines[n / 2..]);
    env.ok(&["run"]);
    env.ok(&["run"]);
    let hooks = rx.deliveries_of(Kind::Webhook);
    assert_eq!(hooks.len(), 1, "one message, not {n}: {hooks:?}");
    assert_eq!(hooks[0].body["type"], "incident.opened");
    let book = outbox(&env);
    assert!(
        book.len() <= 2,
        "the updates coalesce into one pending: {book:?}"
    );
    let updates: Vec<_> = book
        .values()
        .filter(|m| m.3 == "incident.updated")
        .collect();
    assert_eq!(updates.len(), 1, "{book:?}");
    assert_eq!(
        updates[0].4, "pending",
        "due an hour after the opening message"
    );
}

#[test]
fn updates_come_no_more_often_than_update_every() {
    let cfg = ReceiverConfig::default();
    let rx = start(cfg.clone());
    let env = Env::new("");
    let conf = base(&env, &rx, &cfg) + &webhook_route(&env, &rx, "upd", "update_every = \"2s\"");
    write_config(&env, &conf);
    let lines = high_bursts(1, 40);
    for chunk in lines.chunks(10) {
        env.ingest_lines(chunk);
        env.ok(&["run"]);
    }
    // Let the last update come due and go.
    std::thread::sleep(Duration::from_millis(2_200));
    env.ok(&["run"]);
    let hooks = rx.deliveries_of(Kind::Webhook);
    let kinds: Vec<&str> = hooks
        .iter()
        .map(|h| h.body["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds[0], "incident.opened", "{kinds:?}");
    assert!(
        kinds[1..].iter().all(|k| *k == "incident.updated") && kinds.len() >= 2,
        "{kinds:?}"
    );
    for w in hooks.windows(2) {
        let gap = w[1].at.duration_since(w[0].at).unwrap_or_default();
        assert!(
            gap >= Duration::from_millis(1_900),
            "two messages {gap:?} apart"
        );
    }
    let last = hooks.last().expect("a message");
    assert_eq!(last.body["incident"]["members"]["total"], 40);
}

#[test]
fn sigkill_during_delivery_loses_no_message_and_sends_no_unexpected_id() {
    let cfg = ReceiverConfig {
        seed: 3,
        faults: Faults {
            p_slow: 0.5,
            slow: Duration::from_millis(150),
            p_lost: 0.1,
            ..Faults::default()
        },
        ..ReceiverConfig::default()
    };
    let rx = start(cfg.clone());
    let env = Env::new("");
    let conf = base(&env, &rx, &cfg)
        + &webhook_route(
            &env,
            &rx,
            "kill",
            "max_per_hour = 1000\nconcurrency = 2\nupdate_every = \"1s\"",
        );
    write_config(&env, &conf);
    let trials = scale(20, 20);
    let incidents = scale(30, 60);
    let lines = high_bursts(incidents, 2);
    let per = lines.len().div_ceil(trials);
    let mut rng = 0x2545F4914F6CDD1Du64;
    for t in 0..trials {
        if let Some(chunk) = lines.chunks(per).nth(t) {
            env.ingest_lines(chunk);
        }
        let mut child = env
            .cmd(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn run");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(100 + rng % 900));
        let _ = child.kill();
        let _ = child.wait();
    }
    rx.set_faults(Faults::none()).expect("faults off");
    run_until_delivered(&env, 5);
    let book = outbox(&env);
    let seen: BTreeSet<String> = rx
        .deliveries_of(Kind::Webhook)
        .iter()
        .filter_map(|h| h.id.clone())
        .collect();
    let expected: BTreeSet<String> = book.keys().cloned().collect();
    assert!(
        seen.is_subset(&expected),
        "ids the outbox never made: {:?}",
        seen.difference(&expected)
    );
    for (id, m) in &book {
        assert_eq!(m.4, "sent", "{id} {m:?}");
        assert!(seen.contains(id), "{id} ({}) was never delivered", m.3);
    }
    let opened: BTreeSet<String> = book
        .values()
        .filter(|m| m.2 == 0)
        .map(|m| m.1.clone())
        .collect();
    assert_eq!(opened, incident_ids(&env));
    let rec = env.ok(&["reconcile", "--deep"]);
    assert!(rec.contains("VERDICT=PASS"), "{rec}");
}

/// Every kind's route, with the receivers' credentials in 0600 files.
fn all_routes(env: &Env, rx: &ReceiverHandle, cfg: &ReceiverConfig, slack_path: &str) -> String {
    let ca = env.dir.path().join("ca.pem").display().to_string();
    let f = |name: &str, v: &str| secret(env, name, v).display().to_string();
    let slack_url = f(
        "slack.url",
        &format!("{}/slack/{slack_path}", rx.https_url()),
    );
    let teams_url = f("teams.url", &format!("{}/teams/soc", rx.https_url()));
    let pd = f("pd.key", &cfg.pagerduty_routing_key);
    let hive = f("hive.key", &cfg.thehive_api_key);
    let iris = f("iris.key", &cfg.iris_api_key);
    let smtp = f("smtp.pw", &cfg.smtp_password);
    let url = rx.https_url();
    let smtp_port = rx.smtp_addr().port();
    let user = &cfg.smtp_username;
    format!(
        "{hook}
[[notify]]
name = \"slack\"
kind = \"slack\"
url_file = \"{slack_url}\"
ca_file = \"{ca}\"

[[notify]]
name = \"teams\"
kind = \"teams\"
url_file = \"{teams_url}\"
ca_file = \"{ca}\"

[[notify]]
name = \"pager\"
kind = \"pagerduty\"
url = \"{url}/v2/enqueue\"
secret_file = \"{pd}\"
ca_file = \"{ca}\"

[[notify]]
name = \"hive\"
kind = \"thehive\"
url = \"{url}\"
secret_file = \"{hive}\"
ca_file = \"{ca}\"

[[notify]]
name = \"iris\"
kind = \"iris\"
url = \"{url}\"
secret_file = \"{iris}\"
ca_file = \"{ca}\"

[[notify]]
name = \"mail\"
kind = \"email\"
smtp_host = \"localhost\"
smtp_port = {smtp_port}
from = \"SignalFoundry <sf@example.org>\"
to = [\"soc@example.org\"]
username = \"{user}\"
password_file = \"{smtp}\"
ca_file = \"{ca}\"
",
        hook = webhook_route(env, rx, "hook", "")
    )
}

#[test]
fn every_kind_gets_its_vendors_payload_and_case_tools_create_nothing_twice() {
    let cfg = ReceiverConfig {
        seed: 11,
        faults: Faults {
            p_lost: 0.25,
            ..Faults::default()
        },
        ..ReceiverConfig::default()
    };
    let rx = start(cfg.clone());
    let env = Env::new("");
    let conf = base(&env, &rx, &cfg) + &all_routes(&env, &rx, &cfg, "T000/B000/XXXX");
    write_config(&env, &conf);
    env.ingest_lines(&high_bursts(4, 2));
    let out = run_until_delivered(&env, 6);
    assert!(rx.rejected().is_empty(), "{:?}\n{out}", rx.rejected());
    let incidents = incident_ids(&env);
    for kind in [
        Kind::Webhook,
        Kind::Slack,
        Kind::Teams,
        Kind::PagerDuty,
        Kind::TheHive,
        Kind::Iris,
        Kind::Email,
    ] {
        assert!(
            !rx.deliveries_of(kind).is_empty(),
            "{kind:?} got nothing\n{out}"
        );
    }
    // PagerDuty: one open alert per incident, deduplicated on the incident id.
    let pd = rx.pagerduty_alerts();
    assert_eq!(pd.keys().cloned().collect::<BTreeSet<_>>(), incidents);
    assert!(
        pd.values().all(|a| a.open && a.alerts_opened == 1),
        "{pd:?}"
    );
    // TheHive: one alert per incident, sourceRef = incident id (a lost answer's retry met the
    // 400 "already exist" and counted it delivered).
    let refs: Vec<String> = rx
        .thehive_alerts()
        .iter()
        .map(|a| a.output["sourceRef"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(refs.iter().cloned().collect::<BTreeSet<_>>(), incidents);
    assert_eq!(
        refs.len(),
        incidents.len(),
        "TheHive alerts created twice: {refs:?}"
    );
    // IRIS does not deduplicate: the lookup before the create does.
    let iris: Vec<String> = rx
        .iris_alerts()
        .iter()
        .map(|a| a["alert_source_ref"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        iris.len(),
        incidents.len(),
        "IRIS alerts created twice: {iris:?}"
    );
    assert_eq!(iris.into_iter().collect::<BTreeSet<_>>(), incidents);
    // Email through STARTTLS with AUTH, both parts, Message-ID from the message id.
    for m in rx.deliveries_of(Kind::Email) {
        let raw = m.body.as_str().unwrap_or("");
        assert!(
            raw.contains("text/plain") && raw.contains("text/html"),
            "{raw}"
        );
        assert!(
            m.id.as_deref().is_some_and(|id| id.contains("msg_")),
            "{:?}",
            m.id
        );
    }
    let status = env.ok(&["status"]);
    assert!(
        status.contains("outbox hive: pending=0 sent=4 dead=0"),
        "{status}"
    );
}

#[test]
fn pagerduty_resolves_the_incident_when_it_closes() {
    let cfg = ReceiverConfig::default();
    let rx = start(cfg.clone());
    let env = Env::new("");
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, rx.ca_pem()).expect("ca");
    let key = secret(&env, "pd.key", &cfg.pagerduty_routing_key);
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(&policy, "[grouping]\nwindow = \"10s\"\n").expect("policy");
    write_config(
        &env,
        &format!(
            "[durability]\nfsync = \"off\"\n[policy]\nfile = \"{}\"\n[incidents]\nclose_after = \"1s\"\n[[notify]]\nname = \"pager\"\nkind = \"pagerduty\"\nurl = \"{}/v2/enqueue\"\nsecret_file = \"{}\"\nca_file = \"{}\"\n",
            policy.display(),
            rx.https_url(),
            key.display(),
            ca.display()
        ),
    );
    // An alert of now: its 10 s window closes (plus close_after) within 11 s.
    let now = chrono::Utc::now();
    let line = serde_json::json!({
        "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "rule": {"level": 13, "description": "brute force", "id": "5712", "groups": ["sshd"]},
        "agent": {"id": "001", "name": "web-01"},
        "manager": {"name": "m1"},
        "id": format!("{}.1", now.timestamp()),
        "location": "/var/log/auth.log"
    })
    .to_string();
    env.ingest_lines(&[line]);
    env.ok(&["run"]);
    let pd = rx.pagerduty_alerts();
    assert_eq!(pd.len(), 1, "{pd:?}");
    assert!(pd.values().all(|a| a.open), "{pd:?}");
    std::thread::sleep(Duration::from_secs(12));
    env.ok(&["run"]);
    let pd = rx.pagerduty_alerts();
    assert!(pd.values().all(|a| !a.open), "resolved: {pd:?}");
    let kinds: Vec<String> = outbox(&env).values().map(|m| m.3.clone()).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "incident.closed").count(),
        1,
        "{kinds:?}"
    );
}

#[test]
fn hostile_alert_text_arrives_escaped_in_every_format() {
    let cfg = ReceiverConfig::default();
    let rx = start(cfg.clone());
    let env = Env::new("");
    let conf = base(&env, &rx, &cfg) + &all_routes(&env, &rx, &cfg, "T000/B000/XXXX");
    write_config(&env, &conf);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut lines = Vec::new();
    for e in std::fs::read_dir(&dir).expect("hostile fixtures") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
            v["rule"]["level"] = serde_json::json!(13);
            lines.push(v.to_string());
        }
    }
    env.ingest_lines(&lines);
    run_until_delivered(&env, 4);
    assert!(rx.rejected().is_empty(), "{:?}", rx.rejected());
    let controls = |s: &str| {
        s.chars().any(|c| {
            (c.is_control() && c != '\n' && c != '\r' && c != '\t')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
    };
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    for d in rx.deliveries() {
        let mut all = Vec::new();
        strings(&d.body, &mut all);
        for s in &all {
            assert!(!controls(s), "{:?}: a control character in {s:?}", d.kind);
        }
        match d.kind {
            Kind::Slack => {
                for s in &all {
                    assert!(
                        !s.contains("<http") && !s.contains("<!") && !s.contains("<@"),
                        "a live Slack link or mention: {s:?}"
                    );
                }
            }
            Kind::Email => {
                let raw = d.body.as_str().unwrap_or("");
                let html = raw.split("text/html").nth(1).unwrap_or("");
                let lower = html.to_ascii_lowercase();
                assert!(
                    !lower.contains("<script") && !lower.contains("<img") && !lower.contains("<a "),
                    "HTML from alert text: {html}"
                );
            }
            Kind::Teams => {
                for s in &all {
                    assert!(
                        !s.contains("](http") && !s.contains("!["),
                        "a Markdown link in a card: {s:?}"
                    );
                }
            }
            _ => {}
        }
    }
}

#[test]
fn no_secret_reaches_a_log_a_file_the_heartbeat_the_metrics_or_an_error() {
    let cfg = ReceiverConfig {
        webhook_secret: "whsec_Y2FuYXJ5LXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3".into(),
        pagerduty_routing_key: "CANARYpdKEY0123456789abcdefABCDE".into(),
        thehive_api_key: "canary-thehive-api-key-77".into(),
        iris_api_key: "canary-iris-api-key-88".into(),
        smtp_password: "canary-smtp-password-99".into(),
        ..ReceiverConfig::default()
    };
    let rx = start(cfg.clone());
    let env = Env::new("");
    let slack_path = "T0CANARY/B0CANARY/canarySlackUrlSecret";
    let conf = base(&env, &rx, &cfg) + &all_routes(&env, &rx, &cfg, slack_path);
    // A second TheHive route with a wrong key: its error must not quote what it sent.
    let bad = secret(&env, "bad.key", "canary-wrong-key-66");
    let conf = conf + &format!(
        "[[notify]]\nname = \"hive-bad\"\nkind = \"thehive\"\nurl = \"{}\"\nsecret_file = \"{}\"\nca_file = \"{}\"\n",
        rx.https_url(),
        bad.display(),
        env.dir.path().join("ca.pem").display()
    );
    write_config(&env, &conf);
    env.ingest_lines(&high_bursts(2, 2));
    let mut logs = String::new();
    for _ in 0..2 {
        let o = env
            .cmd(&["run"])
            .env("SIGNALFOUNDRY_LOG", "trace")
            .output()
            .expect("run");
        logs.push_str(&text(&o));
    }
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["outbox", "--json"],
        &["outbox", "--status", "dead"],
        &["reconcile", "--json"],
        &["deliver"],
    ] {
        logs.push_str(&text(
            &env.cmd(args)
                .env("SIGNALFOUNDRY_LOG", "trace")
                .output()
                .expect("cmd"),
        ));
    }
    assert!(logs.contains("hive-bad"), "the bad route was tried: {logs}");
    let canaries = [
        "Y2FuYXJ5LXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3",
        "canary-webhook-secret",
        "CANARYpdKEY0123456789abcdefABCDE",
        "canary-thehive-api-key-77",
        "canary-iris-api-key-88",
        "canary-smtp-password-99",
        "canary-wrong-key-66",
        "canarySlackUrlSecret",
    ];
    for c in canaries {
        assert!(!logs.contains(c), "{c} in the output or logs");
    }
    // Every file under the state directory (ledger included), the heartbeat and the metrics.
    let mut stack = vec![env.state.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                files += 1;
                let s = String::from_utf8_lossy(&bytes);
                for c in canaries {
                    assert!(!s.contains(c), "{c} in {}", p.display());
                }
            }
        }
    }
    assert!(files > 10);
    assert!(env.path("heartbeat.json").exists() && env.path("metrics.prom").exists());
}

#[test]
fn receivers_down_lose_nothing_and_the_next_run_sends_the_backlog() {
    let cfg = ReceiverConfig::default();
    let env = Env::new("");
    // A port nothing listens on.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let rx = start(cfg.clone());
    let conf = base(&env, &rx, &cfg)
        + &webhook_route(&env, &rx, "soc", "")
            .replace(&rx.https_url(), &format!("https://127.0.0.1:{dead_port}"));
    write_config(&env, &conf);
    env.ingest_lines(&high_bursts(3, 2));
    let o = env.run(&["run"]);
    let out = text(&o);
    assert!(o.status.success(), "the triage stages finish: {out}");
    assert!(out.contains("deliver: status=DEGRADED"), "{out}");
    assert!(out.contains("triage: status=OK"), "{out}");
    let hb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("heartbeat.json")).expect("hb"))
            .expect("json");
    assert_eq!(hb["status"], "DEGRADED", "{hb}");
    assert_eq!(pending(&env), 3);
    let metrics = std::fs::read_to_string(env.path("metrics.prom")).expect("metrics");
    assert!(
        metrics.contains("signalfoundry_outbox_messages{route=\"soc\",state=\"pending\"} 3"),
        "{metrics}"
    );
    // The receiver is back (the route points at it): the backlog goes out.
    write_config(
        &env,
        &(base(&env, &rx, &cfg) + &webhook_route(&env, &rx, "soc", "")),
    );
    std::thread::sleep(Duration::from_millis(200));
    run_until_delivered(&env, 8);
    assert_eq!(
        rx.deliveries_of(Kind::Webhook)
            .iter()
            .filter_map(|d| d.id.clone())
            .collect::<BTreeSet<_>>()
            .len(),
        3
    );
}

#[test]
fn a_refused_message_is_dead_said_and_retried_by_hand_and_a_removed_route_is_orphaned() {
    let cfg = ReceiverConfig::default();
    let rx = start(cfg.clone());
    let env = Env::new("");
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, rx.ca_pem()).expect("ca");
    let key = secret(&env, "hive.key", "not-the-key");
    let route = |key: &Path| {
        format!(
        "[durability]\nfsync = \"off\"\n[[notify]]\nname = \"hive\"\nkind = \"thehive\"\nurl = \"{}\"\nsecret_file = \"{}\"\nca_file = \"{}\"\n",
        rx.https_url(), key.display(), ca.display()
    )
    };
    write_config(&env, &route(&key));
    env.ingest_lines(&high_bursts(1, 1));
    let out = env.ok(&["run"]);
    assert!(
        out.contains("deliver: status=DEGRADED") && out.contains("dead=1"),
        "{out}"
    );
    let dead = env.ok(&["outbox", "--status", "dead"]);
    assert!(
        dead.contains("HTTP 401") && dead.contains("API key"),
        "{dead}"
    );
    assert!(env.ok(&["status"]).contains("DEAD"), "status says so");
    let good = secret(&env, "hive-good.key", &cfg.thehive_api_key);
    write_config(&env, &route(&good));
    assert!(env
        .ok(&["outbox", "retry", "--dead"])
        .contains("1 message(s) pending again"));
    env.ok(&["run"]);
    assert_eq!(rx.thehive_alerts().len(), 1);
    assert_eq!(pending(&env), 0);
    // The route leaves the configuration: its messages stay, reported orphaned.
    env.ingest_lines(&[alert(999, "4242", "db-01", 13, 5)]);
    write_config(&env, &route(&good));
    env.ok(&["triage"]);
    write_config(&env, "[durability]\nfsync = \"off\"\n");
    let listed = env.ok(&["outbox", "--status", "orphaned"]);
    assert!(
        listed.contains("orphaned") && listed.contains("hive"),
        "{listed}"
    );
    let rec = env.ok(&["reconcile"]);
    assert!(
        rec.contains("outbox hive: pending=1") && rec.contains("orphaned"),
        "{rec}"
    );
}

#[test]
fn a_lost_opening_message_is_a_reconcile_mismatch() {
    let cfg = ReceiverConfig::default();
    let rx = start(cfg.clone());
    let env = Env::new("");
    write_config(
        &env,
        &(base(&env, &rx, &cfg) + &webhook_route(&env, &rx, "soc", "")),
    );
    env.ingest_lines(&high_bursts(2, 1));
    env.ok(&["run"]);
    let c = env.ledger();
    let n = c
        .execute(
            "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox)",
            [],
        )
        .expect("delete");
    assert_eq!(n, 1);
    drop(c);
    let o = env.run(&["reconcile"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("without an opening message") && out.contains("VERDICT=FAIL"),
        "{out}"
    );
}

#[test]
fn a_route_match_picks_incidents_by_their_first_member_and_a_raised_incident_is_escalated() {
    let cfg = ReceiverConfig::default();
    let rx = start(cfg.clone());
    let env = Env::new("");
    let conf = base(&env, &rx, &cfg)
        + &webhook_route(&env, &rx, "sshd-only", "match = { \"rule.id\" = \"5716\" }")
        + &webhook_route(&env, &rx, "all-high", "");
    write_config(&env, &conf);
    // 5716 on web-01 starts low and is raised by a high member; 5712 on db-01 is high at once.
    env.ingest_lines(&[
        alert(1, "5716", "web-01", 5, 0),
        alert(2, "5716", "web-01", 5, 1),
        alert(3, "5712", "db-01", 12, 2),
    ]);
    env.ok(&["run"]);
    env.ingest_lines(&[alert(4, "5716", "web-01", 12, 3)]);
    env.ok(&["run"]);
    let by_route = |route: &str| -> Vec<(String, String)> {
        rx.deliveries_of(Kind::Webhook)
            .iter()
            .filter(|d| d.path.ends_with(route))
            .map(|d| {
                (
                    d.body["type"].as_str().unwrap_or("").to_string(),
                    d.body["incident"]["key"].to_string(),
                )
            })
            .collect()
    };
    let sshd = by_route("sshd-only");
    assert_eq!(sshd.len(), 1, "{sshd:?}");
    assert_eq!(
        sshd[0].0, "incident.escalated",
        "started low, raised by a high member"
    );
    assert!(sshd[0].1.contains("5716"), "{sshd:?}");
    let all = by_route("all-high");
    let kinds: BTreeSet<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        kinds,
        BTreeSet::from(["incident.escalated", "incident.opened"])
    );
    let rec = env.ok(&["reconcile", "--deep"]);
    assert!(rec.contains("VERDICT=PASS"), "{rec}");
}
