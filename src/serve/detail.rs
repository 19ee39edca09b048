//! The console's pages past the lists: one incident (its summary rendered and sanitised, its
//! members paged, their observables), the cases list and one case (case.json laid out, the
//! original alert, the pack and its verification), the policy, the quarantine.
//!
//! Design constraints:
//! - A file is reached by a name the ledger holds (a case path, a case id whose shape was
//!   checked) or by a fixed name; a pack file only when its manifest lists it.
//! - Markdown becomes HTML through pulldown-cmark with raw HTML turned into text, then ammonia:
//!   whatever an alert put in a summary stays text.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data::{self, DataError, IncidentItem, Source, DEFAULT_PAGE, MAX_PAGE};
use crate::stages::incidents::build;
use crate::store::fsx::{DirFd, ReadOutcome};
use crate::store::ledger::console::{CaseRow, ConsoleCaseFilter};
use crate::store::state::StateDir;

const FILE_MAX: u64 = 8 << 20;

/// Markdown to HTML that cannot carry markup of its own: raw HTML is text, then ammonia keeps
/// only harmless tags and http(s)/mailto links.
pub fn markdown_html(md: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser};
    let events = Parser::new_ext(md, Options::ENABLE_TABLES).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        e => e,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&out)
        .to_string()
}

/// A pack file's name: `[A-Za-z0-9._-]+`, not starting with a dot.
pub fn valid_file_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn read_text(dir: &DirFd, name: &str) -> Result<Option<String>, DataError> {
    match dir.read_regular(name.as_bytes(), FILE_MAX)? {
        ReadOutcome::Bytes(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        _ => Ok(None),
    }
}

fn page_of(page: Option<u64>, limit: Option<u64>) -> (u64, u64) {
    (
        page.unwrap_or(1).clamp(1, 1_000_000),
        limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
    )
}

// ---- incident ----

#[derive(Debug, Serialize)]
pub struct MemberItem {
    pub case_id: String,
    pub alert_time: String,
    pub bucket: String,
    pub level: Option<u32>,
    pub rule_id: Option<String>,
    pub description: Option<String>,
    pub agent: String,
    pub packed: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObservableItem {
    pub kind: String,
    pub value: String,
    pub role: String,
    pub field: String,
}

#[derive(Debug, Serialize)]
pub struct IncidentDetail {
    pub incident: IncidentItem,
    pub view: crate::stages::incidents::view::IncidentView,
    /// `summary.md` as the CLI's `incident show` renders it.
    pub summary_md: String,
    #[serde(skip)]
    pub summary_html: String,
    pub members: Vec<MemberItem>,
    pub page: u64,
    pub limit: u64,
    pub next_page: Option<u64>,
    /// The observables of this page's packed members.
    pub observables: Vec<ObservableItem>,
}

fn observables_of(state: &StateDir, case_id: &str) -> Result<Vec<ObservableItem>, DataError> {
    let Some(pack) = state.escalations.open_subdir_opt(case_id.as_bytes())? else {
        return Ok(Vec::new());
    };
    let Some(text) = read_text(&pack, "observables.json")? else {
        return Ok(Vec::new());
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(v["observables"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    let s = |k: &str| o[k].as_str().unwrap_or_default().to_string();
                    ObservableItem {
                        kind: s("kind"),
                        value: s("value"),
                        role: s("role"),
                        field: s("field"),
                    }
                })
                .collect()
        })
        .unwrap_or_default())
}

pub fn incident(
    src: &Source,
    id: &str,
    page: Option<u64>,
    limit: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Option<IncidentDetail>, DataError> {
    let ledger = src.ledger()?;
    let Some(row) = ledger.console_incident(id)?.filter(|r| r.members > 0) else {
        return Ok(None);
    };
    let state = src.state()?;
    let other = |e: &dyn std::fmt::Display| DataError::Other(format!("incident {id}: {e}"));
    let Some(snap) = build::snapshot(&ledger, id).map_err(|e| other(&e))? else {
        return Ok(None);
    };
    let view = build::view_of(&snap, src.close_after, now).map_err(|e| other(&e))?;
    let summary_md = build::summary_of(&state, &snap, &view)?;
    let (page, limit) = page_of(page, limit);
    let mut rows = ledger.console_members(id, (page - 1) * limit, limit + 1)?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let mut obs = std::collections::BTreeSet::new();
    for m in rows.iter().filter(|m| m.packed).take(50) {
        if data::valid_id(&m.case_id) {
            obs.extend(observables_of(&state, &m.case_id)?);
        }
    }
    let cutoff = src.open_cutoff(now);
    Ok(Some(IncidentDetail {
        incident: data::item(&row, &cutoff),
        view,
        summary_html: markdown_html(&summary_md),
        summary_md,
        members: rows
            .into_iter()
            .map(|m| MemberItem {
                case_id: m.case_id,
                alert_time: m.alert_time,
                bucket: m.bucket,
                level: m.level,
                rule_id: m.rule_id,
                description: m.description,
                agent: m.agent,
                packed: m.packed,
            })
            .collect(),
        page,
        limit,
        next_page: more.then_some(page + 1),
        observables: obs.into_iter().collect(),
    }))
}

#[derive(Template)]
#[template(path = "incident.html")]
pub struct IncidentPage {
    pub nav: bool,
    pub d: IncidentDetail,
}

impl IncidentPage {
    pub fn new(d: IncidentDetail) -> Self {
        IncidentPage { nav: true, d }
    }
}

// ---- cases ----

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CaseQuery {
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    /// The cursor: rows before this row id.
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CaseList {
    pub items: Vec<CaseRow>,
    pub limit: u64,
    pub next_before: Option<i64>,
    pub query_ms: f64,
}

pub fn cases(src: &Source, q: &CaseQuery) -> Result<CaseList, DataError> {
    let ne = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let bucket = ne(&q.bucket);
    if let Some(b) = &bucket {
        if sf_policy::Bucket::parse(b).is_none() {
            return Err(DataError::Other(format!("unknown bucket {b:?}")));
        }
    }
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let f = ConsoleCaseFilter {
        bucket,
        agent: ne(&q.agent),
        rule: ne(&q.rule),
        before: q.before,
        limit: limit + 1,
    };
    let ledger = src.ledger()?;
    let t = std::time::Instant::now();
    let mut items = ledger.console_cases(&f)?;
    let query_ms = t.elapsed().as_secs_f64() * 1000.0;
    let more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    Ok(CaseList {
        next_before: if more {
            items.last().map(|c| c.row)
        } else {
            None
        },
        items,
        limit,
        query_ms,
    })
}

#[derive(Template)]
#[template(path = "cases.html")]
pub struct CasesPage {
    pub nav: bool,
    pub q: CaseQuery,
    pub list: CaseList,
    pub next_query: String,
}

impl CasesPage {
    pub fn new(q: CaseQuery, list: CaseList) -> Self {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("bucket", &q.bucket),
            ("agent", &q.agent),
            ("rule", &q.rule),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                s.append_pair(k, v);
            }
        }
        if let Some(b) = list.next_before {
            s.append_pair("before", &b.to_string());
        }
        CasesPage {
            nav: true,
            q,
            next_query: s.finish(),
            list,
        }
    }
}

// ---- case ----

#[derive(Debug, Serialize)]
pub struct PackInfo {
    pub files: Vec<String>,
    pub verified: bool,
    pub ok: Vec<String>,
    pub mismatched: Vec<String>,
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub refused: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CaseDetail {
    pub row: CaseRow,
    pub case: Value,
    /// The original alert, pretty-printed.
    pub alert: Option<String>,
    pub pack: Option<PackInfo>,
}

pub fn case(src: &Source, id: &str) -> Result<Option<CaseDetail>, DataError> {
    let ledger = src.ledger()?;
    let Some(row) = ledger.console_case(id)? else {
        return Ok(None);
    };
    let state = src.state()?;
    // The case path is the ledger's (`<bucket>/<YYYY>/<MM>/<DD>/<case id>`), opened one
    // component at a time without following a link.
    let dir = if row.case_path.split('/').all(data::valid_id) {
        state.cases.open_path_opt(&row.case_path)?
    } else {
        None
    };
    let (case, alert) = match &dir {
        Some(d) => (
            read_text(d, "case.json")?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null),
            read_text(d, "alert.json")?.map(|t| {
                serde_json::from_str::<Value>(&t)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or(t)
            }),
        ),
        None => (Value::Null, None),
    };
    let pack = if state.escalations.open_subdir_opt(id.as_bytes())?.is_some() {
        let path = state.escalations.path().join(id);
        Some(match crate::stages::escalate::verify_pack(&path) {
            Ok(r) => {
                let mut files: Vec<String> =
                    r.ok.iter()
                        .chain(&r.mismatched)
                        .chain(&r.missing)
                        .cloned()
                        .collect();
                files.sort();
                PackInfo {
                    verified: r.mismatched.is_empty()
                        && r.missing.is_empty()
                        && r.extra.is_empty()
                        && r.refused.is_empty(),
                    files,
                    ok: r.ok,
                    mismatched: r.mismatched,
                    missing: r.missing,
                    extra: r.extra,
                    refused: r
                        .refused
                        .into_iter()
                        .map(|(n, why)| format!("{n}: {why}"))
                        .collect(),
                    error: None,
                }
            }
            Err(e) => PackInfo {
                files: Vec::new(),
                verified: false,
                ok: Vec::new(),
                mismatched: Vec::new(),
                missing: Vec::new(),
                extra: Vec::new(),
                refused: Vec::new(),
                error: Some(format!("{e:#}")),
            },
        })
    } else {
        None
    };
    Ok(Some(CaseDetail {
        row,
        case,
        alert,
        pack,
    }))
}

/// `case.json`'s parts as the case page lays them out.
pub struct CaseLayout {
    pub trace: Vec<String>,
    pub agent: Vec<(String, String)>,
    pub rule: Vec<(String, String)>,
    pub mitre: Vec<(String, String)>,
    pub decision: Vec<(String, String)>,
}

fn shown_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(shown_value).collect::<Vec<_>>().join(", "),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

fn pairs(v: &Value, skip: &[&str]) -> Vec<(String, String)> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), shown_value(v)))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "case.html")]
pub struct CasePage {
    pub nav: bool,
    pub c: CaseDetail,
    pub l: CaseLayout,
}

impl CasePage {
    pub fn new(c: CaseDetail) -> Self {
        let v = &c.case;
        let l = CaseLayout {
            trace: v["decision"]["trace"]
                .as_array()
                .map(|a| a.iter().map(shown_value).collect())
                .unwrap_or_default(),
            agent: pairs(&v["agent"], &[]),
            rule: pairs(&v["rule"], &["mitre"]),
            mitre: pairs(&v["rule"]["mitre"], &[]),
            decision: pairs(&v["decision"], &["trace"]),
        };
        CasePage { nav: true, c, l }
    }
}

#[derive(Template)]
#[template(path = "pack_file.html")]
pub struct PackFilePage {
    pub nav: bool,
    pub case_id: String,
    pub name: String,
    pub text: String,
    pub html: Option<String>,
}

pub fn pack_file(src: &Source, id: &str, name: &str) -> Result<Option<PackFilePage>, DataError> {
    let state = src.state()?;
    let Some(pack) = state.escalations.open_subdir_opt(id.as_bytes())? else {
        return Ok(None);
    };
    // Only a file the manifest lists (or the manifest itself).
    let manifest: Value = read_text(&pack, "manifest.json")?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let listed = name == "manifest.json"
        || manifest["files"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["path"].as_str() == Some(name)));
    if !listed {
        return Ok(None);
    }
    let Some(text) = read_text(&pack, name)? else {
        return Ok(None);
    };
    let html = name.ends_with(".md").then(|| markdown_html(&text));
    Ok(Some(PackFilePage {
        nav: true,
        case_id: id.to_string(),
        name: name.to_string(),
        text,
        html,
    }))
}

// ---- policy ----

#[derive(Debug, Serialize)]
pub struct SignatureItem {
    pub kind: String,
    pub id: String,
    pub owner: String,
    pub reason: String,
    pub ticket: String,
    pub expires: String,
    /// `expired`, `expiring` (within 7 days) or empty.
    pub expiry: String,
    pub hits: u64,
    pub hits_24h: u64,
    pub last_hit: String,
    pub held_back: u64,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub file: Option<String>,
    pub error: Option<String>,
    pub signatures: Vec<SignatureItem>,
    /// Each alias and group rule as its TOML fields.
    pub aliases: Vec<Vec<(String, String)>>,
    pub groups: Vec<Vec<(String, String)>>,
}

fn toml_shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(toml_shown).collect::<Vec<_>>().join(", "),
        v => v.to_string(),
    }
}

/// Signature hits per id over the runs of the last 24 hours (`heartbeats.jsonl`).
fn hits_24h(state: &StateDir, now: DateTime<Utc>) -> Result<BTreeMap<String, u64>, DataError> {
    let mut out = BTreeMap::new();
    let since = now - chrono::Duration::hours(24);
    let ReadOutcome::Bytes(b) = state.root.read_regular(b"heartbeats.jsonl", 256 << 20)? else {
        return Ok(out);
    };
    for line in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let recent = v["finished_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) >= since);
        if !recent {
            continue;
        }
        if let Some(o) = v["signature_hits"].as_object() {
            for (k, n) in o {
                let n = n.as_u64().or_else(|| n["hits"].as_u64()).unwrap_or(0);
                *out.entry(k.clone()).or_insert(0) += n;
            }
        }
    }
    Ok(out)
}

pub fn policy(
    src: &Source,
    file: Option<&std::path::Path>,
    now: DateTime<Utc>,
) -> Result<PolicyView, DataError> {
    let mut view = PolicyView {
        file: file.map(crate::store::fsx::shown),
        error: None,
        signatures: Vec::new(),
        aliases: Vec::new(),
        groups: Vec::new(),
    };
    let Some(file) = file else {
        view.error = Some("no [policy] file is configured: severity thresholds only".into());
        return Ok(view);
    };
    let doc: toml::Table = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| t.parse::<toml::Table>().map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => {
            view.error = Some(format!("the policy file cannot be read: {e}"));
            return Ok(view);
        }
    };
    let ledger_hits: BTreeMap<String, crate::store::ledger::console::SignatureHits> =
        if src.ledger_path().exists() {
            src.ledger()?
                .console_signature_hits()?
                .into_iter()
                .map(|h| (h.id.clone(), h))
                .collect()
        } else {
            BTreeMap::new()
        };
    let recent = hits_24h(&src.state()?, now)?;
    let today = now.date_naive();
    for kind in ["override", "suppress", "signature"] {
        let Some(list) = doc.get(kind).and_then(toml::Value::as_array) else {
            continue;
        };
        for t in list {
            let s = |k: &str| t.get(k).map(toml_shown).unwrap_or_default();
            let id = s("id");
            let expires = s("expires");
            let expiry = match chrono::NaiveDate::parse_from_str(
                expires.get(..10).unwrap_or(""),
                "%Y-%m-%d",
            ) {
                Ok(d) if d < today => "expired",
                Ok(d) if d <= today + chrono::Duration::days(7) => "expiring",
                _ => "",
            };
            let h = ledger_hits.get(&id);
            view.signatures.push(SignatureItem {
                kind: kind.to_string(),
                owner: s("owner"),
                reason: s("reason"),
                ticket: s("ticket"),
                expires,
                expiry: expiry.to_string(),
                hits: h.map_or(0, |h| h.hits),
                hits_24h: recent.get(&id).copied().unwrap_or(0),
                last_hit: h.and_then(|h| h.last_hit.clone()).unwrap_or_default(),
                held_back: h.map_or(0, |h| h.held_back),
                id,
            });
        }
    }
    let fields = |t: &toml::Value| -> Vec<(String, String)> {
        t.as_table()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), toml_shown(v))).collect())
            .unwrap_or_default()
    };
    for (kind, out) in [("alias", &mut view.aliases), ("group", &mut view.groups)] {
        if let Some(list) = doc.get(kind).and_then(toml::Value::as_array) {
            out.extend(list.iter().map(fields));
        }
    }
    Ok(view)
}

#[derive(Template)]
#[template(path = "policy.html")]
pub struct PolicyPage {
    pub nav: bool,
    pub p: PolicyView,
}

// ---- quarantine ----

#[derive(Debug, Serialize)]
pub struct QuarantineItem {
    pub entry: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct QuarantineList {
    pub total: u64,
    pub items: Vec<QuarantineItem>,
    pub page: u64,
    pub next_page: Option<u64>,
}

/// Most entries listed (newest first by name, which starts with the time).
const QUARANTINE_LISTED: usize = 100_000;

pub fn quarantine(
    src: &Source,
    page: Option<u64>,
    limit: Option<u64>,
) -> Result<QuarantineList, DataError> {
    let state = src.state()?;
    let mut names = Vec::new();
    state.quarantine.for_each_entry(|e| {
        if names.len() < QUARANTINE_LISTED
            && e.name.starts_with(b"q-")
            && e.name.ends_with(b".json")
        {
            if let Ok(n) = String::from_utf8(e.name.clone()) {
                names.push(n);
            }
        }
    })?;
    names.sort_unstable_by(|a, b| b.cmp(a));
    let (page, limit) = page_of(page, limit);
    let start = ((page - 1) * limit) as usize;
    let mut items = Vec::new();
    for n in names.iter().skip(start).take(limit as usize) {
        let reason = read_text(&state.quarantine, &format!("{n}.reason"))?
            .or(read_text(
                &state.quarantine,
                &format!("{}.reason", n.trim_end_matches(".json")),
            )?)
            .unwrap_or_else(|| "(no reason file)".into());
        items.push(QuarantineItem {
            entry: n.clone(),
            reason,
        });
    }
    Ok(QuarantineList {
        total: names.len() as u64,
        next_page: (names.len() > start + limit as usize).then_some(page + 1),
        items,
        page,
    })
}

#[derive(Template)]
#[template(path = "quarantine.html")]
pub struct QuarantinePage {
    pub nav: bool,
    pub q: QuarantineList,
}
