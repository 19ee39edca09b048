//! The poll audit: what the window and its overlap missed (an outage, a manager that lagged,
//! an alert indexed later than any overlap) is found by counting, and then polled.
//!
//! Design constraints:
//! - Per daily index (`wazuh-alerts-4.x-YYYY.MM.DD`) from the first poll's start to the
//!   cursor, the indexer's `_count` under the poll's filter is compared with the number of that
//!   index's `_id`s the ledger has seen (`seen_ids`: every `_index/_id` polled, duplicates
//!   included). Equal: nothing was missed there.
//! - For a day that differs, its `_id`s are fetched without `_source`, and the unseen ones are
//!   fetched in full and committed like any page (files first, then rows and seen ids); the
//!   cursor is not touched. After a sweep every `_id` of the day is seen, so the next audit
//!   finds the day equal: it converges.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::{
    commit_page, meta_time, prepare, wire, Indexer, PageMeta, PollError, PollReport, Settings,
};
use super::{META_CURSOR, META_LAST_AUDIT, META_START};
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::spool::Spool;

/// `_id`s fetched per sweep page (no `_source`, so pages are small).
const SWEEP_PAGE: u32 = 5000;

/// Whether `audit_every` has passed since the last audit (never audited: due).
pub fn due(
    ledger: &Ledger,
    every: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<bool, PollError> {
    Ok(match meta_time(ledger, META_LAST_AUDIT)? {
        None => true,
        Some(t) => now - t >= every,
    })
}

/// A `*` glob, as index patterns use.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else if let Some(pos) = rest.find(p) {
            rest = &rest[pos + p.len()..];
        } else {
            return false;
        }
    }
    true
}

/// The daily index of `day` under the configured pattern: Wazuh's `wazuh-alerts-4.x-YYYY.MM.DD`
/// when the pattern covers it, else the pattern's prefix with the date; `None` when the
/// pattern names no daily indices.
pub fn daily_index(pattern: &str, day: NaiveDate) -> Option<String> {
    let date = day.format("%Y.%m.%d").to_string();
    let wazuh = format!("wazuh-alerts-4.x-{date}");
    let parts: Vec<&str> = pattern.split(',').map(str::trim).collect();
    if parts.iter().any(|p| !p.starts_with('-') && glob(p, &wazuh)) {
        return Some(wazuh);
    }
    match parts.as_slice() {
        [p] if p.ends_with('*') && p.matches('*').count() == 1 => {
            Some(format!("{}{date}", p.trim_end_matches('*')))
        }
        _ => None,
    }
}

fn sql<T>(ledger: &Ledger, r: Result<T, rusqlite::Error>) -> Result<T, PollError> {
    r.map_err(|source| {
        PollError::Ledger(LedgerError::Sql {
            path: ledger.path().to_path_buf(),
            source,
        })
    })
}

fn seen_count(ledger: &Ledger, index: &str) -> Result<u64, PollError> {
    let r = ledger.conn().query_row(
        "SELECT COUNT(*) FROM seen_ids WHERE index_name = ?1",
        [index],
        |r| r.get::<_, u64>(0),
    );
    sql(ledger, r)
}

fn seen_set(ledger: &Ledger, index: &str) -> Result<HashSet<String>, PollError> {
    let r = (|| {
        let mut st = ledger
            .conn()
            .prepare("SELECT doc_id FROM seen_ids WHERE index_name = ?1")?;
        let rows = st.query_map([index], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<HashSet<_>, _>>()
    })();
    sql(ledger, r)
}

/// Runs the audit and records its time.
pub(crate) fn run(
    client: &Indexer,
    s: &Settings,
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    report: &mut PollReport,
) -> Result<(), PollError> {
    report.audit = 1;
    let now = Utc::now();
    let (Some(start), Some(cursor)) = (
        meta_time(ledger, META_START)?,
        meta_time(ledger, META_CURSOR)?,
    ) else {
        // Nothing polled yet: nothing to audit.
        ledger.write(|tx| tx.meta_set(META_LAST_AUDIT, &super::rfc3339(now)))?;
        return Ok(());
    };
    let query = wire::filter(start, cursor, s.min_level);
    let mut day = start.date_naive();
    let last = cursor.date_naive();
    while day <= last {
        let Some(index) = daily_index(&s.index, day) else {
            tracing::warn!(index = %s.index, "the audit needs daily indices (wazuh-alerts-4.x-YYYY.MM.DD); [indexer] index names none, so no audit");
            break;
        };
        report.audit_days += 1;
        let count = client.count(
            &index,
            &query,
            &format!("count the alerts of {index}"),
            wire::CountResponse::partial,
        )?;
        let seen = seen_count(ledger, &index)?;
        if count != seen {
            tracing::info!(%index, indexer = count, seen, "audit: the day differs; sweeping its ids");
            report.audit_differing += 1;
            sweep(client, s, sp, ledger, &index, &query, report)?;
        }
        match day.succ_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    ledger.write(|tx| tx.meta_set(META_LAST_AUDIT, &super::rfc3339(now)))?;
    Ok(())
}

/// Fetches a day's `_id`s and polls the unseen ones.
fn sweep(
    client: &Indexer,
    s: &Settings,
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    index: &str,
    query: &Value,
    report: &mut PollReport,
) -> Result<(), PollError> {
    let known = seen_set(ledger, index)?;
    let mut unseen: Vec<String> = Vec::new();
    let mut after: Option<Vec<Value>> = None;
    loop {
        let resp = client.page(index, query, SWEEP_PAGE, after.as_deref(), None, false)?;
        let n = resp.hits.hits.len();
        for h in &resp.hits.hits {
            if !known.contains(&h.id) {
                unseen.push(h.id.clone());
            }
        }
        match resp.hits.hits.last() {
            Some(h) if n == SWEEP_PAGE as usize && !h.sort.is_empty() => {
                after = Some(h.sort.clone())
            }
            _ => break,
        }
    }
    report.audit_unseen += unseen.len() as u64;
    for chunk in unseen.chunks(s.page_size as usize) {
        let q = json!({"bool": {"filter": [{"ids": {"values": chunk}}]}});
        let resp = client.page(index, &q, chunk.len() as u32, None, None, true)?;
        report.fetched += resp.hits.hits.len() as u64;
        let hits = resp
            .hits
            .hits
            .into_iter()
            .map(|h| prepare(h, sp.max_alert_bytes))
            .collect();
        let queued = commit_page(sp, ledger, hits, &PageMeta::default(), report)?;
        report.audit_queued += queued;
        report.pages += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn daily_indices_follow_wazuh_names_under_the_configured_pattern() {
        let d = day("2025-09-12");
        assert_eq!(
            daily_index("wazuh-alerts-4.x-*", d).as_deref(),
            Some("wazuh-alerts-4.x-2025.09.12")
        );
        assert_eq!(
            daily_index("wazuh-alerts-*", d).as_deref(),
            Some("wazuh-alerts-4.x-2025.09.12")
        );
        assert_eq!(
            daily_index("my-alerts-*", d).as_deref(),
            Some("my-alerts-2025.09.12")
        );
        assert_eq!(daily_index("one-index", d), None);
    }

    #[test]
    fn an_audit_is_due_when_never_run_or_older_than_audit_every() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("l.db"), crate::store::fsx::Durability::Off)
            .expect("ledger");
        let now = Utc::now();
        let day = chrono::Duration::hours(24);
        assert!(due(&l, day, now).expect("due"));
        l.write(|tx| {
            tx.meta_set(
                META_LAST_AUDIT,
                &super::super::rfc3339(now - chrono::Duration::hours(1)),
            )
        })
        .expect("write");
        assert!(!due(&l, day, now).expect("due"));
        assert!(due(&l, chrono::Duration::minutes(30), now).expect("due"));
    }
}
