//! A `match` table outside a policy: what a delivery route uses to pick incidents by their first
//! member. Same matchers, same semantics as a rule's `match` (DESIGN.md, the policy format).

use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::matcher::{Clause, Subject};

/// A compiled `match` table: every clause must hold.
#[derive(Debug, Clone)]
pub struct MatchTable {
    clauses: Vec<Clause>,
}

impl MatchTable {
    /// Compiles the `match` key of a TOML document (`match = { "rule.groups" = "sshd" }`);
    /// `label` names the table in diagnostics (`[[notify]] soc-webhook`).
    pub fn compile(src: &str, label: &str) -> Result<MatchTable, Vec<Diagnostic>> {
        crate::compile::compile_match(src, label).map(|clauses| MatchTable { clauses })
    }

    /// The table holds for the alert (its document, as `alert_document` finds it) whose
    /// canonical agent is `agent`.
    pub fn matches(&self, alert: &Value, agent: &str) -> bool {
        let doc = crate::decide::alert_document(alert);
        let s = Subject::new(doc, agent);
        self.clauses.iter().all(|c| c.check(&s).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_route_match_holds_as_a_rule_match_does() {
        let m = MatchTable::compile(
            r#"match = { "rule.groups" = "sshd", "agent" = { glob = "web-*" } }"#,
            "route",
        )
        .unwrap();
        let a = json!({"rule": {"groups": ["syslog", "sshd"]}});
        assert!(m.matches(&a, "web-01"));
        assert!(!m.matches(&a, "db-01"));
        assert!(!m.matches(&json!({"rule": {"groups": ["pam"]}}), "web-01"));
    }

    #[test]
    fn a_bad_match_is_a_diagnostic_naming_the_route() {
        let e = MatchTable::compile(r#"match = { "rule.id" = { regex = "(" } }"#, "[[notify]] x")
            .unwrap_err();
        assert!(e
            .iter()
            .any(|d| d.message.contains("[[notify]] x") || d.is_error()));
        let e = MatchTable::compile("match = {}", "[[notify]] x").unwrap_err();
        assert!(e[0].message.contains("[[notify]] x"), "{e:?}");
    }
}
