//! `[[notify]]` routes and `[delivery]`: where incidents' messages go, and how hard we try.
//!
//! Design constraints:
//! - A route's secrets (signing secret, API key, routing key, a Slack or Teams URL, the SMTP
//!   password) are never in this file's values: they are paths (`secret_file`, `url_file`,
//!   `password_file`) or environment variables (`SIGNALFOUNDRY_NOTIFY_<NAME>_SECRET`,
//!   `..._URL`, `..._PASSWORD`), read by `stages::deliver::routes` and kept in `Secret`s.
//! - A `url` holding a user name or password is refused; plain `http://` and SMTP without TLS
//!   are refused except to loopback addresses.
//! - Every error names the route (`[[notify]] <name>`) and the key.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sf_policy::Bucket;

/// What a route delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    Webhook,
    Slack,
    Teams,
    Email,
    Pagerduty,
    Thehive,
    Iris,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Slack => "slack",
            NotifyKind::Teams => "teams",
            NotifyKind::Email => "email",
            NotifyKind::Pagerduty => "pagerduty",
            NotifyKind::Thehive => "thehive",
            NotifyKind::Iris => "iris",
        }
    }

    /// Kinds whose URL is itself a secret (anyone holding it can post): `url_file` or the
    /// environment, never `url`.
    pub fn url_is_secret(self) -> bool {
        matches!(self, NotifyKind::Slack | NotifyKind::Teams)
    }

    /// Kinds that get `incident.closed` (PagerDuty resolves its alert).
    pub fn resolves(self) -> bool {
        matches!(self, NotifyKind::Pagerduty)
    }

    /// Kinds whose held messages are summarised in one `incident.digest` (the notification
    /// kinds; PagerDuty, TheHive and IRIS need each incident as its own object).
    pub fn digests(self) -> bool {
        matches!(
            self,
            NotifyKind::Webhook | NotifyKind::Slack | NotifyKind::Teams | NotifyKind::Email
        )
    }

    /// Kinds that get `incident.updated`: not the case tools (TheHive and IRIS get the incident
    /// once, when it opens; its updates are in SignalFoundry's files and console).
    pub fn updates(self) -> bool {
        !matches!(self, NotifyKind::Thehive | NotifyKind::Iris)
    }

    /// Kinds that need a secret (`secret_file` or `SIGNALFOUNDRY_NOTIFY_<NAME>_SECRET`): the
    /// webhook's signing secret, PagerDuty's routing key, TheHive's and IRIS's API keys.
    pub fn needs_secret(self) -> bool {
        matches!(
            self,
            NotifyKind::Webhook | NotifyKind::Pagerduty | NotifyKind::Thehive | NotifyKind::Iris
        )
    }

    /// The least time between two requests to one endpoint, from the vendor's limit (Slack:
    /// about one message a second per webhook; Teams: 4 requests a second; PagerDuty: about
    /// 120 events a minute per routing key).
    pub fn min_interval(self) -> Duration {
        match self {
            NotifyKind::Slack => Duration::from_millis(1_000),
            NotifyKind::Teams => Duration::from_millis(250),
            NotifyKind::Pagerduty => Duration::from_millis(500),
            _ => Duration::ZERO,
        }
    }
}

/// PagerDuty's Events API v2 endpoint (the default `url` of a `pagerduty` route).
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// One `[[notify]]` route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `[A-Za-z0-9-]+`, unique: it names the route's messages and its figures.
    pub name: String,
    pub kind: NotifyKind,
    /// The endpoint (the base URL for TheHive and IRIS). Slack and Teams: `url_file`.
    #[serde(default)]
    pub url: Option<String>,
    /// A file (0600, ours) holding the URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The signing secret (`whsec_...`), routing key or API key, in a file (0600, ours).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// An extra CA (PEM) trusted for this endpoint.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Incidents whose highest member is at least this.
    #[serde(default = "default_min_bucket", deserialize_with = "bucket")]
    pub min_bucket: Bucket,
    /// Policy matchers on the incident's first member.
    #[serde(default, rename = "match")]
    pub match_table: Option<toml::Table>,
    /// Messages sent per hour at most; beyond it they are held (never dropped).
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: u32,
    /// An open incident's new members: at most one update per this.
    #[serde(default = "d_10m", deserialize_with = "super::duration")]
    pub update_every: Duration,
    /// Requests in flight at once to this route.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// One request's timeout.
    #[serde(default = "d_30s", deserialize_with = "super::duration")]
    pub timeout: Duration,

    // email
    #[serde(default)]
    pub smtp_host: Option<String>,
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    #[serde(default = "yes")]
    pub starttls: bool,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,

    // thehive
    /// `X-Organisation`, for a user in several organisations.
    #[serde(default)]
    pub organisation: Option<String>,
    /// TheHive's alert `type` (with `source` and `sourceRef`, its unique key).
    #[serde(default = "default_alert_type")]
    pub alert_type: String,
    #[serde(default = "default_source")]
    pub source: String,
    /// TLP 2.0: 0 CLEAR, 1 GREEN, 2 AMBER, 3 AMBER+STRICT, 4 RED.
    #[serde(default = "default_tlp")]
    pub tlp: u8,
    /// PAP 0 to 3.
    #[serde(default = "default_tlp")]
    pub pap: u8,
    #[serde(default)]
    pub tags: Vec<String>,

    // iris
    #[serde(default = "default_customer")]
    pub customer_id: i64,
    /// IRIS's alert status id for new alerts (2 is `New` on a fresh install).
    #[serde(default = "default_status_id")]
    pub status_id: i64,
}

/// `[delivery]`: retries, for every route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Attempts before a message is `dead`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// A message failing this long after it was made due is `dead`.
    #[serde(default = "d_24h", deserialize_with = "super::duration")]
    pub max_age: Duration,
    /// The first retry's delay; each next one doubles it (with jitter, at most an hour).
    #[serde(default = "d_5s", deserialize_with = "super::duration")]
    pub retry_base: Duration,
    /// The longest one deliver stage runs (what is left waits for the next).
    #[serde(default = "d_2m", deserialize_with = "super::duration")]
    pub max_duration: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        toml::from_str("").expect("the empty [delivery] is valid")
    }
}

fn bucket<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Bucket, D::Error> {
    let s = String::deserialize(d)?;
    Bucket::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "min_bucket {s:?} is not a bucket (suppressed, low, medium, high)"
        ))
    })
}

fn default_min_bucket() -> Bucket {
    Bucket::High
}
fn default_max_per_hour() -> u32 {
    60
}
fn default_concurrency() -> usize {
    2
}
fn default_smtp_port() -> u16 {
    587
}
fn yes() -> bool {
    true
}
fn default_alert_type() -> String {
    "wazuh".into()
}
fn default_source() -> String {
    "SignalFoundry".into()
}
fn default_tlp() -> u8 {
    2
}
fn default_customer() -> i64 {
    1
}
fn default_status_id() -> i64 {
    2
}
fn default_max_attempts() -> u32 {
    12
}
fn d_5s() -> Duration {
    Duration::from_secs(5)
}
fn d_10m() -> Duration {
    Duration::from_secs(600)
}
fn d_30s() -> Duration {
    Duration::from_secs(30)
}
fn d_24h() -> Duration {
    Duration::from_secs(86_400)
}
fn d_2m() -> Duration {
    Duration::from_secs(120)
}

/// The host of a URL (`https://host:port/...`), lowercased, brackets kept off an IPv6 literal.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A route's endpoint URL, judged: `https://`, or `http://` to a loopback address; never with
/// credentials in it. `what` names it; the message never quotes a secret URL.
pub fn check_url(url: &str, what: &str, quote: bool) -> Result<(), String> {
    let shown = if quote {
        format!(" {:?}", super::redact_url(url))
    } else {
        String::new()
    };
    if super::has_userinfo(url) {
        return Err(format!(
            "{what}{shown} holds a user name or password (before an `@`): take them out; \
             credentials go in secret_file"
        ));
    }
    let lower = url.to_ascii_lowercase();
    let Some(host) = url_host(url) else {
        return Err(format!("{what}{shown} is not a URL (https://host/path)"));
    };
    if lower.starts_with("https://") {
        return Ok(());
    }
    if lower.starts_with("http://") {
        if is_loopback_host(&host) {
            return Ok(());
        }
        return Err(format!(
            "{what}{shown} is plain http:// to {host}: use https:// (plain http is allowed only \
             to a loopback address)"
        ));
    }
    Err(format!("{what}{shown} must start with https://"))
}

/// Checks `[delivery]`'s durations (bounded, so no deadline overflows).
pub fn validate_delivery(d: &DeliveryConfig) -> Result<(), String> {
    let day = Duration::from_secs(86_400);
    if d.max_age.is_zero() || d.max_age > 365 * day {
        return Err("delivery.max_age must be more than 0s and at most 365d".into());
    }
    if d.retry_base.is_zero() || d.retry_base > Duration::from_secs(3600) {
        return Err("delivery.retry_base must be more than 0s and at most 1h".into());
    }
    if d.max_duration.is_zero() || d.max_duration > day {
        return Err("delivery.max_duration must be more than 0s and at most 24h".into());
    }
    Ok(())
}

/// Checks every route: names, the keys each kind needs, URLs, TLS.
pub fn validate(routes: &[NotifyConfig]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for r in routes {
        let name = &r.name;
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "[[notify]] name {:?} must be 1 to 64 of [A-Za-z0-9-]",
                crate::store::fsx::escape_text(name)
            ));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(format!("[[notify]] name {name:?} is used twice"));
        }
        let label = format!("[[notify]] {name}");
        let kind = r.kind.as_str();
        if r.max_per_hour == 0 {
            return Err(format!("{label}: max_per_hour must be at least 1"));
        }
        if r.concurrency == 0 || r.concurrency > 16 {
            return Err(format!("{label}: concurrency must be 1 to 16"));
        }
        if r.timeout.is_zero() || r.timeout > Duration::from_secs(600) {
            return Err(format!(
                "{label}: timeout must be more than 0s and at most 10m"
            ));
        }
        if r.update_every > Duration::from_secs(30 * 86_400) {
            return Err(format!("{label}: update_every is at most 30d"));
        }
        if r.tlp > 4 || r.pap > 3 {
            return Err(format!("{label}: tlp is 0 to 4 and pap 0 to 3"));
        }
        if let Some(m) = &r.match_table {
            compile_match(name, m).map_err(|e| format!("{label}: {e}"))?;
        }
        match r.kind {
            NotifyKind::Email => {
                let host = r
                    .smtp_host
                    .as_deref()
                    .ok_or_else(|| format!("{label}: kind email needs smtp_host"))?;
                if r.from.is_none() || r.to.is_empty() {
                    return Err(format!("{label}: kind email needs from and to (a list)"));
                }
                if !r.starttls && !is_loopback_host(&host.to_ascii_lowercase()) {
                    return Err(format!(
                        "{label}: starttls = false sends mail in clear text to {host}: allowed \
                         only to a loopback address"
                    ));
                }
                if r.password_file.is_some() && r.username.is_none() {
                    return Err(format!(
                        "{label}: password_file needs username (the password comes from \
                         password_file, or SIGNALFOUNDRY_NOTIFY_{}_PASSWORD)",
                        env_name(name)
                    ));
                }
                if r.url.is_some() || r.url_file.is_some() {
                    return Err(format!("{label}: kind email takes smtp_host, not url"));
                }
            }
            _ => {
                if r.kind.url_is_secret() && r.url.is_some() {
                    return Err(format!(
                        "{label}: a {kind} URL is a secret (anyone holding it can post): put it \
                         in url_file (mode 0600) or SIGNALFOUNDRY_NOTIFY_{}_URL, not in url",
                        env_name(name)
                    ));
                }
                if r.url.is_some() && r.url_file.is_some() {
                    return Err(format!("{label}: url and url_file: choose one"));
                }
                if let Some(url) = &r.url {
                    check_url(url, &format!("{label}: url"), true)?;
                } else if r.url_file.is_none()
                    && !r.kind.url_is_secret()
                    && r.kind != NotifyKind::Pagerduty
                {
                    return Err(format!("{label}: kind {kind} needs url"));
                }
                if r.smtp_host.is_some() || r.from.is_some() || !r.to.is_empty() {
                    return Err(format!(
                        "{label}: smtp_host, from and to are for kind email"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A route's `match` table, compiled (`sf_policy::MatchTable`).
pub fn compile_match(name: &str, table: &toml::Table) -> Result<sf_policy::MatchTable, String> {
    let mut doc = toml::Table::new();
    doc.insert("match".into(), toml::Value::Table(table.clone()));
    let src = toml::to_string(&doc).map_err(|e| format!("match: {e}"))?;
    sf_policy::MatchTable::compile(&src, &format!("[[notify]] {name} match")).map_err(|diags| {
        diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// A route's name as it appears in its environment variables: `soc-webhook` → `SOC_WEBHOOK`.
pub fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(text: &str) -> Result<Vec<NotifyConfig>, String> {
        #[derive(Deserialize)]
        struct Doc {
            notify: Vec<NotifyConfig>,
        }
        let d: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(&d.notify).map(|()| d.notify)
    }

    #[test]
    fn a_webhook_route_takes_its_defaults() {
        let r = routes(
            "[[notify]]\nname = \"soc-webhook\"\nkind = \"webhook\"\nurl = \"https://hooks.example/soc\"\nsecret_file = \"/etc/x\"\n",
        )
        .unwrap();
        assert_eq!(r[0].min_bucket, Bucket::High);
        assert_eq!(r[0].max_per_hour, 60);
        assert_eq!(r[0].update_every, Duration::from_secs(600));
    }

    #[test]
    fn plain_http_and_clear_smtp_are_refused_except_to_loopback() {
        let e = routes(
            "[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://hooks.example/x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("plain http://"), "{e}");
        routes("[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n")
            .unwrap();
        let e = routes("[[notify]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"mail.example\"\nstarttls = false\nfrom = \"a@b\"\nto = [\"c@d\"]\n").unwrap_err();
        assert!(e.contains("clear text"), "{e}");
        routes("[[notify]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"localhost\"\nstarttls = false\nfrom = \"a@b\"\nto = [\"c@d\"]\n").unwrap();
    }

    #[test]
    fn a_secret_url_in_the_file_is_refused_without_quoting_it() {
        let e = routes("[[notify]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T0/B0/canarySECRET\"\n").unwrap_err();
        assert!(e.contains("url_file"), "{e}");
        assert!(!e.contains("canarySECRET"), "{e}");
    }

    #[test]
    fn names_are_checked_and_unique() {
        let e = routes("[[notify]]\nname = \"a b\"\nkind = \"webhook\"\nurl = \"https://x/\"\n")
            .unwrap_err();
        assert!(e.contains("[A-Za-z0-9-]"), "{e}");
        let e = routes("[[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"https://x/\"\n[[notify]]\nname = \"A\"\nkind = \"webhook\"\nurl = \"https://x/\"\n").unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn a_bad_match_names_the_route() {
        let e = routes("[[notify]]\nname = \"p\"\nkind = \"pagerduty\"\nmatch = { \"rule.id\" = { regex = \"(\" } }\n").unwrap_err();
        assert!(e.contains("[[notify]] p"), "{e}");
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://Hooks.Example:8443/x").as_deref(),
            Some("hooks.example")
        );
        assert_eq!(url_host("http://[::1]:80/").as_deref(), Some("::1"));
        assert!(is_loopback_host("127.0.0.2"));
        assert!(!is_loopback_host("10.0.0.1"));
    }
}
