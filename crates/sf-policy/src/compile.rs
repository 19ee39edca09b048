//! The policy file (TOML) to a compiled [`Policy`]. Every error is collected with its line, column
//! and a hint; compiling never stops at the first. Warnings (a shadowed signature or group rule, an alias name
//! listed twice, an alias id claimed twice for one manager) do not make the file invalid.

use crate::alias::{Aliases, IdClaim, SpanSlot};
use crate::bucket::{Bucket, Thresholds};
use crate::decide::{FieldIndex, Policy, Rule, RuleSet};
use crate::diagnostic::{Diagnostic, Severity};
use crate::group::{ByField, GroupRule, Grouping, MAX_BY_FIELDS, MAX_WINDOW_SECS};
use crate::matcher::{Clause, Field, Lit, Matcher, Test};
use crate::value::{canonical_number, collapse_backslashes, numeric_str, FxMap};
use chrono::NaiveDate;
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use toml_edit::{ImDocument, Item, TableLike, Value as TomlValue};

/// Every key a matcher table may hold.
const MATCHER_KEYS: [&str; 12] = [
    "equals", "prefix", "suffix", "contains", "glob", "regex", "cidr", "gte", "lte", "exists",
    "not", "nocase",
];
const TOP_KEYS: [&str; 6] = [
    "severity", "alias", "suppress", "override", "group", "grouping",
];
const GROUP_KEYS: [&str; 5] = ["id", "by", "window", "match", "buckets"];
const GROUPING_KEYS: [&str; 2] = ["by", "window"];
const SEVERITY_KEYS: [&str; 2] = ["medium", "high"];
const ALIAS_KEYS: [&str; 4] = ["canonical", "names", "ids", "manager"];
const SUPPRESS_KEYS: [&str; 7] = [
    "id",
    "reason",
    "owner",
    "ticket",
    "expires",
    "allow_high",
    "match",
];
const OVERRIDE_KEYS: [&str; 5] = ["id", "bucket", "match", "reason", "owner"];

const MATCH_EXAMPLE: &str =
    r#"match = { "rule.id" = "510", "data.title" = { contains = "Trojaned" } }"#;

/// Compiles a policy; see [`Policy::parse`].
pub(crate) fn compile(src: &str) -> Result<(Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut cx = Cx::new(src);
    let Some(doc) = cx.parse(
        "",
        Some("fix the syntax; the policy's own checks run once the file parses".into()),
    ) else {
        return Err(cx.finish());
    };
    let root = doc.as_table();
    let mut thresholds = Thresholds::WAZUH;
    let mut aliases = Aliases::default();
    let mut spans = Vec::new();
    let mut overrides = Vec::new();
    let mut signatures = Vec::new();
    let mut grouping = Grouping::default();
    let mut group_tables = Vec::new();
    for (key, item) in root.iter() {
        let at = key_at(root, key);
        match key {
            "severity" => match as_table(item) {
                Some(t) => thresholds = cx.severity(&t),
                None => cx.error(
                    at,
                    format!("`severity` must be a table, found {}", item_type(item)),
                    Some("write [severity] with medium = 7 and high = 12".into()),
                ),
            },
            "grouping" => match as_table(item) {
                Some(t) => cx.grouping(&t, &mut grouping.default),
                None => cx.error(
                    at,
                    format!("`grouping` must be a table, found {}", item_type(item)),
                    Some(
                        "write [grouping] with by = [\"rule.id\", \"agent\"] and window = \"1h\""
                            .into(),
                    ),
                ),
            },
            "alias" | "suppress" | "override" | "group" => {
                let Some(tables) = array_of_tables(item) else {
                    cx.error(
                        at,
                        format!(
                            "`{key}` must be an array of tables, found {}",
                            item_type(item)
                        ),
                        Some(format!("write each entry under its own [[{key}]] header")),
                    );
                    continue;
                };
                for (n, t) in tables.into_iter().enumerate() {
                    match key {
                        "alias" => cx.alias(n + 1, &t, &mut aliases, &mut spans),
                        "suppress" => signatures.extend(cx.rule(Kind::Suppress, n + 1, &t)),
                        "group" => group_tables.push((n + 1, t)),
                        _ => overrides.extend(cx.rule(Kind::Override, n + 1, &t)),
                    }
                }
            }
            other => cx.unknown_key(at, other, None, &TOP_KEYS),
        }
    }
    // Group rules after `[grouping]`, wherever it is in the file: a rule leaving out `window`
    // takes the default's.
    let groups: Vec<(GroupRule, Meta)> = group_tables
        .into_iter()
        .filter_map(|(n, t)| cx.group(n, &t, &grouping.default))
        .collect();
    cx.shadowed(Kind::Override, &overrides);
    cx.shadowed(Kind::Suppress, &signatures);
    cx.too_broad(&signatures);
    cx.shadowed_groups(&groups);
    grouping.rules = groups.into_iter().map(|(r, _)| r).collect();
    if cx.diags.iter().any(Diagnostic::is_error) {
        return Err(cx.finish());
    }
    aliases.spans = std::sync::Arc::new(spans);
    let policy = Policy {
        version: version_of(src),
        thresholds,
        aliases,
        grouping,
        overrides: rule_set(
            Kind::Override,
            overrides.into_iter().map(|(r, _)| r).collect(),
        ),
        signatures: rule_set(
            Kind::Suppress,
            signatures.into_iter().map(|(r, _)| r).collect(),
        ),
    };
    Ok((policy, cx.finish()))
}

/// First 12 hex digits of the SHA-256 of the source text.
fn version_of(src: &str) -> String {
    let digest = Sha256::digest(src.as_bytes());
    let mut out = String::with_capacity(12);
    for byte in &digest[..6] {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Override,
    Suppress,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Override => "override",
            Kind::Suppress => "signature",
        }
    }
    fn header(self) -> &'static str {
        match self {
            Kind::Override => "[[override]]",
            Kind::Suppress => "[[suppress]]",
        }
    }
}

/// What the shadow check needs to know of a compiled rule.
struct Meta {
    line: usize,
    at: Option<usize>,
    descs: Vec<Box<str>>,
}

/// A table of the document (a `[table]`, an `[[array]]` element, or an `{ inline }` table).
struct Tbl<'a> {
    t: &'a dyn TableLike,
    at: Option<usize>,
    dotted: bool,
}

impl<'a> Tbl<'a> {
    fn get(&self, key: &str) -> Option<(Option<usize>, &'a Item)> {
        self.t
            .get_key_value(key)
            .map(|(k, item)| (k.span().map(|r| r.start), item))
    }
    fn keys(&self) -> Vec<&'a str> {
        self.t.iter().map(|(k, _)| k).collect()
    }
}

fn as_table(item: &Item) -> Option<Tbl<'_>> {
    match item {
        Item::Table(t) => Some(Tbl {
            t,
            at: t.span().map(|r| r.start),
            dotted: t.is_dotted(),
        }),
        Item::Value(TomlValue::InlineTable(t)) => Some(Tbl {
            t,
            at: t.span().map(|r| r.start),
            dotted: t.is_dotted(),
        }),
        _ => None,
    }
}

fn array_of_tables(item: &Item) -> Option<Vec<Tbl<'_>>> {
    match item {
        Item::ArrayOfTables(a) => Some(
            a.iter()
                .map(|t| Tbl {
                    t,
                    at: t.span().map(|r| r.start),
                    dotted: false,
                })
                .collect(),
        ),
        Item::Value(TomlValue::Array(a)) => a
            .iter()
            .map(|v| match v {
                TomlValue::InlineTable(t) => Some(Tbl {
                    t,
                    at: t.span().map(|r| r.start),
                    dotted: false,
                }),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn key_at(t: &dyn TableLike, key: &str) -> Option<usize> {
    t.get_key_value(key)
        .and_then(|(k, _)| k.span())
        .map(|r| r.start)
}

fn item_at(item: &Item) -> Option<usize> {
    item.span().map(|r| r.start)
}

fn value_type(v: &TomlValue) -> &'static str {
    match v {
        TomlValue::String(_) => "a string",
        TomlValue::Integer(_) => "an integer",
        TomlValue::Float(_) => "a float",
        TomlValue::Boolean(_) => "a boolean",
        TomlValue::Datetime(_) => "a date-time",
        TomlValue::Array(_) => "an array",
        TomlValue::InlineTable(_) => "a table",
    }
}

fn item_type(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

fn closest<'k>(word: &str, choices: &[&'k str]) -> Option<&'k str> {
    choices
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

/// Ids name rules in traces, the ledger and metrics: a small, safe alphabet.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn regex_problem(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(text.as_str())
            .trim()
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("it compiles to more than the {limit} bytes allowed")
        }
        other => other.to_string().to_lowercase(),
    }
}

fn glob_to_regex(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 8);
    let mut buf = [0u8; 4];
    for c in glob.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(c.encode_utf8(&mut buf))),
        }
    }
    out
}

fn list_desc(items: &[String]) -> String {
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("any of [{}]", items.join(", "))
    }
}

/// Indexes a list of rules: each by its rule.id equality if it has one, else by its first other
/// equality; the index clause moves last; the trace line of each clause's failure is written.
fn rule_set(kind: Kind, mut rules: Vec<Rule>) -> RuleSet {
    let mut by_rule_id = FieldIndex {
        path: RULE_ID_PATH.iter().map(|s| Box::from(*s)).collect(),
        rules: FxMap::default(),
    };
    let mut by_field: Vec<FieldIndex> = Vec::new();
    let mut unindexed = Vec::new();
    for (i, rule) in rules.iter_mut().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        match index_clause(rule, true).or_else(|| index_clause(rule, false)) {
            Some((c, keys)) => {
                let clause = rule.clauses.remove(c);
                let index = match &clause.field {
                    Field::Path { path, .. } if is_rule_id(path) => &mut by_rule_id,
                    Field::Path { path, .. } => {
                        let at = match by_field.iter().position(|f| f.path == *path) {
                            Some(at) => at,
                            None => {
                                by_field.push(FieldIndex {
                                    path: path.clone(),
                                    rules: FxMap::default(),
                                });
                                by_field.len() - 1
                            }
                        };
                        &mut by_field[at]
                    }
                    Field::Agent => &mut by_rule_id, // never chosen: see index_clause
                };
                for key in keys {
                    let list = index.rules.entry(key).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
                rule.clauses.push(clause);
            }
            None => unindexed.push(i),
        }
        let noun = kind.noun();
        rule.fail_lines = rule
            .clauses
            .iter()
            .map(|c| {
                let line = format!("{noun} {}: no match, fails {}", rule.id, c.desc);
                let missing = format!("{line} (the field is missing)");
                [line.into_boxed_str(), missing.into_boxed_str()]
            })
            .collect();
    }
    for list in by_rule_id.rules.values_mut() {
        list.extend_from_slice(&unindexed);
        list.sort_unstable();
        list.dedup();
    }
    RuleSet {
        rules,
        by_rule_id,
        by_field,
        unindexed,
    }
}

const RULE_ID_PATH: [&str; 2] = ["rule", "id"];

fn is_rule_id(path: &[Box<str>]) -> bool {
    path.len() == 2 && &*path[0] == "rule" && &*path[1] == "id"
}

/// The clause a rule can be indexed by (a plain equality on rule.id when `rule_id`, else on
/// another field) and its index keys.
fn index_clause(rule: &Rule, rule_id: bool) -> Option<(usize, Vec<String>)> {
    rule.clauses.iter().enumerate().find_map(|(c, clause)| {
        let Field::Path { path, .. } = &clause.field else {
            return None;
        };
        if is_rule_id(path) != rule_id {
            return None;
        }
        let m = &clause.matcher;
        let [Test::Eq(lits)] = m.tests.as_slice() else {
            return None;
        };
        if m.exists.is_some() || m.not.is_some() {
            return None;
        }
        let keys = lits
            .iter()
            .map(|lit| match lit {
                Lit::Str { text, number } => {
                    Some(number.map_or_else(|| text.to_string(), canonical_number))
                }
                Lit::Num(x) => Some(canonical_number(*x)),
                Lit::Bool(_) => None,
            })
            .collect::<Option<Vec<String>>>()?;
        Some((c, keys))
    })
}

/// The compilation context: the source, and the diagnostics so far.
struct Cx<'s> {
    src: &'s str,
    line_starts: Vec<usize>,
    diags: Vec<Diagnostic>,
    /// Rule id → line where it was first defined.
    ids: HashMap<String, usize>,
    /// Lowercased alias name → (canonical, line) of the first alias listing it.
    alias_names: HashMap<String, (String, usize)>,
    /// Agent id → the aliases claiming it so far: (lowercased managers, none meaning every
    /// manager; canonical; line), in file order.
    alias_ids: HashMap<String, Vec<(Vec<String>, String, usize)>>,
    /// First segment of a field path → its cache slot in `Subject`.
    roots: HashMap<String, u16>,
}

impl<'s> Cx<'s> {
    fn new(src: &'s str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Cx {
            src,
            line_starts,
            diags: Vec::new(),
            ids: HashMap::new(),
            alias_names: HashMap::new(),
            alias_ids: HashMap::new(),
            roots: HashMap::new(),
        }
    }

    /// The document, or `None` with an `invalid toml` error (after `prefix`) where it breaks.
    fn parse(&mut self, prefix: &str, hint: Option<String>) -> Option<ImDocument<&'s str>> {
        match ImDocument::parse(self.src) {
            Ok(doc) => Some(doc),
            Err(e) => {
                let message = e.message().trim().to_lowercase();
                self.error(
                    e.span().map(|r| r.start),
                    format!("{prefix}invalid toml: {message}"),
                    hint,
                );
                None
            }
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, at: Option<usize>) -> (usize, usize) {
        let offset = at.unwrap_or(0).min(self.src.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .src
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, column + 1)
    }

    fn line(&self, at: Option<usize>) -> usize {
        self.position(at).0
    }

    fn push(
        &mut self,
        severity: Severity,
        at: Option<usize>,
        message: String,
        hint: Option<String>,
    ) {
        let (line, column) = self.position(at);
        self.diags.push(Diagnostic {
            severity,
            line,
            column,
            message,
            hint,
        });
    }

    fn error(&mut self, at: Option<usize>, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Error, at, message.into(), hint);
    }

    fn warning(&mut self, at: Option<usize>, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Warning, at, message.into(), hint);
    }

    fn finish(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| (d.line, d.column));
        self.diags
    }

    /// An unknown key, in `section` (`[[suppress]]`) or at the top level (`None`).
    fn unknown_key(
        &mut self,
        at: Option<usize>,
        key: &str,
        section: Option<&str>,
        allowed: &[&str],
    ) {
        let hint = match closest(key, allowed) {
            Some(near) => format!(
                "did you mean `{near}`? expected one of: {}",
                allowed.join(", ")
            ),
            None => format!("expected one of: {}", allowed.join(", ")),
        };
        let key = key.escape_debug();
        let message = match section {
            Some(section) => format!("unknown key `{key}` in {section}"),
            None => format!("unknown top-level key `{key}`"),
        };
        self.error(at, message, Some(hint));
    }

    fn check_keys(&mut self, t: &Tbl<'_>, section: &str, allowed: &[&str]) {
        for key in t.keys() {
            if !allowed.contains(&key) {
                let at = key_at(t.t, key);
                self.unknown_key(at, key, Some(section), allowed);
            }
        }
    }

    fn severity(&mut self, t: &Tbl<'_>) -> Thresholds {
        for key in t.keys() {
            if SEVERITY_KEYS.contains(&key) {
                continue;
            }
            let at = key_at(t.t, key);
            if key == "critical" {
                let hint = "critical is not configurable: a high alert of level 15 or more";
                self.error(
                    at,
                    "unknown key `critical` in [severity]",
                    Some(hint.into()),
                );
            } else {
                self.unknown_key(at, key, Some("[severity]"), &SEVERITY_KEYS);
            }
        }
        let mut out = Thresholds::WAZUH;
        let level = |cx: &mut Self, key: &str, slot: &mut u32| -> Option<usize> {
            let (_, item) = t.get(key)?;
            match item {
                Item::Value(TomlValue::Integer(i)) => match u32::try_from(*i.value()) {
                    Ok(v) => *slot = v,
                    Err(_) => cx.error(
                        item_at(item),
                        format!("severity `{key}` is {}, expected a level from 0", i.value()),
                        Some("wazuh rule levels run from 0 to 16".into()),
                    ),
                },
                other => cx.error(
                    item_at(other),
                    format!(
                        "severity `{key}` must be an integer, found {}",
                        item_type(other)
                    ),
                    Some(format!("write {key} = 12")),
                ),
            }
            item_at(item)
        };
        let _ = level(self, "medium", &mut out.medium);
        let high_at = level(self, "high", &mut out.high);
        if out.medium > out.high {
            self.error(
                high_at.or(t.at),
                format!(
                    "severity `high` ({}) is below `medium` ({})",
                    out.high, out.medium
                ),
                Some("high must be at or above medium".into()),
            );
        }
        out
    }

    /// A string-valued key; `None` (with an error when it is required) when absent or invalid.
    fn string(
        &mut self,
        t: &Tbl<'_>,
        key: &str,
        label: &str,
        required: Option<&str>,
    ) -> Option<String> {
        let Some((_, item)) = t.get(key) else {
            if let Some(hint) = required {
                self.error(
                    t.at,
                    format!("{label} is missing `{key}`"),
                    Some(hint.into()),
                );
            }
            return None;
        };
        match item.as_str() {
            Some(s) if s.trim().is_empty() => {
                self.error(item_at(item), format!("{label} has an empty `{key}`"), None);
                None
            }
            Some(s) => Some(s.to_string()),
            None => {
                self.error(
                    item_at(item),
                    format!(
                        "{label}: `{key}` must be a string, found {}",
                        item_type(item)
                    ),
                    None,
                );
                None
            }
        }
    }

    fn alias(&mut self, n: usize, t: &Tbl<'_>, aliases: &mut Aliases, spans: &mut Vec<SpanSlot>) {
        let label = format!("[[alias]] #{n}");
        self.check_keys(t, "[[alias]]", &ALIAS_KEYS);
        let canonical = self.string(
            t,
            "canonical",
            &label,
            Some("write canonical = \"dc01\": the one name every alias of the host maps to"),
        );
        if canonical
            .as_deref()
            .is_some_and(|c| c.chars().any(char::is_control))
        {
            self.error(
                t.at,
                format!("{label}: `canonical` holds a control character"),
                None,
            );
        }
        let names = self.string_list(t, "names", &label, true);
        let ids = self.string_list(t, "ids", &label, false);
        let managers = self.string_list(t, "manager", &label, true);
        if t.get("names").is_none() && t.get("ids").is_none() {
            self.error(
                t.at,
                format!("{label} has neither `names` nor `ids`"),
                Some(
                    "list the host's names (names = [\"DC01\"]) or agent ids (ids = [\"017\"])"
                        .into(),
                ),
            );
        } else if let (Some((_, item)), None) = (t.get("manager"), t.get("ids")) {
            self.error(
                item_at(item),
                format!("{label}: `manager` scopes `ids`, and it has none"),
                Some("names match on every manager: list that manager's agent ids (ids = [\"001\"]) or remove `manager`".into()),
            );
        }
        // The managers the ids are scoped to, lowercased (manager.name is compared without
        // regard to case); none: every manager.
        let mut scope: Vec<String> = Vec::new();
        for (manager, at) in managers.unwrap_or_default() {
            let key = manager.to_lowercase();
            if scope.contains(&key) {
                self.warning(
                    at,
                    format!(
                        "{label}: manager `{}` is listed twice",
                        manager.escape_debug()
                    ),
                    Some("remove one of the two".into()),
                );
                continue;
            }
            scope.push(key);
        }
        let Some(canonical) = canonical else { return };
        let index = aliases.canonical.len();
        aliases.canonical.push(canonical.clone());
        for (name, at) in names.unwrap_or_default() {
            let key = name.to_lowercase();
            if let Some((first, line)) = self.alias_names.get(&key).cloned() {
                self.warning(
                    at,
                    format!("alias name `{name}` is already listed by alias `{first}` (line {line}): it never applies here"),
                    Some("remove one of the two".into()),
                );
                continue;
            }
            let line = self.line(at);
            self.alias_names
                .insert(key.clone(), (canonical.clone(), line));
            aliases.by_name.entry(key).or_insert(index);
        }
        for (id, at) in ids.unwrap_or_default() {
            let Some(managers) = self.claim_id(&id, at, &scope, &canonical) else {
                continue;
            };
            let span = managers.is_empty().then(|| {
                spans.push(SpanSlot::new(index, &id));
                u32::try_from(spans.len() - 1).unwrap_or(u32::MAX)
            });
            aliases.by_id.entry(id).or_default().push(IdClaim {
                alias: index,
                managers: managers.into_iter().map(String::into_boxed_str).collect(),
                span,
            });
        }
    }

    /// Records an alias's claim on agent id `id` for the managers of `scope` (none: every
    /// manager), after the claims of earlier aliases: the first claim in file order applies, so
    /// a later one gets only what no earlier claim holds. Returns the managers left to it
    /// (empty: every manager), or `None`, with a warning, when an earlier claim holds them all;
    /// a warning also names the managers an earlier claim takes from it.
    fn claim_id(
        &mut self,
        id: &str,
        at: Option<usize>,
        scope: &[String],
        canonical: &str,
    ) -> Option<Vec<String>> {
        let line = self.line(at);
        let earlier = self
            .alias_ids
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let shown = id.escape_debug();
        if let Some((_, first, first_line)) = earlier.iter().find(|(s, _, _)| s.is_empty()) {
            let message = format!("alias id `{shown}` is already claimed by alias `{first}` (line {first_line}) on every manager: it never applies here");
            let hint = "remove one of the two, or scope the earlier alias with `manager`";
            self.warning(at, message, Some(hint.into()));
            return None;
        }
        let mut left: Vec<String> = scope.to_vec();
        if !scope.is_empty() {
            let mut taken: Vec<(String, String, usize)> = Vec::new();
            left.retain(|m| match earlier.iter().find(|(s, _, _)| s.contains(m)) {
                Some((_, first, first_line)) => {
                    taken.push((m.clone(), first.clone(), *first_line));
                    false
                }
                None => true,
            });
            if let Some((_, first, first_line)) = taken.first() {
                let on: Vec<String> = taken
                    .iter()
                    .map(|(m, _, _)| format!("`{}`", m.escape_debug()))
                    .collect();
                let (what, hint) = if left.is_empty() {
                    ("it never applies here", "remove one of the two")
                } else {
                    (
                        "it applies here only on the other managers",
                        "list each manager in one alias only",
                    )
                };
                let message = format!(
                    "alias id `{shown}` on manager {} is already claimed by alias `{first}` (line {first_line}): {what}",
                    on.join(", ")
                );
                self.warning(at, message, Some(hint.into()));
                if left.is_empty() {
                    return None;
                }
            }
        }
        self.alias_ids.entry(id.to_string()).or_default().push((
            left.clone(),
            canonical.to_string(),
            line,
        ));
        Some(left)
    }

    /// `names` or `ids` of an alias: a string or a list of strings.
    fn string_list(
        &mut self,
        t: &Tbl<'_>,
        key: &str,
        label: &str,
        names: bool,
    ) -> Option<Vec<(String, Option<usize>)>> {
        let (_, item) = t.get(key)?;
        let quote_hint = || {
            if names {
                None
            } else {
                Some(
                    "quote agent ids: ids = [\"017\"] (wazuh ids keep their leading zeros)"
                        .to_string(),
                )
            }
        };
        let values: Vec<&TomlValue> = match item {
            Item::Value(TomlValue::Array(a)) => a.iter().collect(),
            Item::Value(v) => vec![v],
            other => {
                self.error(
                    item_at(other),
                    format!(
                        "{label}: `{key}` must be a list of strings, found {}",
                        item_type(other)
                    ),
                    None,
                );
                return None;
            }
        };
        if values.is_empty() {
            self.error(item_at(item), format!("{label}: `{key}` is empty"), None);
            return None;
        }
        let mut out = Vec::new();
        for v in values {
            let at = v.span().map(|r| r.start);
            match v.as_str() {
                Some(s) if !s.trim().is_empty() => out.push((s.to_string(), at)),
                Some(_) => self.error(at, format!("{label}: `{key}` holds an empty string"), None),
                None => self.error(
                    at,
                    format!(
                        "{label}: `{key}` must hold strings, found {}",
                        value_type(v)
                    ),
                    quote_hint(),
                ),
            }
        }
        Some(out)
    }

    fn rule(&mut self, kind: Kind, n: usize, t: &Tbl<'_>) -> Option<(Rule, Meta)> {
        let errors_before = self.error_count();
        let allowed: &[&str] = match kind {
            Kind::Suppress => &SUPPRESS_KEYS,
            Kind::Override => &OVERRIDE_KEYS,
        };
        self.check_keys(t, kind.header(), allowed);
        let header = format!("{} #{n}", kind.header());
        let id = self.string(
            t,
            "id",
            &header,
            Some("give it an id, unique in the file: id = \"fp-...\""),
        );
        let id_at = t.get("id").and_then(|(_, item)| item_at(item)).or(t.at);
        if let Some(id) = &id {
            if !valid_id(id) {
                self.error(
                    id_at,
                    format!("id `{}` has characters outside letters, digits, '-', '_' and '.'", id.escape_debug()),
                    Some("ids appear in traces, the ledger and metrics: use e.g. fp-rootcheck-busybox".into()),
                );
            } else if let Some(&line) = self.ids.get(id) {
                self.error(
                    id_at,
                    format!("duplicate id `{id}`: already used on line {line}"),
                    Some("ids are unique across overrides and signatures; rename one".into()),
                );
            } else {
                let line = self.line(id_at);
                self.ids.insert(id.clone(), line);
            }
        }
        let label = match &id {
            Some(id) => format!("{} `{id}`", kind.noun()),
            None => header,
        };
        let mut rule = Rule {
            id: id.unwrap_or_default(),
            bucket: Bucket::Suppressed,
            clauses: Vec::new(),
            fail_lines: Vec::new(),
            allow_high: false,
            expires: None,
            expires_at: (0, 0),
        };
        match kind {
            Kind::Suppress => {
                let _ = self.string(
                    t,
                    "reason",
                    &label,
                    Some("say why this is noise: reason = \"...\" (it is shown to analysts)"),
                );
                let _ = self.string(
                    t,
                    "owner",
                    &label,
                    Some("name who answers for it: owner = \"soc-windows\""),
                );
                let _ = self.string(t, "ticket", &label, None);
                if let Some((_, item)) = t.get("allow_high") {
                    match item.as_bool() {
                        Some(b) => rule.allow_high = b,
                        None => self.error(
                            item_at(item),
                            format!(
                                "{label}: `allow_high` must be true or false, found {}",
                                item_type(item)
                            ),
                            None,
                        ),
                    }
                }
                if let Some((_, item)) = t.get("expires") {
                    rule.expires = self.date(item, &label);
                    rule.expires_at = self.position(item_at(item));
                }
            }
            Kind::Override => {
                let _ = self.string(t, "reason", &label, None);
                let _ = self.string(t, "owner", &label, None);
                let hint = "bucket = \"high\" (or suppressed, low, medium)";
                if let Some(b) = self.string(t, "bucket", &label, Some(hint)) {
                    match Bucket::parse(&b) {
                        Some(bucket) => rule.bucket = bucket,
                        None => self.error(
                            t.get("bucket").and_then(|(_, i)| item_at(i)),
                            format!("{label}: unknown bucket `{}`", b.escape_debug()),
                            Some("one of: suppressed, low, medium, high".into()),
                        ),
                    }
                }
            }
        }
        match t.get("match") {
            None => self.error(
                t.at,
                format!("{label} is missing `match`"),
                Some(format!("say which alerts it applies to: {MATCH_EXAMPLE}")),
            ),
            Some((_, item)) => {
                if let Some(clauses) = self.match_table(item, &label) {
                    rule.clauses = clauses;
                }
            }
        }
        if self.error_count() > errors_before {
            return None;
        }
        let mut descs: Vec<Box<str>> = rule.clauses.iter().map(|c| c.desc.clone()).collect();
        descs.sort();
        let meta = Meta {
            line: self.line(id_at),
            at: id_at,
            descs,
        };
        Some((rule, meta))
    }

    /// `[grouping]`: the default `by` and `window`.
    fn grouping(&mut self, t: &Tbl<'_>, default: &mut GroupRule) {
        self.check_keys(t, "[grouping]", &GROUPING_KEYS);
        if let Some(by) = self.group_by(t, "[grouping]") {
            default.by = by;
        }
        if let Some(w) = self.window(t, "[grouping]") {
            default.window_secs = w;
        }
    }

    /// A `[[group]]` rule; `default` gives the window it leaves out.
    fn group(&mut self, n: usize, t: &Tbl<'_>, default: &GroupRule) -> Option<(GroupRule, Meta)> {
        let errors_before = self.error_count();
        self.check_keys(t, "[[group]]", &GROUP_KEYS);
        let header = format!("[[group]] #{n}");
        let id = self.string(
            t,
            "id",
            &header,
            Some("give it an id, unique in the file: id = \"sshd-bruteforce\""),
        );
        let id_at = t.get("id").and_then(|(_, item)| item_at(item)).or(t.at);
        if let Some(id) = &id {
            if !valid_id(id) {
                self.error(
                    id_at,
                    format!(
                        "id `{}` has characters outside letters, digits, '-', '_' and '.'",
                        id.escape_debug()
                    ),
                    Some("ids appear in incidents and traces: use e.g. sshd-bruteforce".into()),
                );
            } else if id == crate::group::DEFAULT_GROUP {
                self.error(
                    id_at,
                    format!("id `{id}` is the name of the [grouping] default"),
                    Some("give the rule another id; set the default under [grouping]".into()),
                );
            } else if let Some(&line) = self.ids.get(id) {
                self.error(
                    id_at,
                    format!("duplicate id `{id}`: already used on line {line}"),
                    Some(
                        "ids are unique across overrides, signatures and group rules; rename one"
                            .into(),
                    ),
                );
            } else {
                let line = self.line(id_at);
                self.ids.insert(id.clone(), line);
            }
        }
        let label = match &id {
            Some(id) => format!("group `{id}`"),
            None => header,
        };
        let by = match t.get("by") {
            Some(_) => self.group_by(t, &label),
            None => {
                self.error(
                    t.at,
                    format!("{label} is missing `by`"),
                    Some(
                        "say which fields make one incident: by = [\"rule.id\", \"agent\"]".into(),
                    ),
                );
                None
            }
        };
        let window = if t.get("window").is_some() {
            self.window(t, &label)
        } else {
            Some(default.window_secs)
        };
        let clauses = match t.get("match") {
            Some((_, item)) => self.match_table(item, &label).unwrap_or_default(),
            None => Vec::new(),
        };
        let buckets = match t.get("buckets") {
            None => None,
            Some((_, item)) => self.buckets(item, &label),
        };
        if self.error_count() > errors_before {
            return None;
        }
        let mut descs: Vec<Box<str>> = clauses.iter().map(|c| c.desc.clone()).collect();
        descs.sort();
        let meta = Meta {
            line: self.line(id_at),
            at: id_at,
            descs,
        };
        let rule = GroupRule {
            id: id?,
            by: by?,
            window_secs: window?,
            clauses,
            buckets,
        };
        Some((rule, meta))
    }

    /// Warns about `[[group]]` rules that can never apply: an earlier rule applies to every alert
    /// they would (its `match` clauses are a subset of theirs and its `buckets` include theirs).
    fn shadowed_groups(&mut self, rules: &[(GroupRule, Meta)]) {
        for (j, (later, later_meta)) in rules.iter().enumerate() {
            for (earlier, earlier_meta) in &rules[..j] {
                let subset = earlier_meta
                    .descs
                    .iter()
                    .all(|d| later_meta.descs.binary_search(d).is_ok());
                let buckets_cover = match (&earlier.buckets, &later.buckets) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(e), Some(l)) => l.iter().all(|b| e.contains(b)),
                };
                if subset && buckets_cover {
                    self.warning(
                        later_meta.at,
                        format!(
                            "group `{}` is shadowed by `{}` (line {}): every alert it would group, `{}` groups first",
                            later.id, earlier.id, earlier_meta.line, earlier.id
                        ),
                        Some(format!(
                            "remove `{}`, move it above `{}`, or narrow `{}`",
                            later.id, earlier.id, earlier.id
                        )),
                    );
                    break;
                }
            }
        }
    }

    /// `by`: a list of 1 to [`MAX_BY_FIELDS`] field paths (`agent`: the canonical agent).
    fn group_by(&mut self, t: &Tbl<'_>, label: &str) -> Option<Vec<ByField>> {
        let (_, item) = t.get("by")?;
        let hint = || {
            Some(
                "by = [\"rule.id\", \"agent\"] (agent: the canonical agent, after aliases)"
                    .to_string(),
            )
        };
        let Some(list) = item.as_array() else {
            self.error(
                item_at(item),
                format!(
                    "{label}: `by` must be a list of field paths, found {}",
                    item_type(item)
                ),
                hint(),
            );
            return None;
        };
        if list.is_empty() || list.len() > MAX_BY_FIELDS {
            self.error(
                item_at(item),
                format!(
                    "{label}: `by` lists {} fields; it takes 1 to {MAX_BY_FIELDS}",
                    list.len()
                ),
                hint(),
            );
            return None;
        }
        let mut out: Vec<ByField> = Vec::new();
        let mut ok = true;
        for v in list.iter() {
            let at = v.span().map(|r| r.start);
            match v.as_str().map(|s| (s, ByField::parse(s))) {
                Some((s, Some(f))) if out.contains(&f) => {
                    self.error(
                        at,
                        format!("{label}: `by` lists `{}` twice", s.escape_debug()),
                        Some("list each field once".into()),
                    );
                    ok = false;
                }
                Some((_, Some(f))) => out.push(f),
                Some((s, None)) => {
                    self.error(
                        at,
                        format!(
                            "{label}: `by` field path `{}` is empty or has an empty segment",
                            s.escape_debug()
                        ),
                        Some("write dotted paths such as \"data.srcip\"".into()),
                    );
                    ok = false;
                }
                None => {
                    self.error(
                        at,
                        format!("{label}: `by` must hold strings, found {}", value_type(v)),
                        hint(),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `window`: a duration (`"15m"`, `"1h"`, `"1d"`), at most a year.
    fn window(&mut self, t: &Tbl<'_>, label: &str) -> Option<u64> {
        let (_, item) = t.get("window")?;
        let hint = Some("write window = \"1h\" (units s, m, h, d, w; e.g. \"1h30m\")".to_string());
        let Some(text) = item.as_str() else {
            self.error(
                item_at(item),
                format!(
                    "{label}: `window` must be a duration string, found {}",
                    item_type(item)
                ),
                hint,
            );
            return None;
        };
        match crate::group::parse_duration(text) {
            Ok(secs) if secs <= MAX_WINDOW_SECS => Some(secs),
            Ok(_) => {
                self.error(
                    item_at(item),
                    format!("{label}: `window` {:?} is longer than a year (366d)", text),
                    hint,
                );
                None
            }
            Err(problem) => {
                self.error(
                    item_at(item),
                    format!("{label}: `window` {:?} {problem}", text),
                    hint,
                );
                None
            }
        }
    }

    /// `buckets`: a non-empty list of bucket names.
    fn buckets(&mut self, item: &Item, label: &str) -> Option<Vec<Bucket>> {
        let hint = || Some("buckets = [\"high\"] (of suppressed, low, medium, high)".to_string());
        if item.as_array().is_some_and(|l| l.is_empty()) {
            self.error(
                item_at(item),
                format!("{label}: `buckets` is empty, so the rule would group no alert"),
                Some("list the buckets it groups, or leave `buckets` out for all of them".into()),
            );
            return None;
        }
        let Some(list) = item.as_array() else {
            self.error(
                item_at(item),
                format!(
                    "{label}: `buckets` must be a non-empty list of bucket names, found {}",
                    item_type(item)
                ),
                hint(),
            );
            return None;
        };
        let mut out = Vec::new();
        for v in list.iter() {
            let at = v.span().map(|r| r.start);
            match v.as_str().and_then(Bucket::parse) {
                Some(b) if !out.contains(&b) => out.push(b),
                Some(_) => {}
                None => self.error(
                    at,
                    match v.as_str() {
                        Some(name) => format!(
                            "{label}: `buckets` holds `{}`, not a bucket name",
                            name.escape_debug()
                        ),
                        None => format!(
                            "{label}: `buckets` must hold bucket names, found {}",
                            value_type(v)
                        ),
                    },
                    hint(),
                ),
            }
        }
        Some(out)
    }

    fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    fn date(&mut self, item: &Item, label: &str) -> Option<NaiveDate> {
        let hint = Some(
            "write expires = \"YYYY-MM-DD\"; the signature is active through that day (UTC)"
                .to_string(),
        );
        match item {
            Item::Value(TomlValue::String(s)) => {
                match NaiveDate::parse_from_str(s.value(), "%Y-%m-%d") {
                    Ok(d) => Some(d),
                    Err(_) => {
                        self.error(
                            item_at(item),
                            format!("{label}: `expires` is not a valid date: {:?}", s.value()),
                            hint,
                        );
                        None
                    }
                }
            }
            Item::Value(TomlValue::Datetime(d)) => {
                let dt = d.value();
                match (dt.date, dt.time) {
                    (Some(date), None) => NaiveDate::from_ymd_opt(
                        i32::from(date.year),
                        u32::from(date.month),
                        u32::from(date.day),
                    ),
                    _ => {
                        self.error(
                            item_at(item),
                            format!("{label}: `expires` takes a date, not a time"),
                            hint,
                        );
                        None
                    }
                }
            }
            other => {
                self.error(
                    item_at(other),
                    format!(
                        "{label}: `expires` must be a date, found {}",
                        item_type(other)
                    ),
                    hint,
                );
                None
            }
        }
    }

    fn match_table(&mut self, item: &Item, label: &str) -> Option<Vec<Clause>> {
        let Some(t) = as_table(item) else {
            self.error(
                item_at(item),
                format!(
                    "{label}: `match` must be a table of field = matcher, found {}",
                    item_type(item)
                ),
                Some(MATCH_EXAMPLE.into()),
            );
            return None;
        };
        let errors_before = self.error_count();
        let mut clauses = Vec::new();
        self.match_entries(&t, "", &mut clauses);
        if self.error_count() > errors_before {
            return None;
        }
        if clauses.is_empty() {
            self.error(
                t.at.or(item_at(item)),
                format!("{label}: `match` is empty, so it would match every alert"),
                Some(MATCH_EXAMPLE.into()),
            );
            return None;
        }
        Some(clauses)
    }

    fn match_entries(&mut self, t: &Tbl<'_>, prefix: &str, clauses: &mut Vec<Clause>) {
        for key in t.keys() {
            let Some((at, item)) = t.get(key) else {
                continue;
            };
            let path = if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            };
            // `rule.id = "510"` (a dotted key, unquoted) continues the field path.
            if let Some(sub) = as_table(item) {
                if sub.dotted && !sub.keys().iter().any(|k| MATCHER_KEYS.contains(k)) {
                    self.match_entries(&sub, &path, clauses);
                    continue;
                }
            }
            let field = if path == "agent" {
                Field::Agent
            } else if path.split('.').any(|s| s.trim().is_empty()) {
                self.error(
                    at,
                    format!("field path `{}` has an empty segment", path.escape_debug()),
                    Some("write dotted paths such as \"data.win.eventdata.image\"".into()),
                );
                continue;
            } else {
                let path: Box<[Box<str>]> = path.split('.').map(Box::from).collect();
                let next = u16::try_from(self.roots.len()).unwrap_or(u16::MAX);
                let slot = *self.roots.entry(path[0].to_string()).or_insert(next);
                Field::Path { slot, path }
            };
            if let Some((matcher, desc)) = self.matcher(item, false) {
                clauses.push(Clause {
                    field,
                    matcher,
                    desc: format!("{path} {desc}").into(),
                });
            }
        }
    }

    /// A matcher: a literal, a list of literals, or a matcher table.
    fn matcher(&mut self, item: &Item, nocase: bool) -> Option<(Matcher, String)> {
        if let Some(t) = as_table(item) {
            return self.table_matcher(&t, item, nocase);
        }
        let lits = self.literals(item)?;
        self.equality(lits, nocase)
    }

    fn equality(&mut self, lits: Vec<(Lit, String)>, nocase: bool) -> Option<(Matcher, String)> {
        let descs: Vec<String> = lits.iter().map(|(_, d)| d.clone()).collect();
        let test = if nocase {
            let alternatives: Vec<String> = lits
                .iter()
                .map(|(lit, _)| match lit {
                    Lit::Str { text, .. } => regex::escape(text),
                    Lit::Num(x) => regex::escape(&canonical_number(*x)),
                    Lit::Bool(b) => b.to_string(),
                })
                .collect();
            Test::Pattern(
                self.internal_regex(&format!("\\A(?:{})\\z", alternatives.join("|")), true)?,
            )
        } else {
            Test::Eq(lits.into_iter().map(|(lit, _)| lit).collect())
        };
        let matcher = Matcher {
            tests: vec![test],
            ..Matcher::default()
        };
        let nocase = if nocase { " (nocase)" } else { "" };
        Some((matcher, format!("= {}{nocase}", list_desc(&descs))))
    }

    /// A regex this module wrote itself (from literals or globs): it always compiles.
    fn internal_regex(&mut self, pattern: &str, nocase: bool) -> Option<Regex> {
        match RegexBuilder::new(pattern).case_insensitive(nocase).build() {
            Ok(re) => Some(re),
            Err(e) => {
                // Only a pattern too big to compile gets here (a huge list of literals).
                self.error(
                    None,
                    format!("a matcher is too large to compile: {}", regex_problem(&e)),
                    None,
                );
                None
            }
        }
    }

    /// A literal or a non-empty list of literals, each with its description.
    fn literals(&mut self, item: &Item) -> Option<Vec<(Lit, String)>> {
        match item {
            Item::Value(TomlValue::Array(a)) => {
                if a.is_empty() {
                    self.error(
                        item_at(item),
                        "an empty list matches nothing",
                        Some("list at least one value, or remove the field".into()),
                    );
                    return None;
                }
                let mut out = Vec::new();
                let mut ok = true;
                for v in a.iter() {
                    match self.literal(v) {
                        Some(lit) => out.push(lit),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            Item::Value(v) => self.literal(v).map(|lit| vec![lit]),
            other => {
                self.error(
                    item_at(other),
                    format!(
                        "expected a value or a matcher table, found {}",
                        item_type(other)
                    ),
                    None,
                );
                None
            }
        }
    }

    fn literal(&mut self, v: &TomlValue) -> Option<(Lit, String)> {
        let at = v.span().map(|r| r.start);
        match v {
            TomlValue::String(s) => {
                let text = collapse_backslashes(s.value()).into_owned();
                let number = numeric_str(&text);
                let desc = format!("{text:?}");
                Some((
                    Lit::Str {
                        text: text.into(),
                        number,
                    },
                    desc,
                ))
            }
            TomlValue::Integer(i) => {
                let x = *i.value() as f64;
                Some((Lit::Num(x), canonical_number(x)))
            }
            TomlValue::Float(f) => Some((Lit::Num(*f.value()), canonical_number(*f.value()))),
            TomlValue::Boolean(b) => Some((Lit::Bool(*b.value()), b.value().to_string())),
            TomlValue::Datetime(_) => {
                self.error(
                    at,
                    "a toml date-time is not a value alerts carry",
                    Some("quote it to compare text, or use { prefix = \"2025-09-12\" }".into()),
                );
                None
            }
            TomlValue::Array(_) | TomlValue::InlineTable(_) => {
                self.error(
                    at,
                    format!("a list of values holds {}", value_type(v)),
                    Some("a list holds plain values; for tests, use one table with lists: { prefix = [\"a\", \"b\"] }".into()),
                );
                None
            }
        }
    }

    /// Strings of a string test: one string or a non-empty list, each with its offset.
    fn strings(&mut self, key: &str, item: &Item) -> Option<Vec<(String, Option<usize>)>> {
        let values: Vec<&TomlValue> = match item {
            Item::Value(TomlValue::Array(a)) => a.iter().collect(),
            Item::Value(v) => vec![v],
            other => {
                self.error(
                    item_at(other),
                    format!(
                        "`{key}` takes a string or a list of strings, found {}",
                        item_type(other)
                    ),
                    None,
                );
                return None;
            }
        };
        if values.is_empty() {
            self.error(
                item_at(item),
                format!("`{key}` has an empty list, which matches nothing"),
                None,
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for v in values {
            let at = v.span().map(|r| r.start);
            match v.as_str() {
                Some("") if key != "regex" && key != "glob" => {
                    self.error(
                        at,
                        format!("an empty `{key}` string matches every value"),
                        Some("remove it, or use { exists = true }".into()),
                    );
                    ok = false;
                }
                Some(s) => out.push((s.to_string(), at)),
                None => {
                    self.error(
                        at,
                        format!("`{key}` takes strings, found {}", value_type(v)),
                        None,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn number(&mut self, key: &str, item: &Item) -> Option<f64> {
        match item {
            Item::Value(TomlValue::Integer(i)) => Some(*i.value() as f64),
            Item::Value(TomlValue::Float(f)) => Some(*f.value()),
            other => {
                self.error(
                    item_at(other),
                    format!("`{key}` takes a number, found {}", item_type(other)),
                    Some(format!("write {{ {key} = 7 }}")),
                );
                None
            }
        }
    }

    fn table_matcher(
        &mut self,
        t: &Tbl<'_>,
        item: &Item,
        inherited_nocase: bool,
    ) -> Option<(Matcher, String)> {
        let errors_before = self.error_count();
        for key in t.keys() {
            if !MATCHER_KEYS.contains(&key) {
                let at = key_at(t.t, key);
                let hint = match closest(key, &MATCHER_KEYS) {
                    Some(near) => format!("did you mean `{near}`? matchers: {}", MATCHER_KEYS.join(", ")),
                    None => format!(
                        "matchers: {}; to match a nested field, quote the whole path: \"a.b\" = ...",
                        MATCHER_KEYS.join(", ")
                    ),
                };
                self.error(
                    at,
                    format!("unknown matcher `{}`", key.escape_debug()),
                    Some(hint),
                );
            }
        }
        let explicit_nocase = match t.get("nocase") {
            None => None,
            Some((_, Item::Value(TomlValue::Boolean(b)))) => Some(*b.value()),
            Some((_, other)) => {
                self.error(
                    item_at(other),
                    format!("`nocase` must be true or false, found {}", item_type(other)),
                    None,
                );
                None
            }
        };
        let nocase = explicit_nocase.unwrap_or(inherited_nocase);
        let mut m = Matcher::default();
        let mut parts: Vec<String> = Vec::new();
        let mut string_tests = 0usize;

        if let Some((_, v)) = t.get("equals") {
            if let Some((eq, desc)) = self
                .literals(v)
                .and_then(|lits| self.equality(lits, nocase))
            {
                m.tests.extend(eq.tests);
                parts.push(desc.trim_end_matches(" (nocase)").to_string());
                string_tests += 1;
            }
        }
        for key in ["prefix", "suffix", "contains"] {
            let Some((_, v)) = t.get(key) else { continue };
            string_tests += 1;
            let Some(strings) = self.strings(key, v) else {
                continue;
            };
            let texts: Vec<String> = strings
                .iter()
                .map(|(s, _)| collapse_backslashes(s).into_owned())
                .collect();
            parts.push(format!(
                "{key} {}",
                list_desc(&texts.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>())
            ));
            let test = if nocase {
                let alts: Vec<String> = texts.iter().map(|s| regex::escape(s)).collect();
                let alts = alts.join("|");
                let pattern = match key {
                    "prefix" => format!("\\A(?:{alts})"),
                    "suffix" => format!("(?:{alts})\\z"),
                    _ => format!("(?:{alts})"),
                };
                match self.internal_regex(&pattern, true) {
                    Some(re) => Test::Pattern(re),
                    None => continue,
                }
            } else {
                let texts: Box<[Box<str>]> = texts.into_iter().map(Box::from).collect();
                match key {
                    "prefix" => Test::Prefix(texts),
                    "suffix" => Test::Suffix(texts),
                    _ => Test::Contains(texts),
                }
            };
            m.tests.push(test);
        }
        if let Some((_, v)) = t.get("glob") {
            string_tests += 1;
            if let Some(globs) = self.strings("glob", v) {
                let texts: Vec<String> = globs
                    .iter()
                    .map(|(s, _)| collapse_backslashes(s).into_owned())
                    .collect();
                parts.push(format!(
                    "glob {}",
                    list_desc(&texts.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>())
                ));
                let alts: Vec<String> = texts.iter().map(|g| glob_to_regex(g)).collect();
                if let Some(re) =
                    self.internal_regex(&format!("(?s)\\A(?:{})\\z", alts.join("|")), nocase)
                {
                    m.tests.push(Test::Pattern(re));
                }
            }
        }
        if let Some((_, v)) = t.get("regex") {
            string_tests += 1;
            if let Some(patterns) = self.strings("regex", v) {
                let mut ok = true;
                for (p, at) in &patterns {
                    if let Err(e) = RegexBuilder::new(p).case_insensitive(nocase).build() {
                        self.error(
                            *at,
                            format!("bad regex {p:?}: {}", regex_problem(&e)),
                            Some("rust regex syntax (no look-around or backreferences); in a toml 'literal string' a backslash stays one backslash, and a value's backslash is matched by \\\\".into()),
                        );
                        ok = false;
                    }
                }
                if ok {
                    let texts: Vec<String> =
                        patterns.iter().map(|(p, _)| format!("{p:?}")).collect();
                    parts.push(format!("regex {}", list_desc(&texts)));
                    let sources: Vec<&str> = patterns.iter().map(|(p, _)| p.as_str()).collect();
                    if let [single] = sources.as_slice() {
                        if let Some(re) = self.user_regex(single, nocase) {
                            m.tests.push(Test::Pattern(re));
                        }
                    } else {
                        match regex::RegexSetBuilder::new(&sources)
                            .case_insensitive(nocase)
                            .build()
                        {
                            Ok(set) => m.tests.push(Test::PatternSet(set)),
                            Err(e) => self.error(
                                item_at(v),
                                format!("bad regex list: {}", regex_problem(&e)),
                                None,
                            ),
                        }
                    }
                }
            }
        }
        if let Some((_, v)) = t.get("cidr") {
            if let Some(nets) = self.strings("cidr", v) {
                let mut parsed = Vec::new();
                for (s, at) in &nets {
                    let net = s
                        .parse::<IpNet>()
                        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from));
                    match net {
                        Ok(net) => parsed.push(net),
                        Err(_) => self.error(
                            *at,
                            format!("bad cidr {s:?}: not an ip network"),
                            Some("write a network as 10.0.0.0/8 or 2001:db8::/32, or a single address".into()),
                        ),
                    }
                }
                if parsed.len() == nets.len() {
                    let texts: Vec<String> = parsed
                        .iter()
                        .map(|n| format!("{:?}", n.to_string()))
                        .collect();
                    parts.push(format!("cidr {}", list_desc(&texts)));
                    m.tests.push(Test::Cidr(parsed.into()));
                }
            }
        }
        let gte = t.get("gte").and_then(|(_, v)| self.number("gte", v));
        let lte = t.get("lte").and_then(|(_, v)| self.number("lte", v));
        if let (Some(g), Some(l)) = (gte, lte) {
            if g > l {
                self.error(
                    t.get("lte").and_then(|(_, v)| item_at(v)),
                    format!(
                        "range is empty: gte {} is above lte {}",
                        canonical_number(g),
                        canonical_number(l)
                    ),
                    Some("gte is the lower bound, lte the upper".into()),
                );
            }
        }
        if gte.is_some() || lte.is_some() {
            if let Some(g) = gte {
                parts.push(format!(">= {}", canonical_number(g)));
            }
            if let Some(l) = lte {
                parts.push(format!("<= {}", canonical_number(l)));
            }
            m.tests.push(Test::Range { gte, lte });
        }
        if let Some((_, v)) = t.get("exists") {
            match v.as_bool() {
                Some(b) => {
                    m.exists = Some(b);
                    parts.push(if b {
                        "exists".into()
                    } else {
                        "is absent".into()
                    });
                }
                None => self.error(
                    item_at(v),
                    format!("`exists` must be true or false, found {}", item_type(v)),
                    None,
                ),
            }
        }
        if let Some((_, v)) = t.get("not") {
            if let Some((inner, desc)) = self.matcher(v, nocase) {
                m.not = Some(Box::new(inner));
                parts.push(format!("not ({desc})"));
            }
        }
        if self.error_count() > errors_before {
            return None;
        }
        if m.exists == Some(false) && !m.tests.is_empty() {
            self.error(
                t.get("exists").and_then(|(a, _)| a),
                "`exists = false` contradicts the other tests of this matcher: it can never match",
                Some("use { not = ... } to require that no value matches".into()),
            );
            return None;
        }
        if explicit_nocase == Some(true) && string_tests == 0 && m.not.is_none() {
            self.error(
                t.get("nocase").and_then(|(a, _)| a),
                "`nocase` has no string test to apply to",
                Some("nocase goes with equals, prefix, suffix, contains, glob or regex".into()),
            );
            return None;
        }
        if m.tests.is_empty() && m.exists.is_none() && m.not.is_none() {
            self.error(
                t.at.or(item_at(item)),
                "empty matcher table",
                Some(format!("use one of: {}", MATCHER_KEYS.join(", "))),
            );
            return None;
        }
        let mut desc = parts.join(" and ");
        if nocase && string_tests > 0 {
            desc.push_str(" (nocase)");
        }
        Some((m, desc))
    }

    fn user_regex(&mut self, pattern: &str, nocase: bool) -> Option<Regex> {
        RegexBuilder::new(pattern)
            .case_insensitive(nocase)
            .build()
            .ok()
    }

    /// Warns about rules that can never decide: an earlier rule of the same list matches every
    /// alert they match (its clauses are a subset of theirs) and is in force whenever they are.
    /// A signature that matches every one of [`SAMPLES`] (alerts of five unrelated kinds)
    /// would suppress nearly everything: said, louder with `allow_high` (then high and
    /// critical alerts go too).
    fn too_broad(&mut self, rules: &[(Rule, Meta)]) {
        let samples: Vec<(serde_json::Value, String)> = SAMPLES
            .iter()
            .filter_map(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .map(|v| {
                let agent = v["agent"]["name"].as_str().unwrap_or("").to_string();
                (v, agent)
            })
            .collect();
        for (rule, meta) in rules {
            let all = samples.iter().all(|(alert, agent)| {
                let s = crate::matcher::Subject::new(alert, agent);
                rule.clauses.iter().all(|c| c.check(&s).is_ok())
            });
            if !all {
                continue;
            }
            let (what, hint) = if rule.allow_high {
                (
                    "with allow_high = true it would suppress EVERY alert, high and critical ones included",
                    "narrow its match (a rule.id and a field that names the benign case); never combine allow_high with a match any alert satisfies",
                )
            } else {
                (
                    "it would suppress nearly every alert below high",
                    "narrow its match to the benign case (a rule.id and a field that names it)",
                )
            };
            self.warning(
                meta.at,
                format!(
                    "signature `{}` matches every sample alert (sshd, Windows Sysmon, FIM, vulnerability, rootcheck): {what}",
                    rule.id
                ),
                Some(hint.into()),
            );
        }
    }

    fn shadowed(&mut self, kind: Kind, rules: &[(Rule, Meta)]) {
        for (j, (later, later_meta)) in rules.iter().enumerate() {
            for (earlier, earlier_meta) in &rules[..j] {
                let subset = earlier_meta
                    .descs
                    .iter()
                    .all(|d| later_meta.descs.binary_search(d).is_ok());
                if !subset {
                    continue;
                }
                let in_force = match kind {
                    Kind::Override => true,
                    Kind::Suppress => {
                        (earlier.allow_high || !later.allow_high)
                            && match (earlier.expires, later.expires) {
                                (None, _) => true,
                                (Some(_), None) => false,
                                (Some(e), Some(l)) => l <= e,
                            }
                    }
                };
                if in_force {
                    let noun = kind.noun();
                    self.warning(
                        later_meta.at,
                        format!(
                            "{noun} `{}` is shadowed by `{}` (line {}): every alert it matches, `{}` matches first",
                            later.id, earlier.id, earlier_meta.line, earlier.id
                        ),
                        Some(format!("remove `{}`, or narrow `{}`", later.id, earlier.id)),
                    );
                    break;
                }
            }
        }
    }
}

/// Alerts of five unrelated kinds: a signature that matches all of them matches nearly
/// anything ([`Cx::too_broad`]).
const SAMPLES: [&str; 5] = [
    r#"{"rule":{"id":"5716","level":5,"description":"sshd: authentication failed.","groups":["syslog","sshd","authentication_failed"]},"agent":{"id":"001","name":"web-01"},"manager":{"name":"wazuh"},"data":{"srcip":"203.0.113.7","dstuser":"root"},"location":"/var/log/auth.log","full_log":"Failed password for root from 203.0.113.7"}"#,
    r#"{"rule":{"id":"92151","level":12,"description":"Process loaded a DLL","groups":["sysmon","windows"]},"agent":{"id":"014","name":"WIN-HOST-7"},"manager":{"name":"wazuh"},"data":{"win":{"system":{"eventID":"7","computer":"WIN-HOST-7"},"eventdata":{"image":"C:\\Windows\\System32\\svchost.exe"}}},"location":"EventChannel"}"#,
    r#"{"rule":{"id":"550","level":7,"description":"Integrity checksum changed.","groups":["ossec","syscheck"]},"agent":{"id":"002","name":"db-01"},"manager":{"name":"wazuh"},"syscheck":{"path":"/etc/passwd","event":"modified"},"location":"syscheck"}"#,
    r#"{"rule":{"id":"23505","level":10,"description":"CVE-2020-12395 affects thunderbird","groups":["vulnerability-detector"]},"agent":{"id":"003","name":"laptop-3"},"manager":{"name":"wazuh"},"data":{"vulnerability":{"cve":"CVE-2020-12395","severity":"High"}},"location":"vulnerability-detector"}"#,
    r#"{"rule":{"id":"510","level":7,"description":"Host-based anomaly detection event (rootcheck).","groups":["ossec","rootcheck"]},"agent":{"id":"004","name":"alpine-9"},"manager":{"name":"wazuh"},"data":{"title":"Trojaned version of file detected."},"location":"rootcheck"}"#,
];

/// A standalone `match` table (a delivery route's): the document's `match` key, compiled as a
/// rule's `match` is. `label` names it in diagnostics.
pub(crate) fn compile_match(src: &str, label: &str) -> Result<Vec<Clause>, Vec<Diagnostic>> {
    let mut cx = Cx::new(src);
    let Some(doc) = cx.parse(&format!("{label}: "), None) else {
        return Err(cx.finish());
    };
    let Some(item) = doc.as_table().get("match") else {
        cx.error(
            None,
            format!("{label}: no `match` table"),
            Some(MATCH_EXAMPLE.into()),
        );
        return Err(cx.finish());
    };
    match cx.match_table(item, label) {
        Some(clauses) if cx.error_count() == 0 => Ok(clauses),
        _ => Err(cx.finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_escape_everything_but_star_and_question_mark() {
        assert_eq!(glob_to_regex(r"C:\a.b*?"), r"C:\\a\.b.*.");
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(closest("contians", &MATCHER_KEYS), Some("contains"));
        assert_eq!(closest("owner", &["owners", "id"]), Some("owners"));
        assert_eq!(closest("zzzzzz", &MATCHER_KEYS), None);
    }

    #[test]
    fn versions_are_short_stable_hashes() {
        assert_eq!(version_of("").len(), 12);
        assert_eq!(version_of(""), "e3b0c44298fc");
    }
}
