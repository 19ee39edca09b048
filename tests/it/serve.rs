//! `signalfoundry serve` over real HTTP on loopback (issue 15): authentication everywhere but
//! `/healthz`, the login form and its rate limit, hostile path ids, `/metrics` against
//! `metrics.prom`, hostile alert text rendered as text, and nothing written to the state
//! directory.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::support::{text, Env};

pub const TOKEN: &str = "console-test-token-0123456789";

/// A running `serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `serve --listen 127.0.0.1:0` and waits for its "listening on" line.
    pub fn start(env: &Env) -> Server {
        let mut child = env
            .cmd(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read serve's first line");
        let url = line
            .trim()
            .strip_prefix("serve: listening on ")
            .unwrap_or_else(|| panic!("serve did not start: {line:?}"))
            .to_string();
        Server { child, url }
    }

    pub fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// GET with the bearer token: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let r = Server::client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .expect("GET");
        (r.status().as_u16(), r.text().expect("body"))
    }

    /// A request sent byte for byte (no client normalises its path): status and body.
    pub fn raw(&self, path: &[u8]) -> (u16, String) {
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(path);
        req.extend_from_slice(
            format!(
                " HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        s.write_all(&req).expect("send");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    }
}

/// Writes the token file (0600) and a configuration with `[serve]` (and `extra`).
pub fn configure(env: &Env, extra: &str) {
    let token = env.dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let policy = env.state.join("demo/policy.toml");
    let policy_line = if policy.exists() {
        format!("[policy]\nfile = {:?}\n", policy.display().to_string())
    } else {
        String::new()
    };
    std::fs::write(
        &env.config,
        format!(
            "{policy_line}[durability]\nfsync = \"off\"\n{extra}\n[serve]\ntoken_file = {:?}\n",
            token.display().to_string()
        ),
    )
    .expect("config");
}

/// A state directory the demo filled (`alerts` alerts), configured for `serve`.
pub fn demo_env(alerts: usize) -> Env {
    let env = Env::new("");
    let o = env.run(&["demo", "--alerts", &alerts.to_string()]);
    assert!(o.status.success(), "demo failed: {}", text(&o));
    configure(&env, "");
    env
}

/// Every file under `dir` but SQLite's shared-memory and WAL files, with size and mtime.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            let p = e.path();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with("-shm") || name.ends_with("-wal") {
                continue;
            }
            out.insert(p, (m.len(), m.modified().expect("mtime")));
        }
    }
    out
}

fn first_incident(s: &Server, query: &str) -> String {
    let (code, body) = s.get(&format!("/api/v1/incidents?{query}"));
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no incident for {query}: {body}"))
        .to_string()
}

#[test]
fn serve_answers_401_or_the_login_page_without_credentials_and_healthz_without_them() {
    let env = demo_env(120);
    let s = Server::start(&env);
    let c = Server::client();
    let inc = first_incident(&s, "");
    for page in [
        "/",
        "/incidents",
        &format!("/incidents/{inc}"),
        "/cases",
        "/policy",
        "/quarantine",
    ] {
        let r = c.get(format!("{}{page}", s.url)).send().expect("GET");
        assert_eq!(
            r.status().as_u16(),
            303,
            "{page} answered without credentials"
        );
        let loc = r.headers()["location"].to_str().expect("location");
        assert!(loc.starts_with("/login?next="), "{page}: {loc}");
        assert!(
            !r.text().expect("body").contains("INC-"),
            "{page} leaked data"
        );
    }
    for api in [
        "/api/v1/overview",
        "/api/v1/incidents",
        "/api/v1/cases",
        "/api/v1/policy",
        "/api/v1/quarantine",
        "/metrics",
    ] {
        let r = c.get(format!("{}{api}", s.url)).send().expect("GET");
        assert_eq!(r.status().as_u16(), 401, "{api}");
        let wrong = c
            .get(format!("{}{api}", s.url))
            .bearer_auth("wrong")
            .send()
            .expect("GET");
        assert_eq!(wrong.status().as_u16(), 401, "{api} with a wrong token");
    }
    let h = c.get(format!("{}/healthz", s.url)).send().expect("GET");
    assert_eq!(h.status().as_u16(), 200);
    // The usual headers, on every answer.
    let r = c
        .get(format!("{}/", s.url))
        .bearer_auth(TOKEN)
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let hd = r.headers();
    assert!(hd["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    assert_eq!(hd["x-content-type-options"], "nosniff");
    assert_eq!(hd["x-frame-options"], "DENY");
    assert_eq!(hd["referrer-policy"], "no-referrer");
}

#[test]
fn serve_login_sets_a_strict_cookie_refuses_wrong_passwords_and_rate_limits_them() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let env = demo_env(60);
    let salt = SaltString::encode_b64(b"sixteen byte sal").expect("salt");
    let hash = argon2::Argon2::default()
        .hash_password(b"correct horse", &salt)
        .expect("hash")
        .to_string();
    let users = env.dir.path().join("users");
    std::fs::write(&users, format!("# analysts\nana:{hash}\n")).expect("users");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    configure(&env, "");
    let cfg = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        format!("{cfg}users_file = {:?}\n", users.display().to_string()),
    )
    .expect("config");
    let s = Server::start(&env);
    let c = Server::client();
    let login = |user: &str, pw: &str| {
        c.post(format!("{}/login", s.url))
            .form(&[("user", user), ("password", pw), ("next", "/incidents")])
            .send()
            .expect("POST /login")
    };
    // The right password: a session cookie that opens the pages.
    let ok = login("ana", "correct horse");
    assert_eq!(ok.status().as_u16(), 303);
    assert_eq!(ok.headers()["location"], "/incidents");
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    let pair = cookie.split(';').next().expect("pair").to_string();
    let page = c
        .get(format!("{}/incidents", s.url))
        .header("cookie", &pair)
        .send()
        .expect("GET");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().expect("body").contains("INC-"));
    // Wrong passwords are refused, and after five the client is limited, right password or not.
    for i in 0..5 {
        let r = login("ana", &format!("wrong {i}"));
        assert_eq!(r.status().as_u16(), 401, "attempt {i}");
        assert!(r.headers().get("set-cookie").is_none());
        assert!(r.text().expect("body").contains("wrong user or password"));
    }
    assert_eq!(login("nobody", "correct horse").status().as_u16(), 429);
    let limited = login("ana", "correct horse");
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    assert!(limited.headers().get("set-cookie").is_none());
    // Logging out ends the session.
    let out = c
        .post(format!("{}/logout", s.url))
        .header("cookie", &pair)
        .send()
        .expect("POST");
    assert_eq!(out.status().as_u16(), 303);
    let after = c
        .get(format!("{}/incidents", s.url))
        .header("cookie", &pair)
        .send()
        .expect("GET");
    assert_eq!(after.status().as_u16(), 303);
}

#[test]
fn serve_path_ids_with_dot_dot_or_nul_answer_400_or_404_and_read_nothing() {
    let env = demo_env(80);
    // A file the traversals would reach, by name relative to cases/ and escalations/.
    std::fs::write(env.dir.path().join("canary.json"), "CANARY-CONTENT").expect("canary");
    let s = Server::start(&env);
    let (_, body) = s.get("/api/v1/cases?bucket=high&limit=1");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let case = v["items"][0]["case_id"]
        .as_str()
        .expect("a high case")
        .to_string();
    let hostile: Vec<Vec<u8>> = vec![
        b"/incidents/../../canary.json".to_vec(),
        b"/incidents/..%2F..%2Fcanary.json".to_vec(),
        b"/cases/..%2F..%2F..%2Fcanary.json".to_vec(),
        b"/cases/SF-1%00".to_vec(),
        b"/incidents/INC-1%00.json".to_vec(),
        format!("/cases/{case}/pack/..%2F..%2F..%2Fcanary.json").into_bytes(),
        format!("/cases/{case}/pack/.%2E%2Fcase.json").into_bytes(),
        format!("/cases/{case}/pack/summary.md%00").into_bytes(),
        format!("/cases/{case}/pack/ledger.db").into_bytes(),
        b"/api/v1/cases/..%2Fledger.db".to_vec(),
        b"/static/..%2F..%2Fcanary.json".to_vec(),
    ];
    for path in &hostile {
        let (code, body) = s.raw(path);
        let shown = String::from_utf8_lossy(path);
        assert!(code == 400 || code == 404, "{shown} answered {code}");
        assert!(!body.contains("CANARY"), "{shown} read the canary");
        assert!(!body.contains("SQLite format"), "{shown} read the ledger");
    }
    // The same shapes with a good id answer.
    assert_eq!(s.get(&format!("/cases/{case}")).0, 200);
    assert_eq!(s.get(&format!("/cases/{case}/pack/summary.md")).0, 200);
}

#[test]
fn serve_metrics_parse_and_equal_metrics_prom_series_for_series() {
    let env = demo_env(100);
    let s = Server::start(&env);
    let (code, live) = s.get("/metrics");
    assert_eq!(code, 200);
    let file = std::fs::read_to_string(env.path("metrics.prom")).expect("metrics.prom");
    let parse = |t: &str| {
        let lines = t.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus text");
        scrape
            .samples
            .iter()
            .map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                };
                {
                    let labels: BTreeMap<_, _> = s.labels.iter().collect();
                    (format!("{}{labels:?}", s.metric), value.to_string())
                }
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (a, b) = (parse(&live), parse(&file));
    assert!(a.len() > 20, "too few series: {a:?}");
    assert_eq!(a, b, "/metrics and metrics.prom differ");
}

#[test]
fn serve_renders_a_hostile_alerts_fields_as_text_and_writes_nothing() {
    let env = Env::new("");
    configure(&env, "");
    let payload = "<script>window.sfPwned=1</script><img src=x onerror=\"window.sfPwned=2\">";
    let hostile = serde_json::json!({
        "timestamp": "2026-11-27T10:00:00.000+0000",
        "rule": {"level": 13, "description": format!("evil {payload}"), "id": "100999",
                 "groups": ["web", "<svg onload=alert(1)>"],
                 "mitre": {"id": ["T1059"], "tactic": [payload], "technique": ["x"]}},
        "agent": {"id": "007", "name": format!("host{payload}")},
        "manager": {"name": "m1"},
        "id": "1764000000.1",
        "data": {"srcip": "192.0.2.9", "url": format!("http://a/{payload}")},
        "full_log": format!("```\n{payload}\n![i](http://evil.example/a.png) [x](javascript:alert(1))")
    });
    env.ingest_lines(&[hostile.to_string()]);
    env.ok(&["run"]);
    let before = tree(&env.state);
    let s = Server::start(&env);
    let inc = first_incident(&s, "bucket=high");
    let (_, cases) = s.get("/api/v1/cases?bucket=high");
    let v: serde_json::Value = serde_json::from_str(&cases).expect("json");
    let case = v["items"][0]["case_id"].as_str().expect("case").to_string();
    let pages = [
        "/".to_string(),
        "/incidents".to_string(),
        "/incidents?q=evil".to_string(),
        format!("/incidents/{inc}"),
        "/cases".to_string(),
        format!("/cases/{case}"),
        format!("/cases/{case}/pack/summary.md"),
        format!("/cases/{case}/pack/alert.json"),
        format!("/cases/{case}/pack/observables.json"),
        "/policy".to_string(),
    ];
    let mut escaped_somewhere = 0;
    for p in &pages {
        let (code, body) = s.get(p);
        assert_eq!(code, 200, "{p}: {body}");
        // Text may say `onerror="..."`; what must never be there is a tag or a link it opened.
        for raw in [
            "<script>window",
            "<img src=x",
            "<svg onload",
            "href=\"javascript:",
            "src=\"http://evil",
        ] {
            assert!(!body.contains(raw), "{p} carries {raw:?} raw");
        }
        // askama writes `&#60;`, ammonia `&lt;`.
        escaped_somewhere +=
            usize::from(body.contains("&lt;script&gt;") || body.contains("&#60;script&#62;"));
    }
    assert!(
        escaped_somewhere >= 6,
        "the payload should show, escaped, on most pages"
    );
    let (_, list) = s.get("/incidents?q=evil");
    assert!(
        list.contains(&inc),
        "the description filter finds the hostile incident"
    );
    drop(s);
    assert_eq!(
        before,
        tree(&env.state),
        "serve changed the state directory"
    );
}

#[test]
fn serve_refuses_a_non_loopback_address_without_tls_and_a_config_without_credentials() {
    let env = Env::new("");
    configure(&env, "");
    let o = env.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not loopback"),
        "{}",
        text(&o)
    );
    std::fs::write(&env.config, "").expect("config");
    let o = env.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("token_file"),
        "{}",
        text(&o)
    );
}

#[test]
fn serve_incident_filters_and_api_agree_and_pages_are_bounded() {
    let env = demo_env(200);
    let s = Server::start(&env);
    let get = |q: &str| -> serde_json::Value {
        let (code, body) = s.get(&format!("/api/v1/incidents?{q}"));
        assert_eq!(code, 200, "{q}: {body}");
        serde_json::from_str(&body).expect("json")
    };
    let all = get("limit=200");
    let items = all["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for b in ["high", "medium", "low", "suppressed"] {
        for i in get(&format!("bucket={b}&limit=200"))["items"]
            .as_array()
            .expect("items")
        {
            assert_eq!(i["bucket"], b);
        }
    }
    for i in get("status=open&limit=200")["items"]
        .as_array()
        .expect("items")
    {
        assert_eq!(i["status"], "open");
    }
    let by_level = get("sort=level&limit=200");
    let levels: Vec<u64> = by_level["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["max_level"].as_u64().unwrap_or(0))
        .collect();
    assert!(levels.windows(2).all(|w| w[0] >= w[1]), "{levels:?}");
    let agent = items[0]["key"]
        .as_array()
        .expect("key")
        .iter()
        .find(|k| k[0] == "agent")
        .map(|k| k[1].as_str().expect("agent").to_string());
    if let Some(a) = agent {
        let got = get(&format!("agent={}", urlencode(&a)));
        assert!(got["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["id"] == items[0]["id"]));
    }
    let one = get("limit=1");
    assert_eq!(one["items"].as_array().expect("items").len(), 1);
    assert_eq!(one["next_page"], 2);
    assert_eq!(get("limit=100000")["limit"], 200, "a page is bounded");
    assert_eq!(s.get("/api/v1/incidents?bucket=nonsense").0, 400);
    assert_eq!(s.get("/api/v1/incidents?from=yesterday").0, 400);
    assert_eq!(
        get("from=2000-01-01&to=2000-01-02")["items"]
            .as_array()
            .expect("items")
            .len(),
        0
    );
    // The HTML page shows what the API lists.
    let (_, page) = s.get("/incidents?limit=5");
    for i in get("limit=5")["items"].as_array().expect("items") {
        assert!(page.contains(i["id"].as_str().expect("id")));
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn overview(s: &Server) -> serde_json::Value {
    let (code, body) = s.get("/api/v1/overview");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn serve_beside_a_daemon_shows_each_new_runs_figures_without_a_restart() {
    use crate::support::alert_line;
    let env = Env::new("");
    configure(&env, "");
    let low: Vec<String> = (0..3).map(|i| alert_line(i, 3, i as u64)).collect();
    env.ingest_lines(&low);
    let mut s = Server::start(&env);
    let mut daemon = env
        .cmd(&["daemon", "--every", "1s"])
        .env("SIGNALFOUNDRY_DEBUG_MIN_EVERY_MS", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the daemon");
    let mut first = None;
    wait_for("the daemon's first run on the console", || {
        let o = overview(&s);
        if o["ledger"]["triaged"] == 3 {
            first = o["run_id"].as_str().map(str::to_string);
        }
        first.is_some()
    });
    assert_eq!(overview(&s)["ledger"]["escalated"], serde_json::Value::Null);
    let high: Vec<String> = (10..14).map(|i| alert_line(i, 12, i as u64)).collect();
    env.ingest_lines(&high);
    wait_for("a later run's figures on the console", || {
        let o = overview(&s);
        o["ledger"]["escalated"] == 4 && o["run_id"].as_str() != first.as_deref()
    });
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains("signalfoundry_ledger_rows{state=\"escalated\"} 4"),
        "{metrics}"
    );
    let (_, list) = s.get("/api/v1/incidents?bucket=high");
    assert!(list.contains("INC-"), "{list}");
    assert!(
        s.child.try_wait().expect("try_wait").is_none(),
        "serve ran the whole test"
    );
    assert!(
        daemon.try_wait().expect("try_wait").is_none(),
        "the daemon too"
    );
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let st = daemon.wait().expect("wait");
    assert_eq!(st.code(), Some(0));
    let _ = &mut s;
}

#[test]
fn serve_over_tls_presents_its_certificate_and_sends_hsts() {
    let env = Env::new("");
    configure(&env, "");
    let pki = indexer_sim::tls::Pki::new("console test").expect("pki");
    let (cert, key) = (
        env.dir.path().join("cert.pem"),
        env.dir.path().join("key.pem"),
    );
    std::fs::write(&cert, pki.chain_pem()).expect("cert");
    std::fs::write(&key, pki.key_pem()).expect("key");
    let cfg = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        format!(
            "{cfg}cert_file = {:?}\nkey_file = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .expect("config");
    env.ingest_lines(&[crate::support::alert_line(1, 3, 1)]);
    env.ok(&["run"]);
    let s = Server::start(&env);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let c = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).expect("ca"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let h = c
        .get(format!("{}/healthz", s.url))
        .send()
        .expect("GET over TLS");
    assert_eq!(h.status().as_u16(), 200);
    let r = c
        .get(format!("{}/api/v1/overview", s.url))
        .bearer_auth(TOKEN)
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));
    assert_eq!(
        c.get(format!("{}/api/v1/overview", s.url))
            .send()
            .expect("GET")
            .status()
            .as_u16(),
        401
    );
}

#[test]
fn serve_lists_quarantine_entries_with_their_reasons() {
    let env = Env::new("");
    configure(&env, "");
    let f = env.dir.path().join("bad.jsonl");
    std::fs::write(
        &f,
        "{\"not\": \"an alert\"\n<script>window.sfPwned=1</script>\n",
    )
    .expect("bad lines");
    env.run(&["ingest", f.to_str().expect("path")]);
    env.ok(&["run"]);
    let s = Server::start(&env);
    let (code, body) = s.get("/api/v1/quarantine");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let items = v["items"].as_array().expect("items");
    assert_eq!(v["total"], 2, "{body}");
    assert!(
        items
            .iter()
            .all(|i| i["reason"].as_str().is_some_and(|r| r.contains("reason:"))),
        "{body}"
    );
    let (_, page) = s.get("/quarantine");
    assert!(page.contains("2 entries"));
    assert!(!page.contains("<script>window"));
    assert_eq!(overview(&s)["quarantine"], 2);
}
