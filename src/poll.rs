//! Stage 1, poll (interface; the implementation is being written, see ARCHITECTURE.md).
//! Until it lands, a configured `[indexer]` makes the stage fail with a clear message.

use std::collections::BTreeMap;

use crate::config::IndexerConfig;
use crate::ledger::Ledger;
use crate::spool::Spool;

/// The indexer password: never printed, logged or serialized.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the poller is not part of this build yet")]
    NotBuilt,
}

#[derive(Debug, Default, Clone)]
pub struct PollReport {
    pub fetched: u64,
}

impl PollReport {
    pub fn summary(&self, status: &str) -> String {
        format!("poll: status={status} fetched={}", self.fetched)
    }
    pub fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([("fetched".to_string(), self.fetched)])
    }
}

pub fn run(
    _ix: &IndexerConfig,
    _sp: &Spool<'_>,
    _ledger: &mut Ledger,
    _backlog_limit: u64,
    _password: Option<&Secret>,
    _audit: bool,
) -> Result<PollReport, PollError> {
    Err(PollError::NotBuilt)
}
