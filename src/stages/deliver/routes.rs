//! A route ready to send: its configuration, its secrets read, its HTTP client built.
//!
//! Design constraints:
//! - Secrets come from their files (judged as the indexer password's: 0600/0400, ours) or from
//!   `SIGNALFOUNDRY_NOTIFY_<NAME>_{URL,SECRET,PASSWORD}`; they live in `Secret`s and are
//!   handed to the request that uses them, never to a message. A URL that is a secret (Slack,
//!   Teams, or one read from `url_file` or the environment) is never shown; others are shown
//!   through `config::redact_url`.
//! - Redirects are never followed (Standard Webhooks: a 3xx is a failure); TLS is rustls with
//!   the Mozilla roots plus the route's `ca_file`.

use std::path::Path;

use crate::config::notify::{check_url, env_name, PAGERDUTY_EVENTS_URL};
use crate::config::{NotifyConfig, NotifyKind};
use crate::secret::{read_secret_file, Secret};

/// A route that cannot be used, and what to fix (never a secret).
#[derive(Debug, thiserror::Error)]
#[error("[[notify]] {route}: {problem}")]
pub struct RouteError {
    pub route: String,
    pub problem: String,
}

/// A loaded route.
pub struct Endpoint {
    pub cfg: NotifyConfig,
    /// The endpoint (the base URL for TheHive and IRIS); `None` for email.
    pub url: Option<Secret>,
    /// The URL may be shown (`url` in the configuration, of a kind whose URL is no secret).
    pub url_shown: Option<String>,
    /// Signing secret, routing key or API key.
    pub secret: Option<Secret>,
    /// The SMTP password.
    pub password: Option<Secret>,
    /// The extra CA, PEM.
    pub ca_pem: Option<Vec<u8>>,
    pub http: Option<reqwest::blocking::Client>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("route", &self.cfg.name)
            .field("kind", &self.cfg.kind)
            .field("url", &self.shown_url())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The URL as messages may show it.
    pub fn shown_url(&self) -> String {
        self.url_shown
            .clone()
            .unwrap_or_else(|| "<secret url>".to_string())
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// `text` with every secret of the route replaced by `<redacted>` (a receiver's answer
    /// or an error may quote what was sent).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut parts: Vec<String> = Vec::new();
        for s in [&self.url, &self.secret, &self.password]
            .into_iter()
            .flatten()
        {
            parts.push(s.expose().to_string());
        }
        // A receiver may quote part of a secret URL: its path segments and query values.
        if self.url_shown.is_none() {
            if let Some(rest) = self.url.as_ref().and_then(|u| u.expose().split_once("://")) {
                parts.extend(
                    rest.1
                        .split(['/', '?', '&', '='])
                        .filter(|p| p.len() >= 8)
                        .map(str::to_string),
                );
            }
        }
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for v in parts {
            if v.len() >= 4 {
                out = out.replace(&v, "<redacted>");
            }
        }
        out
    }

    /// The URL, to be used in a request (never formatted into a message).
    pub fn url(&self) -> &str {
        self.url.as_ref().map_or("", Secret::expose)
    }
}

fn env(route: &str, what: &str) -> Option<Secret> {
    let var = format!("SIGNALFOUNDRY_NOTIFY_{}_{what}", env_name(route));
    match std::env::var(&var) {
        Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim().to_string())),
        _ => None,
    }
}

fn file(route: &str, what: &str, path: &Path) -> Result<Secret, RouteError> {
    read_secret_file(&format!("[[notify]] {route} {what}"), path).map_err(|e| RouteError {
        route: route.to_string(),
        problem: e.to_string(),
    })
}

/// Reads a route's secrets and builds its client.
pub fn load(cfg: &NotifyConfig) -> Result<Endpoint, RouteError> {
    let name = cfg.name.as_str();
    let err = |problem: String| RouteError {
        route: name.to_string(),
        problem,
    };
    let env_var = |what: &str| format!("SIGNALFOUNDRY_NOTIFY_{}_{what}", env_name(name));
    let (url, url_shown) = match (cfg.kind, &cfg.url, &cfg.url_file) {
        (NotifyKind::Email, _, _) => (None, None),
        (_, Some(u), _) => (
            Some(Secret::new(u.clone())),
            Some(crate::config::redact_url(u)),
        ),
        (_, None, Some(path)) => (Some(file(name, "url_file", path)?), None),
        (kind, None, None) => match env(name, "URL") {
            Some(u) => (Some(u), None),
            None if kind == NotifyKind::Pagerduty => (
                Some(Secret::new(PAGERDUTY_EVENTS_URL.to_string())),
                Some(PAGERDUTY_EVENTS_URL.to_string()),
            ),
            None => {
                return Err(err(format!(
                    "no URL: set url_file (a file of mode 0600 holding it) or {}",
                    env_var("URL")
                )))
            }
        },
    };
    if let Some(u) = &url {
        // A secret URL is judged without being quoted.
        check_url(u.expose(), "url", url_shown.is_some()).map_err(err)?;
    }
    let secret = match &cfg.secret_file {
        Some(path) => Some(file(name, "secret_file", path)?),
        None => env(name, "SECRET"),
    };
    if let (NotifyKind::Webhook, Some(s)) = (cfg.kind, &secret) {
        // A malformed signing secret fails the route, not each message.
        crate::stages::deliver::formats::webhook::parse_secret(s.expose())
            .map_err(|e| err(format!("the signing secret: {e}")))?;
    }
    if cfg.kind.needs_secret() && secret.is_none() {
        let what = match cfg.kind {
            NotifyKind::Webhook => "a signing secret (whsec_<base64>)",
            NotifyKind::Pagerduty => "the integration's routing key",
            _ => "an API key",
        };
        return Err(err(format!(
            "kind {} needs {what}: set secret_file (mode 0600) or {}",
            cfg.kind.as_str(),
            env_var("SECRET")
        )));
    }
    let password = match (&cfg.username, &cfg.password_file) {
        (Some(_), Some(path)) => Some(file(name, "password_file", path)?),
        (Some(_), None) => Some(env(name, "PASSWORD").ok_or_else(|| {
            err(format!(
                "username is set but no password: set password_file (mode 0600) or {}",
                env_var("PASSWORD")
            ))
        })?),
        _ => None,
    };
    let ca_pem = match &cfg.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            err(format!(
                "ca_file {}: cannot read it ({e})",
                crate::store::fsx::shown(path)
            ))
        })?),
        None => None,
    };
    let http = match cfg.kind {
        NotifyKind::Email => None,
        _ => {
            let mut b = reqwest::blocking::Client::builder()
                .timeout(cfg.timeout)
                .connect_timeout(cfg.timeout.min(std::time::Duration::from_secs(10)))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("SignalFoundry/", env!("CARGO_PKG_VERSION")));
            if let Some(pem) = &ca_pem {
                let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                    err(format!(
                        "ca_file {}: not PEM certificates ({})",
                        cfg.ca_file
                            .as_deref()
                            .map_or_else(String::new, crate::store::fsx::shown),
                        e.without_url()
                    ))
                })?;
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
            Some(b.build().map_err(|e| {
                err(format!(
                    "cannot build its HTTPS client: {}",
                    e.without_url()
                ))
            })?)
        }
    };
    Ok(Endpoint {
        cfg: cfg.clone(),
        url,
        url_shown,
        secret,
        password,
        ca_pem,
        http,
    })
}
