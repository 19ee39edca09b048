//! The simulator's configuration (`SimConfig`) and the faults it can inject (`FaultKind`).
//!
//! Promises: `SimConfig::default()` is a quiet, fault-free 2.19.1 indexer with a small generated
//! corpus; every field can be set by the CLI or by an embedding test.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// How a simulator run is set up. Build it with `SimConfig { field: .., ..SimConfig::default() }`.
#[derive(Clone)]
pub struct SimConfig {
    /// Address to bind (loopback only in tests); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Number of alerts to generate (ignored when `corpus` is set).
    pub alerts: usize,
    /// Seed of the generated corpus, the late-indexing choice and the fault sequence.
    pub seed: u64,
    /// JSON-lines file to load instead of generating (bare alerts or indexer hits).
    pub corpus: Option<PathBuf>,
    /// The generated corpus covers the hour before this instant; `None`: now.
    pub end_time: Option<DateTime<Utc>>,
    /// Live mode: documents become searchable at this many per second, in timestamp order,
    /// starting when the simulator starts. `None`: everything is searchable at once.
    pub rate: Option<f64>,
    /// Fraction of documents indexed late: searchable only some time after later ones.
    pub late_rate: f64,
    /// Probability that a `_search`/`_count`/PIT request gets a fault.
    pub fault_rate: f64,
    /// The kinds to draw from; `None`: every transient kind (never `Unauthorized`).
    pub faults: Option<Vec<FaultKind>>,
    /// The OpenSearch version; point in time exists from 2.4 on.
    pub server_version: String,
    /// `GET /` answers `version.number: "7.10.2"` without `distribution`, as a real Wazuh 4.x
    /// indexer does (its compatibility setting for Filebeat-OSS); point in time still follows
    /// `server_version`.
    pub wazuh_compat: bool,
    /// HTTP basic auth user.
    pub username: String,
    /// HTTP basic auth password.
    pub password: String,
    /// How long a `Slow` fault delays its response.
    pub slow_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            alerts: 1000,
            seed: 1,
            corpus: None,
            end_time: None,
            rate: None,
            late_rate: 0.0,
            fault_rate: 0.0,
            faults: None,
            server_version: "2.19.1".to_string(),
            wazuh_compat: false,
            username: "admin".to_string(),
            password: String::new(),
            slow_ms: 5000,
        }
    }
}

impl fmt::Debug for SimConfig {
    // The password is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("alerts", &self.alerts)
            .field("seed", &self.seed)
            .field("corpus", &self.corpus)
            .field("end_time", &self.end_time)
            .field("rate", &self.rate)
            .field("late_rate", &self.late_rate)
            .field("fault_rate", &self.fault_rate)
            .field("faults", &self.faults)
            .field("server_version", &self.server_version)
            .field("wazuh_compat", &self.wazuh_compat)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("slow_ms", &self.slow_ms)
            .finish()
    }
}

/// A fault the simulator can inject into `_search`, `_count` and point-in-time calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// 429 `rejected_execution_exception` with `Retry-After: 1`.
    TooMany,
    /// 500 `exception`.
    Internal,
    /// 503 `search_phase_execution_exception` "all shards failed".
    Unavailable,
    /// The right answer, after `slow_ms`.
    Slow,
    /// An honest `Content-Length`, then the connection closes mid-body.
    Truncated,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with `_shards.failed > 0` (and `failures`) or `timed_out: true`, and a subset of hits.
    Partial,
    /// 401 as for wrong credentials; only when named.
    Unauthorized,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::TooMany,
        FaultKind::Internal,
        FaultKind::Unavailable,
        FaultKind::Slow,
        FaultKind::Truncated,
        FaultKind::Malformed,
        FaultKind::Partial,
        FaultKind::Unauthorized,
    ];
    /// The mix `--fault-rate` alone draws from: every kind but `Unauthorized`.
    pub const TRANSIENT: [FaultKind; 7] = [
        FaultKind::TooMany,
        FaultKind::Internal,
        FaultKind::Unavailable,
        FaultKind::Slow,
        FaultKind::Truncated,
        FaultKind::Malformed,
        FaultKind::Partial,
    ];

    /// The name used by `--faults` and in `SimStats`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::TooMany => "429",
            FaultKind::Internal => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Slow => "slow",
            FaultKind::Truncated => "truncated",
            FaultKind::Malformed => "malformed",
            FaultKind::Partial => "partial",
            FaultKind::Unauthorized => "401",
        }
    }

    /// Parses a comma list such as `429,500,slow,truncated`.
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let kind = part.parse::<FaultKind>()?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        if out.is_empty() {
            return Err("no fault kinds named".to_string());
        }
        Ok(out)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "429" | "too-many" | "toomany" => FaultKind::TooMany,
            "500" | "internal" => FaultKind::Internal,
            "503" | "unavailable" => FaultKind::Unavailable,
            "slow" | "timeout" => FaultKind::Slow,
            "truncated" | "truncate" => FaultKind::Truncated,
            "malformed" => FaultKind::Malformed,
            "partial" => FaultKind::Partial,
            "401" | "unauthorized" => FaultKind::Unauthorized,
            other => {
                return Err(format!(
                    "unknown fault kind {other:?}; expected some of 429,500,503,slow,truncated,malformed,partial,401"
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_names_and_codes() {
        assert_eq!(
            FaultKind::parse_list("429, 500,slow,401,429").unwrap(),
            vec![
                FaultKind::TooMany,
                FaultKind::Internal,
                FaultKind::Slow,
                FaultKind::Unauthorized
            ]
        );
        assert!(FaultKind::parse_list("418").is_err());
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>().unwrap(), k);
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let cfg = SimConfig {
            password: "canary-Xq9".into(),
            ..SimConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("canary-Xq9"));
    }
}
