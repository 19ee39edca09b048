//! OpenSearch's wire shapes that are not search results: error bodies (`{"error": {...},
//! "status": N}`), the unknown-route error, the security plugin's 401, and `GET /`.
//!
//! Promise: every shape here is checked against a real response body in
//! `tests/data/opensearch/` (see its README for sources).

use serde_json::{json, Value};

/// An error response: status plus the body OpenSearch would send.
#[derive(Debug, Clone)]
pub struct OsError {
    pub status: u16,
    pub kind: String,
    pub reason: String,
    /// A complete body, when the error has more structure than root_cause/type/reason.
    pub body: Option<Value>,
}

impl OsError {
    pub fn new(status: u16, kind: &str, reason: impl Into<String>) -> OsError {
        OsError {
            status,
            kind: kind.to_string(),
            reason: reason.into(),
            body: None,
        }
    }

    pub fn bad_request(kind: &str, reason: impl Into<String>) -> OsError {
        OsError::new(400, kind, reason)
    }

    /// The JSON body.
    pub fn to_body(&self) -> Value {
        if let Some(b) = &self.body {
            return b.clone();
        }
        json!({
            "error": {
                "root_cause": [{"type": self.kind, "reason": self.reason}],
                "type": self.kind,
                "reason": self.reason,
            },
            "status": self.status,
        })
    }

    /// A shard-level error that failed every shard, as `search_phase_execution_exception`.
    pub fn all_shards_failed(
        status: u16,
        cause_kind: &str,
        cause: &str,
        index: Option<&str>,
        shard: i64,
        node: Option<&str>,
    ) -> OsError {
        let mut failed = json!({"shard": shard, "index": index, "reason": {"type": cause_kind, "reason": cause}});
        if let Some(n) = node {
            failed["node"] = json!(n);
        }
        let body = json!({
            "error": {
                "root_cause": [{"type": cause_kind, "reason": cause}],
                "type": "search_phase_execution_exception",
                "reason": "all shards failed",
                "phase": "query",
                "grouped": true,
                "failed_shards": [failed],
                "caused_by": {"type": cause_kind, "reason": cause},
            },
            "status": status,
        });
        OsError {
            status,
            kind: "search_phase_execution_exception".into(),
            reason: "all shards failed".into(),
            body: Some(body),
        }
    }

    /// `from + size` beyond `index.max_result_window`.
    pub fn result_window(from_plus_size: usize, index: &str) -> OsError {
        let reason = format!(
            "Result window is too large, from + size must be less than or equal to: [10000] but was [{from_plus_size}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting."
        );
        OsError::all_shards_failed(
            400,
            "illegal_argument_exception",
            &reason,
            Some(index),
            0,
            Some(NODE_ID),
        )
    }

    /// A point in time that expired or never existed.
    pub fn pit_missing(pit_id: &str) -> OsError {
        let _ = pit_id;
        // OpenSearch names the shard-level reader context id, not the PIT id.
        let reason = "No search context found for id [17]";
        OsError::all_shards_failed(
            404,
            "search_context_missing_exception",
            reason,
            None,
            -1,
            None,
        )
    }

    /// A concrete index name that does not exist.
    pub fn index_not_found(name: &str) -> OsError {
        let body = json!({
            "error": {
                "root_cause": [{"type": "index_not_found_exception", "reason": format!("no such index [{name}]"), "index": name, "resource.id": name, "resource.type": "index_or_alias", "index_uuid": "_na_"}],
                "type": "index_not_found_exception",
                "reason": format!("no such index [{name}]"),
                "index": name,
                "resource.id": name,
                "resource.type": "index_or_alias",
                "index_uuid": "_na_",
            },
            "status": 404,
        });
        OsError {
            status: 404,
            kind: "index_not_found_exception".into(),
            reason: format!("no such index [{name}]"),
            body: Some(body),
        }
    }

    /// What OpenSearch answers for a route it does not have (also PIT routes before 2.4).
    pub fn no_handler(method: &str, path: &str) -> OsError {
        let body =
            json!({"error": format!("no handler found for uri [{path}] and method [{method}]")});
        OsError {
            status: 400,
            kind: "no_handler".into(),
            reason: String::new(),
            body: Some(body),
        }
    }
}

/// The node id that shard failures name.
pub const NODE_ID: &str = "sim-node-1-8eKq3Qm2TnWc";

/// The cluster's UUID.
pub const CLUSTER_UUID: &str = "wSbq2__5RNukXDVAtIHRYA";

/// `GET /`. With `wazuh_compat`, the answer a Wazuh 4.x indexer gives (`7.10.2`, no
/// `distribution`).
pub fn cluster_info(server_version: &str, wazuh_compat: bool) -> Value {
    let mut version = json!({
        "distribution": "opensearch",
        "number": server_version,
        "build_type": "rpm",
        "build_hash": "6b0f9fe71a86f4b193a8bea724bbd716f7f3ca52",
        "build_date": "2025-03-01T05:58:00.206332Z",
        "build_snapshot": false,
        "lucene_version": "9.12.1",
        "minimum_wire_compatibility_version": "7.10.0",
        "minimum_index_compatibility_version": "7.0.0",
    });
    if wazuh_compat {
        version["number"] = json!("7.10.2");
        if let Some(o) = version.as_object_mut() {
            o.remove("distribution");
        }
    }
    json!({
        "name": "node-1",
        "cluster_name": "wazuh-cluster",
        "cluster_uuid": CLUSTER_UUID,
        "version": version,
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    })
}

/// Whether this OpenSearch version has the point-in-time API (2.4 and later).
pub fn has_pit(server_version: &str) -> bool {
    let mut parts = server_version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (2, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pit_exists_from_2_4() {
        assert!(has_pit("2.4.0"));
        assert!(has_pit("2.19.1"));
        assert!(has_pit("3.0.0"));
        assert!(!has_pit("2.3.0"));
        assert!(!has_pit("1.3.20"));
    }

    #[test]
    fn wazuh_compat_cluster_info_reports_7_10_2_without_distribution() {
        let v = cluster_info("2.19.1", true);
        assert_eq!(v["version"]["number"], "7.10.2");
        assert!(v["version"].get("distribution").is_none());
        let v = cluster_info("2.19.1", false);
        assert_eq!(v["version"]["number"], "2.19.1");
        assert_eq!(v["version"]["distribution"], "opensearch");
    }
}
