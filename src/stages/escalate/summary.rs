//! `summary.md`: the page a person reads at 3 a.m. — what happened, where, when, which rule and
//! ATT&CK techniques, the key fields for the alert's kind, related alerts on the host, what to
//! check next, and the dashboard link.
//!
//! Design constraints:
//! - Every string from the alert, from `case.json` and from the related references goes through
//!   [`escape_inline`] (one code span), [`escape_block`] (one fenced block) or, inside the related
//!   table's fenced block, [`escape_plain`]. That includes field names (alert keys are attacker
//!   text too). Only this module's own words, numbers it parsed and times it formatted are plain
//!   Markdown.
//! - The only link is the dashboard link, and only when `dashboard_url` is configured: built from
//!   that base (and from `case.json`'s `dashboard_link` when it starts with the base), scheme
//!   http or https, every byte outside a conservative URL alphabet percent-encoded. No alert text
//!   is ever put into it beyond what `cases::dashboard_link` already percent-encoded (the
//!   indexer's `_index`/`_id`).
//! - Windows eventchannel fields are shown with Wazuh's escaping undone (`\\` → `\`, `\"` →
//!   `"`), so paths read as on Windows; the raw values are in `alert.json` and
//!   `observables.json`.
//! - Nothing here panics on a strange alert: every field is optional and any JSON type is
//!   accepted.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::markdown::{escape_block, escape_inline, escape_plain, fence_escaped, truncate_chars};
use super::observables::{get, is_registry, Observable};
use super::PackInput;

/// Related references shown in the summary (all of them, up to 50, are in `related.jsonl`).
const RELATED_SHOWN: usize = 20;
/// Observables listed in the summary (all of them are in `observables.json`).
const OBSERVABLES_SHOWN: usize = 40;
/// Items shown of a list-valued field.
const LIST_SHOWN: usize = 20;
/// Leaves of `data` shown for an alert of no known kind.
const GENERIC_SHOWN: usize = 40;

/// What kind of alert this is, for its key fields and next steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Process,
    Authentication,
    FileIntegrity,
    Registry,
    Vulnerability,
    Rootcheck,
    VirusTotal,
    Other,
}

impl AlertKind {
    fn title(self) -> &'static str {
        match self {
            AlertKind::Process => "process activity (Sysmon / Windows events / auditd)",
            AlertKind::Authentication => "authentication (sshd, PAM, sudo, Windows logon)",
            AlertKind::FileIntegrity => "file integrity (syscheck)",
            AlertKind::Registry => "registry integrity (syscheck)",
            AlertKind::Vulnerability => "vulnerability detection",
            AlertKind::Rootcheck => "rootcheck (host anomaly)",
            AlertKind::VirusTotal => "VirusTotal verdict",
            AlertKind::Other => "other",
        }
    }
}

fn groups(alert: &Map<String, Value>) -> Vec<&str> {
    get(alert, "rule.groups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Classifies an alert by its groups, decoder and fields.
pub fn kind_of(alert: &Map<String, Value>) -> AlertKind {
    let g = groups(alert);
    let has = |p: &str| get(alert, p).is_some();
    let in_group = |name: &str| g.iter().any(|x| x.eq_ignore_ascii_case(name));
    if has("data.vulnerability") || in_group("vulnerability-detector") {
        AlertKind::Vulnerability
    } else if has("data.virustotal")
        || in_group("virustotal")
        || has("data.VTdetection")
        || has("data.VTpermalink")
        || has("data.VTlink")
    {
        AlertKind::VirusTotal
    } else if has("syscheck") || in_group("syscheck") {
        if is_registry(alert) {
            AlertKind::Registry
        } else {
            AlertKind::FileIntegrity
        }
    } else if in_group("rootcheck")
        || get(alert, "decoder.name").and_then(Value::as_str) == Some("rootcheck")
    {
        AlertKind::Rootcheck
    } else if has("data.win.eventdata.image")
        || has("data.win.eventdata.commandLine")
        || in_group("sysmon")
        || has("data.audit.exe")
    {
        AlertKind::Process
    } else if g.iter().any(|x| {
        let x = x.to_ascii_lowercase();
        x.contains("authentication") || x.contains("login") || x.contains("logon")
    }) || ["sshd", "pam", "sudo", "su"].iter().any(|n| in_group(n))
        || has("data.srcip")
        || has("data.srcuser")
        || has("data.win.eventdata.targetUserName")
    {
        AlertKind::Authentication
    } else {
        AlertKind::Other
    }
}

/// Undoes Wazuh's escaping of eventchannel fields (`\\` → `\`, `\"` → `"`), for display only.
fn win_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('\\') | Some('"') => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field's value as Markdown: one code span, or a list of them; `None` when absent or empty.
fn value_md(path: &str, v: &Value) -> Option<String> {
    let show = |s: &str| {
        if path.starts_with("data.win.") {
            escape_inline(&win_unescape(s))
        } else {
            escape_inline(s)
        }
    };
    match v {
        Value::Array(items) => {
            let vals: Vec<String> = items.iter().filter_map(scalar).collect();
            if vals.is_empty() {
                return None;
            }
            let mut parts: Vec<String> = vals.iter().take(LIST_SHOWN).map(|s| show(s)).collect();
            if vals.len() > LIST_SHOWN {
                parts.push(format!("and {} more", vals.len() - LIST_SHOWN));
            }
            Some(parts.join(", "))
        }
        other => {
            let s = scalar(other)?;
            (!s.is_empty()).then(|| show(&s))
        }
    }
}

struct Page<'a> {
    out: String,
    alert: &'a Map<String, Value>,
}

impl Page<'_> {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn h2(&mut self, title: &str) {
        self.out.push('\n');
        self.line(&format!("## {title}"));
        self.out.push('\n');
    }

    /// `- **label:** value` when the field is there.
    fn field(&mut self, label: &str, path: &str) -> bool {
        match get(self.alert, path).and_then(|v| value_md(path, v)) {
            Some(md) => {
                self.line(&format!("- **{label}:** {md}"));
                true
            }
            None => false,
        }
    }

    fn fields(&mut self, list: &[(&str, &str)]) -> usize {
        list.iter().filter(|(l, p)| self.field(l, p)).count()
    }

    /// `- **label:** before → after` for a pair of fields (either may be missing).
    fn pair(&mut self, label: &str, before: &str, after: &str) -> bool {
        let b = get(self.alert, before).and_then(|v| value_md(before, v));
        let a = get(self.alert, after).and_then(|v| value_md(after, v));
        match (b, a) {
            (Some(b), Some(a)) if b == a => self.line(&format!("- **{label}:** {a} (unchanged)")),
            (Some(b), Some(a)) => self.line(&format!("- **{label}:** {b} → {a}")),
            (None, Some(a)) => self.line(&format!("- **{label}:** {a}")),
            (Some(b), None) => self.line(&format!("- **{label} (before):** {b}")),
            (None, None) => return false,
        }
        true
    }

    fn block(&mut self, title: &str, path: &str) -> bool {
        let Some(text) = get(self.alert, path).and_then(scalar) else {
            return false;
        };
        if text.trim().is_empty() {
            return false;
        }
        let text = if path.starts_with("data.win.") {
            win_unescape(&text)
        } else {
            text
        };
        self.out.push('\n');
        self.line(&format!("**{title}** (from {}):", escape_inline(path)));
        self.out.push('\n');
        self.out.push_str(&escape_block(&text));
        true
    }
}

fn case_str<'a>(case: &'a Value, path: &str) -> Option<&'a str> {
    let mut v = case;
    for p in path.split('.') {
        v = v.get(p)?;
    }
    v.as_str().filter(|s| !s.is_empty())
}

fn logon_type_meaning(v: &str) -> Option<&'static str> {
    Some(match v.trim() {
        "2" => "interactive, at the console",
        "3" => "network (SMB, WinRM, ...)",
        "4" => "batch (scheduled task)",
        "5" => "service",
        "7" => "unlock",
        "8" => "network, cleartext password",
        "9" => "new credentials (runas /netonly)",
        "10" => "remote interactive (RDP)",
        "11" => "cached interactive",
        _ => return None,
    })
}

/// Renders `summary.md`.
pub fn render(input: &PackInput<'_>, obs: &[Observable]) -> String {
    let alert = input.alert;
    let case = input.case_json;
    let mut p = Page {
        out: String::with_capacity(8 * 1024),
        alert,
    };
    let kind = kind_of(alert);
    let level = crate::model::alert::level_of(alert).rank().or_else(|| {
        case.pointer("/rule/level")
            .and_then(Value::as_u64)
            .and_then(|l| u32::try_from(l).ok())
    });
    let level_txt = level.map_or_else(|| "unknown".to_string(), |l| l.to_string());
    let critical = case
        .get("critical")
        .and_then(Value::as_bool)
        .unwrap_or(level.is_some_and(|l| l >= 15));
    let bucket = case_str(case, "bucket").unwrap_or("high");
    let description = get(alert, "rule.description").and_then(scalar);
    let rule_id = get(alert, "rule.id").and_then(scalar);
    let alert_time = ["timestamp", "@timestamp"]
        .iter()
        .find_map(|k| alert.get(*k).and_then(crate::model::alert::parse_time));
    let alert_time_txt = alert_time.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string());

    // Title and the one-paragraph gist.
    p.line(&format!("# Escalation {}", escape_inline(input.case_id)));
    p.out.push('\n');
    let quarantined = input.quarantine_entry.is_some()
        || case.get("quarantined").and_then(Value::as_bool) == Some(true);
    if quarantined {
        let entry = input
            .quarantine_entry
            .or_else(|| case_str(case, "quarantine_entry"))
            .unwrap_or("");
        p.line(&format!(
            "> **Quarantined alert.** It could not be triaged normally and is kept as quarantine \
             entry {} (`quarantine/<entry>.json` with its `.reason` beside it). Its level reads \
             as high, so it is escalated all the same; fields below may be missing or odd.",
            escape_inline(entry)
        ));
        p.out.push('\n');
    }
    let severity = if critical {
        format!(
            "**CRITICAL** (level {level_txt}, bucket {})",
            escape_inline(bucket)
        )
    } else {
        format!(
            "**{}** (level {level_txt}, not critical)",
            escape_inline(bucket)
        )
    };
    p.line(&format!(
        "**What:** {} — {severity}, on host {}{}.",
        description
            .as_deref()
            .map_or_else(|| "An alert".to_string(), escape_inline),
        escape_inline(input.canonical_agent),
        alert_time_txt
            .as_deref()
            .map_or_else(String::new, |t| format!(", at {t}")),
    ));

    // What.
    p.h2("What happened");
    p.line(&format!(
        "- **Rule:** {} level {level_txt}{}",
        rule_id
            .as_deref()
            .map_or_else(|| "(no rule id)".to_string(), escape_inline),
        description
            .as_deref()
            .map_or_else(String::new, |d| format!(" — {}", escape_inline(d)))
    ));
    p.line(&format!(
        "- **Severity:** bucket {}, {}",
        escape_inline(bucket),
        if critical {
            "**critical** (level 15 or more)"
        } else {
            "not critical"
        }
    ));
    p.line(&format!("- **Kind:** {}", kind.title()));
    p.fields(&[
        ("Groups", "rule.groups"),
        ("Times fired (this manager run)", "rule.firedtimes"),
        ("Events correlated", "rule.frequency"),
        ("Decoder", "decoder.name"),
        ("Log location", "location"),
        ("Alert id", "id"),
    ]);
    if let Some(m) = case.pointer("/decision/matched").and_then(Value::as_str) {
        p.line(&format!(
            "- **Decided by policy entry:** {}",
            escape_inline(m)
        ));
    }
    if let Some(held) = case
        .pointer("/decision/held_back")
        .and_then(Value::as_array)
    {
        let names: Vec<String> = held
            .iter()
            .filter_map(Value::as_str)
            .take(LIST_SHOWN)
            .map(escape_inline)
            .collect();
        if !names.is_empty() {
            p.line(&format!(
                "- **False-positive signatures held back** (they never suppress a high alert \
                 without `allow_high`): {}",
                names.join(", ")
            ));
        }
    }

    // Where.
    p.h2("Where");
    p.line(&format!(
        "- **Host (canonical name):** {}",
        escape_inline(input.canonical_agent)
    ));
    if !input.agent_aliases.is_empty() {
        let names: Vec<String> = input
            .agent_aliases
            .iter()
            .take(LIST_SHOWN)
            .map(|a| escape_inline(a))
            .collect();
        p.line(&format!("- **Also known as:** {}", names.join(", ")));
    }
    if let Some(a) = case_str(case, "agent.alias") {
        p.line(&format!("- **Alias rule:** {}", escape_inline(a)));
    }
    p.fields(&[
        ("Agent id", "agent.id"),
        ("Agent name", "agent.name"),
        ("Agent IP", "agent.ip"),
        ("Computer (from the event)", "data.win.system.computer"),
        ("Hostname (from the log line)", "predecoder.hostname"),
        ("Wazuh manager", "manager.name"),
        ("Cluster node", "cluster.node"),
    ]);

    // When.
    p.h2("When");
    match &alert_time_txt {
        Some(t) => p.line(&format!("- **Alert time (UTC):** {t}")),
        None => p.line(&format!(
            "- **Alert time (UTC):** not readable from the alert; the case says {}",
            escape_inline(case_str(case, "alert_time").unwrap_or("nothing"))
        )),
    }
    p.fields(&[
        ("Original timestamp (manager's offset)", "timestamp"),
        ("Indexer timestamp", "@timestamp"),
        ("Event time (Windows)", "data.win.system.systemTime"),
        ("Event time (Sysmon, UTC)", "data.win.eventdata.utcTime"),
        ("Log line time", "predecoder.timestamp"),
    ]);
    if let Some(t) = case_str(case, "triage_time") {
        p.line(&format!("- **Triaged at:** {}", escape_inline(t)));
    }

    // MITRE.
    p.h2("Rule and MITRE ATT&CK");
    let ids: Vec<String> = get(alert, "rule.mitre.id")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(scalar).collect())
        .unwrap_or_default();
    let names: Vec<String> = get(alert, "rule.mitre.technique")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(scalar).collect())
        .unwrap_or_default();
    if ids.is_empty() && names.is_empty() {
        p.line("- No ATT&CK technique on this rule.");
    }
    for i in 0..ids.len().max(names.len()).min(LIST_SHOWN) {
        let id = ids.get(i).map(|s| escape_inline(s));
        let name = names.get(i).map(|s| escape_inline(s));
        match (id, name) {
            (Some(id), Some(name)) => p.line(&format!("- **Technique:** {id} {name}")),
            (Some(x), None) | (None, Some(x)) => p.line(&format!("- **Technique:** {x}")),
            (None, None) => {}
        }
    }
    p.field("Tactics", "rule.mitre.tactic");
    p.fields(&[
        ("PCI DSS", "rule.pci_dss"),
        ("NIST 800-53", "rule.nist_800_53"),
        ("GDPR", "rule.gdpr"),
        ("HIPAA", "rule.hipaa"),
    ]);

    // Key fields.
    p.h2(&format!("Key fields: {}", kind.title()));
    let shown = key_fields(&mut p, kind);
    if shown == 0 {
        p.line("- (none of the usual fields for this kind are in the alert; see `alert.json`)");
    }
    if path_is_windows_event(alert) {
        p.out.push('\n');
        p.line(
            "Windows event fields are shown with Wazuh's doubled backslashes undone; the raw \
             values are in `alert.json` and `observables.json`.",
        );
    }

    // Raw text.
    let has_log = p.block("Log", "full_log");
    p.block("Earlier matching log lines", "previous_output");
    p.block("What changed (diff)", "syscheck.diff");
    if !has_log {
        p.block("Event message", "data.win.system.message");
    }

    // Indicators.
    p.h2("Indicators (defanged; raw values in observables.json)");
    if obs.is_empty() {
        p.line("- None found.");
    }
    for o in obs.iter().take(OBSERVABLES_SHOWN) {
        p.line(&format!(
            "- {} {} from {}",
            o.kind.as_str(),
            escape_inline(&o.value),
            escape_inline(&o.field)
        ));
    }
    if obs.len() > OBSERVABLES_SHOWN {
        p.line(&format!(
            "- … and {} more in `observables.json`.",
            obs.len() - OBSERVABLES_SHOWN
        ));
    }

    // Related.
    p.h2("Related alerts on this host");
    related_table(&mut p, input);

    // Next steps.
    p.h2("What to check next");
    for (i, step) in next_steps(kind).iter().enumerate() {
        p.line(&format!("{}. {step}", i + 1));
    }

    // Dashboard.
    p.h2("Dashboard");
    match input
        .dashboard_url
        .and_then(|base| dashboard_href(base, case))
    {
        Some((href, exact)) => {
            p.line(&format!("- [Open in the Wazuh dashboard]({href})"));
            if !exact {
                p.line(&format!(
                    "- The indexer id of this alert is not known: search the dashboard for \
                     alert id {}.",
                    get(alert, "id")
                        .and_then(scalar)
                        .as_deref()
                        .map_or_else(|| "(none)".to_string(), escape_inline)
                ));
            }
        }
        None if input.dashboard_url.is_some() => {
            p.line("- `dashboard_url` is configured but is not an http(s) URL; no link.")
        }
        None => p.line("- Not configured (`[indexer] dashboard_url`)."),
    }

    // About.
    p.h2("About this pack");
    p.line(&format!(
        "- **Case:** {}{}",
        escape_inline(input.case_id),
        case_str(case, "policy_version").map_or_else(String::new, |v| format!(
            ", policy version {}",
            escape_inline(v)
        ))
    ));
    if let Some(trace) = case.pointer("/decision/trace").and_then(Value::as_array) {
        let steps: Vec<String> = trace
            .iter()
            .filter_map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .or_else(|| Some(s.to_string()))
            })
            .take(LIST_SHOWN)
            .collect();
        if !steps.is_empty() {
            p.line("- **Decision trace:**");
            for s in steps {
                p.line(&format!("  - step {}", escape_inline(&s)));
            }
        }
    }
    p.line(
        "- **Files:** `alert.json` (the original alert, byte for byte), `case.json`, \
         `observables.json` (typed, raw values), `related.jsonl` (references, newest first), \
         `manifest.json` (SHA-256 of each file; check with `signalfoundry verify-pack DIR`).",
    );
    p.line(
        "- Text from the alert is shown inside code, with control characters escaped (`\\u{..}`) \
         and URLs, domains, IPs and e-mail addresses defanged (`hxxp://`, also \
         `hxxp:\\\\` for the backslash forms browsers open, `[.]`, `[:]` in IPv6, `[@]`); \
         re-fang by hand only what you mean to open.",
    );
    p.out
}

fn path_is_windows_event(alert: &Map<String, Value>) -> bool {
    get(alert, "data.win").is_some()
}

fn key_fields(p: &mut Page<'_>, kind: AlertKind) -> usize {
    const EV: &str = "data.win.eventdata";
    let ev = |f: &str| format!("{EV}.{f}");
    let list: Vec<(&str, String)> = match kind {
        AlertKind::Process => vec![
            ("Image", ev("image")),
            ("Original file name", ev("originalFileName")),
            ("Command line", ev("commandLine")),
            ("Current directory", ev("currentDirectory")),
            ("User", ev("user")),
            ("Integrity level", ev("integrityLevel")),
            ("Process id", ev("processId")),
            ("Parent image", ev("parentImage")),
            ("Parent command line", ev("parentCommandLine")),
            ("Parent user", ev("parentUser")),
            ("Parent process id", ev("parentProcessId")),
            ("Hashes", ev("hashes")),
            ("Image loaded", ev("imageLoaded")),
            ("Signed", ev("signed")),
            ("Signature status", ev("signatureStatus")),
            ("Source image", ev("sourceImage")),
            ("Target image", ev("targetImage")),
            ("Granted access", ev("grantedAccess")),
            ("Target file", ev("targetFilename")),
            ("Registry object", ev("targetObject")),
            ("Registry details", ev("details")),
            ("Destination IP", ev("destinationIp")),
            ("Destination port", ev("destinationPort")),
            ("Destination host", ev("destinationHostname")),
            ("DNS query", ev("queryName")),
            ("Event id", "data.win.system.eventID".into()),
            ("Channel", "data.win.system.channel".into()),
            ("Executable (auditd)", "data.audit.exe".into()),
            ("Command (auditd)", "data.audit.command".into()),
            ("Working directory (auditd)", "data.audit.cwd".into()),
            ("Login user id (auditd)", "data.audit.auid".into()),
            ("Effective user id (auditd)", "data.audit.euid".into()),
            ("Audit key", "data.audit.key".into()),
        ],
        AlertKind::Authentication => vec![
            ("Source IP", "data.srcip".into()),
            ("Source port", "data.srcport".into()),
            ("Source user", "data.srcuser".into()),
            ("Destination user", "data.dstuser".into()),
            ("Destination IP", "data.dstip".into()),
            ("Destination port", "data.dstport".into()),
            ("Protocol", "data.protocol".into()),
            ("TTY", "data.tty".into()),
            ("Working directory", "data.pwd".into()),
            ("Command", "data.command".into()),
            ("Program", "predecoder.program_name".into()),
            ("Target user", ev("targetUserName")),
            ("Target domain", ev("targetDomainName")),
            ("Subject user", ev("subjectUserName")),
            ("Subject domain", ev("subjectDomainName")),
            ("Source address", ev("ipAddress")),
            ("Source port (Windows)", ev("ipPort")),
            ("Workstation", ev("workstationName")),
            ("Process", ev("processName")),
            ("Logon process", ev("logonProcessName")),
            ("Authentication package", ev("authenticationPackageName")),
            ("Failure reason", ev("failureReason")),
            ("Status", ev("status")),
            ("Sub-status", ev("subStatus")),
            ("Event id", "data.win.system.eventID".into()),
        ],
        AlertKind::FileIntegrity | AlertKind::Registry => Vec::new(),
        AlertKind::Vulnerability => vec![
            ("CVE", "data.vulnerability.cve".into()),
            ("Title", "data.vulnerability.title".into()),
            ("Severity", "data.vulnerability.severity".into()),
            ("Status", "data.vulnerability.status".into()),
            ("Package", "data.vulnerability.package.name".into()),
            (
                "Installed version",
                "data.vulnerability.package.version".into(),
            ),
            (
                "Architecture",
                "data.vulnerability.package.architecture".into(),
            ),
            (
                "Affected when",
                "data.vulnerability.package.condition".into(),
            ),
            (
                "CVSS 3 base score",
                "data.vulnerability.cvss.cvss3.base_score".into(),
            ),
            (
                "CVSS 2 base score",
                "data.vulnerability.cvss.cvss2.base_score".into(),
            ),
            ("Published", "data.vulnerability.published".into()),
            ("Updated", "data.vulnerability.updated".into()),
            ("CWE", "data.vulnerability.cwe_reference".into()),
            ("References", "data.vulnerability.references".into()),
        ],
        AlertKind::Rootcheck => vec![("Title", "data.title".into()), ("File", "data.file".into())],
        AlertKind::VirusTotal => vec![
            ("Positives", "data.virustotal.positives".into()),
            ("Total engines", "data.virustotal.total".into()),
            ("Malicious", "data.virustotal.malicious".into()),
            ("Permalink", "data.virustotal.permalink".into()),
            ("File", "data.virustotal.source.file".into()),
            ("MD5", "data.virustotal.source.md5".into()),
            ("SHA1", "data.virustotal.source.sha1".into()),
            ("Scan date", "data.virustotal.scan_date".into()),
            ("Detections (positives|total)", "data.VTdetection".into()),
            ("Permalink", "data.VTpermalink".into()),
            ("Permalink", "data.VTlink".into()),
            ("Autoruns entry", "data.Entry".into()),
            ("Entry location", "data.EntryLocation".into()),
            ("Category", "data.Category".into()),
            ("Image path", "data.ImagePath".into()),
            ("Launch string", "data.LaunchString".into()),
            ("Path", "data.Path".into()),
            ("Signer", "data.Signer".into()),
            ("Verified", "data.Verified".into()),
            ("Publisher", "data.Publisher".into()),
            ("Company", "data.Company".into()),
            ("Description", "data.Description".into()),
            ("MD5", "data.MD5".into()),
            ("SHA-1", "data.SHA-1".into()),
            ("SHA-256", "data.SHA-256".into()),
        ],
        AlertKind::Other => Vec::new(),
    };
    let mut shown = 0;
    for (label, path) in &list {
        if p.field(label, path) {
            shown += 1;
        }
    }
    if kind == AlertKind::Authentication {
        if let Some(t) = get(p.alert, &ev("logonType")).and_then(scalar) {
            let meaning = logon_type_meaning(&t).map_or_else(String::new, |m| format!(" ({m})"));
            p.line(&format!("- **Logon type:** {}{meaning}", escape_inline(&t)));
            shown += 1;
        }
    }
    if matches!(kind, AlertKind::FileIntegrity | AlertKind::Registry) {
        shown += fim_fields(p, kind);
    }
    if kind == AlertKind::Other {
        shown += generic_fields(p);
    }
    shown
}

fn fim_fields(p: &mut Page<'_>, kind: AlertKind) -> usize {
    let mut n = 0;
    if kind == AlertKind::Registry {
        n += p.fields(&[
            ("Registry key", "syscheck.path"),
            ("Architecture", "syscheck.arch"),
            ("Value name", "syscheck.value_name"),
            ("Value type", "syscheck.value_type"),
        ]);
    } else {
        n += p.fields(&[("File", "syscheck.path")]);
    }
    n += p.fields(&[
        ("Event", "syscheck.event"),
        ("Mode", "syscheck.mode"),
        ("Changed attributes", "syscheck.changed_attributes"),
    ]);
    for (label, field) in [
        ("Size", "size"),
        ("Permissions", "perm"),
        ("Owner", "uname"),
        ("Owner id", "uid"),
        ("Group", "gname"),
        ("Group id", "gid"),
        ("Modified", "mtime"),
        ("Inode", "inode"),
        ("MD5", "md5"),
        ("SHA1", "sha1"),
        ("SHA256", "sha256"),
    ] {
        let before = format!("syscheck.{field}_before");
        let after = format!("syscheck.{field}_after");
        if p.pair(label, &before, &after) {
            n += 1;
        }
    }
    n += p.fields(&[
        ("Tags", "syscheck.tags"),
        ("Changed by user (whodata)", "syscheck.audit.user.name"),
        ("User id (whodata)", "syscheck.audit.user.id"),
        ("Login user (whodata)", "syscheck.audit.login_user.name"),
        (
            "Effective user (whodata)",
            "syscheck.audit.effective_user.name",
        ),
        ("Group (whodata)", "syscheck.audit.group.name"),
        ("Process (whodata)", "syscheck.audit.process.name"),
        ("Process id (whodata)", "syscheck.audit.process.id"),
        ("Parent process id (whodata)", "syscheck.audit.process.ppid"),
        ("Process working directory", "syscheck.audit.process.cwd"),
        (
            "Parent process (whodata)",
            "syscheck.audit.process.parent_name",
        ),
        ("Process (whodata)", "syscheck.audit.proccess.name"),
        ("Process id (whodata)", "syscheck.audit.proccess.id"),
    ]);
    n
}

/// Scalar leaves of `data` (dotted paths as code, since alert keys are alert text).
fn generic_fields(p: &mut Page<'_>) -> usize {
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        if out.len() > GENERIC_SHOWN {
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    leaves(&format!("{prefix}.{k}"), v, out);
                }
            }
            Value::Null => {}
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let mut out = Vec::new();
    if let Some(d) = p.alert.get("data") {
        leaves("data", d, &mut out);
    }
    let mut n = 0;
    for (path, v) in out.iter().take(GENERIC_SHOWN) {
        if path == "data.win.system.message" {
            continue;
        }
        if let Some(md) = value_md(path, v) {
            p.line(&format!("- field {}: {md}", escape_inline(path)));
            n += 1;
        }
    }
    if out.len() > GENERIC_SHOWN {
        p.line("- … more fields in `alert.json`.");
    }
    n
}

fn related_table(p: &mut Page<'_>, input: &PackInput<'_>) {
    let related = &input.related[..input.related.len().min(super::RELATED_MAX)];
    if related.is_empty() {
        p.line(&format!(
            "None known on {} in the window before this alert.",
            escape_inline(input.canonical_agent)
        ));
        return;
    }
    p.line(&format!(
        "{} alert(s) on {} in the window before this one, newest first{}:",
        related.len(),
        escape_inline(input.canonical_agent),
        if related.len() > RELATED_SHOWN {
            format!(" ({RELATED_SHOWN} shown; all in `related.jsonl`)")
        } else {
            String::new()
        }
    ));
    p.out.push('\n');
    let cell = |s: &str, max: usize| {
        let (cut, truncated) = truncate_chars(s, max);
        let mut c = escape_plain(cut);
        if truncated {
            c.push('…');
        }
        c
    };
    let mut rows: Vec<[String; 5]> = vec![[
        "time".into(),
        "level".into(),
        "rule".into(),
        "description".into(),
        "case".into(),
    ]];
    for r in related.iter().take(RELATED_SHOWN) {
        rows.push([
            cell(&r.time, 40),
            r.level.map_or_else(|| "-".into(), |l| l.to_string()),
            r.rule_id
                .as_deref()
                .map_or_else(|| "-".into(), |x| cell(x, 12)),
            r.description
                .as_deref()
                .map_or_else(|| "-".into(), |x| cell(x, 70)),
            cell(&r.case_id, 48),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            let _ = write!(line, "{c:<w$}  ", w = widths[i]);
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    p.out.push_str(&fence_escaped(&text));
}

/// The dashboard link as a Markdown destination, and whether it points at this alert (`false`:
/// the dashboard itself, because the indexer id is not known). `None` unless the base is
/// http(s).
fn dashboard_href(base: &str, case: &Value) -> Option<(String, bool)> {
    let base = base.trim().trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    if !scheme_ok || base.len() <= "https://".len() {
        return None;
    }
    let (link, exact) = match case_str(case, "dashboard_link") {
        Some(l)
            if l.strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/')) =>
        {
            (l, true)
        }
        _ => (base, false),
    };
    Some((url_for_markdown(link), exact))
}

/// Percent-encodes every byte outside a conservative URL alphabet, so that the link destination
/// cannot end early (`)`, space, `<`, `>`), carry a control character or contain Markdown.
fn url_for_markdown(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/?#@!$&'*+,;=%".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn next_steps(kind: AlertKind) -> &'static [&'static str] {
    match kind {
        AlertKind::Process => &[
            "Decide whether this process belongs on this host: check the image path, its signer and its parent. An Office application, browser or script host starting a shell or PowerShell is a red flag.",
            "Look up the hashes (in `observables.json`) in your threat intelligence or VirusTotal.",
            "Read the whole command line for encoded commands (`-enc`, `FromBase64String`), downloads (`Invoke-WebRequest`, `certutil -urlcache`, `bitsadmin`) and living-off-the-land binaries.",
            "Rebuild the process tree around the alert time: Sysmon event 1 for the parent and children, event 3 for network connections and event 11 for files written by the same process GUID.",
            "Ask the user or the host owner whether they did this; if nobody did, isolate the host and collect memory before rebooting it.",
        ],
        AlertKind::Authentication => &[
            "Is the source address expected (an internal jump host, VPN range)? Check its reputation and look for alerts from it on other hosts.",
            "Did a login from this source, or for this user, succeed after the failures (sshd rule 5715, Windows event 4624)? A success after a burst of failures is the case to chase.",
            "Is the account real, privileged or a service account? Check recent password changes, lockouts and group changes.",
            "For a success: is the logon type, time and source usual for this user? Service and network logons of SYSTEM are routine; RDP from the internet is not.",
            "If it is hostile, block the source, reset the credentials and review what the session did (shell history, sudo log, Windows 4688/Sysmon events).",
        ],
        AlertKind::FileIntegrity => &[
            "Was the change expected (patching, configuration management, a change ticket)? Ask the host owner.",
            "Read the diff and the before/after hashes; compare with a known-good copy, and look the new hash up.",
            "Who made the change: the whodata user and process above when present, otherwise logins and sudo on the host around the alert time.",
            "For sensitive files (hosts, sudoers, SSH keys and config, cron, systemd units, shell profiles, web roots), revert what is not authorised.",
            "Look for persistence or staging: other files changed on this host in the same window (related alerts below).",
        ],
        AlertKind::Registry => &[
            "Is the key a persistence or defence-evasion location (Run/RunOnce, Services, Winlogon, Image File Execution Options, Defender or firewall policy)?",
            "Find the process that wrote it: Sysmon events 12-14 on this host around the alert time.",
            "Compare the value with the baseline or the GPO that should set it; revert an unauthorised change.",
            "Check the related alerts on this host for the process activity that preceded the change.",
        ],
        AlertKind::Vulnerability => &[
            "Confirm that the package and version are really installed on this host (and not a leftover in the inventory).",
            "Check whether the CVE is exploited in the wild (CISA KEV) and whether this host exposes the affected component.",
            "Upgrade to a version outside the affected range shown above, or apply the vendor's mitigation; record an exception if neither is possible.",
            "Find the other hosts with the same package and version.",
        ],
        AlertKind::Rootcheck => &[
            "Verify the flagged file or process by hand: the package manager (`rpm -V`, `debsums`) or the hash of a clean copy.",
            "Rule out known false positives (busybox on Alpine, containers, custom builds) by checking the host's distribution.",
            "Look for hidden processes, unexpected kernel modules (`lsmod`) and listening ports, from trusted binaries.",
            "If it is confirmed, isolate the host and rebuild it; do not trust tools on a rooted host.",
        ],
        AlertKind::VirusTotal => &[
            "Open the VirusTotal report (the permalink above, re-fanged by hand) and see which engines flag the file and as what.",
            "A low count (1 of 70) on a signed vendor file is often a false positive: check the signer and the path.",
            "Find where the file came from and whether it ran: Sysmon process events with the same hash on this host.",
            "If it is malicious, quarantine the file and search for the hash across all hosts.",
        ],
        AlertKind::Other => &[
            "Read the rule description and the log above and decide whether this activity is expected on this host.",
            "Check the related alerts on this host, and alerts for the same user or source address elsewhere.",
            "Ask the host owner; if the activity is not explained, escalate to incident response.",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_unescape_undoes_wazuh_doubling_only() {
        assert_eq!(
            win_unescape("C:\\\\Windows\\\\cscript.exe \\\"a\\\" \\x"),
            "C:\\Windows\\cscript.exe \"a\" \\x"
        );
    }

    #[test]
    fn dashboard_links_are_http_only_and_percent_encoded() {
        let case =
            serde_json::json!({"dashboard_link": "https://d.example/app/discover#/doc/x?id=a%2Fb"});
        assert_eq!(
            dashboard_href("https://d.example/", &case),
            Some((
                "https://d.example/app/discover#/doc/x?id=a%2Fb".into(),
                true
            ))
        );
        assert_eq!(dashboard_href("javascript:alert(1)", &case), None);
        let other = serde_json::json!({"dashboard_link": "https://d.example/a b).evil.example/"});
        assert_eq!(
            dashboard_href("https://d.example/a b)", &other),
            Some(("https://d.example/a%20b%29".into(), false))
        );
    }
}
