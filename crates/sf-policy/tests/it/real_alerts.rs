//! Every real Wazuh alert of `tests/data/wazuh-alerts/` against the default policy, with the
//! decision expected for it; and the default signatures' scope, shown on real alerts altered the
//! way an attack would differ from the noise.

use serde_json::{json, Value};
use sf_policy::{cli, Policy};

use crate::support::{at, merge, real_alerts_dir};

/// Each fixture file with its decision under the default policy at 2026-01-01.
const EXPECTED: [(&str, &str); 31] = [
    ("linux-fim-100010-custom-keyword-in-diff-level12.json", "bucket=high agent=ubuntu201 matched=- held_back=[] expired=[] level=12"),
    ("linux-fim-550-modified-realtime.json", "bucket=medium agent=jellyfish matched=- held_back=[] expired=[] level=7"),
    ("linux-fim-550-whodata-hosts-allow-nano.json", "bucket=medium agent=vpc-agent-debian matched=- held_back=[] expired=[] level=7"),
    ("linux-pam-5501-sshd-session-opened.json", "bucket=low agent=wazuh-server matched=- held_back=[] expired=[] level=3"),
    ("linux-pam-5501-su-session-opened.json", "bucket=low agent=vagrant matched=- held_back=[] expired=[] level=3"),
    ("linux-rootcheck-510-trojaned-md5sum-alpine.json", "bucket=suppressed agent=Alpine-fix matched=fp-rootcheck-trojan-busybox(suppress) held_back=[] expired=[] level=7"),
    ("linux-rootcheck-510-zk-rootkit-3x-indexed.json", "bucket=medium agent=71e2eca114c8 matched=- held_back=[] expired=[] level=7"),
    ("linux-sshd-5712-bruteforce-nonexistent-user.json", "bucket=medium agent=localhost.localdomain matched=- held_back=[] expired=[] level=10"),
    ("linux-sshd-5715-auth-success-publickey.json", "bucket=low agent=vagrant matched=- held_back=[] expired=[] level=3"),
    ("linux-sudo-5402-root-executed.json", "bucket=low agent=agent-1 matched=- held_back=[] expired=[] level=3"),
    ("macos-sudo-5407-sudo-executed.json", "bucket=low agent=macos-13 matched=- held_back=[] expired=[] level=3"),
    ("partial-linux-apache-30306-forbidden-directory-index.json", "bucket=low agent=RHEL7 matched=- held_back=[] expired=[] level=5"),
    ("partial-linux-fim-550-whodata-etc-hosts-rhel7.json", "bucket=medium agent=RHEL7 matched=- held_back=[] expired=[] level=7"),
    ("partial-linux-rootcheck-510-hidden-process-diamorphine.json", "bucket=medium agent=diamorphine-POC matched=- held_back=[] expired=[] level=7"),
    ("partial-linux-sshd-5716-failed-password-root.json", "bucket=low agent=Centos matched=- held_back=[] expired=[] level=5"),
    ("recon-linux-web-31103-sql-injection-curl.json", "bucket=medium agent=centos-agent matched=- held_back=[] expired=[] level=7"),
    ("partial-windows-vulnerability-23505-thunderbird-cve-2020-12395.json", "bucket=medium agent=Windows matched=- held_back=[] expired=[] level=10"),
    ("unix-rootcheck-510-trojaned-bin-kill.json", "bucket=medium agent=sossp104 matched=- held_back=[] expired=[] level=7"),
    ("windows-app-60642-software-protection.json", "bucket=low agent=hfw matched=- held_back=[] expired=[] level=3"),
    ("windows-custom-91550-autoruns-virustotal-hit.json", "bucket=high agent=WIN-7FK8M79Q5R6 matched=- held_back=[] expired=[] level=12"),
    ("windows-custom-91551-autoruns-virustotal-unknown.json", "bucket=medium agent=WIN-7FK8M79Q5R6 matched=- held_back=[] expired=[] level=10"),
    ("windows-custom-91560-sigcheck-virustotal-hit.json", "bucket=high agent=ANSYDWDC01 matched=- held_back=[] expired=[] level=12"),
    ("windows-fim-550-whodata-hosts-notepad.json", "bucket=medium agent=vpc-agent-win matched=- held_back=[] expired=[] level=7"),
    ("windows-fim-594-registry-key-modified.json", "bucket=suppressed agent=hfw matched=fp-fim-registry-w32time(suppress) held_back=[] expired=[] level=5"),
    ("windows-fim-750-registry-value-modified.json", "bucket=suppressed agent=hfw matched=fp-fim-registry-w32time(suppress) held_back=[] expired=[] level=5"),
    ("windows-logon-60106-success-system-type5-repeat.json", "bucket=suppressed agent=hfw matched=fp-windows-service-logon-system(suppress) held_back=[] expired=[] level=3"),
    ("windows-logon-60106-success-system-type5.json", "bucket=suppressed agent=hfw matched=fp-windows-service-logon-system(suppress) held_back=[] expired=[] level=3"),
    ("windows-sysmon-100500-software-policy-violation.json", "bucket=medium agent=DESKTOP-NCLALBR matched=- held_back=[] expired=[] level=10"),
    ("windows-sysmon-92027-powershell-spawned-powershell.json", "bucket=low agent=ALEXD matched=- held_back=[] expired=[] level=4"),
    ("windows-sysmon-92032-cmd-shell-cscript-winrm.json", "bucket=low agent=WIN-1T5RE39Q2K5 matched=- held_back=[] expired=[] level=3"),
    ("windows-sysmon-92151-mscorsvw-loads-automation-dll.json", "bucket=suppressed agent=WIN-1T5RE39Q2K5 matched=fp-sysmon-ngen-mscorsvw(suppress) held_back=[] expired=[] level=12"),
];

fn load(file: &str) -> Value {
    let path = real_alerts_dir().join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

#[track_caller]
fn check(policy: &Policy, alert: &Value, expected: &str) {
    let d = policy
        .decide(alert, at("2026-01-01T00:00:00Z"))
        .unwrap_or_else(|e| panic!("decide: {e}"));
    assert_eq!(
        d.to_string(),
        expected,
        "trace:\n  {}",
        d.trace.join("\n  ")
    );
}

#[test]
fn every_real_alert_gets_its_expected_decision_from_the_default_policy() {
    let policy = Policy::default_policy();
    for (file, expected) in EXPECTED {
        let d = policy
            .decide(&load(file), at("2026-01-01T00:00:00Z"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            d.to_string(),
            expected,
            "{file}; trace:\n  {}",
            d.trace.join("\n  ")
        );
    }
}

#[test]
fn the_expected_table_covers_every_fixture_file() {
    let mut on_disk: Vec<String> = std::fs::read_dir(real_alerts_dir())
        .expect("fixture directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn real_alerts_decide_the_same_bare_or_as_indexer_hits() {
    let policy = Policy::default_policy();
    for (file, expected) in EXPECTED {
        let hit =
            json!({"_index": "wazuh-alerts-4.x-2025.09.12", "_id": "x", "_source": load(file)});
        let d = policy
            .decide(sf_policy::alert_document(&hit), at("2026-01-01T00:00:00Z"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(d.to_string(), expected, "{file}");
    }
}

#[test]
fn a_site_alias_maps_the_windows_computer_name_of_a_real_alert() {
    let site = format!(
        "{}\n[[alias]]\ncanonical = \"finance-ws-01\"\nnames = [\"desktop-uojj5r1\"]\n",
        sf_policy::DEFAULT_POLICY_TOML
    );
    let (policy, _) = Policy::parse(&site).expect("valid");
    check(
        &policy,
        &load("windows-logon-60106-success-system-type5.json"),
        "bucket=suppressed agent=finance-ws-01 alias=finance-ws-01 matched=fp-windows-service-logon-system(suppress) held_back=[] expired=[] level=3",
    );
}

fn altered(file: &str, change: Value) -> Value {
    let mut alert = load(file);
    merge(&mut alert, change);
    alert
}

#[test]
fn ngen_noise_is_suppressed_only_for_the_real_mscorsvw_loading_from_the_ngen_cache() {
    let policy = Policy::default_policy();
    let file = "windows-sysmon-92151-mscorsvw-loads-automation-dll.json";
    let elsewhere = altered(
        file,
        json!({"data": {"win": {"eventdata": {"image": "C:\\\\Users\\\\Public\\\\mscorsvw.exe"}}}}),
    );
    check(
        &policy,
        &elsewhere,
        "bucket=high agent=WIN-1T5RE39Q2K5 matched=- held_back=[] expired=[] level=12",
    );
    let other_dll = altered(
        file,
        json!({"data": {"win": {"eventdata": {"imageLoaded": "C:\\\\Users\\\\Public\\\\System.Management.Automation.dll"}}}}),
    );
    check(
        &policy,
        &other_dll,
        "bucket=high agent=WIN-1T5RE39Q2K5 matched=- held_back=[] expired=[] level=12",
    );
    let framework64 = altered(
        file,
        json!({"data": {"win": {"eventdata": {"image": "C:\\\\Windows\\\\Microsoft.NET\\\\Framework64\\\\v4.0.30319\\\\mscorsvw.exe"}}}}),
    );
    check(&policy, &framework64, "bucket=suppressed agent=WIN-1T5RE39Q2K5 matched=fp-sysmon-ngen-mscorsvw(suppress) held_back=[] expired=[] level=12");
}

#[test]
fn busybox_trojan_noise_is_suppressed_only_on_busybox_hosts_for_generic_signatures() {
    let policy = Policy::default_policy();
    let file = "linux-rootcheck-510-trojaned-md5sum-alpine.json";
    let other_host = altered(file, json!({"agent": {"name": "db01"}}));
    check(
        &policy,
        &other_host,
        "bucket=medium agent=db01 matched=- held_back=[] expired=[] level=7",
    );
    let named_trojan = altered(
        file,
        json!({"full_log": "Trojaned version of file '/usr/bin/md5sum' detected. Signature used: 'bash|^/bin/sh' (Adore)."}),
    );
    check(
        &policy,
        &named_trojan,
        "bucket=medium agent=Alpine-fix matched=- held_back=[] expired=[] level=7",
    );
    let outside_bin = altered(file, json!({"data": {"file": "/tmp/md5sum"}}));
    check(
        &policy,
        &outside_bin,
        "bucket=medium agent=Alpine-fix matched=- held_back=[] expired=[] level=7",
    );
}

#[test]
fn registry_noise_is_suppressed_only_for_modified_keys_under_w32time() {
    let policy = Policy::default_policy();
    let file = "windows-fim-594-registry-key-modified.json";
    let run_key = altered(
        file,
        json!({"syscheck": {"path": "HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"}}),
    );
    check(
        &policy,
        &run_key,
        "bucket=low agent=hfw matched=- held_back=[] expired=[] level=5",
    );
    let deleted = altered(file, json!({"syscheck": {"event": "deleted"}}));
    check(
        &policy,
        &deleted,
        "bucket=low agent=hfw matched=- held_back=[] expired=[] level=5",
    );
    let bam = altered(
        file,
        json!({"syscheck": {"path": "HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\bam\\State\\UserSettings\\S-1-5-21-1"}}),
    );
    check(&policy, &bam, "bucket=suppressed agent=hfw matched=fp-fim-registry-bam(suppress) held_back=[] expired=[] level=5");
}

#[test]
fn service_logon_noise_is_suppressed_only_for_type_five_as_system() {
    let policy = Policy::default_policy();
    let file = "windows-logon-60106-success-system-type5.json";
    let interactive = altered(
        file,
        json!({"data": {"win": {"eventdata": {"logonType": "2"}}}}),
    );
    check(
        &policy,
        &interactive,
        "bucket=low agent=hfw matched=- held_back=[] expired=[] level=3",
    );
    let as_user = altered(
        file,
        json!({"data": {"win": {"eventdata": {"targetUserSid": "S-1-5-21-1-2-3-1001"}}}}),
    );
    check(
        &policy,
        &as_user,
        "bucket=low agent=hfw matched=- held_back=[] expired=[] level=3",
    );
}

#[test]
fn the_mimikatz_override_escalates_a_renamed_copy() {
    let policy = Policy::default_policy();
    let renamed = altered(
        "windows-sysmon-92027-powershell-spawned-powershell.json",
        json!({"data": {"win": {"eventdata": {"image": "C:\\\\Temp\\\\notepad.exe", "originalFileName": "mimikatz.exe"}}}}),
    );
    check(
        &policy,
        &renamed,
        "bucket=high agent=ALEXD matched=always-mimikatz(override) held_back=[] expired=[] level=4",
    );
    assert!(policy.forced_high(&renamed));
}

#[test]
fn policy_test_prints_one_json_line_per_real_alert_in_input_order() {
    let files: Vec<_> = EXPECTED
        .iter()
        .map(|(f, _)| real_alerts_dir().join(f))
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::test(
        &Policy::default_policy(),
        "test-policy",
        at("2026-01-01T00:00:00Z"),
        true,
        &files,
        &mut out,
        &mut err,
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let lines: Vec<Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), EXPECTED.len());
    for ((file, expected), line) in EXPECTED.iter().zip(&lines) {
        assert!(
            line["file"].as_str().is_some_and(|f| f.ends_with(file)),
            "{line}"
        );
        let bucket = expected
            .split_whitespace()
            .next()
            .and_then(|b| b.strip_prefix("bucket="));
        assert_eq!(line["bucket"].as_str(), bucket, "{file}");
    }
}
