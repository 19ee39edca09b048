//! Helpers shared by the test modules: fixed times, JSON merging, the fixture directory.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::PathBuf;

/// A fixed instant (tests never read the clock).
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    sf_policy::cli::parse_at(rfc3339).expect("test times are valid RFC 3339")
}

/// Deep-merges `extra` into `base`: objects merge key by key, anything else replaces.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The real Wazuh alerts shipped as fixtures (`tests/data/wazuh-alerts/` at the repository root).
pub fn real_alerts_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/wazuh-alerts/"
    ))
}
