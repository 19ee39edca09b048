//! Escalation packs: the bytes of every file of `escalations/<case-id>/` for a `high` case (or a
//! `Q-` pack of a quarantined high alert), and `verify-pack`.
//!
//! Design constraints:
//! - Pure: [`render_pack`] takes the case, the alert and what the caller looked up (aliases,
//!   related references, configuration) and returns bytes; it does no IO and never reads the
//!   clock, so the same input gives the same pack byte for byte. Triage writes the files (through
//!   `fsx`), then publishes the directory. Only [`verify_pack`] reads the disk.
//! - Every string from the alert is attacker-controlled. In `summary.md` it can never become a
//!   link, an image, HTML or a terminal control sequence: control and format characters are
//!   escaped, URLs, domains, IPs and e-mail addresses are defanged, and each value sits in a code
//!   span or fenced block it cannot close ([`markdown`]). The only link is the configured
//!   dashboard's. Raw values stay in `alert.json` (the original bytes) and `observables.json`.
//! - Bounded: `related.jsonl` holds at most [`RELATED_MAX`] references (not copies), the summary
//!   cuts long values and lists, `observables.json` holds at most
//!   [`observables::MAX_OBSERVABLES`] entries.
//! - `manifest.json` comes last and lists every other file with its SHA-256, in DESIGN.md's shape
//!   `{"version": 1, "files": [{"path": "summary.md", "sha256": "<hex>"}, ...]}`.
//!
//! Files of a pack, in the order [`render_pack`] returns them:
//! - `summary.md`: for a person at 3 a.m. ([`summary`]).
//! - `alert.json`: the original alert bytes, unchanged.
//! - `case.json`: the case, pretty-printed, with a trailing newline.
//! - `related.jsonl`: one JSON object per line, the alerts of the same host in the related window
//!   before and after this one (as known when the pack is built), high ones first, then newest
//!   first; keys `case_id`, `time`, `rule_id`, `level`, `description`, `bucket` (`null` when
//!   unknown); empty when there are none.
//! - `observables.json`: an object `{"version": 1, "observables": [{"kind", "value", "field",
//!   "role", "note"?, "raw"?}]}`; `kind` is one of `ip`, `domain`, `url`, `md5`, `sha1`, `sha256`,
//!   `user`, `file`, `process`, `command-line`, `registry-key`, `cve`; `value` is never defanged
//!   (Windows event values with Wazuh's doubled backslashes undone, the alert's text then in
//!   `raw`); `field` is the dotted path it came from; `role` is `indicator` or `context` (the
//!   agent's own address, vendor references), `note` saying why.
//! - `manifest.json`.
//!
//! What is read from `case.json` (all optional): `bucket`, `critical`, `alert_time`,
//! `triage_time`, `policy_version`, `agent.alias`, `rule.level`, `decision.matched`,
//! `decision.held_back`, `decision.trace`, `dashboard_link`, `quarantined`, `quarantine_entry`.

pub mod markdown;
pub mod observables;
pub mod summary;
mod tlds;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use markdown::escape_inline;
pub use observables::{observables, Observable, ObservableKind};
pub use verify::{verify_pack, VerifyError, VerifyReport};

/// Most references in `related.jsonl`.
pub const RELATED_MAX: usize = 50;

/// A reference to another alert of the same canonical agent, before or after this one (not a
/// copy of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedRef {
    pub case_id: String,
    /// RFC 3339.
    pub time: String,
    pub rule_id: Option<String>,
    pub level: Option<u32>,
    pub description: Option<String>,
    /// `suppressed`, `low`, `medium` or `high`; `None` when the ledger has none yet.
    #[serde(default)]
    pub bucket: Option<String>,
}

/// Everything a pack is built from. The caller (triage) does the lookups.
#[derive(Debug, Clone, Copy)]
pub struct PackInput<'a> {
    pub case_id: &'a str,
    /// The case's `case.json` as triage writes it.
    pub case_json: &'a Value,
    /// The original `alert.json` bytes, copied into the pack byte for byte.
    pub alert_bytes: &'a [u8],
    pub alert: &'a Map<String, Value>,
    pub canonical_agent: &'a str,
    /// Other names of that host known to the policy.
    pub agent_aliases: &'a [String],
    /// At most [`RELATED_MAX`] are used, newest first.
    pub related: &'a [RelatedRef],
    /// `[indexer] dashboard_url`: the base of the only link the summary may hold.
    pub dashboard_url: Option<&'a str>,
    /// The quarantine entry, for the `Q-` pack of a quarantined alert.
    pub quarantine_entry: Option<&'a str>,
}

/// One file of a pack: its name inside the pack directory and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackFile {
    pub path: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Serialize)]
struct ObservablesFile<'a> {
    version: u32,
    observables: &'a [Observable],
}

#[derive(Serialize)]
struct ManifestFile<'a> {
    version: u32,
    files: Vec<ManifestEntry<'a>>,
}

#[derive(Serialize)]
struct ManifestEntry<'a> {
    path: &'a str,
    sha256: String,
}

fn pretty(v: &impl Serialize) -> Vec<u8> {
    // Serializing a `Value` or our own plain structs (strings, numbers, lists; no maps with
    // non-string keys) to memory cannot fail: an invariant, not an input, so never an empty
    // file written in its place.
    let mut out = serde_json::to_vec_pretty(v)
        .expect("a JSON value or a plain struct always serializes to memory");
    out.push(b'\n');
    out
}

/// `related.jsonl`: at most [`RELATED_MAX`] lines, one JSON object each.
pub fn related_jsonl(related: &[RelatedRef]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in related.iter().take(RELATED_MAX) {
        if let Ok(line) = serde_json::to_vec(r) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

/// `manifest.json` for the given files.
pub fn manifest_json(files: &[PackFile]) -> Vec<u8> {
    pretty(&ManifestFile {
        version: 1,
        files: files
            .iter()
            .map(|f| ManifestEntry {
                path: f.path,
                sha256: hex::encode(Sha256::digest(&f.bytes)),
            })
            .collect(),
    })
}

/// The files of a pack, `manifest.json` last.
pub fn render_pack(input: &PackInput<'_>) -> Vec<PackFile> {
    let obs = observables(input.alert);
    let mut files = vec![
        PackFile {
            path: "summary.md",
            bytes: summary::render(input, &obs).into_bytes(),
        },
        PackFile {
            path: "alert.json",
            bytes: input.alert_bytes.to_vec(),
        },
        PackFile {
            path: "case.json",
            bytes: pretty(input.case_json),
        },
        PackFile {
            path: "related.jsonl",
            bytes: related_jsonl(input.related),
        },
        PackFile {
            path: "observables.json",
            bytes: pretty(&ObservablesFile {
                version: 1,
                observables: &obs,
            }),
        },
    ];
    let manifest = manifest_json(&files);
    files.push(PackFile {
        path: "manifest.json",
        bytes: manifest,
    });
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fsx::{DirFd, Durability};
    use pulldown_cmark::{Event, LinkType, Options, Parser, Tag};

    const DASHBOARD: &str = "https://wazuh-dashboard.test:5601";

    fn load(dir: &str, name: &str) -> (Vec<u8>, Map<String, Value>) {
        let path = format!("{}/tests/data/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).expect("fixture is readable");
        let map = serde_json::from_slice(&bytes).expect("fixture is a JSON object");
        (bytes, map)
    }

    fn case_for(alert: &Map<String, Value>, link: bool) -> Value {
        serde_json::json!({
            "case_id": "C-0123456789abcdef",
            "bucket": "high",
            "critical": crate::model::alert::level_of(alert).rank().is_some_and(|l| l >= 15),
            "agent": {"canonical": alert.get("agent").and_then(|a| a.get("name")).cloned()},
            "alert_time": "2025-07-20T03:35:52.290Z",
            "triage_time": "2025-07-20T03:36:00.000Z",
            "policy_version": "sha256:abc",
            "decision": {"matched": null, "held_back": [], "trace": ["severity: level >= 12: high"]},
            "dashboard_link": if link {
                Value::String(format!("{DASHBOARD}/app/discover#/doc/wazuh-alerts/wazuh-alerts-4.x-2025.07.20?id=AbC_123"))
            } else {
                Value::Null
            },
        })
    }

    fn related(n: usize, description: &str) -> Vec<RelatedRef> {
        (0..n)
            .map(|i| RelatedRef {
                case_id: format!("C-{i:04}"),
                time: format!("2025-07-20T03:{:02}:00Z", 59 - (i % 60)),
                rule_id: Some("92032".into()),
                level: Some(3),
                description: Some(description.to_string()),
                bucket: Some("low".into()),
            })
            .collect()
    }

    struct Rendered {
        files: Vec<PackFile>,
    }

    impl Rendered {
        fn file(&self, name: &str) -> &[u8] {
            &self
                .files
                .iter()
                .find(|f| f.path == name)
                .unwrap_or_else(|| panic!("pack has {name}"))
                .bytes
        }
        fn summary(&self) -> String {
            String::from_utf8(self.file("summary.md").to_vec()).expect("summary is UTF-8")
        }
    }

    fn render(
        alert_bytes: &[u8],
        alert: &Map<String, Value>,
        canonical: &str,
        aliases: &[String],
        related: &[RelatedRef],
        dashboard: Option<&str>,
        quarantine: Option<&str>,
    ) -> Rendered {
        let case = case_for(alert, dashboard.is_some());
        Rendered {
            files: render_pack(&PackInput {
                case_id: "C-0123456789abcdef",
                case_json: &case,
                alert_bytes,
                alert,
                canonical_agent: canonical,
                agent_aliases: aliases,
                related,
                dashboard_url: dashboard,
                quarantine_entry: quarantine,
            }),
        }
    }

    /// The hostile-content checks every summary must pass: no link but the dashboard's, no
    /// image, no HTML, no control or format character, under CommonMark and every extension.
    fn assert_inert(md: &str) {
        for (i, c) in md.char_indices() {
            assert!(
                c == '\n' || !markdown::must_escape(c),
                "control/format character U+{:04X} at byte {i}: {:?}",
                c as u32,
                &md[i.saturating_sub(40)..(i + 40).min(md.len())]
            );
        }
        // Alert text never starts a line (where a backtick run could open a fenced block):
        // outside our own fenced blocks, every line starts with the page's own words.
        let mut open_fence: Option<usize> = None;
        for line in md.lines() {
            let ticks = line.len() - line.trim_start_matches('`').len();
            let is_fence = ticks >= 3 && ticks == line.len();
            match open_fence {
                Some(n) => {
                    if is_fence && ticks >= n {
                        open_fence = None;
                    }
                    continue;
                }
                None if is_fence => {
                    open_fence = Some(ticks);
                    continue;
                }
                None => {}
            }
            let body = line.trim_start_matches(' ');
            let body = body.strip_prefix("- ").unwrap_or(body);
            let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
            let body = body.strip_prefix(". ").unwrap_or(body);
            assert!(
                !body.starts_with('`'),
                "a line starts with alert text: {line:?}"
            );
        }
        assert_eq!(open_fence, None, "a fenced block is left open");
        for opts in [Options::empty(), Options::all()] {
            for ev in Parser::new_ext(md, opts) {
                match ev {
                    Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        ..
                    }) => {
                        assert_eq!(link_type, LinkType::Inline, "{dest_url}");
                        assert!(dest_url.starts_with(DASHBOARD), "live link {dest_url}");
                    }
                    Event::Start(Tag::Image { dest_url, .. }) => panic!("image {dest_url}"),
                    Event::Html(h) | Event::InlineHtml(h) => panic!("HTML {h:?}"),
                    Event::FootnoteReference(f) => panic!("footnote {f:?}"),
                    _ => {}
                }
            }
        }
    }

    fn all_fixtures() -> Vec<(String, Vec<u8>, Map<String, Value>)> {
        let mut out = Vec::new();
        for dir in ["wazuh-alerts", "hostile"] {
            let base = format!("{}/tests/data/{dir}", env!("CARGO_MANIFEST_DIR"));
            let mut names: Vec<String> = std::fs::read_dir(&base)
                .expect("fixture dir")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect();
            names.sort();
            for n in names {
                let (b, m) = load(dir, &n);
                out.push((format!("{dir}/{n}"), b, m));
            }
        }
        out
    }

    #[test]
    fn every_fixture_renders_an_inert_summary_and_a_complete_manifest() {
        let fixtures = all_fixtures();
        assert!(fixtures.len() >= 33, "{} fixtures", fixtures.len());
        for (name, bytes, alert) in &fixtures {
            let aliases = vec!["WIN-8F3K2".to_string(), "dc01.corp.local".to_string()];
            let rel = related(3, "Suspicious Windows cmd shell execution");
            let r = render(bytes, alert, "dc01", &aliases, &rel, Some(DASHBOARD), None);
            let names: Vec<&str> = r.files.iter().map(|f| f.path).collect();
            assert_eq!(
                names,
                [
                    "summary.md",
                    "alert.json",
                    "case.json",
                    "related.jsonl",
                    "observables.json",
                    "manifest.json"
                ],
                "{name}"
            );
            assert_eq!(r.file("alert.json"), bytes.as_slice(), "{name}");
            let md = r.summary();
            assert_inert(&md);
            let manifest: Value = serde_json::from_slice(r.file("manifest.json")).expect("json");
            assert_eq!(manifest["version"], 1);
            let listed = manifest["files"].as_array().expect("files");
            assert_eq!(listed.len(), 5, "{name}");
            for (entry, f) in listed.iter().zip(&r.files) {
                assert_eq!(entry["path"], f.path);
                assert_eq!(entry["sha256"], hex::encode(Sha256::digest(&f.bytes)));
            }
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        let (b, a) = load(
            "wazuh-alerts",
            "windows-sysmon-92032-cmd-shell-cscript-winrm.json",
        );
        let rel = related(5, "x");
        let one = render(&b, &a, "win", &[], &rel, Some(DASHBOARD), None).files;
        let two = render(&b, &a, "win", &[], &rel, Some(DASHBOARD), None).files;
        assert_eq!(one, two);
    }

    #[test]
    fn sysmon_summary_names_host_rule_mitre_process_fields_and_next_steps() {
        let (b, a) = load(
            "wazuh-alerts",
            "windows-sysmon-92151-mscorsvw-loads-automation-dll.json",
        );
        let aliases = vec!["WIN-1T5RE39Q2K5.cylosec.local".to_string()];
        let r = render(
            &b,
            &a,
            "win-1t5re39q2k5",
            &aliases,
            &related(2, "d"),
            Some(DASHBOARD),
            None,
        );
        let md = r.summary();
        for needle in [
            "# Escalation `C-0123456789abcdef`",
            "`Binary loaded PowerShell automation library - Possible unmanaged Powershell execution by suspicious process`",
            "**Host (canonical name):** `win-1t5re39q2k5`",
            "**Also known as:** `WIN-1T5RE39Q2K5.cylosec.local`",
            "**Computer (from the event):** `WIN-1T5RE39Q2K5.cylosec.local`",
            "**Agent IP:** `10.0.0.9`",
            "**Alert time (UTC):** 2025-07-20 03:35:52.290 UTC",
            "**Original timestamp (manager's offset):** `2025-07-20T03:35:52.290+0000`",
            "**Technique:** `T1059.001` `PowerShell`",
            "**Tactics:** `Execution`",
            "**Image:** `C:\\Windows\\Microsoft.NET\\Framework\\v4.0.30319\\mscorsvw.exe`",
            "**Hashes:** `SHA256=7DDE4EB995407C1D50F984B393EAEFBBBDDE7D66116335D26075C4E8D5AAEE5D`",
            "## What to check next",
            "Rebuild the process tree",
            "## Related alerts on this host",
            "C-0000",
            "[Open in the Wazuh dashboard](https://wazuh-dashboard.test:5601/app/discover#/doc/wazuh-alerts/wazuh-alerts-4.x-2025.07.20?id=AbC_123)",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
    }

    #[test]
    fn fim_summary_shows_hashes_before_and_after_and_the_whodata_user() {
        let (b, a) = load(
            "wazuh-alerts",
            "linux-fim-550-whodata-hosts-allow-nano.json",
        );
        let md = render(&b, &a, "vpc-agent-debian", &[], &[], None, None).summary();
        for needle in [
            "**File:** `/etc/hosts.allow`",
            "**Size:** `421` → `433`",
            "**MD5:** `4b8ee210c257bc59f2b1d4fa0cbbc3da` → `acb2289fba96e77cee0a2c3889b49643`",
            "**Login user (whodata):** `smith`",
            "**Process (whodata):** `/bin/nano`",
            "**What changed (diff)**",
            "> 10[.]0[.]12[.]34",
            "Not configured",
            "None known on `vpc-agent-debian`",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
    }

    #[test]
    fn kinds_are_recognised_on_the_real_alerts() {
        use summary::{kind_of, AlertKind as K};
        for (file, kind) in [
            (
                "windows-sysmon-92032-cmd-shell-cscript-winrm.json",
                K::Process,
            ),
            (
                "linux-sshd-5712-bruteforce-nonexistent-user.json",
                K::Authentication,
            ),
            (
                "windows-logon-60106-success-system-type5.json",
                K::Authentication,
            ),
            ("linux-sudo-5402-root-executed.json", K::Authentication),
            ("linux-fim-550-modified-realtime.json", K::FileIntegrity),
            ("windows-fim-750-registry-value-modified.json", K::Registry),
            ("windows-fim-594-registry-key-modified.json", K::Registry),
            (
                "partial-windows-vulnerability-23505-thunderbird-cve-2020-12395.json",
                K::Vulnerability,
            ),
            (
                "linux-rootcheck-510-zk-rootkit-3x-indexed.json",
                K::Rootcheck,
            ),
            (
                "windows-custom-91550-autoruns-virustotal-hit.json",
                K::VirusTotal,
            ),
            (
                "windows-custom-91560-sigcheck-virustotal-hit.json",
                K::VirusTotal,
            ),
            ("recon-linux-web-31103-sql-injection-curl.json", K::Web),
            (
                "partial-linux-apache-30306-forbidden-directory-index.json",
                K::Web,
            ),
            ("linux-pam-5501-sshd-session-opened.json", K::Authentication),
            (
                "linux-sshd-5715-auth-success-publickey.json",
                K::Authentication,
            ),
        ] {
            let (_, a) = load("wazuh-alerts", file);
            assert_eq!(kind_of(&a), kind, "{file}");
        }
    }

    #[test]
    fn web_attack_packs_get_the_web_kind_its_fields_and_its_next_steps() {
        let (b, a) = load(
            "wazuh-alerts",
            "recon-linux-web-31103-sql-injection-curl.json",
        );
        let md = render(&b, &a, "centos-agent", &[], &[], None, None).summary();
        for needle in [
            "- **Kind:** web request (web server access or error log)",
            "## Key fields: web request",
            "- **Source IP:** `172[.]17[.]1[.]1`",
            "- **URL:** `/?id=SELECT+*+FROM+users`",
            "- **HTTP method (Wazuh's `protocol` field):** `GET`",
            "- **HTTP response code:** 403 (refused by the server; from `data.id`)",
            "- **Request (from the log line):** `GET /?id=SELECT+*+FROM+users HTTP/1.1`",
            "- **User agent (from the log line):** `curl/7.64.0`",
            "1. Did it work? The response code above says what the server did",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        for wrong in ["authentication (sshd", "**Protocol:**", "failed logins"] {
            assert!(!md.contains(wrong), "{wrong:?} in\n{md}");
        }
        // The request path is the attack, shown above, but no URL: not a url observable.
        let r = render(&b, &a, "centos-agent", &[], &[], None, None);
        let obs = pack_observables(&r);
        assert!(
            !obs.iter().any(|o| o.kind == ObservableKind::Url),
            "{obs:?}"
        );
        assert!(obs
            .iter()
            .any(|o| o.value == "172.17.1.1" && o.is_indicator()));
        // An Apache error log: the client, and `id` is the server's error id, not a status.
        let (b, a) = load(
            "wazuh-alerts",
            "partial-linux-apache-30306-forbidden-directory-index.json",
        );
        let md = render(&b, &a, "RHEL7", &[], &[], None, None).summary();
        for needle in [
            "- **Kind:** web request",
            "- **Server error id (Wazuh's `id` field):** `AH01276`",
            "- **Source port:** `61844`",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        assert!(!md.contains("HTTP response code"), "{md}");
    }

    /// The observables of a rendered pack, from its `observables.json`.
    fn pack_observables(r: &Rendered) -> Vec<Observable> {
        let v: Value = serde_json::from_slice(r.file("observables.json")).expect("JSON");
        serde_json::from_value(v["observables"].clone()).expect("observables")
    }

    /// The summary's Indicators section up to its context list (the indicators proper).
    fn indicators_section(md: &str) -> &str {
        let start = md.find("## Indicators").expect("an Indicators section");
        let rest = &md[start..];
        let end = rest
            .find("**Context, not indicators**")
            .or_else(|| rest.find("\n## Related"))
            .expect("the section ends");
        &rest[..end]
    }

    #[test]
    fn empty_content_hashes_are_never_listed() {
        let (b, a) = load(
            "wazuh-alerts",
            "linux-fim-100010-custom-keyword-in-diff-level12.json",
        );
        let r = render(&b, &a, "x", &[], &[], None, None);
        let obs = pack_observables(&r);
        for empty in [
            "d41d8cd98f00b204e9800998ecf8427e",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(!obs.iter().any(|o| o.value == empty), "{empty}: {obs:?}");
            assert!(!indicators_section(&r.summary()).contains(empty));
        }
        // The file's new content is listed.
        assert!(obs
            .iter()
            .any(|o| o.value == "126b42ce036035a50516f067aae33418" && o.is_indicator()));
    }

    #[test]
    fn the_agents_own_address_and_vendor_references_are_context_not_indicators() {
        use observables::Role;
        let find = |obs: &[Observable], value: &str| {
            obs.iter()
                .find(|o| o.value == value)
                .cloned()
                .unwrap_or_else(|| panic!("{value} in {obs:?}"))
        };
        // The agent's address: context, said so; the client's: an indicator.
        let (b, a) = load(
            "wazuh-alerts",
            "partial-linux-apache-30306-forbidden-directory-index.json",
        );
        let r = render(&b, &a, "RHEL7", &[], &[], None, None);
        let obs = pack_observables(&r);
        let own = find(&obs, "10.0.1.214");
        assert_eq!(own.role, Role::Context);
        assert_eq!(own.note.as_deref(), Some("the agent's own address"));
        assert!(find(&obs, "24.4.35.192").is_indicator());
        let md = r.summary();
        let ind = indicators_section(&md);
        assert!(
            ind.contains("- ip `24[.]4[.]35[.]192` from `data.srcip`"),
            "{md}"
        );
        assert!(
            !ind.contains("10[.]0[.]1[.]214") && !ind.contains("10.0.1.214"),
            "{md}"
        );
        assert!(
            md.contains("- ip `10.0.1.214` from `agent.ip`: the agent's own address"),
            "{md}"
        );
        // A CVE's references: context, readable (never links); the CVE itself an indicator.
        let (b, a) = load(
            "wazuh-alerts",
            "partial-windows-vulnerability-23505-thunderbird-cve-2020-12395.json",
        );
        let r = render(&b, &a, "x", &[], &[], None, None);
        let obs = pack_observables(&r);
        let nvd = find(&obs, "https://nvd.nist.gov/vuln/detail/CVE-2020-12395");
        assert_eq!(nvd.note.as_deref(), Some("a vendor reference"));
        assert_eq!(find(&obs, "nvd.nist.gov").role, Role::Context);
        assert!(obs
            .iter()
            .any(|o| o.kind == ObservableKind::Cve && o.is_indicator()));
        let md = r.summary();
        assert!(!indicators_section(&md).contains("nvd"), "{md}");
        assert!(
            md.contains("- url `https://nvd.nist.gov/vuln/detail/CVE-2020-12395` from `data.vulnerability.references`: a vendor reference"),
            "{md}"
        );
        assert_inert(&md);
        // A VirusTotal permalink: the analyst opens it, so it reads as it is.
        let (b, a) = load(
            "wazuh-alerts",
            "windows-custom-91550-autoruns-virustotal-hit.json",
        );
        let md = render(&b, &a, "x", &[], &[], None, None).summary();
        let link = "https://www.virustotal.com/gui/file/d2b3066d4290ca61dd82e57dc9a1c4cbee49b4de31897b86bcd4dcdb46582f81/detection";
        assert!(md.contains(&format!("- **Permalink:** `{link}`")), "{md}");
        assert!(!indicators_section(&md).contains("virustotal"), "{md}");
        assert_inert(&md);
        // A scanner's home page in its user agent: context; the scanner's address: indicator.
        let (_, mut a) = load(
            "wazuh-alerts",
            "recon-linux-web-31103-sql-injection-curl.json",
        );
        a.insert(
            "full_log".into(),
            Value::String(
                "172.17.1.1 - - [03/May/2022:19:30:47 +0000] \"GET /?id=1%27 HTTP/1.1\" 200 512 \
                 \"-\" \"sqlmap/1.7.2#stable (https://sqlmap.org)\""
                    .into(),
            ),
        );
        let b = serde_json::to_vec(&a).expect("JSON");
        let r = render(&b, &a, "x", &[], &[], None, None);
        let obs = pack_observables(&r);
        assert_eq!(
            find(&obs, "sqlmap.org").note.as_deref(),
            Some("a well-known reference or tool site")
        );
        assert!(find(&obs, "172.17.1.1").is_indicator());
        assert!(!indicators_section(&r.summary()).contains("sqlmap"));
    }

    #[test]
    fn own_names_field_paths_and_references_read_as_they_are_and_attacker_text_is_defanged() {
        let (b, a) = load(
            "wazuh-alerts",
            "windows-sysmon-92151-mscorsvw-loads-automation-dll.json",
        );
        let mut case = case_for(&a, false);
        case["decision"]["trace"] = serde_json::json!([
            "agent \"hfw\": alias \"hfw\" applied, because agent.name is \"evil.example\"",
            "signature sig-a: rule.id is not one of [\"1\"]",
        ]);
        case["decision"]["matched"] = Value::String("severity".into());
        let aliases = vec!["WIN-1T5RE39Q2K5.cylosec.local".to_string()];
        let files = render_pack(&PackInput {
            case_id: "C-0123456789abcdef",
            case_json: &case,
            alert_bytes: &b,
            alert: &a,
            canonical_agent: "hfw.cylosec.local",
            agent_aliases: &aliases,
            related: &[],
            dashboard_url: None,
            quarantine_entry: None,
        });
        let md = Rendered { files }.summary();
        for needle in [
            // The trace's field paths are ours; the alert value it quotes is not.
            "because agent.name is \"evil[.]example\"",
            "signature sig-a: rule.id is not one of",
            "- **Host (canonical name):** `hfw.cylosec.local`",
            "- **Also known as:** `WIN-1T5RE39Q2K5.cylosec.local`",
            "from `data.win.eventdata.imageLoaded`",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        for wrong in [
            "agent[.]name",
            "rule[.]id",
            "cylosec[.]local",
            "eventdata[.]image",
        ] {
            assert!(!md.contains(wrong), "{wrong:?} in\n{md}");
        }
        assert_inert(&md);
    }

    #[test]
    fn windows_values_have_one_backslash_form_in_the_summary_and_observables_json() {
        let (b, a) = load(
            "wazuh-alerts",
            "windows-sysmon-92032-cmd-shell-cscript-winrm.json",
        );
        let r = render(&b, &a, "x", &[], &[], None, None);
        let md = r.summary();
        let obs = pack_observables(&r);
        let image = obs
            .iter()
            .find(|o| o.field == "data.win.eventdata.image")
            .expect("the image");
        assert_eq!(image.value, "C:\\Windows\\System32\\cscript.exe");
        assert_eq!(
            image.raw.as_deref(),
            Some("C:\\\\Windows\\\\System32\\\\cscript.exe")
        );
        let ind = indicators_section(&md);
        assert!(
            ind.contains(
                "- process `C:\\Windows\\System32\\cscript.exe` from `data.win.eventdata.image`"
            ),
            "{md}"
        );
        assert!(!ind.contains("\\\\"), "a doubled backslash in\n{ind}");
        // The same single form in both files, for every Windows value.
        for o in obs.iter().filter(|o| o.field.starts_with("data.win.")) {
            assert!(!o.value.contains("\\\\"), "{o:?}");
        }
    }

    #[test]
    fn hostile_alerts_render_no_link_image_html_or_control_character() {
        for (name, bytes, alert) in all_fixtures()
            .iter()
            .filter(|f| f.0.starts_with("hostile/"))
        {
            let hostile_name = alert
                .get("agent")
                .and_then(|a| a.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("x")
                .to_string();
            let aliases = vec![hostile_name.clone(), "](javascript:alert(1))".to_string()];
            let rel = related(
                3,
                "<img src=x onerror=alert(1)> ![x](http://evil.example/a.png)\x1b[31m",
            );
            for dashboard in [None, Some(DASHBOARD)] {
                let r = render(
                    bytes,
                    alert,
                    &hostile_name,
                    &aliases,
                    &rel,
                    dashboard,
                    Some("q-../x\n"),
                );
                let md = r.summary();
                assert_inert(&md);
                // The agent's own address is ours: shown as it is where it is named as such
                // (the agent's IP, context), defanged everywhere else.
                let own = alert
                    .get("agent")
                    .and_then(|a| a.get("ip"))
                    .and_then(Value::as_str)
                    .unwrap_or("(none)");
                let attacker_side = md
                    .lines()
                    .filter(|l| {
                        !(l.starts_with("- **Agent IP:**")
                            || l.ends_with(": the agent's own address"))
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                for raw in [
                    "http://evil.example",
                    "https://evil.example",
                    "www.evil.example",
                    "user@evil.example",
                    "evil.example",
                    "10.66.6.6",
                    "\u{1b}",
                ] {
                    let text = if raw == own { &attacker_side } else { &md };
                    assert!(
                        !text.contains(raw),
                        "{name}: {raw:?} undefanged/unescaped in\n{md}"
                    );
                }
                assert!(md.contains("Quarantined alert"), "{name}");
            }
        }
    }

    #[test]
    fn hostile_summary_keeps_the_text_visible_but_escaped_and_defanged() {
        let (b, a) = load("hostile", "sysmon-markdown-html-escapes.json");
        let md = render(&b, &a, "dc01", &[], &[], None, None).summary();
        for needle in [
            "hxxp://evil[.]example/x",
            "www[.]evil[.]example",
            "user[@]evil[.]example",
            "\\u{1b}[31m",
            "\\u{7}",
            "\\u{0}",
            "\\u{202e}",
            "\\n",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
    }

    #[test]
    fn ipv6_addresses_and_backslash_urls_are_defanged_in_the_summary_and_urls_in_observables() {
        let (b, a) = load("hostile", "sshd-ipv6-backslash-urls.json");
        let r = render(
            &b,
            &a,
            "edge-v6",
            &[],
            &related(2, "from 2001:db8::bad:1"),
            None,
            None,
        );
        let md = r.summary();
        assert_inert(&md);
        // No IPv6 address survives: every run of hex digits and colons that is one is a leak,
        // but for the agent's own address, shown as it is where it is named as such.
        assert!(md.contains("- **Agent IP:** `2001:db8::7`"), "{md}");
        let attacker_side = md
            .lines()
            .filter(|l| {
                !(l.starts_with("- **Agent IP:**") || l.ends_with(": the agent's own address"))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let run = regex::Regex::new(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*").expect("regex");
        for m in run.find_iter(&attacker_side) {
            let t = m.as_str().trim_end_matches('.');
            assert!(
                t.parse::<std::net::Ipv6Addr>().is_err(),
                "raw IPv6 {t:?} in\n{md}"
            );
        }
        let backslash_url = regex::Regex::new(r"(?i)\b(?:https?|ftps?):[/\\]*\\").expect("regex");
        assert!(
            !backslash_url.is_match(&md),
            "a backslash URL survives in\n{md}"
        );
        for needle in [
            "2001[:]db8[:][:]bad[:]1",
            "hxxp:\\\\evil[.]example\\payload",
            "HXXPS:/\\evil[.]example/x",
            "hxxps://[2001[:]db8[:][:]c2]:8443/login",
            "[:][:]ffff[:]10[.]66[.]6[.]7",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        let v: Value = serde_json::from_slice(r.file("observables.json")).expect("json");
        let obs: Vec<Observable> =
            serde_json::from_value(v["observables"].clone()).expect("observables");
        let has = |kind: ObservableKind, value: &str, field: &str| {
            obs.iter()
                .any(|o| o.kind == kind && o.value == value && o.field == field)
        };
        assert!(
            has(
                ObservableKind::Url,
                "http:\\\\evil.example\\payload",
                "data.url"
            ),
            "{obs:?}"
        );
        // The same URL in full_log is the same observable (the first field wins).
        assert!(
            has(ObservableKind::Url, "HTTPS:/\\evil.example/x", "full_log"),
            "{obs:?}"
        );
        assert!(
            has(ObservableKind::Domain, "evil.example", "data.url"),
            "{obs:?}"
        );
        assert!(
            has(ObservableKind::Ip, "2001:db8::bad:1", "data.srcip"),
            "{obs:?}"
        );
    }

    #[test]
    fn observables_json_keeps_raw_values_with_their_field_paths() {
        let (b, a) = load("hostile", "sysmon-markdown-html-escapes.json");
        let r = render(&b, &a, "dc01", &[], &[], None, None);
        let v: Value = serde_json::from_slice(r.file("observables.json")).expect("json");
        assert_eq!(v["version"], 1);
        let obs: Vec<Observable> =
            serde_json::from_value(v["observables"].clone()).expect("observables");
        let has = |kind: ObservableKind, value: &str, field: &str| {
            obs.iter()
                .any(|o| o.kind == kind && o.value == value && o.field == field)
        };
        assert!(
            has(
                ObservableKind::Url,
                "http://evil.example/x",
                "data.win.eventdata.commandLine"
            ),
            "{obs:?}"
        );
        assert!(
            has(
                ObservableKind::Domain,
                "evil.example",
                "data.win.eventdata.commandLine"
            ),
            "{obs:?}"
        );
        assert!(
            has(
                ObservableKind::Ip,
                "10.66.6.6",
                "data.win.eventdata.destinationIp"
            ),
            "{obs:?}"
        );
        assert!(obs.iter().any(|o| o.kind == ObservableKind::Process
            && o.field == "data.win.eventdata.image"
            && o.value.contains('\u{202e}')));
    }

    #[test]
    fn related_jsonl_has_at_most_fifty_lines_with_the_documented_keys() {
        let (b, a) = load(
            "wazuh-alerts",
            "linux-sshd-5712-bruteforce-nonexistent-user.json",
        );
        let rel = related(80, "line\nbreak \"quoted\"");
        let r = render(&b, &a, "h", &[], &rel, None, None);
        let text = std::str::from_utf8(r.file("related.jsonl")).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), RELATED_MAX);
        assert!(text.ends_with('\n'));
        for (i, l) in lines.iter().enumerate() {
            let v: Map<String, Value> = serde_json::from_str(l).expect("one object per line");
            let mut keys: Vec<&str> = v.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "bucket",
                    "case_id",
                    "description",
                    "level",
                    "rule_id",
                    "time"
                ]
            );
            assert_eq!(v["case_id"], format!("C-{i:04}"));
        }
        let none = render(&b, &a, "h", &[], &[], None, None);
        assert!(none.file("related.jsonl").is_empty());
    }

    #[test]
    fn a_rendered_pack_written_to_disk_passes_verify_pack_and_fails_once_touched() {
        let (b, a) = load(
            "wazuh-alerts",
            "windows-fim-750-registry-value-modified.json",
        );
        let r = render(&b, &a, "hfw", &[], &related(2, "x"), Some(DASHBOARD), None);
        let t = tempfile::tempdir().expect("tempdir");
        let d = DirFd::open(t.path()).expect("open");
        for f in &r.files {
            d.write_new(f.path, &f.bytes, Durability::Off)
                .expect("write");
        }
        let report = verify_pack(t.path()).expect("verifies");
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.ok.len(), 5);
        d.replace("case.json", b"{}", Durability::Off)
            .expect("tamper");
        let report = verify_pack(t.path()).expect("checks");
        assert_eq!(report.mismatched, vec!["case.json"]);
    }
}
