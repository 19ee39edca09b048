//! What kind an alert is ([`kind_of`]: process, web, authentication, file or registry
//! integrity, vulnerability, rootcheck, VirusTotal, other) and what `summary.md` shows for each kind: its
//! key fields ([`key_fields`]) and its next steps ([`next_steps`]). The same promises as the
//! page (`summary`): every value from the alert goes through [`escape_inline`] (field names
//! too), every field is optional and any JSON type is accepted.

use serde_json::{Map, Value};

use super::{scalar, value_md, Page};
use crate::stages::escalate::markdown::{escape_inline, escape_inline_fields};
use crate::stages::escalate::observables::{get, is_registry};

/// Leaves of `data` shown for an alert of no known kind.
const GENERIC_SHOWN: usize = 40;

/// What kind of alert this is, for its key fields and next steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Process,
    /// Web server access and error logs: attacks on a web application (SQL injection, XSS,
    /// scans) and the server's own errors.
    Web,
    Authentication,
    FileIntegrity,
    Registry,
    Vulnerability,
    Rootcheck,
    VirusTotal,
    Other,
}

impl AlertKind {
    /// A few words naming the kind, for headings.
    pub fn title(self) -> &'static str {
        match self {
            AlertKind::Process => "process activity (Sysmon / Windows events / auditd)",
            AlertKind::Web => "web request (web server access or error log)",
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

/// Groups of Wazuh's web rules (0245-web_rules.xml and the web servers' own rule files).
const WEB_GROUPS: &[&str] = &[
    "web",
    "accesslog",
    "web-log",
    "apache",
    "nginx",
    "ms-iis",
    "iis",
    "lighttpd",
    "tomcat",
    "modsecurity",
    "sql_injection",
    "web_scan",
    "xss",
];

/// Decoders of web server logs (0375-web-accesslog, apache, nginx, IIS, ModSecurity).
fn is_web_decoder(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("web-accesslog")
        || n.starts_with("apache")
        || n.starts_with("nginx")
        || n.starts_with("iis")
        || n.starts_with("ms-iis")
        || n.starts_with("modsecurity")
        || n.starts_with("lighttpd")
}

/// A web server's log file, for alerts that carry neither groups nor a decoder (trimmed
/// documents): `/var/log/httpd/error_log`, `/var/log/nginx/access.log`, `...\LogFiles\W3SVC1`.
fn is_web_log_location(location: &str) -> bool {
    let l = location.to_ascii_lowercase();
    [
        "/httpd/",
        "/apache",
        "/nginx/",
        "/lighttpd/",
        "w3svc",
        "\\logfiles\\",
    ]
    .iter()
    .any(|m| l.contains(m))
}

/// Classifies an alert by its groups, decoder and fields. The groups and the decoder decide
/// first; fields (such as `data.srcip`, which web, firewall and login alerts all carry) only
/// when neither names a kind.
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
    } else if WEB_GROUPS.iter().any(|w| in_group(w))
        || ["decoder.name", "decoder.parent"].iter().any(|p| {
            get(alert, p)
                .and_then(Value::as_str)
                .is_some_and(is_web_decoder)
        })
        || get(alert, "location")
            .and_then(Value::as_str)
            .is_some_and(is_web_log_location)
    {
        AlertKind::Web
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

pub(super) fn key_fields(p: &mut Page<'_>, kind: AlertKind) -> usize {
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
        // Wazuh's web-accesslog decoder puts the method in `protocol` and the response code in
        // `id` (an Apache error log's `id` is the server's error id, `AH01276`): both are
        // labelled by `web_fields`.
        AlertKind::Web => vec![
            ("Source IP", "data.srcip".into()),
            ("Source port", "data.srcport".into()),
            ("URL", "data.url".into()),
            ("Source user", "data.srcuser".into()),
            ("Virtual host", "data.hostname".into()),
            ("Log file", "location".into()),
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
    if kind == AlertKind::Web {
        shown += web_fields(p);
    }
    if matches!(kind, AlertKind::FileIntegrity | AlertKind::Registry) {
        shown += fim_fields(p, kind);
    }
    if kind == AlertKind::Other {
        shown += generic_fields(p);
    }
    shown
}

/// What an HTTP response code says about an attack that got it.
fn response_meaning(code: u16) -> &'static str {
    match code {
        200..=299 => "the server answered the request: the attack may have worked",
        300..=399 => "a redirect: see where it led",
        401 | 403 => "refused by the server",
        404 | 410 => "no such page: a probe or scan",
        400..=499 => "rejected as a bad request",
        500..=599 => "a server error: the payload reached the application and may have broken it",
        _ => "not a standard response code",
    }
}

/// The parts of an access log line in the common or combined format
/// (`... "GET /x HTTP/1.1" 200 512 "referer" "user agent"`): request, status, referer, agent.
fn access_log_parts(line: &str) -> Option<(&str, u16, Option<&str>, Option<&str>)> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#""([A-Z]{3,10} [^"]{0,8192})" ([1-5][0-9]{2}) (?:[0-9]+|-)(?: "([^"]*)" "([^"]*)")?"#,
        )
        .expect("a valid regex")
    });
    let c = re.captures(line)?;
    let code = c.get(2)?.as_str().parse().ok()?;
    Some((
        c.get(1)?.as_str(),
        code,
        c.get(3).map(|m| m.as_str()),
        c.get(4).map(|m| m.as_str()),
    ))
}

/// The method, the response code (with what it means), the request line and the user agent of
/// a web alert: from the decoder's fields, else from an access log line.
fn web_fields(p: &mut Page<'_>) -> usize {
    let mut n = 0;
    let log = get(p.alert, "full_log").and_then(scalar);
    let parts = log.as_deref().and_then(access_log_parts);
    if p.field("HTTP method (Wazuh's `protocol` field)", "data.protocol") {
        n += 1;
    }
    let id = get(p.alert, "data.id").and_then(scalar);
    let code = id
        .as_deref()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|c| (100..=599).contains(c))
        .map(|c| (c, "data.id"))
        .or_else(|| parts.map(|(_, c, _, _)| (c, "the log line")));
    match code {
        Some((c, from)) => {
            p.line(&format!(
                "- **HTTP response code:** {c} ({}; from {})",
                response_meaning(c),
                if from == "data.id" {
                    "`data.id`"
                } else {
                    "the log line"
                }
            ));
            n += 1;
        }
        None => {
            if let Some(id) = id.filter(|s| !s.is_empty()) {
                p.line(&format!(
                    "- **Server error id (Wazuh's `id` field):** {}",
                    escape_inline(&id)
                ));
                n += 1;
            }
        }
    }
    if let Some((request, _, referer, agent)) = parts {
        p.line(&format!(
            "- **Request (from the log line):** {}",
            escape_inline(request)
        ));
        n += 1;
        if let Some(r) = referer.filter(|r| !r.is_empty() && *r != "-") {
            p.line(&format!(
                "- **Referer (from the log line):** {}",
                escape_inline(r)
            ));
            n += 1;
        }
        if let Some(a) = agent.filter(|a| !a.is_empty() && *a != "-") {
            p.line(&format!(
                "- **User agent (from the log line):** {}",
                escape_inline(a)
            ));
            n += 1;
        }
    }
    n
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
            p.line(&format!("- field {}: {md}", escape_inline_fields(path)));
            n += 1;
        }
    }
    if out.len() > GENERIC_SHOWN {
        p.line("- … more fields in `alert.json`.");
    }
    n
}

/// What an analyst checks next for an alert of this kind (the steps refer to the sections of
/// the pack's `summary.md`).
pub fn next_steps(kind: AlertKind) -> &'static [&'static str] {
    match kind {
        AlertKind::Process => &[
            "Decide whether this process belongs on this host: check the image path, its signer and its parent. An Office application, browser or script host starting a shell or PowerShell is a red flag.",
            "Look up the hashes (in `observables.json`) in your threat intelligence or VirusTotal.",
            "Read the whole command line for encoded commands (`-enc`, `FromBase64String`), downloads (`Invoke-WebRequest`, `certutil -urlcache`, `bitsadmin`) and living-off-the-land binaries.",
            "Rebuild the process tree around the alert time: Sysmon event 1 for the parent and children, event 3 for network connections and event 11 for files written by the same process GUID.",
            "Ask the user or the host owner whether they did this; if nobody did, isolate the host and collect memory before rebooting it.",
        ],
        AlertKind::Web => &[
            "Did it work? The response code above says what the server did: 2xx means it answered the request (rule 31106 is a web attack answered with 200), 4xx that it refused it, 5xx that the payload reached the application and may have broken something.",
            "Read the URL and the request for the payload (SQL such as `UNION SELECT` or `' OR 1=1`, `../`, `<script>`, shell commands); a scanner's user agent (sqlmap, Nikto, Nmap, curl in a loop) means an automated scan, so count the requests from this source.",
            "Find every request from this source address in the web server's access log around the alert time, and the application's and database's logs for the same minutes, to see what was returned or changed.",
            "Look for a web shell or new files under the web root (file-integrity alerts among the related alerts below) and for processes started by the web server's user.",
            "If the source is hostile, block it at the WAF or firewall; if a request succeeded, fix or patch the endpoint and treat the application's data as exposed.",
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
            "Open the VirusTotal report (the permalink above, shown as it is: copy it into the browser) and see which engines flag the file and as what.",
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
