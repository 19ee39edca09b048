//! A generated benchmark workload: a policy of N signatures shaped like a real one (most pin a
//! rule.id, a few do not; prefixes, globs, regexes, CIDRs, expiry, allow_high) and Wazuh-like
//! alerts that hit, miss and get held back. Deterministic (seeded); shared by the bench and a test.

use serde_json::{json, Value};
use std::fmt::Write as _;

/// splitmix64: a small deterministic generator (no dependency needed for a workload).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Rule ids that have signatures (the first 200) and ids that have none (the next 100).
fn rule_id(k: u64) -> String {
    (60_000 + k * 7).to_string()
}

const HOSTS: usize = 400;
const PINNED_RULE_IDS: u64 = 200;
const UNPINNED_RULE_IDS: u64 = 100;

fn host(k: u64) -> String {
    let prefix = ["web", "db", "dc", "alpine", "ws", "build"][(k % 6) as usize];
    format!("{prefix}-{k:03}")
}

fn image(k: u64) -> String {
    format!("C:\\Windows\\System32\\tool{k}.exe")
}

/// A policy with `signatures` signatures (2% of them pin no rule.id), 5 overrides and 50 aliases.
pub fn policy_toml(signatures: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut s = String::from("[severity]\nmedium = 7\nhigh = 12\n\n");
    for a in 0..50u64 {
        let _ = write!(
            s,
            "[[alias]]\ncanonical = \"{}\"\nnames = [\"{}.corp.local\", \"WIN-{a:05}\"]\nids = [\"{:03}\"]\n\n",
            host(a),
            host(a),
            900 + a
        );
    }
    for o in 0..5u64 {
        let m = if o < 3 {
            format!("\"rule.id\" = \"{}\", \"data.win.eventdata.originalFileName\" = {{ equals = \"evil{o}.exe\", nocase = true }}", rule_id(o * 11))
        } else {
            format!("\"data.win.eventdata.originalFileName\" = {{ equals = \"evil{o}.exe\", nocase = true }}")
        };
        let _ = write!(
            s,
            "[[override]]\nid = \"ov-{o}\"\nbucket = \"high\"\nmatch = {{ {m} }}\n\n"
        );
    }
    for i in 0..signatures as u64 {
        // 2% pin no rule.id: half of those require another field's value, half nothing exact.
        let pinned = i % 50 != 49;
        let mut clauses: Vec<String> = Vec::new();
        if pinned {
            clauses.push(format!(
                "\"rule.id\" = \"{}\"",
                rule_id(rng.below(PINNED_RULE_IDS))
            ));
        }
        match rng.below(6) {
            0 => clauses.push(format!(
                "\"agent\" = {{ glob = \"{}*\", nocase = true }}",
                host(rng.below(HOSTS as u64)).split('-').next().unwrap_or("web")
            )),
            1 => clauses.push(format!(
                "\"data.srcip\" = {{ cidr = \"10.{}.0.0/16\" }}",
                rng.below(256)
            )),
            2 => clauses.push(format!(
                "\"data.win.eventdata.image\" = {{ suffix = 'tool{}.exe', nocase = true }}",
                rng.below(50)
            )),
            3 => clauses.push(format!(
                "\"syscheck.path\" = {{ prefix = 'HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\svc{}' }}",
                rng.below(50)
            )),
            4 => clauses.push(format!(
                "\"full_log\" = {{ regex = 'user (svc|adm)-{}\\b' }}",
                rng.below(50)
            )),
            _ => clauses.push(format!("\"agent.name\" = \"{}\"", host(rng.below(HOSTS as u64)))),
        }
        if !pinned && i % 100 == 49 {
            clauses.push("\"rule.groups\" = \"generated\"".to_string());
        } else if !pinned {
            clauses.push("\"rule.groups\" = { prefix = \"generated\" }".to_string());
        }
        if rng.chance(20) {
            clauses.push("\"data.dstuser\" = { not = \"root\" }".to_string());
        }
        let _ = write!(
            s,
            "[[suppress]]\nid = \"fp-{i:04}\"\nreason = \"generated noise {i}\"\nowner = \"bench\"\n"
        );
        if rng.chance(10) {
            s.push_str("allow_high = true\n");
        }
        if rng.chance(10) {
            let _ = writeln!(s, "expires = \"202{}-06-30\"", rng.below(10));
        }
        let _ = write!(s, "match = {{ {} }}\n\n", clauses.join(", "));
    }
    s
}

/// `n` Wazuh-like alerts: most of the rule ids have signatures, ~3% are level 12 or more, and the
/// fields are drawn from the same pools as the signatures' so that some match.
pub fn alerts(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let rid = if rng.chance(75) {
                rule_id(rng.below(PINNED_RULE_IDS))
            } else {
                rule_id(PINNED_RULE_IDS + rng.below(UNPINNED_RULE_IDS))
            };
            let level = if rng.chance(3) { 12 + rng.below(4) } else { 2 + rng.below(9) };
            let h = rng.below(HOSTS as u64);
            let agent_name = if rng.chance(10) {
                format!("WIN-{:05}", h % 50)
            } else {
                host(h)
            };
            let mut alert = json!({
                "timestamp": "2025-09-12T10:00:00.000+0000",
                "rule": {
                    "level": level,
                    "description": "generated alert",
                    "id": rid,
                    "firedtimes": 1 + rng.below(500),
                    "mail": level >= 12,
                    "groups": ["windows", "sysmon", if rng.chance(5) { "generated" } else { "other" }],
                    "mitre": { "id": ["T1112"], "tactic": ["Defense Evasion"] }
                },
                "agent": { "id": format!("{:03}", 1 + h), "name": agent_name, "ip": format!("10.{}.{}.{}", h % 256, rng.below(256), rng.below(256)) },
                "manager": { "name": "wazuh-manager" },
                "id": format!("1757671200.{i}"),
                "decoder": { "name": "windows_eventchannel" },
                "location": "EventChannel",
            });
            let data = match rng.below(4) {
                0 => json!({ "srcip": format!("10.{}.{}.{}", rng.below(256), rng.below(256), rng.below(256)), "dstuser": if rng.chance(30) { "root" } else { "svc" } }),
                1 => json!({ "win": {
                    "system": { "computer": format!("{}.corp.local", host(h)), "eventID": "1" },
                    "eventdata": { "image": image(rng.below(60)).replace('\\', "\\\\"), "originalFileName": format!("tool{}.exe", rng.below(60)) }
                }}),
                2 => json!({ "dstuser": "svc" }),
                _ => json!({ "title": "generated" }),
            };
            alert["data"] = data;
            if rng.chance(25) {
                alert["syscheck"] = json!({ "path": format!("HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\svc{}\\Parameters", rng.below(60)), "event": "modified" });
            }
            if rng.chance(20) {
                alert["full_log"] = json!(format!("session opened for user svc-{} by (uid=0)", rng.below(60)));
            }
            alert
        })
        .collect()
}
