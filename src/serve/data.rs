//! What the console's pages and `/api/v1` show, read from the state directory (read-only) and
//! the ledger (a read-only connection per request): one struct per page, serialised as the
//! JSON of its API and rendered by its template.
//!
//! Design constraints:
//! - Nothing here writes. Files are read through `DirFd::read_regular` (no link followed, a
//!   size bound); names come from the ledger or from ids checked by `valid_id`, never from a
//!   request's path as such.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::stages::incidents::build;
use crate::store::fsx::ReadOutcome;
use crate::store::ledger::console::{ConsoleIncidentFilter, IncidentSort};
use crate::store::ledger::incidents::{time_text, IncidentRow};
use crate::store::ledger::Ledger;
use crate::store::state::StateDir;

/// Largest page a list answers.
pub const MAX_PAGE: u64 = 200;
pub const DEFAULT_PAGE: u64 = 50;
const HISTORY_MAX: u64 = 256 << 20;
/// How long the incidents list may take for a description text (looked up by index, but a text
/// that matches most alerts still has many to sort) before it answers with what it found, partial.
pub const SCAN_BUDGET: std::time::Duration = std::time::Duration::from_millis(150);

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Ledger(#[from] crate::store::ledger::LedgerError),
    #[error(transparent)]
    State(#[from] crate::store::state::StateError),
    #[error(transparent)]
    Fs(#[from] crate::store::fsx::FsError),
    #[error("{0}")]
    Other(String),
}

/// Whether a path id is `[A-Za-z0-9-]+` (and at most 128 bytes).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Where the console reads from.
#[derive(Debug, Clone)]
pub struct Source {
    pub state_path: PathBuf,
    pub close_after: std::time::Duration,
}

impl Source {
    pub fn state(&self) -> Result<StateDir, DataError> {
        Ok(StateDir::open_read_only(&self.state_path)?)
    }
    pub fn ledger(&self) -> Result<Ledger, DataError> {
        Ok(Ledger::open_read_only(&self.state_path.join("ledger.db"))?)
    }
    pub fn ledger_path(&self) -> PathBuf {
        self.state_path.join("ledger.db")
    }
    pub fn open_cutoff(&self, now: DateTime<Utc>) -> String {
        time_text(build::minus(now, self.close_after))
    }
}

fn read_json(state: &StateDir, name: &[u8]) -> Result<Option<Value>, DataError> {
    match state.root.read_regular(name, 16 << 20)? {
        ReadOutcome::Bytes(b) => Ok(serde_json::from_slice(&b).ok()),
        _ => Ok(None),
    }
}

#[derive(Debug, Serialize)]
pub struct StageStatus {
    pub name: String,
    pub status: String,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub run_status: Option<String>,
    pub run_id: Option<String>,
    pub finished_at: Option<String>,
    pub age_s: Option<i64>,
    pub reasons: Vec<String>,
    pub stages: Vec<StageStatus>,
    /// The last run's depths (heartbeat.json).
    pub depths: BTreeMap<String, u64>,
    /// The last run's ledger rows per state (heartbeat.json).
    pub ledger: BTreeMap<String, u64>,
    pub lag: BTreeMap<String, Value>,
    pub open_incidents: BTreeMap<String, u64>,
    pub quarantine: u64,
    pub dead_messages: u64,
    #[serde(skip)]
    pub history: Vec<HistoryPoint>,
}

/// One run of `heartbeats.jsonl`, as the charts use it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPoint {
    pub at: DateTime<Utc>,
    pub high: f64,
    pub medium: f64,
    pub low: f64,
    pub suppressed: f64,
    /// Alerts triaged per second of the triage stage.
    pub rate: f64,
    /// `lag.newest_polled_age_s`.
    pub lag_s: f64,
}

fn history(state: &StateDir, now: DateTime<Utc>) -> Result<Vec<HistoryPoint>, DataError> {
    let mut out = Vec::new();
    let since = now - ChronoDuration::days(7);
    for name in [&b"heartbeats.jsonl.1"[..], b"heartbeats.jsonl"] {
        let ReadOutcome::Bytes(b) = state.root.read_regular(name, HISTORY_MAX)? else {
            continue;
        };
        for line in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let Some(at) = v["finished_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
            else {
                continue;
            };
            if at < since {
                continue;
            }
            let triage = v["stages"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "triage"))
                .cloned()
                .unwrap_or(Value::Null);
            let c = |k: &str| triage["counters"][k].as_f64().unwrap_or(0.0);
            let ms = triage["duration_ms"].as_f64().unwrap_or(0.0);
            out.push(HistoryPoint {
                at,
                high: c("high"),
                medium: c("medium"),
                low: c("low"),
                suppressed: c("suppressed"),
                rate: if ms > 0.0 {
                    c("triaged") * 1000.0 / ms
                } else {
                    0.0
                },
                lag_s: v["lag"]["newest_polled_age_s"].as_f64().unwrap_or(0.0),
            });
        }
    }
    out.sort_by_key(|p| p.at);
    Ok(out)
}

pub fn overview(src: &Source, now: DateTime<Utc>) -> Result<Overview, DataError> {
    let state = src.state()?;
    let hb = read_json(&state, b"heartbeat.json")?.unwrap_or(Value::Null);
    let s = |k: &str| hb[k].as_str().map(str::to_string);
    let finished = hb["finished_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let stages = hb["stages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|st| StageStatus {
                    name: st["name"].as_str().unwrap_or("?").to_string(),
                    status: st["status"].as_str().unwrap_or("?").to_string(),
                    duration_ms: st["duration_ms"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let depths: BTreeMap<String, u64> = hb["depths"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let ledger_rows: BTreeMap<String, u64> = hb["ledger"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let lag = hb["lag"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let (open_incidents, dead_messages) = if src.ledger_path().exists() {
        let ledger = src.ledger()?;
        let open = ledger
            .open_incidents_by_bucket(&src.open_cutoff(now))?
            .into_iter()
            .collect();
        (open, ledger.console_dead_messages()?)
    } else {
        (BTreeMap::new(), 0)
    };
    Ok(Overview {
        run_status: s("status"),
        run_id: s("run_id"),
        finished_at: s("finished_at"),
        age_s: finished.map(|t| (now - t.with_timezone(&Utc)).num_seconds()),
        reasons: hb["reasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        stages,
        quarantine: depths.get("quarantine").copied().unwrap_or(0),
        depths,
        ledger: ledger_rows,
        lag,
        open_incidents,
        dead_messages,
        history: history(&state, now)?,
    })
}

/// The incidents list's query string (the same for the page and the API).
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct IncidentQuery {
    #[serde(default)]
    pub bucket: Option<String>,
    /// `open`, `closed`, or empty for both.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// RFC 3339 or YYYY-MM-DD (from: the day's start; to: the day's end).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
    /// `newest` (default) or `level`.
    #[serde(default)]
    pub sort: Option<String>,
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A time bound of a filter: RFC 3339, or a date (its start, or with `end` its last instant).
pub fn parse_time(s: &str, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let t = if end {
        d.and_hms_milli_opt(23, 59, 59, 999)?
    } else {
        d.and_hms_opt(0, 0, 0)?
    };
    Some(t.and_utc())
}

impl IncidentQuery {
    pub fn limit(&self) -> u64 {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
    }
    pub fn page(&self) -> u64 {
        self.page.unwrap_or(1).clamp(1, 1_000_000)
    }
    pub fn filter(&self, cutoff: String) -> Result<ConsoleIncidentFilter, String> {
        let bucket = nonempty(&self.bucket);
        if let Some(b) = &bucket {
            if sf_policy::Bucket::parse(b).is_none() {
                return Err(format!(
                    "unknown bucket {b:?}; one of suppressed, low, medium, high"
                ));
            }
        }
        let open = match nonempty(&self.status).as_deref() {
            None | Some("all") => None,
            Some("open") => Some(true),
            Some("closed") => Some(false),
            Some(o) => return Err(format!("unknown status {o:?}; open, closed or all")),
        };
        let time = |v: &Option<String>, end: bool| -> Result<Option<String>, String> {
            nonempty(v)
                .map(|t| {
                    parse_time(&t, end)
                        .map(time_text)
                        .ok_or_else(|| format!("{t:?} is not a time (RFC 3339 or YYYY-MM-DD)"))
                })
                .transpose()
        };
        let sort = match nonempty(&self.sort).as_deref() {
            None | Some("newest") => IncidentSort::Newest,
            Some("level") => IncidentSort::Level,
            Some(o) => return Err(format!("unknown sort {o:?}; newest or level")),
        };
        let limit = self.limit();
        Ok(ConsoleIncidentFilter {
            open,
            open_cutoff: cutoff,
            bucket,
            agent: nonempty(&self.agent),
            rule: nonempty(&self.rule),
            group: nonempty(&self.group),
            from: time(&self.from, false)?,
            to: time(&self.to, true)?,
            text: nonempty(&self.q),
            sort,
            offset: (self.page() - 1) * limit,
            limit: limit + 1,
            budget: Some(SCAN_BUDGET),
        })
    }
}

/// One incident as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentItem {
    pub id: String,
    pub group: String,
    pub bucket: String,
    pub status: String,
    pub members: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub suppressed: u64,
    pub critical: u64,
    pub max_level: Option<u32>,
    pub window_start: String,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// The key fields (`field=value`).
    pub key: Vec<(String, String)>,
}

pub fn highest_bucket(r: &IncidentRow) -> &'static str {
    if r.high > 0 {
        "high"
    } else if r.medium > 0 {
        "medium"
    } else if r.low > 0 {
        "low"
    } else {
        "suppressed"
    }
}

pub fn item(r: &IncidentRow, cutoff: &str) -> IncidentItem {
    let key = serde_json::from_str::<Vec<Value>>(&r.key)
        .unwrap_or_default()
        .iter()
        .map(|k| {
            (
                k["field"].as_str().unwrap_or("?").to_string(),
                k["value"].as_str().unwrap_or("(missing)").to_string(),
            )
        })
        .collect();
    IncidentItem {
        id: r.id.clone(),
        group: r.group_id.clone(),
        bucket: highest_bucket(r).to_string(),
        status: if r.window_end.as_str() > cutoff {
            "open"
        } else {
            "closed"
        }
        .to_string(),
        members: r.members,
        high: r.high,
        medium: r.medium,
        low: r.low,
        suppressed: r.suppressed,
        critical: r.critical,
        max_level: r.max_level,
        window_start: r.window_start.clone(),
        first_time: r.first_time.clone(),
        last_time: r.last_time.clone(),
        key,
    }
}

#[derive(Debug, Serialize)]
pub struct IncidentList {
    pub items: Vec<IncidentItem>,
    pub page: u64,
    pub limit: u64,
    pub next_page: Option<u64>,
    /// The scan for a text filter stopped at [`SCAN_BUDGET`]: more may match further
    /// back (narrow the time range).
    pub partial: bool,
    /// How long the ledger query took (the page shows it; the benchmark measures it).
    pub query_ms: f64,
}

pub fn incidents(
    src: &Source,
    q: &IncidentQuery,
    now: DateTime<Utc>,
) -> Result<IncidentList, DataError> {
    let cutoff = src.open_cutoff(now);
    let f = q.filter(cutoff.clone()).map_err(DataError::Other)?;
    let ledger = src.ledger()?;
    let t = std::time::Instant::now();
    let (mut rows, partial) = ledger.console_incidents(&f)?;
    let query_ms = t.elapsed().as_secs_f64() * 1000.0;
    let limit = q.limit();
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    Ok(IncidentList {
        items: rows.iter().map(|r| item(r, &cutoff)).collect(),
        page: q.page(),
        limit,
        next_page: (more || partial).then(|| q.page() + 1),
        partial,
        query_ms,
    })
}

/// The path of the state directory's file `rel` (for messages only).
pub fn shown(root: &Path, rel: &str) -> String {
    crate::store::fsx::shown(&root.join(rel))
}
