//! Noise figures: what each false-positive signature of the policy in force did over the last
//! N days, for `policy stats` and the heartbeat's `signatures`. Pure: the ledger's per-day rows
//! (`store::ledger::noise`), the policy and "now" come in, the figures go out.
//!
//! Design constraints:
//! - A day is the UTC date of the alerts' times, as the ledger records them (the day directory
//!   of their cases); the period is the `days` days ending with the day of "now", inclusive.
//! - `hits` are suppressions; `held_back` counts high alerts a signature matched but could not
//!   suppress (no `allow_high`). A signature's `share` is its hits over every alert suppressed in
//!   the period (by signatures and by overrides), both from the same per-day tables, so they
//!   agree with each other whatever the alerts table holds.
//! - Never hit: signatures of the policy, active on the day of "now", with no hit in the period
//!   (candidates for removal); expired ones are listed apart (they match nothing). A signature
//!   that is no longer in the policy appears in the table (`in_policy: false`), in no list.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// The window of "expiring" (days after today, as `status` says it).
pub const EXPIRING_DAYS: u32 = 7;
/// The period of the heartbeat's figures and `policy stats`'s default.
pub const DEFAULT_DAYS: u32 = 30;

/// One `signature_days` row: a signature's figures for one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub day: NaiveDate,
    pub id: String,
    pub hits: u64,
    pub held_back: u64,
}

/// What the ledger holds for a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseRows {
    /// The period's `signature_days` rows.
    pub days: Vec<DayRow>,
    /// The period's `suppressed_days`: every suppressed alert, per day.
    pub suppressed: Vec<(NaiveDate, u64)>,
    /// Each signature's latest suppressed alert (its time), over every day kept up to the
    /// period's end, the days before the period included.
    pub last_hits: BTreeMap<String, String>,
    /// When the per-day tables began on a ledger that already held triaged alerts (those are
    /// not in these figures); `None`: every triaged alert is.
    pub counted_from: Option<String>,
}

/// A signature's figures for one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DayFigures {
    pub hits: u64,
    pub held_back: u64,
}

/// A signature that matched in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureFigures {
    pub id: String,
    /// In the policy in force (else it matched when an earlier policy was).
    pub in_policy: bool,
    pub hits: u64,
    /// `hits` over the days of the period.
    pub hits_per_day: f64,
    /// `hits` over every suppressed alert of the period (0 when none was).
    pub share: f64,
    pub held_back: u64,
    /// Its latest suppressed alert's time (RFC 3339, UTC), before the period too; `None`: none
    /// in the days kept.
    pub last_hit: Option<String>,
    /// The days with a hit or a held-back match (`YYYY-MM-DD`), oldest first.
    pub per_day: BTreeMap<String, DayFigures>,
}

/// A signature of the policy with no hit in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeverHit {
    pub id: String,
    pub last_hit: Option<String>,
}

/// A signature and its `expires` day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiry {
    pub id: String,
    pub expires: String,
}

/// A signature that matched high alerts it could not suppress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldBack {
    pub id: String,
    pub held_back: u64,
}

/// `policy stats --json`: one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoiseFigures {
    /// The policy in force (its file and version).
    pub policy: String,
    /// The period: `days` days, `from` through `to` (UTC days of the alerts' times).
    pub days: u32,
    pub from: String,
    pub to: String,
    /// When the per-day tables began on a ledger that already held triaged alerts, if that is
    /// in the period (alerts triaged before are not in these figures); else `None`.
    pub counted_from: Option<String>,
    /// The policy's `[[suppress]]` signatures.
    pub signatures_in_policy: usize,
    /// Every alert suppressed in the period (by a signature or an override).
    pub suppressed: u64,
    /// The signatures that matched in the period: most hits first, then most held back, then id.
    pub signatures: Vec<SignatureFigures>,
    /// Active signatures of the policy without a hit in the period, in file order.
    pub never_hit: Vec<NeverHit>,
    /// Signatures expired before the day of "now": latest first.
    pub expired: Vec<Expiry>,
    /// Active signatures whose `expires` is within [`EXPIRING_DAYS`]: soonest first.
    pub expiring_within_7_days: Vec<Expiry>,
    /// Signatures held back from high alerts in the period: most first, then id.
    pub held_back: Vec<HeldBack>,
}

/// The heartbeat's `signatures`: the counts of [`NoiseFigures`] over [`DEFAULT_DAYS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SignatureSummary {
    /// The policy's `[[suppress]]` signatures.
    pub in_policy: u64,
    /// Active ones without a hit in `days` days.
    pub never_hit: u64,
    pub expired: u64,
    /// Expiring within 7 days.
    pub expiring: u64,
    /// The period of `never_hit`.
    pub days: u32,
}

/// The first day of a `days`-day period ending with `to`.
pub fn period_start(to: NaiveDate, days: u32) -> NaiveDate {
    to - chrono::Days::new(u64::from(days.max(1) - 1))
}

/// The figures of the `days` days ending with the day of `now`, from the period's `rows`.
pub fn figures(
    rows: &NoiseRows,
    policy: &sf_policy::Policy,
    policy_label: &str,
    now: DateTime<Utc>,
    days: u32,
) -> NoiseFigures {
    let days = days.max(1);
    let to = now.date_naive();
    let from = period_start(to, days);
    let in_period = |d: &NaiveDate| *d >= from && *d <= to;
    let mut per_sig: BTreeMap<&str, BTreeMap<String, DayFigures>> = BTreeMap::new();
    for r in rows.days.iter().filter(|r| in_period(&r.day)) {
        if r.hits == 0 && r.held_back == 0 {
            continue;
        }
        let day = per_sig
            .entry(&r.id)
            .or_default()
            .entry(r.day.to_string())
            .or_default();
        day.hits += r.hits;
        day.held_back += r.held_back;
    }
    let suppressed: u64 = rows
        .suppressed
        .iter()
        .filter(|(d, _)| in_period(d))
        .map(|(_, n)| n)
        .sum();
    let sigs = policy.signatures();
    let in_policy: BTreeSet<&str> = sigs.iter().map(|s| s.id.as_str()).collect();
    let last_hit = |id: &str| rows.last_hits.get(id).cloned();
    let mut signatures: Vec<SignatureFigures> = per_sig
        .into_iter()
        .map(|(id, per_day)| {
            let hits: u64 = per_day.values().map(|d| d.hits).sum();
            SignatureFigures {
                id: id.to_string(),
                in_policy: in_policy.contains(id),
                hits,
                hits_per_day: hits as f64 / f64::from(days),
                share: if suppressed == 0 {
                    0.0
                } else {
                    hits as f64 / suppressed as f64
                },
                held_back: per_day.values().map(|d| d.held_back).sum(),
                last_hit: last_hit(id),
                per_day,
            }
        })
        .collect();
    signatures.sort_by(|a, b| {
        b.hits
            .cmp(&a.hits)
            .then(b.held_back.cmp(&a.held_back))
            .then_with(|| a.id.cmp(&b.id))
    });
    let expired: Vec<Expiry> = policy
        .expired_signatures(now)
        .into_iter()
        .map(|(id, d)| Expiry {
            id,
            expires: d.to_string(),
        })
        .collect();
    let hit: BTreeSet<&str> = signatures
        .iter()
        .filter(|s| s.hits > 0)
        .map(|s| s.id.as_str())
        .collect();
    let never_hit = sigs
        .iter()
        .filter(|s| s.expires.is_none_or(|d| d >= to))
        .filter(|s| !hit.contains(s.id.as_str()))
        .map(|s| NeverHit {
            id: s.id.clone(),
            last_hit: last_hit(&s.id),
        })
        .collect();
    let mut held_back: Vec<HeldBack> = signatures
        .iter()
        .filter(|s| s.held_back > 0)
        .map(|s| HeldBack {
            id: s.id.clone(),
            held_back: s.held_back,
        })
        .collect();
    held_back.sort_by(|a, b| b.held_back.cmp(&a.held_back).then_with(|| a.id.cmp(&b.id)));
    NoiseFigures {
        policy: policy_label.to_string(),
        days,
        from: from.to_string(),
        to: to.to_string(),
        // Alerts triaged before the tables began have their times before then: a period that
        // starts later is complete.
        counted_from: rows.counted_from.clone().filter(|t| {
            DateTime::parse_from_rfc3339(t)
                .map_or(true, |t| t.with_timezone(&Utc).date_naive() >= from)
        }),
        signatures_in_policy: sigs.len(),
        suppressed,
        signatures,
        never_hit,
        expired,
        expiring_within_7_days: policy
            .expiring_within(now, EXPIRING_DAYS)
            .into_iter()
            .map(|(id, d)| Expiry {
                id,
                expires: d.to_string(),
            })
            .collect(),
        held_back,
    }
}

impl NoiseFigures {
    /// The counts the heartbeat carries.
    pub fn summary(&self) -> SignatureSummary {
        SignatureSummary {
            in_policy: self.signatures_in_policy as u64,
            never_hit: self.never_hit.len() as u64,
            expired: self.expired.len() as u64,
            expiring: self.expiring_within_7_days.len() as u64,
            days: self.days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[override]]
id = "ov-quiet"
bucket = "suppressed"
match = { "rule.id" = "9" }

[[suppress]]
id = "noisy"
reason = "r"
owner = "o"
match = { "rule.id" = "1" }

[[suppress]]
id = "quiet"
reason = "r"
owner = "o"
match = { "rule.id" = "2" }

[[suppress]]
id = "held"
reason = "r"
owner = "o"
match = { "rule.id" = "3" }

[[suppress]]
id = "old"
reason = "r"
owner = "o"
expires = "2026-11-30"
match = { "rule.id" = "4" }

[[suppress]]
id = "soon"
reason = "r"
owner = "o"
expires = "2026-12-09"
match = { "rule.id" = "5" }
"#;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("a date")
    }

    fn row(d: &str, id: &str, hits: u64, held_back: u64) -> DayRow {
        DayRow {
            day: day(d),
            id: id.into(),
            hits,
            held_back,
        }
    }

    /// Figures of `rows` as of 2026-12-06T12:00Z over `days` days, with the default policy
    /// above, checked against `expect` (a closure over the figures).
    fn check(rows: NoiseRows, days: u32, expect: impl FnOnce(&NoiseFigures)) {
        let (policy, _) = sf_policy::Policy::parse(POLICY).expect("the policy compiles");
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let f = figures(&rows, &policy, "p (version v)", now, days);
        expect(&f);
    }

    #[test]
    fn hits_per_day_share_and_lists_follow_the_period() {
        let rows = NoiseRows {
            days: vec![
                // Before a 3-day period: only its last hit counts.
                row("2026-12-03", "quiet", 5, 0),
                row("2026-12-04", "noisy", 2, 0),
                row("2026-12-06", "noisy", 4, 0),
                row("2026-12-05", "held", 0, 3),
                row("2026-12-05", "gone", 1, 0),
            ],
            suppressed: vec![
                (day("2026-12-03"), 5),
                (day("2026-12-04"), 2),
                // One suppressed by the override besides the signatures' hits.
                (day("2026-12-05"), 2),
                (day("2026-12-06"), 4),
            ],
            last_hits: BTreeMap::from([
                ("quiet".to_string(), "2026-12-03T08:00:00Z".to_string()),
                ("noisy".to_string(), "2026-12-06T10:00:00Z".to_string()),
                ("gone".to_string(), "2026-12-05T01:00:00Z".to_string()),
            ]),
            counted_from: None,
        };
        check(rows, 3, |f| {
            assert_eq!(
                (f.from.as_str(), f.to.as_str(), f.days),
                ("2026-12-04", "2026-12-06", 3)
            );
            assert_eq!(f.suppressed, 8);
            assert_eq!(f.signatures_in_policy, 5);
            let table: Vec<(&str, bool, u64, u64)> = f
                .signatures
                .iter()
                .map(|s| (s.id.as_str(), s.in_policy, s.hits, s.held_back))
                .collect();
            assert_eq!(
                table,
                [
                    ("noisy", true, 6, 0),
                    ("gone", false, 1, 0),
                    ("held", true, 0, 3)
                ]
            );
            let noisy = &f.signatures[0];
            assert_eq!(noisy.share, 6.0 / 8.0);
            assert_eq!(noisy.hits_per_day, 2.0);
            assert_eq!(noisy.last_hit.as_deref(), Some("2026-12-06T10:00:00Z"));
            assert_eq!(
                noisy.per_day,
                BTreeMap::from([
                    (
                        "2026-12-04".to_string(),
                        DayFigures {
                            hits: 2,
                            held_back: 0
                        }
                    ),
                    (
                        "2026-12-06".to_string(),
                        DayFigures {
                            hits: 4,
                            held_back: 0
                        }
                    ),
                ])
            );
            assert_eq!(f.signatures[2].share, 0.0);
            // In file order; "old" is expired, not never hit; "held" matched but suppressed
            // nothing.
            assert_eq!(
                f.never_hit,
                [
                    NeverHit {
                        id: "quiet".into(),
                        last_hit: Some("2026-12-03T08:00:00Z".into())
                    },
                    NeverHit {
                        id: "held".into(),
                        last_hit: None
                    },
                    NeverHit {
                        id: "soon".into(),
                        last_hit: None
                    },
                ]
            );
            assert_eq!(
                f.expired,
                [Expiry {
                    id: "old".into(),
                    expires: "2026-11-30".into()
                }]
            );
            assert_eq!(
                f.expiring_within_7_days,
                [Expiry {
                    id: "soon".into(),
                    expires: "2026-12-09".into()
                }]
            );
            assert_eq!(
                f.held_back,
                [HeldBack {
                    id: "held".into(),
                    held_back: 3
                }]
            );
            assert_eq!(
                f.summary(),
                SignatureSummary {
                    in_policy: 5,
                    never_hit: 3,
                    expired: 1,
                    expiring: 1,
                    days: 3
                }
            );
        });
    }

    #[test]
    fn a_longer_period_takes_the_earlier_days_in() {
        let rows = NoiseRows {
            days: vec![
                row("2026-12-03", "quiet", 5, 0),
                row("2026-12-06", "noisy", 5, 0),
            ],
            suppressed: vec![(day("2026-12-03"), 5), (day("2026-12-06"), 5)],
            ..NoiseRows::default()
        };
        check(rows, 30, |f| {
            assert_eq!(f.from, "2026-11-07");
            let ids: Vec<&str> = f.signatures.iter().map(|s| s.id.as_str()).collect();
            assert_eq!(ids, ["noisy", "quiet"], "equal hits: by id");
            assert_eq!(f.signatures[0].share, 0.5);
            assert_eq!(f.signatures[0].hits_per_day, 5.0 / 30.0);
            let never: Vec<&str> = f.never_hit.iter().map(|n| n.id.as_str()).collect();
            assert_eq!(never, ["held", "soon"]);
        });
    }

    #[test]
    fn nothing_recorded_gives_every_active_signature_as_never_hit_and_no_share() {
        check(NoiseRows::default(), 30, |f| {
            assert_eq!(f.suppressed, 0);
            assert!(f.signatures.is_empty());
            assert_eq!(f.never_hit.len(), 4);
            assert!(f.held_back.is_empty());
        });
    }

    #[test]
    fn an_upgraded_ledger_is_noted_only_while_its_start_is_in_the_period() {
        let rows = |since: &str| NoiseRows {
            counted_from: Some(since.to_string()),
            ..NoiseRows::default()
        };
        check(rows("2026-12-04T08:00:00Z"), 3, |f| {
            assert_eq!(f.counted_from.as_deref(), Some("2026-12-04T08:00:00Z"));
        });
        check(rows("2026-12-03T23:59:59Z"), 3, |f| {
            assert_eq!(f.counted_from, None, "the period starts on 2026-12-04");
        });
    }

    #[test]
    fn a_period_is_at_least_one_day() {
        assert_eq!(period_start(day("2026-12-06"), 1), day("2026-12-06"));
        assert_eq!(period_start(day("2026-12-06"), 0), day("2026-12-06"));
        assert_eq!(period_start(day("2026-03-01"), 2), day("2026-02-28"));
    }
}
