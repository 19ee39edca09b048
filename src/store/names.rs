//! Canonical names and listings: what the queue's order needs, read from names alone.
//!
//! Design constraints:
//! - A canonical name is `PP-YYYYMMDDTHHMMSSmmm-<32 hex>.json`: `PP` is `99 - priority`, then the
//!   alert time in UTC, then the alert key's hash. Sorting names bytewise is the cap's order
//!   (priority descending, then time ascending), so ordering a 500K queue is one `readdir` and
//!   a sort: no `stat`. Nothing in a name comes from alert text.
//! - A name is a claim about its content, never a fact: whoever reads the content checks the
//!   key hash (admission, adoption, triage).

use chrono::{DateTime, Utc};

use crate::model::alert::KeyHash;
use crate::store::fsx::{DirFd, FsError};

/// A parsed canonical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub priority: u32,
    /// `YYYYMMDDTHHMMSSmmm`.
    pub time: String,
    pub key_hash: KeyHash,
}

const NAME_LEN: usize = 2 + 1 + 18 + 1 + KeyHash::LEN + 5;

impl Canonical {
    pub fn new(priority: u32, time: DateTime<Utc>, key_hash: KeyHash) -> Canonical {
        Canonical {
            priority: priority.min(99),
            time: time.format("%Y%m%dT%H%M%S%3f").to_string(),
            key_hash,
        }
    }

    pub fn name(&self) -> String {
        format!(
            "{:02}-{}-{}.json",
            99 - self.priority.min(99),
            self.time,
            self.key_hash
        )
    }

    /// Parses a canonical name; `None` for anything else (a foreign name).
    pub fn parse(name: &[u8]) -> Option<Canonical> {
        if name.len() != NAME_LEN || !name.ends_with(b".json") {
            return None;
        }
        let s = std::str::from_utf8(name).ok()?;
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if !(digits(0..2)
            && b[2] == b'-'
            && digits(3..11)
            && b[11] == b'T'
            && digits(12..21)
            && b[21] == b'-')
        {
            return None;
        }
        let inv: u32 = s[0..2].parse().ok()?;
        Some(Canonical {
            priority: 99 - inv,
            time: s[3..21].to_string(),
            key_hash: KeyHash::parse(&s[22..22 + KeyHash::LEN])?,
        })
    }
}

/// Cheap check used by listings: the exact shape of a canonical name.
pub fn is_canonical(name: &[u8]) -> bool {
    Canonical::parse(name).is_some()
}

/// Lists a directory's canonical names, sorted (priority descending, time ascending).
/// One `readdir` pass; dot-named and non-canonical names are skipped (see [`list_foreign`]).
pub fn list_sorted(dir: &DirFd) -> Result<Vec<Vec<u8>>, FsError> {
    let mut names = Vec::new();
    dir.for_each_entry(|e| {
        if is_canonical(&e.name) {
            names.push(e.name);
        }
    })?;
    names.sort_unstable();
    Ok(names)
}

/// Foreign names in a directory: not dot-named, ending in `.json`, not canonical.
pub fn list_foreign(dir: &DirFd) -> Result<Vec<Vec<u8>>, FsError> {
    let mut names = Vec::new();
    dir.for_each_entry(|e| {
        if !e.is_dot() && e.name.ends_with(b".json") && !is_canonical(&e.name) {
            names.push(e.name);
        }
    })?;
    names.sort_unstable();
    Ok(names)
}

/// Every name in a directory that admission takes: not dot-named, ending in `.json`
/// (canonical or not).
pub fn list_alert_like(dir: &DirFd) -> Result<Vec<Vec<u8>>, FsError> {
    let mut names = Vec::new();
    dir.for_each_entry(|e| {
        if !e.is_dot() && e.name.ends_with(b".json") {
            names.push(e.name);
        }
    })?;
    names.sort_unstable();
    Ok(names)
}

/// The quarantine entry (`q-...`) of a name an operator requeued into `incoming/`
/// (`requeue --from quarantine` keeps the entry's name), if it is one.
pub fn requeued_entry(name: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(name).ok()?;
    let entry = s.strip_suffix(".json")?;
    (entry.starts_with("q-")
        && entry.len() > 2
        && entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then_some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn canonical_names_round_trip_and_sort_by_priority_then_time() {
        let t = |s| {
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s)
                .single()
                .expect("t")
        };
        let h = KeyHash::of(b"k");
        let a = Canonical::new(12, t(5), h.clone());
        let b = Canonical::new(3, t(1), h.clone());
        let c = Canonical::new(12, t(1), h.clone());
        let mut names = vec![a.name(), b.name(), c.name()];
        names.sort();
        assert_eq!(names, vec![c.name(), a.name(), b.name()]);
        assert_eq!(Canonical::parse(a.name().as_bytes()), Some(a.clone()));
        assert_eq!(a.name().len(), NAME_LEN);
    }

    #[test]
    fn foreign_and_malformed_names_are_not_canonical() {
        let good = Canonical::new(5, Utc::now(), KeyHash::of(b"x")).name();
        assert!(is_canonical(good.as_bytes()));
        for bad in [
            "alert.json".to_string(),
            good.replace(".json", ".jsn"),
            good.replace('-', "_"),
            format!(".{}", &good[1..]),
            good.to_uppercase(),
            format!("{}\n", &good[..good.len() - 1]),
        ] {
            assert!(!is_canonical(bad.as_bytes()), "{bad:?}");
        }
    }
}
