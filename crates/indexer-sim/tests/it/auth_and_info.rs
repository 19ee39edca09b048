//! Authentication, TLS and `GET /`.

use std::time::Duration;

use indexer_sim::SimConfig;
use reqwest::Method;

use crate::common::{cfg, client, Sim, PASSWORD, USER};

#[test]
fn requests_without_or_with_wrong_credentials_get_the_security_plugins_401() {
    let sim = Sim::start(cfg(20));
    for auth in [None, Some((USER, "wrong")), Some(("nobody", PASSWORD))] {
        let mut rb = sim
            .client
            .post(format!("{}/wazuh-alerts-4.x-*/_search", sim.base))
            .body("{}");
        if let Some((u, p)) = auth {
            rb = rb.basic_auth(u, Some(p));
        }
        let r = rb.send().unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"OpenSearch Security\""
        );
        assert_eq!(r.headers()["content-type"], "text/plain; charset=UTF-8");
        assert_eq!(r.text().unwrap(), "Unauthorized");
    }
    let (s, _) = sim.call(Method::GET, "/", None);
    assert_eq!(s, 200);
}

#[test]
fn cluster_info_reports_the_configured_version_or_wazuh_compat_7_10_2() {
    let sim = Sim::start(SimConfig {
        server_version: "2.11.0".into(),
        ..cfg(10)
    });
    let (s, v) = sim.call(Method::GET, "/", None);
    assert_eq!(s, 200);
    assert_eq!(v["version"]["number"], "2.11.0");
    assert_eq!(v["version"]["distribution"], "opensearch");
    assert_eq!(
        v["tagline"],
        "The OpenSearch Project: https://opensearch.org/"
    );
    assert!(
        v["cluster_name"].is_string() && v["cluster_uuid"].is_string() && v["name"].is_string()
    );

    let compat = Sim::start(SimConfig {
        wazuh_compat: true,
        ..cfg(10)
    });
    let (_, v) = compat.call(Method::GET, "/", None);
    assert_eq!(v["version"]["number"], "7.10.2");
    assert!(v["version"].get("distribution").is_none());
}

#[test]
fn the_certificate_verifies_against_the_generated_ca_for_localhost_and_127_0_0_1_only() {
    let sim = Sim::start(cfg(10));
    let port = sim.handle.addr().port();
    for host in ["localhost", "127.0.0.1"] {
        let r = sim
            .client
            .get(format!("https://{host}:{port}/"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{host}");
    }
    // Another simulator's CA does not verify this server.
    let other = Sim::start(cfg(1));
    let wrong = client(other.handle.ca_pem(), Duration::from_secs(5));
    assert!(wrong
        .get(format!("https://localhost:{port}/"))
        .send()
        .is_err());
    // Plain HTTP is not served.
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .map(|r| !r.status().is_success())
        .unwrap_or(true));
}
