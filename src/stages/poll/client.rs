//! The indexer's HTTPS client: TLS always verified (a pinned CA, an overridable name to check),
//! basic auth, and one retry policy for every call.
//!
//! Design constraints:
//! - TLS is never turned off. `ca_file` pins the CA (built-in roots off); `tls_server_name`
//!   makes the client connect to the URL's address while verifying the other name.
//! - 429 (honouring `Retry-After`), 5xx, timeouts, failed connections, truncated or malformed
//!   bodies and partial results are retried with exponential backoff and jitter, a bounded
//!   number of times; 401, 403 and TLS failures fail at once, saying what to fix.
//! - The password lives in a [`Secret`]; it goes into the `Authorization` header (which
//!   reqwest marks sensitive) and nowhere else: never in a URL, a log line or an error.
//! - The URL is shown only through [`redact_url`] (configuration refuses credentials in it
//!   already; this holds for a URL from anywhere else too).
//! - The retry policy is data ([`ClientOptions`]), so tests run it with short timeouts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::wire;
use super::{PollError, Secret};
use crate::config::{redact_url, IndexerConfig};

/// Timeouts and the retry policy.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout (`[indexer] timeout`).
    pub timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_max: Duration,
}

impl ClientOptions {
    pub fn from_config(ix: &IndexerConfig) -> ClientOptions {
        ClientOptions {
            timeout: ix.timeout,
            max_attempts: 6,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            retry_after_max: Duration::from_secs(30),
        }
    }

    /// Short everything: for tests that exercise timeouts and retries.
    pub fn for_tests() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_millis(800),
            max_attempts: 4,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(50),
            retry_after_max: Duration::from_millis(50),
        }
    }

    /// The pause before attempt `attempt + 1`: "equal jitter" over an exponential ceiling,
    /// raised to the server's `Retry-After` (capped).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>, rand: u32) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.backoff_max);
        let half = ceiling / 2;
        let jitter = half.mul_f64(f64::from(rand) / f64::from(u32::MAX));
        let d = half + jitter;
        match retry_after {
            Some(ra) => d.max(ra.min(self.retry_after_max)),
            None => d,
        }
    }
}

/// Why one attempt did not produce a usable answer.
enum Attempt {
    /// Try again (after `after` at least, when the server said so).
    Retry {
        reason: String,
        after: Option<Duration>,
        partial: bool,
    },
    /// No retry can help.
    Fatal(PollError),
}

/// A client bound to one indexer.
pub struct Indexer {
    http: Client,
    /// `https://host:port` (with `tls_server_name` as the host when set), no trailing `/`.
    base: String,
    /// The URL as configured, for messages.
    shown: String,
    username: String,
    password: Secret,
    opts: ClientOptions,
    ca_file: Option<String>,
    tls_server_name: Option<String>,
    pub retries: AtomicU64,
    pub partial_retries: AtomicU64,
    pub requests: AtomicU64,
}

/// Parsed `[indexer] url`: no credentials in it (checked first, before anything quotes it),
/// `https` only.
fn parse_url(raw: &str) -> Result<reqwest::Url, PollError> {
    let shown = redact_url(raw);
    if crate::config::has_userinfo(raw) {
        return Err(PollError::Config(format!(
            "[indexer] url {shown:?} must not contain a user name or password; set [indexer] username, and the password in password_file or SIGNALFOUNDRY_INDEXER_PASSWORD"
        )));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|e| PollError::Config(format!("[indexer] url {shown:?} is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(PollError::Config(format!(
            "[indexer] url {shown:?} must not contain a user name or password; set [indexer] username, and the password in password_file or SIGNALFOUNDRY_INDEXER_PASSWORD"
        )));
    }
    if url.scheme() != "https" {
        return Err(PollError::Config(format!(
            "[indexer] url {shown:?} must use https:// (TLS is always on and always verified)"
        )));
    }
    if url.host_str().is_none() {
        return Err(PollError::Config(format!(
            "[indexer] url {shown:?} has no host"
        )));
    }
    Ok(url)
}

impl Indexer {
    /// Builds the client: pinned CA, name override, timeouts. Nothing is sent yet.
    pub fn new(
        ix: &IndexerConfig,
        password: &Secret,
        opts: ClientOptions,
    ) -> Result<Indexer, PollError> {
        let mut url = parse_url(&ix.url)?;
        let mut b = Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .pool_max_idle_per_host(4)
            .user_agent(concat!("signalfoundry/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &ix.ca_file {
            let pem = std::fs::read(path).map_err(|e| PollError::CaFile {
                path: path.clone(),
                reason: format!("cannot read it: {e}"),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| PollError::CaFile {
                    path: path.clone(),
                    reason: format!("not a PEM certificate bundle: {e}"),
                })?;
            if certs.is_empty() {
                return Err(PollError::CaFile {
                    path: path.clone(),
                    reason: "holds no PEM certificate (expected the indexer's root-ca.pem)".into(),
                });
            }
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(name) = &ix.tls_server_name {
            if name.parse::<std::net::IpAddr>().is_ok() || name.is_empty() || name.contains('/') {
                return Err(PollError::Config(format!(
                    "[indexer] tls_server_name {name:?} must be a DNS name (the name the indexer's certificate carries)"
                )));
            }
            let host = url
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_string();
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => (host.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| PollError::Connect(format!("cannot resolve {host}: {e}")))?
                    .collect(),
            };
            url.set_host(Some(name)).map_err(|e| {
                PollError::Config(format!("[indexer] tls_server_name {name:?}: {e}"))
            })?;
            b = b.resolve_to_addrs(name, &addrs);
        }
        let http = b
            .build()
            .map_err(|e| PollError::Config(format!("cannot set up the HTTPS client: {e}")))?;
        let base = url.as_str().trim_end_matches('/').to_string();
        Ok(Indexer {
            http,
            base,
            shown: redact_url(ix.url.trim_end_matches('/')),
            username: ix.username.clone(),
            password: password.clone(),
            opts,
            ca_file: ix.ca_file.as_ref().map(|p| p.display().to_string()),
            tls_server_name: ix.tls_server_name.clone(),
            retries: AtomicU64::new(0),
            partial_retries: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    pub fn url(&self) -> &str {
        &self.shown
    }

    /// One call with the retry policy: `check` turns a parsed but partial answer into a retry.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
        check: impl Fn(&T) -> Option<String>,
    ) -> Result<T, PollError> {
        self.call_attempts(method, path, body, what, self.opts.max_attempts, check)
    }

    /// [`Indexer::call`] with its own bound on attempts.
    pub fn call_attempts<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
        max_attempts: u32,
        check: impl Fn(&T) -> Option<String>,
    ) -> Result<T, PollError> {
        let max_attempts = max_attempts.max(1);
        let body = body.map(|b| b.to_string());
        let mut last = String::new();
        for attempt in 1..=max_attempts {
            let (reason, after) = match self.once(&method, path, body.as_deref(), what) {
                Ok(bytes) => match serde_json::from_slice::<T>(&bytes) {
                    Ok(t) => match check(&t) {
                        None => return Ok(t),
                        Some(p) => {
                            self.partial_retries.fetch_add(1, Ordering::Relaxed);
                            (p, None)
                        }
                    },
                    Err(e) => (
                        format!("malformed answer ({} bytes): {e}", bytes.len()),
                        None,
                    ),
                },
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry {
                    reason,
                    after,
                    partial,
                }) => {
                    if partial {
                        self.partial_retries.fetch_add(1, Ordering::Relaxed);
                    }
                    (reason, after)
                }
            };
            tracing::debug!(what, attempt, "indexer call failed, will retry: {reason}");
            last = reason;
            if attempt < max_attempts {
                self.retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(self.opts.backoff(
                    attempt,
                    after,
                    crate::store::fsx::rand_u32(),
                ));
            }
        }
        Err(PollError::GaveUp {
            what: what.to_string(),
            url: self.shown.clone(),
            attempts: max_attempts,
            last,
        })
    }

    fn once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&str>,
        what: &str,
    ) -> Result<Vec<u8>, Attempt> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(self.password.expose()));
        if let Some(b) = body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = rb.send().map_err(|e| self.transport(&e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match resp.bytes() {
            Ok(b) => b.to_vec(),
            Err(e) => {
                return Err(Attempt::Retry {
                    reason: format!("truncated answer (HTTP {}): {}", status.as_u16(), chain(&e)),
                    after: None,
                    partial: false,
                })
            }
        };
        if status.is_success() {
            return Ok(bytes);
        }
        let (kind, reason) = serde_json::from_slice::<wire::ErrorBody>(&bytes)
            .map(|e| e.kind_reason())
            .unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                (String::new(), text)
            });
        match status {
            StatusCode::UNAUTHORIZED => Err(Attempt::Fatal(PollError::Unauthorized {
                url: self.shown.clone(),
                username: self.username.clone(),
            })),
            StatusCode::FORBIDDEN => Err(Attempt::Fatal(PollError::Forbidden {
                url: self.shown.clone(),
                username: self.username.clone(),
                what: what.to_string(),
                reason: one_line(&reason),
            })),
            StatusCode::TOO_MANY_REQUESTS => Err(Attempt::Retry {
                reason: format!("HTTP 429 {kind}: {}", one_line(&reason)),
                after: retry_after,
                partial: false,
            }),
            s if s.is_server_error() => Err(Attempt::Retry {
                reason: format!("HTTP {} {kind}: {}", s.as_u16(), one_line(&reason)),
                after: retry_after,
                partial: false,
            }),
            s => Err(Attempt::Fatal(PollError::Refused {
                what: what.to_string(),
                status: s.as_u16(),
                kind,
                reason: one_line(&reason),
            })),
        }
    }

    /// Classifies a failed send: TLS failures are fatal with what to fix; the rest is retried.
    fn transport(&self, e: &reqwest::Error) -> Attempt {
        let text = chain(e);
        if let Some(problem) = tls_problem(&text) {
            let fix = match problem {
                TlsProblem::UnknownIssuer => match &self.ca_file {
                    Some(ca) => format!(
                        "the indexer's certificate is not signed by the CA in ca_file {ca}: point [indexer] ca_file at the indexer's root-ca.pem"
                    ),
                    None => "the indexer's certificate is signed by a CA this host does not trust (a self-signed CA, as Wazuh installs make): set [indexer] ca_file to the indexer's root-ca.pem".to_string(),
                },
                TlsProblem::NameMismatch => match &self.tls_server_name {
                    Some(n) => format!(
                        "the indexer's certificate does not name {n:?} (set by tls_server_name): set [indexer] tls_server_name to a name the certificate carries"
                    ),
                    None => "the indexer's certificate does not name the host in the url: use a host name the certificate carries, or set [indexer] tls_server_name to it".to_string(),
                },
                TlsProblem::Expired => "the indexer's certificate has expired or is not valid yet: renew it, or check this host's clock".to_string(),
                TlsProblem::Other => "the TLS handshake failed: check that the url is the indexer's HTTPS port and that ca_file is its root-ca.pem".to_string(),
            };
            return Attempt::Fatal(PollError::Tls {
                url: self.shown.clone(),
                fix,
                detail: text,
            });
        }
        let reason = if e.is_timeout() {
            format!("timed out after {:?}", self.opts.timeout)
        } else if e.is_connect() {
            format!("cannot connect: {text}")
        } else {
            text
        };
        Attempt::Retry {
            reason,
            after: None,
            partial: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    UnknownIssuer,
    NameMismatch,
    Expired,
    Other,
}

/// Recognizes a TLS verification failure in an error chain's text (rustls's messages).
pub fn tls_problem(text: &str) -> Option<TlsProblem> {
    // BadSignature: an issuer of the right name (two throwaway CAs share their subject) that
    // did not sign the certificate: the same fix as an unknown issuer.
    if text.contains("UnknownIssuer")
        || text.contains("unknown issuer")
        || text.contains("UnknownCA")
        || text.contains("BadSignature")
    {
        Some(TlsProblem::UnknownIssuer)
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        Some(TlsProblem::NameMismatch)
    } else if text.contains("certificate expired")
        || text.contains("Expired")
        || text.contains("NotValidYet")
        || text.contains("not valid yet")
    {
        Some(TlsProblem::Expired)
    } else if text.contains("invalid peer certificate")
        || text.contains("InvalidCertificate")
        || text.contains("received fatal alert")
        || text.contains("corrupt message")
        || text.contains("InvalidContentType")
    {
        Some(TlsProblem::Other)
    } else {
        None
    }
}

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let o = ClientOptions {
            timeout: Duration::from_secs(1),
            max_attempts: 6,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            retry_after_max: Duration::from_secs(5),
        };
        assert_eq!(o.backoff(1, None, 0), Duration::from_millis(50));
        assert_eq!(o.backoff(1, None, u32::MAX), Duration::from_millis(100));
        assert_eq!(o.backoff(3, None, 0), Duration::from_millis(200));
        assert_eq!(o.backoff(30, None, u32::MAX), Duration::from_secs(1));
        assert_eq!(
            o.backoff(1, Some(Duration::from_secs(2)), 0),
            Duration::from_secs(2)
        );
        assert_eq!(
            o.backoff(1, Some(Duration::from_secs(60)), 0),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn rustls_verification_messages_are_recognized() {
        assert_eq!(
            tls_problem("error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"),
            Some(TlsProblem::UnknownIssuer)
        );
        assert_eq!(
            tls_problem("invalid peer certificate: certificate not valid for name \"x\"; certificate is only valid for localhost"),
            Some(TlsProblem::NameMismatch)
        );
        assert_eq!(
            tls_problem("invalid peer certificate: NotValidForName"),
            Some(TlsProblem::NameMismatch)
        );
        assert_eq!(
            tls_problem("invalid peer certificate: BadSignature"),
            Some(TlsProblem::UnknownIssuer)
        );
        assert_eq!(tls_problem("connection refused"), None);
    }

    #[test]
    fn urls_must_be_https_without_credentials() {
        assert!(parse_url("https://wazuh-indexer:9200").is_ok());
        assert!(matches!(
            parse_url("http://wazuh-indexer:9200"),
            Err(PollError::Config(_))
        ));
        for raw in [
            "https://admin:hunter2-canary@wazuh-indexer:9200",
            "https://admin:hunter2-canary@wazuh-indexer:notaport",
            "ftp://admin:hunter2-canary@h",
            "admin:hunter2-canary@h",
        ] {
            let e = parse_url(raw).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|m| !m.contains("hunter2-canary") && m.contains("password_file")),
                "{raw}: {e:?}"
            );
        }
    }
}
