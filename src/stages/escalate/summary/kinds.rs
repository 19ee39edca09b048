//! What kind an alert is ([`kind_of`]: process, authentication, file or registry integrity,
//! vulnerability, rootcheck, VirusTotal, other) and what `summary.md` shows for each kind: its
//! key fields ([`key_fields`]) and its next steps ([`next_steps`]). The same promises as the
//! page (`summary`): every value from the alert goes through [`escape_inline`] (field names
//! too), every field is optional and any JSON type is accepted.

use serde_json::{Map, Value};

use super::{scalar, value_md, Page};
use crate::stages::escalate::markdown::escape_inline;
use crate::stages::escalate::observables::{get, is_registry};

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
    /// A few words naming the kind, for headings.
    pub fn title(self) -> &'static str {
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
