//! The noise figures' tables (migration 8): `signature_days` (per UTC day and signature: hits,
//! held back, latest suppressed alert) and `suppressed_days` (per day: every suppressed alert).
//! Written once per triage batch ([`Tx::record_noise`]); read for a period by `policy stats`
//! and the heartbeat ([`Ledger::noise_rows`]).
//!
//! Design constraints:
//! - A day is the UTC date of the alert's time, the day directory of its case: a backfill
//!   (last month's `alerts.json`, an audit's sweep after an outage) lands on the days its alerts
//!   happened, and a retry or recovery days later changes nothing. An alert stamped after its
//!   triage counts on the triage day (a skewed agent clock cannot hide hits ahead of every
//!   period); one older than [`KEEP_DAYS`] before its triage is counted in `signature_hits`
//!   only.
//! - Cheap: one upsert per signature and day a batch touches (a live batch spans a day or
//!   two), in the batch's commit, beside `signature_hits`, so the days count exactly the
//!   committed cases; the prune of old days is one range delete on the primary key.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

use super::{Ledger, LedgerError, Tx};
use crate::model::noise::{DayRow, NoiseRows};

/// Days kept before the day of a batch's triage: the longest period `policy stats` gives.
pub const KEEP_DAYS: u32 = 400;

/// Meta key: when the per-day tables began on a ledger that already held triaged alerts.
pub const SINCE_META: &str = "signature_days_since";

/// One day's figures of one signature in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Count {
    hits: u64,
    held_back: u64,
    /// The latest suppressed alert's time.
    last_hit: Option<DateTime<Utc>>,
}

/// A triage batch's noise figures, by day, before its commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseBatch {
    signatures: BTreeMap<(NaiveDate, String), Count>,
    suppressed: BTreeMap<NaiveDate, u64>,
}

impl NoiseBatch {
    /// Counts one committed case: `suppressed` when its bucket is, `by` the signature that
    /// suppressed it (none for an override), `held_back` the signatures that matched it but
    /// could not suppress it. `triaged_at` is the batch's time.
    pub fn add(
        &mut self,
        alert_time: DateTime<Utc>,
        triaged_at: DateTime<Utc>,
        suppressed: bool,
        by: Option<&str>,
        held_back: &[String],
    ) {
        let at = alert_time.min(triaged_at);
        let day = at.date_naive();
        if day < oldest_kept(triaged_at) {
            return;
        }
        if suppressed {
            *self.suppressed.entry(day).or_default() += 1;
        }
        if let Some(id) = by {
            let c = self.signatures.entry((day, id.to_string())).or_default();
            c.hits += 1;
            c.last_hit = c.last_hit.max(Some(at));
        }
        for id in held_back {
            self.signatures
                .entry((day, id.clone()))
                .or_default()
                .held_back += 1;
        }
    }
}

/// The oldest day kept when `now` is the triage's time.
fn oldest_kept(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive() - chrono::Days::new(u64::from(KEEP_DAYS))
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl Tx<'_> {
    /// Adds a batch's figures (one upsert per signature and day, one per day of suppressed
    /// alerts) and drops the days older than [`KEEP_DAYS`] before `now`.
    pub fn record_noise(
        &mut self,
        batch: &NoiseBatch,
        now: DateTime<Utc>,
    ) -> Result<(), rusqlite::Error> {
        if batch.signatures.is_empty() && batch.suppressed.is_empty() {
            return Ok(());
        }
        {
            let mut up = self.tx.prepare_cached(
                "INSERT INTO signature_days (day, id, hits, held_back, last_hit)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(day, id) DO UPDATE SET hits = hits + excluded.hits,
                   held_back = held_back + excluded.held_back,
                   last_hit = CASE WHEN last_hit IS NULL OR excluded.last_hit > last_hit
                     THEN COALESCE(excluded.last_hit, last_hit) ELSE last_hit END",
            )?;
            for ((day, id), c) in &batch.signatures {
                up.execute(params![
                    day_text(*day),
                    id,
                    c.hits,
                    c.held_back,
                    c.last_hit
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                ])?;
            }
            let mut sup = self.tx.prepare_cached(
                "INSERT INTO suppressed_days (day, alerts) VALUES (?1, ?2)
                 ON CONFLICT(day) DO UPDATE SET alerts = alerts + excluded.alerts",
            )?;
            for (day, n) in &batch.suppressed {
                sup.execute(params![day_text(*day), n])?;
            }
        }
        let oldest = day_text(oldest_kept(now));
        self.tx
            .prepare_cached("DELETE FROM signature_days WHERE day < ?1")?
            .execute([&oldest])?;
        self.tx
            .prepare_cached("DELETE FROM suppressed_days WHERE day < ?1")?
            .execute([&oldest])?;
        Ok(())
    }
}

impl Ledger {
    /// The rows of the days `from` through `to`, and each signature's latest suppressed alert
    /// up to `to` (`last_hits`: over every kept day, when `with_last_hits`), in one read
    /// transaction.
    pub fn noise_rows(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        with_last_hits: bool,
    ) -> Result<NoiseRows, LedgerError> {
        let read = || -> Result<NoiseRows, rusqlite::Error> {
            let tx = self.conn.unchecked_transaction()?;
            let (from_t, to_t) = (day_text(from), day_text(to));
            let parse = |s: String| -> Result<NaiveDate, rusqlite::Error> {
                NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })
            };
            let mut days = Vec::new();
            {
                let mut st = tx.prepare(
                    "SELECT day, id, hits, held_back FROM signature_days
                     WHERE day >= ?1 AND day <= ?2 ORDER BY day, id",
                )?;
                let mut rows = st.query([&from_t, &to_t])?;
                while let Some(r) = rows.next()? {
                    days.push(DayRow {
                        day: parse(r.get(0)?)?,
                        id: r.get(1)?,
                        hits: r.get(2)?,
                        held_back: r.get(3)?,
                    });
                }
            }
            let mut suppressed = Vec::new();
            {
                let mut st = tx.prepare(
                    "SELECT day, alerts FROM suppressed_days WHERE day >= ?1 AND day <= ?2
                     ORDER BY day",
                )?;
                let mut rows = st.query([&from_t, &to_t])?;
                while let Some(r) = rows.next()? {
                    suppressed.push((parse(r.get(0)?)?, r.get(1)?));
                }
            }
            let mut last_hits = BTreeMap::new();
            if with_last_hits {
                let mut st = tx.prepare(
                    "SELECT id, MAX(last_hit) FROM signature_days
                     WHERE day <= ?1 AND last_hit IS NOT NULL GROUP BY id",
                )?;
                let mut rows = st.query([&to_t])?;
                while let Some(r) = rows.next()? {
                    last_hits.insert(r.get(0)?, r.get(1)?);
                }
            }
            let counted_from = tx
                .query_row("SELECT v FROM meta WHERE k = ?1", [SINCE_META], |r| {
                    r.get(0)
                })
                .ok();
            tx.commit()?;
            Ok(NoiseRows {
                days,
                suppressed,
                last_hits,
                counted_from,
            })
        };
        read().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fsx::Durability;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn batches_add_up_by_alert_day_and_keep_the_latest_hit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("ledger.db"), Durability::Off).expect("open");
        let now = t("2026-12-06T12:00:00Z");
        let mut b = NoiseBatch::default();
        b.add(t("2026-12-05T23:59:59Z"), now, true, Some("a"), &[]);
        b.add(t("2026-12-05T10:00:00Z"), now, true, Some("a"), &[]);
        // Suppressed by an override: the day's total only.
        b.add(t("2026-12-05T11:00:00Z"), now, true, None, &[]);
        // A high alert two signatures matched.
        b.add(
            t("2026-12-04T00:00:00Z"),
            now,
            false,
            None,
            &["a".into(), "b".into()],
        );
        // Stamped after its triage: the triage day.
        b.add(t("2026-12-09T00:00:00Z"), now, true, Some("b"), &[]);
        // Older than the days kept: not per day.
        b.add(t("2025-01-01T00:00:00Z"), now, true, Some("a"), &[]);
        l.write(|tx| tx.record_noise(&b, now)).expect("record");
        // A second batch adds up; an earlier hit keeps the later last_hit.
        let mut b2 = NoiseBatch::default();
        b2.add(t("2026-12-05T01:00:00Z"), now, true, Some("a"), &[]);
        l.write(|tx| tx.record_noise(&b2, now)).expect("record");

        let rows = l
            .noise_rows(d("2026-12-01"), d("2026-12-06"), true)
            .expect("rows");
        let days: Vec<(String, &str, u64, u64)> = rows
            .days
            .iter()
            .map(|r| (r.day.to_string(), r.id.as_str(), r.hits, r.held_back))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-12-04".into(), "a", 0, 1),
                ("2026-12-04".into(), "b", 0, 1),
                ("2026-12-05".into(), "a", 3, 0),
                ("2026-12-06".into(), "b", 1, 0),
            ]
        );
        assert_eq!(
            rows.suppressed,
            [(d("2026-12-05"), 4), (d("2026-12-06"), 1)]
        );
        assert_eq!(
            rows.last_hits,
            BTreeMap::from([
                ("a".to_string(), "2026-12-05T23:59:59Z".to_string()),
                ("b".to_string(), "2026-12-06T12:00:00Z".to_string()),
            ])
        );
        assert_eq!(rows.counted_from, None, "a new ledger counts every alert");
        // A period ending earlier: neither its rows nor its last hits see later days.
        let early = l
            .noise_rows(d("2026-12-01"), d("2026-12-04"), true)
            .expect("rows");
        assert_eq!(early.days.len(), 2);
        assert!(early.last_hits.is_empty(), "{:?}", early.last_hits);
        assert!(l
            .noise_rows(d("2026-12-01"), d("2026-12-06"), false)
            .expect("rows")
            .last_hits
            .is_empty());
    }

    #[test]
    fn days_past_the_retention_are_pruned_by_the_next_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("ledger.db"), Durability::Off).expect("open");
        let then = t("2025-01-01T12:00:00Z");
        let mut b = NoiseBatch::default();
        b.add(then, then, true, Some("a"), &[]);
        l.write(|tx| tx.record_noise(&b, then)).expect("record");
        let later = then + chrono::Duration::days(i64::from(KEEP_DAYS));
        let mut b = NoiseBatch::default();
        b.add(later, later, true, Some("a"), &[]);
        l.write(|tx| tx.record_noise(&b, later)).expect("record");
        let all = |l: &Ledger| {
            l.noise_rows(d("2000-01-01"), d("2100-01-01"), true)
                .expect("rows")
        };
        assert_eq!(all(&l).days.len(), 2, "KEEP_DAYS before: still kept");
        let next = later + chrono::Duration::days(1);
        let mut b = NoiseBatch::default();
        b.add(next, next, false, None, &["a".into()]);
        l.write(|tx| tx.record_noise(&b, next)).expect("record");
        let rows = all(&l);
        let days: Vec<String> = rows.days.iter().map(|r| r.day.to_string()).collect();
        assert_eq!(days, ["2026-02-05", "2026-02-06"]);
        assert_eq!(rows.suppressed, [(d("2026-02-05"), 1)]);
    }

    #[test]
    fn a_ledger_with_triaged_alerts_before_the_tables_says_from_when_they_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ledger.db");
        {
            // A ledger as version 7 left it (before these tables), with a triaged row.
            let c = rusqlite::Connection::open(&p).expect("open");
            for m in &super::super::MIGRATIONS[..7] {
                c.execute_batch(m).expect("migrate to 7");
            }
            c.pragma_update(None, "user_version", 7).expect("version");
            c.execute_batch(
                "INSERT INTO alerts (key_hash, alert_key, state, name, content_hash,
                   priority, alert_time, source, created_at, updated_at)
                 VALUES ('k', 'k', 'triaged', 'n', 'c', 3, 't', 'test', 't', 't');",
            )
            .expect("row");
        }
        let l = Ledger::open(&p, Durability::Off).expect("migrate");
        let since = l
            .noise_rows(d("2026-01-01"), d("2026-01-02"), false)
            .expect("rows")
            .counted_from
            .expect("set");
        assert!(
            chrono::DateTime::parse_from_rfc3339(&since).is_ok(),
            "{since}"
        );
    }
}
