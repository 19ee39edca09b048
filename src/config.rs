//! The TOML configuration (`signalfoundry.toml`): every section DESIGN.md lists, with defaults.
//! Unknown keys and bad values are errors that name the key, the line and the column.
//!
//! Design constraints:
//! - `[indexer] url` holding a user name or password (any `@`) is refused here, when the file
//!   is read, before anything can quote it (a log line, an error, the heartbeat, the ledger):
//!   credentials go in `username` and `password_file`. The check is on the text, not on a
//!   parse, so a URL that does not parse (a bad port) is refused too.
//! - Every message that shows a URL shows it through [`redact_url`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::store::fsx::Durability;

pub mod notify;
pub mod serve;
pub use notify::{DeliveryConfig, NotifyConfig, NotifyKind};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read configuration {}: {source}",
        crate::store::fsx::shown(path)
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {}: {message}", crate::store::fsx::shown(path))]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub indexer: Option<IndexerConfig>,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub triage: TriageConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub escalation: EscalationConfig,
    #[serde(default)]
    pub incidents: IncidentsConfig,
    #[serde(default)]
    pub heartbeat: HeartbeatConfig,
    #[serde(default)]
    pub durability: DurabilityConfig,
    #[serde(default)]
    pub run: RunConfig,
    /// `[[notify]]`: delivery routes.
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// `[serve]`: the console.
    #[serde(default)]
    pub serve: serve::ServeConfig,
}

impl Default for Config {
    fn default() -> Self {
        // An empty document yields every default.
        toml::from_str("").expect("the empty configuration is valid")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerConfig {
    #[serde(deserialize_with = "indexer_url")]
    pub url: String,
    #[serde(default = "default_index")]
    pub index: String,
    pub username: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Copied into every case and pack: refused with credentials, as `url` is.
    #[serde(default, deserialize_with = "dashboard_url")]
    pub dashboard_url: Option<String>,
    #[serde(default = "default_start_at")]
    pub start_at: String,
    #[serde(default)]
    pub min_level: u32,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default = "d_2m", deserialize_with = "duration")]
    pub overlap: Duration,
    #[serde(default = "d_15s", deserialize_with = "duration")]
    pub settle: Duration,
    #[serde(default = "d_30s", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_max_per_run")]
    pub max_per_run: u64,
    #[serde(default = "d_24h", deserialize_with = "duration")]
    pub audit_every: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default = "default_cap")]
    pub cap: u64,
    /// Default: the policy's `high` threshold.
    #[serde(default)]
    pub protect_level: Option<u32>,
    #[serde(default = "default_backlog_limit")]
    pub backlog_limit: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            cap: default_cap(),
            protect_level: None,
            backlog_limit: default_backlog_limit(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageConfig {
    #[serde(default = "default_max_alert_bytes")]
    pub max_alert_bytes: u64,
    #[serde(default = "default_quarantine_alarm")]
    pub quarantine_alarm: u64,
    /// Alerts per triage batch: one intent commit, one syncfs round and one final commit each.
    #[serde(default = "default_triage_batch")]
    pub batch: usize,
    /// Triage threads in one process (0: one per core, at most 8).
    #[serde(default)]
    pub threads: usize,
}

impl Default for TriageConfig {
    fn default() -> Self {
        TriageConfig {
            max_alert_bytes: default_max_alert_bytes(),
            quarantine_alarm: default_quarantine_alarm(),
            batch: default_triage_batch(),
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    #[serde(default = "d_30m", deserialize_with = "duration")]
    pub related_window: Duration,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            related_window: d_30m(),
        }
    }
}

/// `[incidents]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// An incident stays `open` this long after its window ends (late alerts still join it).
    #[serde(default = "d_15m", deserialize_with = "duration")]
    pub close_after: Duration,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            close_after: d_15m(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    #[serde(default)]
    pub metrics_file: Option<PathBuf>,
    /// Run history rows kept in the ledger (the newest).
    #[serde(default = "default_keep_runs")]
    pub keep_runs: u64,
    /// `heartbeats.jsonl` is rotated to `heartbeats.jsonl.1` (one old file kept) past this size.
    #[serde(default = "default_history_max_bytes")]
    pub history_max_bytes: u64,
    /// How often runs are expected (the systemd timer's interval): `status` calls a heartbeat
    /// older than twice this stale. A daemon's own cadence wins when it wrote the heartbeat.
    #[serde(default, deserialize_with = "opt_duration")]
    pub expected_every: Option<Duration>,
}

/// `[retention]`: how long each bucket's cases (and a high case's pack) are kept, by the
/// alert's own time. A bucket without a setting is kept for ever; quarantine never expires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default, deserialize_with = "opt_duration")]
    pub suppressed: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub low: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub medium: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub high: Option<Duration>,
    /// Expired rows (the bookkeeping of removed cases) are deleted this long after their alert
    /// time; until then a re-polled key of theirs is a duplicate.
    #[serde(default = "d_400d", deserialize_with = "duration")]
    pub rows: Duration,
    /// Most cases one run removes (the rest wait for the next): removal never starves triage.
    #[serde(default = "d_20000")]
    pub max_per_run: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            suppressed: None,
            low: None,
            medium: None,
            high: None,
            rows: d_400d(),
            max_per_run: d_20000(),
        }
    }
}

impl RetentionConfig {
    /// Each bucket's retention, where one is set.
    pub fn buckets(&self) -> Vec<(&'static str, Duration)> {
        [
            ("suppressed", self.suppressed),
            ("low", self.low),
            ("medium", self.medium),
            ("high", self.high),
        ]
        .into_iter()
        .filter_map(|(b, d)| d.map(|d| (b, d)))
        .collect()
    }
}

fn d_400d() -> Duration {
    Duration::from_secs(400 * 86_400)
}

fn d_20000() -> u64 {
    20_000
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        toml::from_str("").expect("the empty [heartbeat] is valid")
    }
}

fn default_keep_runs() -> u64 {
    10_000
}
fn default_history_max_bytes() -> u64 {
    64 << 20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurabilityConfig {
    #[serde(default = "default_fsync")]
    pub fsync: Durability,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        DurabilityConfig {
            fsync: default_fsync(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default = "d_4m", deserialize_with = "duration")]
    pub max_duration: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            max_duration: d_4m(),
        }
    }
}

fn default_index() -> String {
    "wazuh-alerts-4.x-*".into()
}
fn default_start_at() -> String {
    "24h".into()
}
fn default_page_size() -> u32 {
    1000
}
fn default_max_per_run() -> u64 {
    100_000
}
fn default_cap() -> u64 {
    2000
}
fn default_backlog_limit() -> u64 {
    1_000_000
}
fn default_max_alert_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_quarantine_alarm() -> u64 {
    1000
}
fn default_triage_batch() -> usize {
    2048
}
fn default_fsync() -> Durability {
    Durability::Batch
}
fn d_2m() -> Duration {
    Duration::from_secs(120)
}
fn d_15s() -> Duration {
    Duration::from_secs(15)
}
fn d_30s() -> Duration {
    Duration::from_secs(30)
}
fn d_24h() -> Duration {
    Duration::from_secs(86_400)
}
fn d_15m() -> Duration {
    Duration::from_secs(900)
}
fn d_30m() -> Duration {
    Duration::from_secs(1800)
}
fn d_4m() -> Duration {
    Duration::from_secs(240)
}

/// A duration written as humans do: `15s`, `2m`, `24h`, `1h 30m`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?} ({e}); write e.g. \"15s\", \"2m\", \"24h\""
        ))
    })
}

/// `[indexer] url`, refused when it holds credentials (the message quotes it redacted).
fn indexer_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    if has_userinfo(&url) {
        return Err(serde::de::Error::custom(format!(
            "[indexer] url {:?} holds a user name or password (before an `@`): take them out of \
             the url; set [indexer] username, and the password in password_file (or \
             SIGNALFOUNDRY_INDEXER_PASSWORD)",
            redact_url(&url)
        )));
    }
    Ok(url)
}

/// `[indexer] dashboard_url`, refused when it holds credentials: it is written into every
/// case and pack, where no secret may go (the message quotes it redacted).
fn dashboard_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    if has_userinfo(&url) {
        return Err(serde::de::Error::custom(format!(
            "[indexer] dashboard_url {:?} holds a user name or password (before an `@`): it is \
             copied into every case and escalation pack; take them out (people log in to the \
             dashboard themselves)",
            redact_url(&url)
        )));
    }
    Ok(Some(url))
}

/// True when `url` holds an `@`, the end of the userinfo in `scheme://user:password@host`.
/// Judged on the text, so a URL that does not parse is judged too; an indexer URL has no other
/// use for an `@`.
pub fn has_userinfo(url: &str) -> bool {
    url.contains('@')
}

/// `url` for a message: whatever stands between the scheme (with its slashes or backslashes)
/// and the last `@` is replaced by `***`, so no user name or password is ever quoted, whether
/// the URL parses or not.
pub fn redact_url(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_string();
    };
    let start = authority_start(url).filter(|&s| s <= at).unwrap_or(0);
    format!("{}***{}", &url[..start], &url[at..])
}

/// Where the authority of `scheme:[//]authority` starts, when `url` starts with a scheme.
fn authority_start(url: &str) -> Option<usize> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !is_scheme {
        return None;
    }
    let rest = &url[colon + 1..];
    Some(url.len() - rest.trim_start_matches(['/', '\\']).len())
}

impl Config {
    /// Parses configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: one_line_toml_error(&e, text),
        })?;
        if cfg.triage.batch == 0 || cfg.triage.batch > 100_000 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "triage.batch {} is out of range (1 to 100000)",
                    cfg.triage.batch
                ),
            });
        }
        if cfg.triage.threads > 64 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "triage.threads {} is out of range (0 for one per core, or 1 to 64)",
                    cfg.triage.threads
                ),
            });
        }
        if cfg.heartbeat.keep_runs == 0 || cfg.heartbeat.history_max_bytes < 4096 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "heartbeat.keep_runs must be at least 1 and heartbeat.history_max_bytes at least 4096".into(),
            });
        }
        if cfg.queue.cap == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "queue.cap must be at least 1".into(),
            });
        }
        notify::validate(&cfg.notify)
            .and_then(|()| notify::validate_delivery(&cfg.delivery))
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        if cfg.delivery.max_attempts == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "delivery.max_attempts must be at least 1".into(),
            });
        }
        if let Some(ix) = &cfg.indexer {
            if ix.page_size == 0 || ix.page_size > 10_000 {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "indexer.page_size {} is out of range (1 to 10000)",
                        ix.page_size
                    ),
                });
            }
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }
}

/// toml's error with its span turned into "line L, column C: message".
fn one_line_toml_error(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("sf.toml"))
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn defaults_match_design() {
        let c = Config::default();
        assert_eq!(c.queue.cap, 2000);
        assert_eq!(c.queue.backlog_limit, 1_000_000);
        assert_eq!(c.triage.max_alert_bytes, 4_194_304);
        assert_eq!(c.durability.fsync, Durability::Batch);
        assert_eq!(c.run.max_duration, Duration::from_secs(240));
        assert!(c.indexer.is_none());
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = err("[queue]\ncap = 10\ncapp = 3\n");
        assert!(e.contains("line 3, column 1"), "{e}");
        assert!(e.contains("capp"), "{e}");
        let e = err("state_dir = \"/x\"\n[bogus]\n");
        assert!(e.contains("bogus") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_values_are_named_with_their_line() {
        let e = err("[run]\nmax_duration = \"soon\"\n");
        assert!(e.contains("line 2") && e.contains("soon"), "{e}");
        let e = err("[durability]\nfsync = \"sometimes\"\n");
        assert!(e.contains("line 2") && e.contains("sometimes"), "{e}");
        let e = err("[queue]\ncap = \"many\"\n");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn the_example_deployment_configuration_parses() {
        let text = include_str!("../deploy/signalfoundry.toml");
        let c = Config::parse(text, Path::new("deploy/signalfoundry.toml")).expect("valid");
        assert_eq!(c.indexer.expect("indexer").username, "signalfoundry");
    }

    #[test]
    fn a_dashboard_url_with_credentials_is_refused_without_quoting_them() {
        let text = "[indexer]\nurl = \"https://h:9200\"\nusername = \"u\"\ndashboard_url = \"https://admin:CANARY@dash\"\n";
        let e = Config::parse(text, Path::new("c.toml")).expect_err("refused");
        let msg = format!("{e:#}");
        assert!(msg.contains("dashboard_url"), "{msg}");
        assert!(!msg.contains("CANARY") && !msg.contains("admin"), "{msg}");
        let ok = "[indexer]\nurl = \"https://h:9200\"\nusername = \"u\"\ndashboard_url = \"https://dash\"\n";
        let c = Config::parse(ok, Path::new("c.toml")).expect("parse");
        assert_eq!(
            c.indexer.and_then(|i| i.dashboard_url).as_deref(),
            Some("https://dash")
        );
    }

    #[test]
    fn an_indexer_url_with_a_user_or_password_is_refused_without_quoting_them() {
        for url in [
            "https://u:CANARY@127.0.0.1:notaport",
            "https://u:CANARY@localhost:9200",
            "ftp://u:CANARY@h",
            "https://CANARY@h:9200",
            "https://u:CAN@RY/CANARY@h",
            "u:CANARY@h",
        ] {
            let e = err(&format!("[indexer]\nurl = \"{url}\"\nusername = \"sf\"\n"));
            assert!(!e.contains("CANARY") && !e.contains("RY/"), "{url}: {e}");
            assert!(e.contains("line 2"), "{url}: {e}");
            assert!(
                e.contains("user name or password")
                    && e.contains("username")
                    && e.contains("password_file"),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn redact_url_hides_everything_before_the_last_at_and_nothing_else() {
        for (url, shown) in [
            ("https://u:pw@host:9200/x", "https://***@host:9200/x"),
            ("https://u:p@ss@host", "https://***@host"),
            (
                "https://u:pw@127.0.0.1:notaport",
                "https://***@127.0.0.1:notaport",
            ),
            ("ftp://u:pw@h", "ftp://***@h"),
            ("https:\\\\u:pw@h", "https:\\\\***@h"),
            ("u:pw@h", "u:***@h"),
            ("//u:pw@h", "***@h"),
            ("https://wazuh-indexer:9200", "https://wazuh-indexer:9200"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn durations_parse_as_humans_write_them() {
        let c = Config::parse(
            "[indexer]\nurl = \"https://x:9200\"\nusername = \"u\"\noverlap = \"90s\"\naudit_every = \"1h 30m\"\n",
            Path::new("x"),
        )
        .expect("valid");
        let ix = c.indexer.expect("indexer");
        assert_eq!(ix.overlap, Duration::from_secs(90));
        assert_eq!(ix.audit_every, Duration::from_secs(5400));
        assert_eq!(ix.index, "wazuh-alerts-4.x-*");
    }
}
