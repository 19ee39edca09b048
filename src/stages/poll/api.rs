//! The indexer's search API as the poll calls it, on top of the client's retry policy
//! ([`Indexer::call`]): the survey of the cluster (`GET /`: Wazuh 5 refused, PIT or plain
//! `search_after`), `_count` (one method for the survey's and the audit's), points in time
//! (a partially created one dropped and retried, closed best effort) and one search page (a
//! partial page retried, never returned).

use reqwest::Method;
use serde_json::{json, Value};

use super::{wire, Indexer, PollError};

/// How long a point in time is kept alive between two pages.
const PIT_KEEP_ALIVE: &str = "5m";

/// How the cycle pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Paging {
    Pit,
    SearchAfter,
}

impl Indexer {
    /// `GET /`: refuses a Wazuh 5 indexer; chooses point in time when the version may have it.
    pub(super) fn survey(&self, index: &str) -> Result<Paging, PollError> {
        let info: wire::ClusterInfo = self.call(
            Method::GET,
            "/",
            None,
            "read the cluster info (GET /)",
            |_| None,
        )?;
        let v = &info.version;
        let (major, minor) = v.major_minor();
        tracing::info!(
            version = %v.number,
            distribution = v.distribution.as_deref().unwrap_or("-"),
            "indexer {}", self.url()
        );
        if v.is_opensearch() && major >= 3 {
            // Wazuh 5 indexers are OpenSearch 3.x with findings in data streams; a 4.x
            // indexer reports 7.10.2 (compatibility mode) or OpenSearch 1.x/2.x.
            let q = json!({"query": {"match_all": {}}});
            let findings: wire::CountResponse = self.call(
                Method::POST,
                "/wazuh-findings-v5*,.ds-wazuh-findings-v5*/_count",
                Some(&q),
                "count Wazuh 5 findings",
                |_| None,
            )?;
            let alerts = self.count(index, &json!({"match_all": {}}), "count alerts", |_| None)?;
            if findings.count > 0 || alerts == 0 {
                return Err(PollError::Wazuh5 {
                    url: self.url().to_string(),
                    evidence: format!(
                        "OpenSearch {}, {} documents in wazuh-findings-v5 data streams, {} in {index}",
                        v.number, findings.count, alerts
                    ),
                });
            }
        }
        Ok(if v.is_opensearch() && (major, minor) < (2, 4) {
            Paging::SearchAfter
        } else {
            // OpenSearch 2.4+, or a Wazuh 4.x indexer reporting 7.10.2: try, fall back.
            Paging::Pit
        })
    }

    /// `POST /<index>/_count` of `query` (a query clause): how many documents match, 0 when the
    /// index does not exist (404). `check` as in [`Indexer::call`]: the audit retries a partial
    /// count, the survey takes it as it is.
    pub(super) fn count(
        &self,
        index: &str,
        query: &Value,
        what: &str,
        check: impl Fn(&wire::CountResponse) -> Option<String>,
    ) -> Result<u64, PollError> {
        self.call::<wire::CountResponse>(
            Method::POST,
            &format!("/{index}/_count"),
            Some(&json!({ "query": query })),
            what,
            check,
        )
        .map(|c| c.count)
        .or_else(|e| {
            if e.is_refused(404, &[]) {
                Ok(0)
            } else {
                Err(e)
            }
        })
    }

    /// Opens a point in time; `None` when the indexer has no PIT API (or the user may not use it).
    pub(super) fn open_pit(&self, index: &str) -> Result<Option<String>, PollError> {
        let path = format!("/{index}/_search/point_in_time?keep_alive={PIT_KEEP_ALIVE}");
        let r =
            self.call::<wire::PitCreated>(Method::POST, &path, None, "open a point in time", |p| {
                // A partially created PIT would miss a shard's alerts for the whole cycle: drop
                // it and try again.
                if p.shards.failed > 0 {
                    self.close_pit(&p.pit_id);
                    Some(format!(
                        "partial point in time: {} of {} shards failed ({})",
                        p.shards.failed,
                        p.shards.total,
                        p.shards.first_reason()
                    ))
                } else {
                    None
                }
            });
        match r {
            Ok(p) => Ok(Some(p.pit_id)),
            Err(e)
                if e.is_refused(400, &["no_handler"])
                    || e.is_refused(404, &[])
                    || e.is_refused(405, &[]) =>
            {
                tracing::info!(
                    "the indexer has no point-in-time API; paging with search_after alone"
                );
                Ok(None)
            }
            Err(PollError::Forbidden { reason, .. }) => {
                tracing::warn!("the indexer user may not open a point in time ({reason}); paging with search_after alone");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Best effort: a PIT left behind expires after its keep-alive.
    pub(super) fn close_pit(&self, id: &str) {
        let body = json!({"pit_id": [id]});
        if let Err(e) = self.call_attempts::<wire::PitDeleted>(
            Method::DELETE,
            "/_search/point_in_time",
            Some(&body),
            "delete the point in time",
            2,
            |_| None,
        ) {
            tracing::debug!("could not delete a point in time (it expires by itself): {e}");
        }
    }

    /// One search page.
    pub(super) fn page(
        &self,
        index: &str,
        query: &Value,
        size: u32,
        after: Option<&[Value]>,
        pit: Option<&str>,
        source: bool,
    ) -> Result<wire::SearchResponse, PollError> {
        let body = wire::search_body(query, size, after, pit.map(|p| (p, PIT_KEEP_ALIVE)), source);
        let path = match pit {
            Some(_) => "/_search".to_string(),
            None => format!("/{index}/_search"),
        };
        self.call(
            Method::POST,
            &path,
            Some(&body),
            "search alerts",
            wire::SearchResponse::partial,
        )
    }
}
