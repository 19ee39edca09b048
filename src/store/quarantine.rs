//! Quarantine: what could not be triaged, kept whole with its reason, never deleted.
//!
//! Design constraints:
//! - An entry is `quarantine/<entry>.json` (the original bytes, or whatever the listed entry
//!   was: it is never read through) and `<entry>.reason`; entry names are ours
//!   (`q-<time>-<pid>-<random>`), never from content.
//! - Files move first, rows after (the caller commits them with its batch): an entry a crash
//!   left without its row is adopted by reconcile. A reason file is durable on its own.

use chrono::{DateTime, Utc};

use crate::model::alert::KeyHash;
use crate::store::fsx::{DirFd, Durability, Moved};
use crate::store::ledger::{NewRow, State};
use crate::store::spool::Result;
use crate::store::state::StateDir;

/// Where quarantined things go, and how their rows look.
pub struct Quarantine<'a> {
    pub state: &'a StateDir,
    pub durability: Durability,
}

/// A fresh quarantine entry name: `q-YYYYMMDDTHHMMSS-<pid>-<rand>` (allow-listed alphabet).
pub fn entry_name(now: DateTime<Utc>) -> String {
    format!(
        "q-{}-{}-{:08x}{:08x}",
        now.format("%Y%m%dT%H%M%S"),
        std::process::id(),
        crate::store::fsx::rand_u32(),
        crate::store::fsx::rand_u32()
    )
}

impl Quarantine<'_> {
    fn reason_text(entry: &str, origin: &str, reason: &str, now: DateTime<Utc>) -> String {
        format!(
            "entry: {entry}\norigin: {origin}\nreason: {reason}\ntime: {}\n",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }

    fn row(entry: &str, content_hash: String, now: DateTime<Utc>) -> NewRow {
        let key = format!("quarantine:{entry}");
        NewRow {
            key_hash: KeyHash::of(key.as_bytes()),
            alert_key: key,
            state: State::Quarantined,
            name: format!("{entry}.json"),
            content_hash,
            level: None,
            priority: 0,
            alert_time: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            index_name: None,
            doc_id: None,
            source: "quarantine",
        }
    }

    /// Moves a listed entry (whatever it is: it is never read through) into quarantine and
    /// writes its reason. `Ok(None)` when it vanished first.
    pub fn move_in(
        &self,
        from: &DirFd,
        name: &[u8],
        origin: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<NewRow>> {
        loop {
            let entry = entry_name(now);
            let target = format!("{entry}.json");
            match from.rename_to(name, &self.state.quarantine, target.as_bytes())? {
                Moved::Vanished => return Ok(None),
                Moved::Exists => continue,
                Moved::Moved => {
                    self.write_reason(&entry, origin, reason, now)?;
                    crate::failpoint::crash_point("quarantine-entry-row");
                    return Ok(Some(Self::row(&entry, String::new(), now)));
                }
            }
        }
    }

    /// Moves a listed entry into quarantine as `entry` (chosen, and recorded in the ledger, by
    /// the caller beforehand) and writes its reason. `Exists` when that entry name is taken.
    pub fn move_in_as(
        &self,
        from: &DirFd,
        name: &[u8],
        entry: &str,
        origin: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Moved> {
        let target = format!("{entry}.json");
        let moved = from.rename_to(name, &self.state.quarantine, target.as_bytes())?;
        if moved == Moved::Moved {
            self.write_reason(entry, origin, reason, now)?;
        }
        Ok(moved)
    }

    /// The row of a quarantine entry that has no alert key of its own.
    pub fn entry_row(entry: &str, now: DateTime<Utc>) -> NewRow {
        Self::row(entry, String::new(), now)
    }

    /// Writes bytes that never were a file of their own (a bad ingest line) into quarantine.
    pub fn write_in(
        &self,
        bytes: &[u8],
        origin: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<NewRow> {
        loop {
            let entry = entry_name(now);
            match self.state.quarantine.write_new(
                &format!("{entry}.json"),
                bytes,
                self.durability,
            )? {
                Moved::Exists => continue,
                Moved::Vanished | Moved::Moved => {
                    self.write_reason(&entry, origin, reason, now)?;
                    crate::failpoint::crash_point("quarantine-entry-row");
                    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
                    return Ok(Self::row(&entry, hash, now));
                }
            }
        }
    }

    fn write_reason(
        &self,
        entry: &str,
        origin: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let text = Self::reason_text(entry, origin, reason, now);
        // Rare and small: durable on its own whenever durability is on (the batch barriers
        // sync directories, not this file's data), so a quarantine never loses its reason.
        let durability = if self.durability == Durability::Off {
            Durability::Off
        } else {
            Durability::Strict
        };
        self.state
            .quarantine
            .write_new(&format!("{entry}.reason"), text.as_bytes(), durability)?;
        Ok(())
    }
}
