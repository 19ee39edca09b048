//! `rule.level`, read one way by all of SignalFoundry: the queue priority in canonical names, the
//! spool's alert metadata (`signalfoundry::alert::meta`), the policy's decision, and triage's
//! choice to give a quarantined alert its `Q-` escalation pack.
//!
//! Design constraints:
//! - **One reading.** [`Level::read`] is the only code that interprets the value of
//!   `rule.level`; the pipeline and [`crate::Policy::decide`] both call it, so no alert is high
//!   to one stage and level-less (priority 0, no pack) to another.
//! - **A level is a Wazuh level**: a whole number from 0 to [`MAX_LEVEL`], whatever its JSON
//!   form: an integer (`12`, what Wazuh sends), an integral float (`12.0`, `1e1`), or a string
//!   holding a decimal integer, ASCII whitespace around it ignored (`"12"`, `" 12"`, as some
//!   re-serialising pipelines send it). Only a level can be decided.
//! - **The form of a number never costs an escalation.** A number that is not a level (`12.5`,
//!   `1e3`, `17`) cannot be decided (triage quarantines it), but it keeps its
//!   [`rank`](Level::rank), its whole part: its queue priority (which canonical names saturate
//!   at 99), and the `Q-` pack a quarantined alert at or above `high` gets.
//! - **Strings are decimal integers or nothing.** `"+12"`, `"-1"`, `"12.0"`, `"1e1"` and any
//!   other text do not read as a number anywhere: no level, no rank.
//! - Pure: no IO, no clock.

use serde_json::Value;

use crate::value::json_type;

/// The highest Wazuh rule level (Wazuh's ruleset allows 0 to 16).
pub const MAX_LEVEL: u32 = 16;

/// How an alert's `rule.level` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A Wazuh level (0 to [`MAX_LEVEL`]): the alert can be decided on it.
    Valid(u32),
    /// A number that is not a level: the alert cannot be decided. `rank` is its whole part
    /// (saturating at `u32::MAX`), none for a negative number.
    NotALevel {
        problem: NotALevel,
        rank: Option<u32>,
    },
    /// There is no `rule.level`.
    Missing,
    /// Not a number: its JSON type (`"a boolean"`, `"null"`, `"a string"` for a string that is
    /// not a decimal integer).
    NotANumber(&'static str),
}

/// Why a number is not a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotALevel {
    Negative,
    Fractional,
    /// Above [`MAX_LEVEL`].
    OutOfRange,
}

impl Level {
    /// Reads the value of `rule.level` (`None` when the alert has none). The one reading of a
    /// level; see the module's design constraints.
    pub fn read(value: Option<&Value>) -> Level {
        match value {
            None => Level::Missing,
            Some(Value::Number(n)) => {
                if let Some(u) = n.as_u64() {
                    Level::whole(u)
                } else if n.as_i64().is_some() {
                    Level::negative()
                } else {
                    // JSON has no NaN or infinity: a number that is neither u64 nor i64 is a
                    // finite f64.
                    Level::float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Some(Value::String(s)) => {
                let digits = s.trim_ascii();
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Level::NotANumber("a string");
                }
                // Digits only: it fails to parse only when it overflows u64.
                Level::whole(digits.parse().unwrap_or(u64::MAX))
            }
            Some(other) => Level::NotANumber(json_type(other)),
        }
    }

    /// The level to decide on, or why the alert cannot be decided on it: the words that follow
    /// `rule.level` (`is missing`, `is out of range (0 to 16)`).
    pub fn decidable(self) -> Result<u32, String> {
        Err(match self {
            Level::Valid(l) => return Ok(l),
            Level::Missing => "is missing".to_string(),
            Level::NotALevel { problem, .. } => match problem {
                NotALevel::Negative => "is negative, expected 0 or more".to_string(),
                NotALevel::Fractional => {
                    "is not a whole number, expected a whole number such as 12".to_string()
                }
                NotALevel::OutOfRange => format!("is out of range (0 to {MAX_LEVEL})"),
            },
            Level::NotANumber("a string") => {
                "is a string that is not a whole number, expected a number such as 12".to_string()
            }
            Level::NotANumber(kind) => format!("is {kind}, expected a number"),
        })
    }

    /// The level as it orders and escalates the alert: the level, or for a number that is not
    /// one its whole part (`12.5` → 12, `1e3` → 1000); none when it does not read as a number
    /// or is negative. Queue priority is the rank (canonical names saturate it at 99); a
    /// quarantined alert whose rank is at or above `high` gets its `Q-` pack.
    pub fn rank(self) -> Option<u32> {
        match self {
            Level::Valid(l) => Some(l),
            Level::NotALevel { rank, .. } => rank,
            Level::Missing | Level::NotANumber(_) => None,
        }
    }

    fn whole(u: u64) -> Level {
        match u32::try_from(u) {
            Ok(l) if l <= MAX_LEVEL => Level::Valid(l),
            _ => Level::NotALevel {
                problem: NotALevel::OutOfRange,
                rank: Some(u32::try_from(u).unwrap_or(u32::MAX)),
            },
        }
    }

    fn negative() -> Level {
        Level::NotALevel {
            problem: NotALevel::Negative,
            rank: None,
        }
    }

    fn float(f: f64) -> Level {
        if f < 0.0 {
            return Level::negative();
        }
        if f.fract() != 0.0 {
            return Level::NotALevel {
                problem: NotALevel::Fractional,
                // `as` saturates: the whole part, at most u32::MAX.
                rank: Some(f as u32),
            };
        }
        if f <= f64::from(MAX_LEVEL) {
            // Integral and within 0..=16 (or -0.0, which is 0): exact.
            return Level::Valid(f as u32);
        }
        Level::NotALevel {
            problem: NotALevel::OutOfRange,
            rank: Some(f as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rule.level` as JSON text (`None`: absent) → (the level decided on, the rank).
    #[track_caller]
    fn check(json: Option<&str>, decidable: Option<u32>, rank: Option<u32>) {
        let value: Option<Value> = json.map(|j| serde_json::from_str(j).expect("test json"));
        let level = Level::read(value.as_ref());
        assert_eq!(
            (level.decidable().ok(), level.rank()),
            (decidable, rank),
            "{json:?}: {level:?}"
        );
    }

    #[test]
    fn a_level_reads_the_same_whatever_its_json_form() {
        check(Some("12"), Some(12), Some(12));
        check(Some("12.0"), Some(12), Some(12));
        check(Some("1e1"), Some(10), Some(10));
        check(Some("0"), Some(0), Some(0));
        check(Some("-0.0"), Some(0), Some(0));
        check(Some("16"), Some(16), Some(16));
        check(Some(r#""12""#), Some(12), Some(12));
        check(Some(r#"" 12""#), Some(12), Some(12));
        check(Some(r#""012\n""#), Some(12), Some(12));
    }

    #[test]
    fn a_number_that_is_not_a_level_keeps_its_whole_part_as_its_rank() {
        check(Some("12.5"), None, Some(12));
        check(Some("11.99"), None, Some(11));
        check(Some("1e3"), None, Some(1000));
        check(Some("17"), None, Some(17));
        check(Some(r#""1000""#), None, Some(1000));
        check(Some("4294967296"), None, Some(u32::MAX));
        check(Some("1e300"), None, Some(u32::MAX));
        check(Some(r#""99999999999999999999999""#), None, Some(u32::MAX));
        check(Some("-1"), None, None);
        check(Some("-0.5"), None, None);
    }

    #[test]
    fn anything_else_is_no_level_and_no_rank() {
        for json in [
            r#""+12""#,
            r#""-1""#,
            r#""12.0""#,
            r#""1e1""#,
            r#""""#,
            r#""high""#,
            "true",
            "null",
            "[12]",
            r#"{"n":12}"#,
        ] {
            check(Some(json), None, None);
        }
        check(None, None, None);
    }

    #[test]
    fn each_problem_says_what_is_wrong() {
        let problem = |json: &str| {
            let v: Value = serde_json::from_str(json).expect("test json");
            Level::read(Some(&v)).decidable().expect_err("not a level")
        };
        assert_eq!(Level::read(None).decidable(), Err("is missing".to_string()));
        assert_eq!(problem("-1"), "is negative, expected 0 or more");
        assert_eq!(
            problem("12.5"),
            "is not a whole number, expected a whole number such as 12"
        );
        assert_eq!(problem("1e3"), "is out of range (0 to 16)");
        assert_eq!(
            problem(r#""+12""#),
            "is a string that is not a whole number, expected a number such as 12"
        );
        assert_eq!(problem("true"), "is a boolean, expected a number");
        assert_eq!(problem("null"), "is null, expected a number");
    }
}
