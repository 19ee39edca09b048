//! Shared helpers: starting a simulator, an authenticated HTTPS client pinned to its CA.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indexer_sim::{SimConfig, SimHandle, Simulator};
use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};

pub const USER: &str = "sf-poller";
pub const PASSWORD: &str = "canary-Pw-7f3e9";
pub const INDEX: &str = "wazuh-alerts-4.x-*";
pub const POLL_SORT: &str = r#"[{"timestamp":"asc"},{"manager.name":"asc"},{"id":"asc"}]"#;

pub fn end_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-09-12T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn cfg(alerts: usize) -> SimConfig {
    SimConfig {
        alerts,
        seed: 42,
        end_time: Some(end_time()),
        username: USER.into(),
        password: PASSWORD.into(),
        ..SimConfig::default()
    }
}

pub fn poll_sort() -> Value {
    serde_json::from_str(POLL_SORT).unwrap()
}

pub fn client(ca_pem: &str, timeout: Duration) -> Client {
    Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(timeout)
        .build()
        .unwrap()
}

pub struct Sim {
    pub handle: SimHandle,
    pub client: Client,
    pub base: String,
}

impl Sim {
    pub fn start(cfg: SimConfig) -> Sim {
        Sim::start_with_timeout(cfg, Duration::from_secs(20))
    }

    pub fn start_with_timeout(cfg: SimConfig, timeout: Duration) -> Sim {
        let handle = Simulator::start(cfg).unwrap();
        let client = client(handle.ca_pem(), timeout);
        let base = format!("https://localhost:{}", handle.addr().port());
        Sim {
            handle,
            client,
            base,
        }
    }

    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Response> {
        let mut rb = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .basic_auth(USER, Some(PASSWORD));
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        rb.send()
    }

    /// An authenticated request whose answer must be JSON.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let r = self.send(method, path, body).unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, v)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body))
    }

    pub fn count(&self, index: &str, query: &Value) -> u64 {
        let (s, v) = self.post(&format!("/{index}/_count"), &json!({ "query": query }));
        assert_eq!(s, 200, "{v}");
        v["count"].as_u64().unwrap()
    }

    /// Pages through `index` with the poller's sort and `search_after`, optionally inside a PIT.
    pub fn page_all(
        &self,
        index: &str,
        query: &Value,
        size: usize,
        pit: Option<&str>,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({"size": size, "query": query, "sort": poll_sort(), "track_total_hits": false});
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            let path = match pit {
                Some(id) => {
                    body["pit"] = json!({"id": id, "keep_alive": "1m"});
                    "/_search".to_string()
                }
                None => format!("/{index}/_search"),
            };
            let (s, v) = self.post(&path, &body);
            assert_eq!(s, 200, "{v}");
            let hits = v["hits"]["hits"].as_array().unwrap().clone();
            if hits.is_empty() {
                return out;
            }
            after = Some(hits.last().unwrap()["sort"].clone());
            out.extend(hits);
        }
    }
}

pub fn ts_ms(source: &Value) -> i64 {
    DateTime::parse_from_str(
        source["timestamp"].as_str().unwrap(),
        "%Y-%m-%dT%H:%M:%S%.3f%z",
    )
    .unwrap()
    .timestamp_millis()
}
