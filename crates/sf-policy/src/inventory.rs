//! The policy's `[[suppress]]` signatures as a list, for figures about them (the pipeline's
//! `policy stats` and heartbeat): their ids in file order and their expiry. Pure: "now" is an
//! argument.

use chrono::{DateTime, NaiveDate, Utc};

use crate::decide::Policy;

/// One `[[suppress]]` signature, as figures about the policy see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    pub id: String,
    /// The last day (UTC) it is active; it matches nothing after it.
    pub expires: Option<NaiveDate>,
    /// It may suppress alerts at or above `high`.
    pub allow_high: bool,
}

impl Policy {
    /// The `[[suppress]]` signatures, in file order (overrides are not signatures).
    pub fn signatures(&self) -> Vec<SignatureInfo> {
        self.signatures
            .rules
            .iter()
            .map(|r| SignatureInfo {
                id: r.id.clone(),
                expires: r.expires,
                allow_high: r.allow_high,
            })
            .collect()
    }

    /// Signatures already expired at `now` (their `expires` day, UTC, is before today's), which
    /// match nothing: latest expiry first, then by id.
    pub fn expired_signatures(&self, now: DateTime<Utc>) -> Vec<(String, NaiveDate)> {
        let today = now.date_naive();
        let mut out: Vec<(String, NaiveDate)> = self
            .signatures()
            .into_iter()
            .filter_map(|s| Some((s.id, s.expires?)))
            .filter(|(_, d)| *d < today)
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[override]]
id = "ov"
bucket = "high"
match = { "rule.id" = "1" }

[[suppress]]
id = "b-open"
reason = "r"
owner = "o"
match = { "rule.id" = "2" }

[[suppress]]
id = "a-old"
reason = "r"
owner = "o"
expires = "2026-01-01"
match = { "rule.id" = "3" }

[[suppress]]
id = "c-today"
reason = "r"
owner = "o"
expires = "2026-03-01"
allow_high = true
match = { "rule.id" = "4" }

[[suppress]]
id = "d-yesterday"
reason = "r"
owner = "o"
expires = "2026-02-28"
match = { "rule.id" = "5" }
"#;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a time")
            .with_timezone(&Utc)
    }

    #[test]
    fn signatures_are_the_suppress_entries_in_file_order_without_overrides() {
        let (p, _) = Policy::parse(POLICY).expect("compiles");
        let ids: Vec<String> = p.signatures().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["b-open", "a-old", "c-today", "d-yesterday"]);
        let c = &p.signatures()[2];
        assert_eq!(c.expires, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert!(c.allow_high);
    }

    #[test]
    fn a_signature_is_expired_the_day_after_its_expires_date_latest_first() {
        let (p, _) = Policy::parse(POLICY).expect("compiles");
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(
            p.expired_signatures(at("2026-03-01T23:59:59Z")),
            vec![
                ("d-yesterday".to_string(), d(2026, 2, 28)),
                ("a-old".to_string(), d(2026, 1, 1))
            ],
            "active through its expires day"
        );
        assert_eq!(p.expired_signatures(at("2026-03-02T00:00:00Z")).len(), 3);
        assert!(p.expired_signatures(at("2025-12-31T12:00:00Z")).is_empty());
    }
}
