//! Stage 1, poll: alerts from the Wazuh indexer (OpenSearch API over HTTPS) into the queue,
//! from a durable cursor, gap-free and duplicate-free.
//!
//! Design constraints:
//! - The cursor is never ahead of what is durable: each page's queue files are written durably
//!   first ([`Spool::enqueue`]), then its rows, its `_index/_id`s (`seen_ids`) and the cursor
//!   commit in one transaction. A crash anywhere re-reads at most one page.
//! - The window is `[cursor - overlap, now - settle]`: never closer to now than `settle`, and
//!   re-reading `overlap` behind the cursor so late-indexed alerts are still picked up;
//!   duplicates are removed by alert key. The cursor is the time of the newest committed alert
//!   (the sort's first key), never the window's end.
//! - What arrives later than any overlap is found by the **audit** (every `audit_every` and on
//!   `poll --audit`): `_count` per daily index against the ledger's seen ids, and for a day that
//!   differs, its `_id`s are fetched and the unseen ones polled. It converges.
//! - Partial answers (`_shards.failed`, `timed_out`) are retried, never committed; transient
//!   faults are retried with backoff; 401/403 and TLS failures stop at once (see [`client`]).
//! - The password is a [`Secret`]: in no log line, file, error or report.
//! - Fetching and committing overlap: a fetcher thread pages (HTTP, JSON, strict parsing of
//!   each alert) while the caller's thread writes and commits the previous page.
//!
//! Layout: [`secret`] (the password), [`client`] (HTTPS, retries), [`api`] (the calls the poll
//! makes: survey, count, points in time, search pages), [`wire`] (OpenSearch shapes), [`audit`]
//! (the gap sweep); this file: the cycle and the report.

mod api;
pub mod audit;
pub mod client;
mod report;
pub mod secret;
pub mod wire;
pub use report::PollReport;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::config::IndexerConfig;
use crate::model::alert::{self, KeyHash};
use crate::store::fsx::FsError;
use crate::store::ledger::{Ledger, LedgerError, NewRow, Tx};
use crate::store::quarantine::Quarantine;
use crate::store::spool::{Parsed, Spool, SpoolError};
use api::Paging;

pub use client::{ClientOptions, Indexer};
pub use secret::{load_password, Secret, PASSWORD_ENV};

/// Meta keys in the ledger.
pub const META_CURSOR: &str = "poll_cursor";
pub const META_START: &str = "poll_start";
pub const META_LAST_AUDIT: &str = "poll_last_audit";
pub const META_LAST_OK: &str = "last_poll_ok";

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("indexer password file {}: {problem}", crate::store::fsx::shown(path))]
    Password { path: PathBuf, problem: String },
    #[error("no indexer password: {0}; set [indexer] password_file (a file of mode 0600 owned by the user running signalfoundry) or the SIGNALFOUNDRY_INDEXER_PASSWORD environment variable")]
    NoPassword(String),
    #[error("{0}")]
    Config(String),
    #[error("[indexer] ca_file {}: {reason}", crate::store::fsx::shown(path))]
    CaFile { path: PathBuf, reason: String },
    #[error("indexer {url}: TLS verification failed: {fix} ({detail})")]
    Tls {
        url: String,
        fix: String,
        detail: String,
    },
    #[error("indexer {url} refused the credentials of user {username:?} (HTTP 401): wrong username or password; check [indexer] username and the password in password_file or SIGNALFOUNDRY_INDEXER_PASSWORD")]
    Unauthorized { url: String, username: String },
    #[error("indexer {url}: user {username:?} may not {what} (HTTP 403: {reason}); grant it read access to the alert indices (indices:data/read/search) and point-in-time access")]
    Forbidden {
        url: String,
        username: String,
        what: String,
        reason: String,
    },
    #[error("indexer refused to {what}: HTTP {status} {kind}: {reason}")]
    Refused {
        what: String,
        status: u16,
        kind: String,
        reason: String,
    },
    #[error("indexer {url}: gave up trying to {what} after {attempts} attempts (last: {last}); the cursor stays, the next poll resumes from it")]
    GaveUp {
        what: String,
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("indexer: {0}")]
    Connect(String),
    #[error("indexer {url} is a Wazuh 5 indexer ({evidence}): Wazuh 5 keeps findings in wazuh-findings-v5 data streams with another schema, which this version of signalfoundry does not read; point [indexer] url at a Wazuh 4.x indexer")]
    Wazuh5 { url: String, evidence: String },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl PollError {
    /// A configuration problem (exit 2) rather than a failed stage (exit 1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            PollError::Password { .. }
                | PollError::NoPassword(_)
                | PollError::Config(_)
                | PollError::CaFile { .. }
        )
    }

    fn is_refused(&self, status: u16, kinds: &[&str]) -> bool {
        matches!(self, PollError::Refused { status: s, kind, .. } if *s == status && (kinds.is_empty() || kinds.contains(&kind.as_str())))
    }
}

/// What a poll needs before it can start, checked without a request: the password (its file
/// and mode), the URL, the CA file and the settings. `run` and `daemon` call it before they
/// open anything, so a configuration error exits 2 and writes nothing.
pub fn preflight(ix: &IndexerConfig) -> Result<(), PollError> {
    let password = load_password(ix)?;
    Settings::new(ix, Utc::now())?;
    Indexer::new(ix, &password, ClientOptions::from_config(ix)).map(|_| ())
}

/// `[indexer]` resolved for one poll.
pub(crate) struct Settings {
    pub index: String,
    pub start: DateTime<Utc>,
    pub min_level: u32,
    pub page_size: u32,
    pub overlap: chrono::Duration,
    pub settle: chrono::Duration,
    pub max_per_run: u64,
    pub audit_every: chrono::Duration,
}

fn duration(d: Duration, name: &str) -> Result<chrono::Duration, PollError> {
    chrono::Duration::from_std(d)
        .map_err(|_| PollError::Config(format!("[indexer] {name} is too large")))
}

/// `start_at`: a duration back from `now` (`24h`) or an RFC 3339 time.
pub fn parse_start_at(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, PollError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        PollError::Config(format!(
            "[indexer] start_at {s:?} is neither a duration (\"24h\") nor an RFC 3339 time: {e}"
        ))
    })?;
    Ok(now - duration(d, "start_at")?)
}

impl Settings {
    pub(crate) fn new(ix: &IndexerConfig, now: DateTime<Utc>) -> Result<Settings, PollError> {
        if ix.page_size == 0 || ix.page_size > 10_000 {
            return Err(PollError::Config(format!(
                "[indexer] page_size {} must be between 1 and 10000 (index.max_result_window)",
                ix.page_size
            )));
        }
        if ix.index.trim().is_empty() || ix.index.contains(['/', '?', '#', ' ']) {
            return Err(PollError::Config(format!(
                "[indexer] index {:?} is not an index pattern",
                ix.index
            )));
        }
        Ok(Settings {
            index: ix.index.clone(),
            start: parse_start_at(&ix.start_at, now)?,
            min_level: ix.min_level,
            page_size: ix.page_size,
            overlap: duration(ix.overlap, "overlap")?,
            settle: duration(ix.settle, "settle")?,
            max_per_run: ix.max_per_run.max(1),
            audit_every: duration(ix.audit_every, "audit_every")?,
        })
    }
}

/// A hit made ready for the spool (strictly parsed and keyed), or for quarantine.
pub(crate) enum Prepared {
    Alert {
        parsed: Parsed,
        key_hash: KeyHash,
    },
    Bad {
        bytes: Vec<u8>,
        reason: String,
        index: String,
        id: String,
    },
}

/// Parses one hit's `_source` strictly and computes its key (`_index/_id` is always known, so
/// the key never depends on the content hash).
pub(crate) fn prepare(hit: wire::Hit, max_alert_bytes: u64) -> Prepared {
    let origin = format!(
        "poll {}/{}",
        alert::json_str(&hit.index),
        alert::json_str(&hit.id)
    );
    let Some(raw) = hit.source else {
        let bytes = json!({"_index": hit.index, "_id": hit.id})
            .to_string()
            .into_bytes();
        return Prepared::Bad {
            bytes,
            reason: format!("{origin}: the hit has no _source"),
            index: hit.index,
            id: hit.id,
        };
    };
    let bytes = raw.get().as_bytes().to_vec();
    if bytes.len() as u64 > max_alert_bytes {
        return Prepared::Bad {
            reason: format!(
                "{origin}: _source is {} bytes, over max_alert_bytes ({max_alert_bytes})",
                bytes.len()
            ),
            bytes,
            index: hit.index,
            id: hit.id,
        };
    }
    match alert::parse_strict(&bytes) {
        Ok(map) => {
            let key_hash = alert::alert_key(&map, Some((&hit.index, &hit.id)), "").hash();
            Prepared::Alert {
                parsed: Parsed {
                    bytes,
                    alert: map,
                    index_id: Some((hit.index, hit.id)),
                    origin,
                },
                key_hash,
            }
        }
        Err(e) => Prepared::Bad {
            reason: format!("{origin}: {e}"),
            bytes,
            index: hit.index,
            id: hit.id,
        },
    }
}

/// One fetched page, ready to commit.
pub(crate) struct Page {
    pub hits: Vec<Prepared>,
    pub fetched: u64,
    /// The newest alert time of the page (the sort's first key of its last hit).
    pub newest: Option<DateTime<Utc>>,
    /// No page follows (short page, or `max_per_run` reached).
    pub last: bool,
    pub limited: bool,
}

/// What a committed page also writes in its transaction.
#[derive(Default)]
pub(crate) struct PageMeta {
    pub cursor: Option<DateTime<Utc>>,
    pub start: Option<DateTime<Utc>>,
    pub last_ok: Option<DateTime<Utc>>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn meta_time(ledger: &Ledger, k: &str) -> Result<Option<DateTime<Utc>>, PollError> {
    Ok(ledger
        .meta_get(k)?
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| t.with_timezone(&Utc)))
}

fn seen(ledger: &Ledger, index: &str, id: &str) -> Result<bool, PollError> {
    use rusqlite::OptionalExtension;
    ledger
        .conn()
        .prepare_cached("SELECT 1 FROM seen_ids WHERE index_name = ?1 AND doc_id = ?2")
        .and_then(|mut st| st.query_row([index, id], |_| Ok(())).optional())
        .map(|o| o.is_some())
        .map_err(|source| {
            PollError::Ledger(LedgerError::Sql {
                path: ledger.path().to_path_buf(),
                source,
            })
        })
}

fn insert_seen(tx: &mut Tx<'_>, rows: &[(String, String, KeyHash)]) -> Result<(), rusqlite::Error> {
    let mut st = tx.conn().prepare_cached(
        "INSERT OR IGNORE INTO seen_ids (index_name, doc_id, key_hash) VALUES (?1, ?2, ?3)",
    )?;
    for (i, d, k) in rows {
        st.execute([i.as_str(), d.as_str(), k.as_str()])?;
    }
    Ok(())
}

/// Commits one page: quarantines what cannot be queued (once per `_index/_id`), then enqueues
/// the alerts (files durable first) with the seen ids and `meta` in the same transaction.
pub(crate) fn commit_page(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    hits: Vec<Prepared>,
    meta: &PageMeta,
    report: &mut PollReport,
) -> Result<u64, PollError> {
    let now = Utc::now();
    let mut items = Vec::with_capacity(hits.len());
    let mut seen_rows: Vec<(String, String, KeyHash)> = Vec::with_capacity(hits.len());
    let mut bad_rows: Vec<NewRow> = Vec::new();
    let q = Quarantine {
        state: sp.state,
        durability: sp.durability,
    };
    for h in hits {
        match h {
            Prepared::Alert { parsed, key_hash } => {
                if let Some((i, d)) = &parsed.index_id {
                    seen_rows.push((i.clone(), d.clone(), key_hash));
                }
                items.push(parsed);
            }
            Prepared::Bad {
                bytes,
                reason,
                index,
                id,
            } => {
                if seen(ledger, &index, &id)? {
                    report.duplicates += 1;
                    continue;
                }
                tracing::warn!(
                    "quarantined a polled alert: {}",
                    crate::store::fsx::escape_text(&reason)
                );
                let row = q.write_in(&bytes, &format!("poll {index}/{id}"), &reason, now)?;
                seen_rows.push((index, id, row.key_hash.clone()));
                bad_rows.push(row);
                report.quarantined += 1;
            }
        }
    }
    let counts = sp.enqueue(ledger, items, now, "poll", |tx| {
        for r in &bad_rows {
            tx.insert(r)?;
        }
        insert_seen(tx, &seen_rows)?;
        if let Some(c) = meta.cursor {
            tx.meta_set(META_CURSOR, &rfc3339(c))?;
        }
        if let Some(s) = meta.start {
            tx.meta_set(META_START, &rfc3339(s))?;
        }
        if let Some(t) = meta.last_ok {
            tx.meta_set(META_LAST_OK, &rfc3339(t))?;
        }
        Ok(())
    })?;
    report.add_counts(&counts);
    Ok(counts.queued)
}

/// Canonical files in `queue/` and `overflow/` (one `readdir` each, no `stat`).
fn backlog(sp: &Spool<'_>) -> Result<u64, PollError> {
    let mut n = 0u64;
    for d in [&sp.state.queue, &sp.state.overflow] {
        d.for_each_entry(|e| {
            if crate::store::names::is_canonical(&e.name) {
                n += 1;
            }
        })?;
    }
    Ok(n)
}

/// The fetcher: pages through `query` and sends prepared pages until the end, `limit` hits,
/// an error, or `stop`. Returns the point in time's latest id (to close it).
#[allow(clippy::too_many_arguments)]
fn fetch_pages(
    ix: &Indexer,
    index: &str,
    query: &Value,
    page_size: u32,
    limit: u64,
    mut pit: Option<String>,
    max_alert_bytes: u64,
    stop: &AtomicBool,
    tx: mpsc::SyncSender<Result<Page, PollError>>,
) -> Option<String> {
    let mut after: Option<Vec<Value>> = None;
    let mut fetched = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let size = u64::from(page_size).min(limit - fetched) as u32;
        let r = match ix.page(index, query, size, after.as_deref(), pit.as_deref(), true) {
            Err(e) if pit.is_some() && e.is_refused(404, &["search_context_missing_exception"]) => {
                // The point in time expired (or its node restarted): a new one, same position.
                tracing::warn!("the point in time expired; opening a new one and resuming");
                match ix.open_pit(index) {
                    Ok(p) => {
                        pit = p;
                        continue;
                    }
                    Err(e) => Err(e),
                }
            }
            r => r,
        };
        let resp = match r {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return pit;
            }
        };
        if let Some(p) = resp.pit_id.clone() {
            if pit.is_some() {
                pit = Some(p);
            }
        }
        let n = resp.hits.hits.len() as u64;
        fetched += n;
        let newest = resp.hits.hits.iter().rev().find_map(wire::Hit::sort_time);
        after = resp.hits.hits.last().map(|h| h.sort.clone()).or(after);
        let limited = fetched >= limit;
        let last = n < u64::from(size) || limited || after.as_ref().is_none_or(Vec::is_empty);
        let hits = resp
            .hits
            .hits
            .into_iter()
            .map(|h| prepare(h, max_alert_bytes))
            .collect();
        let page = Page {
            hits,
            fetched: n,
            newest,
            last,
            limited: limited && n == u64::from(size),
        };
        if tx.send(Ok(page)).is_err() || last {
            break;
        }
    }
    pit
}

/// Stage 1 with the configuration's client options.
pub fn run(
    ix: &IndexerConfig,
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    backlog_limit: u64,
    password: Option<&Secret>,
    audit: bool,
) -> Result<PollReport, PollError> {
    run_with(
        ix,
        sp,
        ledger,
        backlog_limit,
        password,
        audit,
        ClientOptions::from_config(ix),
    )
}

/// Stage 1: one poll cycle, then the audit when forced or due.
pub fn run_with(
    ix: &IndexerConfig,
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    backlog_limit: u64,
    password: Option<&Secret>,
    force_audit: bool,
    opts: ClientOptions,
) -> Result<PollReport, PollError> {
    let loaded;
    let password = match password {
        Some(p) => p,
        None => {
            loaded = load_password(ix)?;
            &loaded
        }
    };
    let now = Utc::now();
    let settings = Settings::new(ix, now)?;
    let client = Indexer::new(ix, password, opts)?;
    let mut report = PollReport::default();
    let r = poll_cycle(
        &client,
        &settings,
        sp,
        ledger,
        backlog_limit,
        force_audit,
        now,
        &mut report,
    );
    report.retries = client.retries.load(Ordering::Relaxed);
    report.partial_retries = client.partial_retries.load(Ordering::Relaxed);
    report.requests = client.requests.load(Ordering::Relaxed);
    r.map(|()| report)
}

#[allow(clippy::too_many_arguments)]
fn poll_cycle(
    client: &Indexer,
    s: &Settings,
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    backlog_limit: u64,
    force_audit: bool,
    now: DateTime<Utc>,
    report: &mut PollReport,
) -> Result<(), PollError> {
    report.backlog = backlog(sp)?;
    if report.backlog > backlog_limit {
        tracing::warn!(
            backlog = report.backlog,
            backlog_limit,
            "queue/ and overflow/ hold more than backlog_limit alerts: poll defers (the cursor stays)"
        );
        report.deferred = 1;
        return Ok(());
    }
    // A poll inserts tens of thousands of random-keyed rows (alerts, seen ids); with SQLite's
    // default 2 MiB page cache each insert re-reads B-tree pages (measured: a third of the
    // stage's system time). 64 MiB for this connection; a failure only costs speed.
    if let Err(e) = ledger.conn().execute_batch("PRAGMA cache_size = -65536") {
        tracing::debug!("could not enlarge the ledger's page cache: {e}");
    }
    let paging = client.survey(&s.index)?;
    let cursor = meta_time(ledger, META_CURSOR)?;
    let first = cursor.is_none();
    let hi = now - s.settle;
    let lo = match cursor {
        Some(c) => c - s.overlap,
        None => s.start,
    };
    if lo <= hi {
        let query = wire::filter(lo, hi, s.min_level);
        let pit = match paging {
            Paging::Pit => client.open_pit(&s.index)?,
            Paging::SearchAfter => None,
        };
        report.pit = u64::from(pit.is_some());
        tracing::info!(
            from = %wire::time(lo),
            to = %wire::time(hi),
            point_in_time = pit.is_some(),
            "polling {} {}",
            client.url(),
            s.index
        );
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<Result<Page, PollError>>(2);
        let max_bytes = sp.max_alert_bytes;
        let outcome = std::thread::scope(|scope| {
            let fetcher = scope.spawn(|| {
                fetch_pages(
                    client,
                    &s.index,
                    &query,
                    s.page_size,
                    s.max_per_run,
                    pit,
                    max_bytes,
                    &stop,
                    tx,
                )
            });
            let r = consume(rx, sp, ledger, s, cursor, first, backlog_limit, report);
            stop.store(true, Ordering::Relaxed);
            let pit = fetcher.join().unwrap_or(None);
            (r, pit)
        });
        if let Some(p) = outcome.1 {
            client.close_pit(&p);
        }
        outcome.0?;
    } else {
        // Nothing to read yet (the window is still settling): a successful, empty poll.
        ledger.write(|tx| tx.meta_set(META_LAST_OK, &rfc3339(Utc::now())))?;
    }
    if report.deferred == 0 && (force_audit || audit::due(ledger, s.audit_every, now)?) {
        audit::run(client, s, sp, ledger, report)?;
    }
    Ok(())
}

/// Alerts committed per transaction at most: `min(COMMIT_ALERTS, COMMIT_PAGES * page_size)`.
/// One commit per page of random-keyed rows rewrites most of the B-trees' touched pages each
/// time; a few pages per commit amortize that (measured: 9,400 to 12,900 alerts/s), and a
/// crash re-reads at most those pages.
const COMMIT_ALERTS: usize = 5000;
const COMMIT_PAGES: usize = 4;

/// The committing side: pages' files, rows, seen ids and cursor, a few pages per transaction.
/// What was fetched before an error is committed before the error is returned.
#[allow(clippy::too_many_arguments)]
fn consume(
    rx: mpsc::Receiver<Result<Page, PollError>>,
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    s: &Settings,
    mut cursor: Option<DateTime<Utc>>,
    first: bool,
    backlog_limit: u64,
    report: &mut PollReport,
) -> Result<(), PollError> {
    let mut start_written = !first;
    let mut queued_total = 0u64;
    let mut batch: Vec<Prepared> = Vec::new();
    let mut batch_pages = 0u64;
    loop {
        let (err, last) = match rx.recv() {
            Ok(Ok(page)) => {
                report.fetched += page.fetched;
                if let Some(n) = page.newest {
                    cursor = Some(cursor.map_or(n, |c| c.max(n)));
                }
                if page.limited {
                    report.limited = 1;
                }
                batch.extend(page.hits);
                batch_pages += 1;
                (None, page.last)
            }
            Ok(Err(e)) => (Some(e), false),
            // The fetcher is gone without a last page (it only stops early when told to).
            Err(_) => (None, true),
        };
        let finished = last || err.is_some();
        let commit_at = COMMIT_ALERTS
            .min(COMMIT_PAGES * s.page_size as usize)
            .max(1);
        if batch_pages > 0 && (finished || batch.len() >= commit_at) {
            let meta = PageMeta {
                cursor,
                start: (!start_written).then_some(s.start),
                last_ok: (last && err.is_none()).then(Utc::now),
            };
            start_written = true;
            queued_total += commit_page(sp, ledger, std::mem::take(&mut batch), &meta, report)?;
            report.pages += batch_pages;
            batch_pages = 0;
            tracing::debug!(
                pages = report.pages,
                fetched = report.fetched,
                "pages committed"
            );
        }
        if let Some(e) = err {
            return Err(e);
        }
        if last {
            return Ok(());
        }
        if batch_pages == 0 && report.backlog + queued_total > backlog_limit {
            tracing::warn!(
                backlog_limit,
                "the backlog passed backlog_limit during the poll: deferring the rest to a later poll (which resumes from the cursor)"
            );
            report.deferred = 1;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_at_takes_a_duration_or_an_rfc3339_time() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            parse_start_at("24h", now).expect("duration"),
            now - chrono::Duration::hours(24)
        );
        assert_eq!(
            parse_start_at("2025-12-31T12:00:00+02:00", now)
                .expect("rfc3339")
                .to_rfc3339(),
            "2025-12-31T10:00:00+00:00"
        );
        assert!(matches!(
            parse_start_at("yesterday", now),
            Err(PollError::Config(_))
        ));
    }

    #[test]
    fn the_summary_line_names_every_counter() {
        let r = PollReport {
            fetched: 5,
            queued: 3,
            duplicates: 2,
            deferred: 0,
            ..PollReport::default()
        };
        let s = r.summary("OK");
        assert!(
            s.starts_with("poll: status=OK fetched=5 queued=3 duplicates=2 "),
            "{s}"
        );
        assert_eq!(r.counters().len(), PollReport::FIELDS.len());
        assert_eq!(r.counters()["deferred"], 0);
    }

    #[test]
    fn a_hit_with_a_duplicated_key_is_prepared_for_quarantine() {
        let hit: wire::Hit = serde_json::from_str(
            r#"{"_index":"wazuh-alerts-4.x-2025.09.12","_id":"a1","_source":{"id":"1","id":"2"},"sort":[1,"m","1"]}"#,
        )
        .expect("hit");
        match prepare(hit, 1 << 20) {
            Prepared::Bad { reason, .. } => assert!(reason.contains("duplicated key"), "{reason}"),
            Prepared::Alert { .. } => panic!("a duplicated key must not be queued"),
        }
    }

    #[test]
    fn a_hit_is_keyed_by_manager_and_id() {
        let hit: wire::Hit = serde_json::from_str(
            r#"{"_index":"wazuh-alerts-4.x-2025.09.12","_id":"a1","_source":{"manager":{"name":"m1"},"id":"17.5","rule":{"level":3}},"sort":[1,"m1","17.5"]}"#,
        )
        .expect("hit");
        match prepare(hit, 1 << 20) {
            Prepared::Alert { parsed, key_hash } => {
                let meta = alert::meta(
                    &parsed.alert,
                    Some(("wazuh-alerts-4.x-2025.09.12", "a1")),
                    Utc::now(),
                );
                assert_eq!(meta.key_hash, key_hash);
                assert!(meta.key.as_str().starts_with("manager:"));
            }
            Prepared::Bad { reason, .. } => panic!("{reason}"),
        }
    }
}
