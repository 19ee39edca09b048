//! `policy check` and `policy test`, as functions the binary calls: the only code of this crate
//! that reads files or the clock. Output goes to the writers given; each function returns the
//! process exit code (0 success, 2 invalid input).

use crate::alias::ManagerSpan;
use crate::decide::{alert_document, Decision, Policy};
use crate::diagnostic::Diagnostic;
use crate::group::{alert_time, IncidentKey, KeyField};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Exit code: success (warnings allowed).
pub const EXIT_OK: i32 = 0;
/// Exit code: an invalid or unreadable policy, or an alert file that cannot be read or decided.
pub const EXIT_INVALID: i32 = 2;

/// Why a policy file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Read {
        /// The policy file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is not UTF-8 text.
    NotUtf8 {
        /// The policy file.
        path: PathBuf,
    },
    /// The file has errors (all of them, with the warnings).
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// Every error and warning, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, source } => {
                write!(f, "cannot read policy file {}: {source}", shown(path))
            }
            LoadError::NotUtf8 { path } => {
                write!(f, "policy file {} is not utf-8 text", shown(path))
            }
            LoadError::Invalid { path, diagnostics } => {
                let file = shown(path);
                let errors: Vec<&Diagnostic> =
                    diagnostics.iter().filter(|d| d.is_error()).collect();
                write!(f, "policy file {file} is invalid")?;
                if let Some(first) = errors.first() {
                    write!(f, ": {}", first.located(&file))?;
                }
                if errors.len() > 1 {
                    write!(
                        f,
                        " (and {} more errors: run `signalfoundry policy check {file}`)",
                        errors.len() - 1
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads and compiles a policy file. `Ok` carries the warnings (not expiry: see
/// [`Policy::expiry_warnings`]).
pub fn load(path: &Path) -> Result<(Policy, Vec<Diagnostic>), LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let src = String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    Policy::parse(&src).map_err(|diagnostics| LoadError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    })
}

/// A path for display, with control characters escaped (names read from disk never reach a
/// terminal raw).
fn shown(path: &Path) -> String {
    escape_controls(&path.display().to_string())
}

/// True for what never reaches a terminal or a log as itself: C0, DEL and C1 controls, bidi
/// controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), zero-width characters
/// (U+200B-U+200D, U+2060, U+FEFF) and the line and paragraph separators (some terminals and
/// log viewers break lines on them). The one definition: the pipeline's escaping uses it too.
pub fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Alert text and file names for the readable report: [`must_escape`] characters as `\u{..}`
/// (`\n`, `\t`, `\r`).
pub(crate) fn escape_controls(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if must_escape(c) {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// `signalfoundry policy check FILE`: prints every error and warning (`FILE:LINE:COL: ...`) and a
/// summary line to `out`; warnings include signatures already expired now (from the clock).
/// Returns 0 when the file is valid (warnings allowed), 2 when invalid or unreadable.
pub fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let file = shown(path);
    let result = match load(path) {
        Err(LoadError::Invalid { diagnostics, .. }) => {
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let warnings = diagnostics.len() - errors;
            let mut text = String::new();
            for d in &diagnostics {
                text.push_str(&format!("{}\n", d.located(&file)));
            }
            text.push_str(&format!(
                "{file}: invalid: {errors} {}, {warnings} {}\n",
                plural(errors, "error", "errors"),
                plural(warnings, "warning", "warnings")
            ));
            out.write_all(text.as_bytes()).map(|()| EXIT_INVALID)
        }
        Err(e) => writeln!(err, "policy check: {e}").map(|()| EXIT_INVALID),
        Ok((policy, mut warnings)) => {
            warnings.extend(policy.expiry_warnings(Utc::now()));
            warnings.sort_by_key(|d| (d.line, d.column));
            let mut text = String::new();
            for d in &warnings {
                text.push_str(&format!("{}\n", d.located(&file)));
            }
            text.push_str(&format!(
                "{file}: valid (version {}): {} {}, {} {}, {} {}, {} {}, {} {}\n",
                policy.version(),
                policy.aliases.canonical.len(),
                plural(policy.aliases.canonical.len(), "alias", "aliases"),
                policy.overrides.rules.len(),
                plural(policy.overrides.rules.len(), "override", "overrides"),
                policy.signatures.rules.len(),
                plural(policy.signatures.rules.len(), "signature", "signatures"),
                policy.grouping.rules.len(),
                plural(policy.grouping.rules.len(), "group rule", "group rules"),
                warnings.len(),
                plural(warnings.len(), "warning", "warnings"),
            ));
            out.write_all(text.as_bytes()).map(|()| EXIT_OK)
        }
    };
    result.unwrap_or_else(|e| {
        let _ = writeln!(err, "policy check: cannot write the report: {e}");
        EXIT_INVALID
    })
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// One line of `policy test --json`: DESIGN.md's keys, in this order, then `incident`.
#[derive(Debug, Serialize)]
struct TestLine<'a> {
    file: &'a str,
    /// Which policy decided: its file and version, or that none was given.
    policy: &'a str,
    bucket: &'a str,
    agent: &'a str,
    matched: Option<&'a str>,
    held_back: &'a [String],
    expired: &'a [String],
    trace: &'a [String],
    incident: IncidentLine<'a>,
}

/// The `incident` object of a `policy test --json` line: times in RFC 3339 (UTC, seconds).
#[derive(Debug, Serialize)]
struct IncidentLine<'a> {
    id: &'a str,
    group: &'a str,
    key: &'a [KeyField],
    window_secs: u64,
    window_start: String,
    window_end: String,
    previous: &'a str,
}

impl<'a> IncidentLine<'a> {
    fn new(k: &'a IncidentKey) -> Self {
        let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        IncidentLine {
            id: &k.id,
            group: &k.group,
            key: &k.key,
            window_secs: k.window_secs,
            window_start: rfc3339(k.window_start),
            window_end: rfc3339(k.window_end()),
            previous: &k.previous,
        }
    }
}

/// The `policy test --json` line for one decided file and its incident (without the newline).
pub fn json_line(file: &str, policy: &str, decision: &Decision, incident: &IncidentKey) -> String {
    let line = TestLine {
        file,
        policy,
        bucket: decision.bucket.as_str(),
        agent: &decision.agent,
        matched: decision.matched.as_deref(),
        held_back: &decision.held_back,
        expired: &decision.expired,
        trace: &decision.trace,
        incident: IncidentLine::new(incident),
    };
    // Serialising strings, numbers and lists of them cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// The readable `policy test` report for one decided file: the decision's trace, then
/// `incident_trace` (the group rules tried and the incident, from [`Policy::incident_traced`]).
pub fn human_report(file: &str, d: &Decision, incident_trace: &[String]) -> String {
    let mut s = format!("{}: {}", escape_controls(file), d.bucket);
    if d.critical {
        s.push_str(" (critical)");
    }
    s.push_str(&format!(
        "  level={} agent={}",
        d.level,
        escape_controls(&d.agent)
    ));
    match (&d.matched, d.matched_kind) {
        (Some(id), Some(kind)) => s.push_str(&format!(" matched={kind}:{id}")),
        (Some(id), None) => s.push_str(&format!(" matched={id}")),
        _ => {}
    }
    s.push('\n');
    if !d.held_back.is_empty() {
        s.push_str(&format!("  held back: {}\n", d.held_back.join(", ")));
    }
    if !d.expired.is_empty() {
        s.push_str(&format!("  expired: {}\n", d.expired.join(", ")));
    }
    for step in d.trace.iter().chain(incident_trace) {
        s.push_str(&format!("  - {}\n", escape_controls(step)));
    }
    s
}

/// The time that places an alert in its incident's window, as triage reads it: the alert's own
/// time ([`alert_time`]), else `now` (the `--at` time, or the clock).
fn incident_time(alert: &serde_json::Value, now: DateTime<Utc>) -> DateTime<Utc> {
    alert.as_object().and_then(alert_time).unwrap_or(now)
}

/// `signalfoundry policy test [--policy FILE] [--at TIME] [--json] ALERT.json...`: decides each
/// file (a bare alert or an indexer hit with `_source`) and prints the decision and the alert's
/// incident (placed by the alert's time, else by `now`), readable or one JSON object per line in
/// input order; then a warning for each id alias without `manager` that chose the agent of alerts
/// from two or more managers ([`Policy::manager_spans`]). Returns 0, or 2 when a file cannot be
/// read, parsed or decided (the others are still printed; the reasons go to `err`).
pub fn test(
    policy: &Policy,
    source: &str,
    now: DateTime<Utc>,
    json: bool,
    files: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut status = EXIT_OK;
    if !json {
        if let Err(e) = writeln!(out, "policy: {}", escape_controls(source)) {
            let _ = writeln!(err, "policy test: cannot write the report: {e}");
            return EXIT_INVALID;
        }
    }
    for path in files {
        let name = path.display().to_string();
        // One alert (pretty or not), or JSON lines (alerts.json, indexer hits): each value
        // is decided, named `file:line` when the file holds more than one.
        let values: Vec<(String, Result<serde_json::Value, String>)> = match std::fs::read(path) {
            Err(e) => vec![(
                name.clone(),
                Err(format!("cannot read {}: {e}", shown(path))),
            )],
            Ok(bytes) => {
                let mut vs = Vec::new();
                let mut stream =
                    serde_json::Deserializer::from_slice(&bytes).into_iter::<serde_json::Value>();
                loop {
                    let start = stream.byte_offset();
                    let line = 1
                        + bytes[..start].iter().filter(|b| **b == b'\n').count()
                        + bytes[start..]
                            .iter()
                            .take_while(|b| b.is_ascii_whitespace())
                            .filter(|b| **b == b'\n')
                            .count();
                    match stream.next() {
                        None => break,
                        Some(Ok(v)) => vs.push((line, Ok(v))),
                        Some(Err(e)) => {
                            vs.push((line, Err(format!("{}: not valid json: {e}", shown(path)))));
                            break;
                        }
                    }
                }
                if vs.is_empty() {
                    vs.push((1, Err(format!("{}: no json in it", shown(path)))));
                }
                let many = vs.len() > 1;
                vs.into_iter()
                    .map(|(line, v)| {
                        let label = if many {
                            format!("{name}:{line}")
                        } else {
                            name.clone()
                        };
                        (label, v)
                    })
                    .collect()
            }
        };
        for (file, value) in values {
            let decided = value.and_then(|value| {
                let document = alert_document(&value);
                let decision = policy
                    .decide(document, now)
                    .map_err(|e| format!("{}: cannot be decided: {e}", shown(path)))?;
                // Reported after every file: an id alias seen from several managers.
                let _ = policy.note_manager(document, &decision);
                let (incident, incident_trace) = policy.incident_traced(
                    document,
                    &decision.agent,
                    decision.bucket,
                    incident_time(document, now),
                );
                Ok((decision, incident, incident_trace))
            });
            let written = match decided {
                Ok((decision, incident, incident_trace)) => {
                    if json {
                        writeln!(out, "{}", json_line(&file, source, &decision, &incident))
                    } else {
                        write!(out, "{}", human_report(&file, &decision, &incident_trace))
                    }
                }
                Err(message) => {
                    status = EXIT_INVALID;
                    writeln!(err, "policy test: {message}")
                }
            };
            if let Err(e) = written {
                let _ = writeln!(err, "policy test: cannot write the report: {e}");
                return EXIT_INVALID;
            }
        }
    }
    // After the decisions: each id alias without `manager` that chose the agent of alerts from
    // two or more managers (a line `{"warning": ..}` each with --json).
    for span in policy.manager_spans() {
        let written = if json {
            writeln!(out, "{}", span_json_line(&span))
        } else {
            writeln!(out, "warning: {span}")
        };
        if let Err(e) = written {
            let _ = writeln!(err, "policy test: cannot write the report: {e}");
            return EXIT_INVALID;
        }
    }
    status
}

/// The `policy test --json` line of an id alias seen from several managers (without the
/// newline): `warning` (`"alias-id-spans-managers"`), `alias`, `id`, `managers`, `message`.
pub fn span_json_line(span: &ManagerSpan) -> String {
    #[derive(Serialize)]
    struct SpanLine<'a> {
        warning: &'a str,
        alias: &'a str,
        id: &'a str,
        managers: &'a [String],
        message: String,
    }
    let line = SpanLine {
        warning: "alias-id-spans-managers",
        alias: &span.alias,
        id: &span.id,
        managers: &span.managers,
        message: span.to_string(),
    };
    // Serialising strings and a list of them cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// Parses `--at TIME`: an RFC 3339 time (`2025-09-12T10:00:00Z`) or a date (`2025-09-12`,
/// midnight UTC).
pub fn parse_at(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!(
                "invalid time {:?}: expected RFC 3339 (2025-09-12T10:00:00Z) or a date (2025-09-12)",
                escape_controls(s)
            )
        })
}
