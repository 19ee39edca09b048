//! Compiled matchers: what one `field = matcher` clause of a `match` table tests, built once by
//! `compile` and evaluated against each alert without allocating (except to collapse a value's
//! backslashes or print a number as text).

use crate::value::{any_at, Scalar};
use ipnet::IpNet;
use regex::{Regex, RegexSet};
use serde_json::Value;
use std::cell::Cell;
use std::net::IpAddr;

/// A literal of an equality test.
#[derive(Debug, Clone)]
pub(crate) enum Lit {
    /// A string (backslash runs collapsed), and its number when it is a numeric string.
    Str {
        text: Box<str>,
        number: Option<f64>,
    },
    /// A number (equal to the numeric strings of the same value).
    Num(f64),
    Bool(bool),
}

impl Lit {
    fn equals(&self, v: Scalar<'_>) -> bool {
        match (self, v) {
            (Lit::Str { text, .. }, Scalar::Str(_)) => v.text().is_some_and(|t| *t == **text),
            (Lit::Str { number, .. }, Scalar::Num(_)) => {
                number.is_some_and(|x| v.number() == Some(x))
            }
            (Lit::Num(x), Scalar::Str(_) | Scalar::Num(_)) => v.number() == Some(*x),
            (Lit::Bool(b), Scalar::Bool(x)) => *b == x,
            (Lit::Str { text, .. }, Scalar::Bool(x)) => **text == *if x { "true" } else { "false" },
            (Lit::Bool(b), Scalar::Str(s)) => s == if *b { "true" } else { "false" },
            _ => false,
        }
    }
}

/// One value-level test; a table matcher holds several, all of which must hold for one value.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// Equals any of.
    Eq(Box<[Lit]>),
    Prefix(Box<[Box<str>]>),
    Suffix(Box<[Box<str>]>),
    Contains(Box<[Box<str>]>),
    /// A regex, a glob, or a case-insensitive string test, compiled to one regex.
    Pattern(Regex),
    /// A list of user regexes: any of them.
    PatternSet(RegexSet),
    Cidr(Box<[IpNet]>),
    Range {
        gte: Option<f64>,
        lte: Option<f64>,
    },
}

impl Test {
    fn holds(&self, v: Scalar<'_>) -> bool {
        match self {
            Test::Eq(lits) => lits.iter().any(|l| l.equals(v)),
            Test::Prefix(ps) => v
                .text()
                .is_some_and(|t| ps.iter().any(|p| t.starts_with(&**p))),
            Test::Suffix(ss) => v
                .text()
                .is_some_and(|t| ss.iter().any(|s| t.ends_with(&**s))),
            Test::Contains(cs) => v
                .text()
                .is_some_and(|t| cs.iter().any(|c| t.contains(&**c))),
            Test::Pattern(re) => v.text().is_some_and(|t| re.is_match(&t)),
            Test::PatternSet(set) => v.text().is_some_and(|t| set.is_match(&t)),
            Test::Cidr(nets) => match v {
                Scalar::Str(s) => s
                    .trim()
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
                _ => false,
            },
            Test::Range { gte, lte } => v
                .number()
                .is_some_and(|x| gte.is_none_or(|g| x >= g) && lte.is_none_or(|l| x <= l)),
        }
    }
}

/// What a clause looks at: the canonical agent, or a dotted path into the alert.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Agent,
    /// A dotted path; `slot` caches its first segment's lookup in [`Subject`] (paths of a policy
    /// share a handful of roots: `rule`, `data`, `agent`, `syscheck`...).
    Path {
        slot: u16,
        path: Box<[Box<str>]>,
    },
}

/// How many distinct first segments [`Subject`] caches; paths beyond them are looked up as usual.
pub(crate) const ROOT_SLOTS: usize = 16;

/// The alert being decided, its canonical agent, and the top-level fields looked up so far.
pub(crate) struct Subject<'a> {
    pub(crate) alert: &'a Value,
    pub(crate) agent: &'a str,
    roots: [Cell<Option<Option<&'a Value>>>; ROOT_SLOTS],
}

impl<'a> Subject<'a> {
    pub(crate) fn new(alert: &'a Value, agent: &'a str) -> Self {
        Subject {
            alert,
            agent,
            roots: Default::default(),
        }
    }

    fn root(&self, slot: u16, name: &str) -> Option<&'a Value> {
        let lookup = || self.alert.as_object().and_then(|m| m.get(name));
        match self.roots.get(usize::from(slot)) {
            Some(cell) => match cell.get() {
                Some(cached) => cached,
                None => {
                    let found = lookup();
                    cell.set(Some(found));
                    found
                }
            },
            None => lookup(),
        }
    }
}

impl Field {
    fn any<'a, F>(&self, s: &Subject<'a>, f: &mut F) -> bool
    where
        F: FnMut(Scalar<'a>) -> bool,
    {
        match self {
            Field::Agent => f(Scalar::Str(s.agent)),
            Field::Path { slot, path } => match path.split_first() {
                Some((first, rest)) => s.root(*slot, first).is_some_and(|v| any_at(v, rest, f)),
                None => false,
            },
        }
    }

    /// Whether the field has a value (not missing, not null).
    pub(crate) fn present(&self, s: &Subject<'_>) -> bool {
        self.any(s, &mut |_| true)
    }
}

/// A compiled matcher: every part that is set must hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    /// Value-level tests: some value of the field passes all of them. Empty: no condition.
    pub(crate) tests: Vec<Test>,
    /// `exists = true/false`.
    pub(crate) exists: Option<bool>,
    /// `not = <matcher>`: true when the field is missing or no value matches.
    pub(crate) not: Option<Box<Matcher>>,
}

impl Matcher {
    /// `Ok` when the matcher holds; `Err(present)` when it does not, saying whether the field had
    /// a value (for the trace), found in the same pass.
    pub(crate) fn check(&self, field: &Field, s: &Subject<'_>) -> Result<(), bool> {
        let mut present = None;
        if !self.tests.is_empty() {
            let mut seen = false;
            let holds = field.any(s, &mut |v| {
                seen = true;
                self.tests.iter().all(|t| t.holds(v))
            });
            if !holds {
                return Err(seen);
            }
            present = Some(true);
        }
        if let Some(want) = self.exists {
            let is_present = present.unwrap_or_else(|| field.present(s));
            if is_present != want {
                return Err(is_present);
            }
        }
        if let Some(inner) = &self.not {
            if inner.check(field, s).is_ok() {
                // A value matched the inner matcher, so the field is present.
                return Err(true);
            }
        }
        Ok(())
    }
}

/// One `field = matcher` of a `match` table.
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    pub(crate) field: Field,
    pub(crate) matcher: Matcher,
    /// Canonical description, e.g. `data.title prefix "Trojaned"`: shown in traces, and compared
    /// to find shadowed rules.
    pub(crate) desc: Box<str>,
}

impl Clause {
    pub(crate) fn check(&self, s: &Subject<'_>) -> Result<(), bool> {
        self.matcher.check(&self.field, s)
    }
}
