//! DFIR-IRIS: the `POST /alerts/add` body, and the `GET /alerts/filter` query and answer that
//! tell whether the incident was exported already.
//!
//! Design constraints:
//! - Sources (research §3.2, and read in dfir-iris/iris-web v2.4.20): the alert fields of
//!   `source/app/models/alerts.py` (not null: `alert_title`, `alert_severity_id`,
//!   `alert_status_id`, `alert_customer_id`; `alert_tags` is one comma-separated string;
//!   `alert_context` and `alert_source_content` are JSON); the seeded ids of
//!   `source/app/post_init.py` on a fresh install (severities 1 Unspecified, 2 Informational,
//!   3 Low, 4 Medium, 5 High, 6 Critical; alert status 2 New; customer 1; TLP 1 red, 2 amber,
//!   3 green, 4 clear, 5 amber+strict; the IOC and asset types in [`IocTypes`] and
//!   [`Options::asset_type_id`]). Ids differ on an upgraded or customised instance, so every
//!   one is an option.
//! - IRIS does not deduplicate `alert_source_ref`: the sender checks first with
//!   [`filter_query`] (`source_reference` is matched with SQL `LIKE '%ref%'` in
//!   `alerts_db.get_filtered_alerts`; incident ids are fixed-length `INC-` and hex, with no
//!   `%` or `_`, so it matches only the same id) and [`parse_filter_total`].
//! - IOCs are deduplicated by (type id, value), values raw with only control characters
//!   escaped ([`super::case_value`]), at most [`IOCS_MAX`]; one asset per agent, at most
//!   [`ASSETS_MAX`], named by the agent (raw, so IRIS relates alerts on the same host).
//! - `alert_description` is the same Markdown as TheHive's ([`super::markdown_description`]);
//!   titles, tags, the context and descriptions are [`super::inert`] text.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::{
    case_value, console_url, facts, inert, markdown_description, thin_incident, title_text, Budget,
    Level,
};
use crate::stages::deliver::event::Event;
use crate::stages::escalate::observables::ObservableKind;
use crate::store::fsx::escape_text;

pub const IOCS_MAX: usize = 500;
pub const ASSETS_MAX: usize = 100;
pub const TITLE_MAX: usize = 512;
/// The most characters of an asset name (an agent name longer than this is left out).
pub const ASSET_NAME_MAX: usize = 255;

/// IRIS `ioc_type_id`s per observable kind. The defaults are the row ids a fresh
/// iris-web v2.4.20 install seeds (`post_init.py` `create_safe_ioctypes`, in order): check
/// them with `GET /manage/ioc-types/list` on an upgraded instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IocTypes {
    /// `ip-any` (76).
    pub ip: i64,
    /// `domain` (20).
    pub domain: i64,
    /// `url` (141).
    pub url: i64,
    /// `md5` (90).
    pub md5: i64,
    /// `sha1` (111).
    pub sha1: i64,
    /// `sha256` (113).
    pub sha256: i64,
    /// `account` (3).
    pub user: i64,
    /// `file-path` (97): Wazuh's file fields hold paths.
    pub file: i64,
    /// `file-path` (97): a process is its image path.
    pub process: i64,
    /// `text` (135).
    pub command_line: i64,
    /// `regkey` (109).
    pub registry_key: i64,
    /// `vulnerability` (144).
    pub cve: i64,
}

impl Default for IocTypes {
    fn default() -> Self {
        IocTypes {
            ip: 76,
            domain: 20,
            url: 141,
            md5: 90,
            sha1: 111,
            sha256: 113,
            user: 3,
            file: 97,
            process: 97,
            command_line: 135,
            registry_key: 109,
            cve: 144,
        }
    }
}

impl IocTypes {
    pub fn id(&self, kind: ObservableKind) -> i64 {
        use ObservableKind as K;
        match kind {
            K::Ip => self.ip,
            K::Domain => self.domain,
            K::Url => self.url,
            K::Md5 => self.md5,
            K::Sha1 => self.sha1,
            K::Sha256 => self.sha256,
            K::User => self.user,
            K::File => self.file,
            K::Process => self.process,
            K::CommandLine => self.command_line,
            K::RegistryKey => self.registry_key,
            K::Cve => self.cve,
        }
    }
}

/// An IRIS route's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The customer (tenant); 1 is "IrisInitialClient".
    pub customer_id: i64,
    /// 2 is New.
    pub status_id: i64,
    /// The IOCs' TLP: 2 is amber.
    pub ioc_tlp_id: i64,
    /// The agents' asset type: 3 is "Linux - Server" (9 "Windows - Computer", 10
    /// "Windows - Server"); one type for all, since an incident does not say the OS.
    pub asset_type_id: i64,
    pub ioc_types: IocTypes,
    /// Tags added to every alert (commas in them become spaces).
    pub tags: Vec<String>,
    /// The console's base URL, sent as `alert_source_link`.
    pub base_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            customer_id: 1,
            status_id: 2,
            ioc_tlp_id: 2,
            asset_type_id: 3,
            ioc_types: IocTypes::default(),
            tags: Vec::new(),
            base_url: None,
        }
    }
}

/// IRIS's seeded severity id for a level.
pub fn severity_id(level: Level) -> i64 {
    match level {
        Level::Suppressed => 2,
        Level::Low => 3,
        Level::Medium => 4,
        Level::High => 5,
        Level::Critical => 6,
    }
}

fn iocs(event: &Event, opts: &Options) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    let mut left_out = 0;
    for o in &event.observables {
        let Some(value) = case_value(&o.value) else {
            left_out += 1;
            continue;
        };
        let type_id = opts.ioc_types.id(o.kind);
        if seen.contains(&(type_id, value.clone())) {
            continue;
        }
        if out.len() >= IOCS_MAX {
            left_out += 1;
            continue;
        }
        seen.insert((type_id, value.clone()));
        out.push(json!({
            "ioc_value": value,
            "ioc_type_id": type_id,
            "ioc_tlp_id": opts.ioc_tlp_id,
            "ioc_description": format!("{} from field {}", o.kind.as_str(), inert(&o.field, 200)),
            "ioc_tags": format!("signalfoundry,{}", o.kind.as_str()),
        }));
    }
    (out, left_out)
}

fn assets(event: &Event, opts: &Options) -> Vec<Value> {
    let mut seen = HashSet::new();
    event
        .incident
        .agents
        .iter()
        .filter_map(|a| case_value(a))
        .filter(|a| a.chars().count() <= ASSET_NAME_MAX && seen.insert(a.clone()))
        .take(ASSETS_MAX)
        .map(|name| {
            json!({
                "asset_name": name,
                "asset_type_id": opts.asset_type_id,
                "asset_description": format!(
                    "Wazuh agent of SignalFoundry incident {}",
                    inert(&event.incident.id, 100)
                ),
            })
        })
        .collect()
}

/// One comma-separated string: the route's tags, `signalfoundry`, the severity; inert, commas
/// in a tag as spaces, without duplicates.
fn tags(event: &Event, opts: &Options) -> String {
    let own = [
        "signalfoundry".to_string(),
        format!("severity:{}", Level::of(&event.incident).as_str()),
    ];
    let mut out: Vec<String> = Vec::new();
    for t in opts.tags.iter().chain(own.iter()) {
        let t = inert(&t.replace(',', " "), 128).trim().to_string();
        if !t.is_empty() && !out.contains(&t) && out.len() < 50 {
            out.push(t);
        }
    }
    out.join(",")
}

/// The body to POST to `/alerts/add`.
pub fn render(event: &Event, opts: &Options) -> Value {
    let budget = Budget::full();
    let view = &event.incident;
    let (iocs, left_out) = iocs(event, opts);
    let mut description = markdown_description(event, opts.base_url.as_deref(), budget);
    if left_out > 0 {
        description.push_str(&format!(
            "\n_{left_out} IOCs were not sent (over {IOCS_MAX}, empty, or longer than {} \
             characters)._\n",
            super::CASE_VALUE_MAX
        ));
    }
    let mut context = Map::new();
    for f in facts(event, budget) {
        context.insert(f.label.to_lowercase().replace(' ', "_"), json!(f.value));
    }
    context.insert("message_id".into(), json!(inert(&event.id, 200)));
    context.insert("message_type".into(), json!(event.kind.as_str()));
    context.insert("route".into(), json!(inert(&event.route, 200)));
    context.insert("new_members".into(), json!(event.new_members));
    let packs: Vec<String> = event
        .packs
        .iter()
        .take(budget.items)
        .map(|p| inert(p, budget.value_chars))
        .collect();
    context.insert("files".into(), json!(packs));
    let event_time = view.first_alert_time.unwrap_or(event.created_at);
    let mut body = json!({
        "alert_title": title_text(event, TITLE_MAX),
        "alert_description": description,
        "alert_severity_id": severity_id(Level::of(view)),
        "alert_status_id": opts.status_id,
        "alert_customer_id": opts.customer_id,
        "alert_source": "SignalFoundry",
        "alert_source_ref": view.id,
        // IRIS stores a naive timestamp: UTC, without an offset.
        "alert_source_event_time": event_time.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
        "alert_tags": tags(event, opts),
        "alert_context": context,
        "alert_source_content": thin_incident(view, budget),
        "alert_iocs": iocs,
        "alert_assets": assets(event, opts),
    });
    if let Some(url) = console_url(opts.base_url.as_deref(), &view.id) {
        body["alert_source_link"] = json!(url);
    }
    body
}

/// The query string of `GET /alerts/filter` that finds the alerts of `source_ref` for the
/// customer (`source_reference=…&alert_customer_id=…`, form-URL-encoded).
pub fn filter_query(source_ref: &str, customer_id: i64) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("source_reference", source_ref)
        .append_pair("alert_customer_id", &customer_id.to_string())
        .finish()
}

/// `data.total` of IRIS's answer to [`filter_query`]
/// (`{"status":"success","data":{"total":N,"alerts":[…],…}}`).
pub fn parse_filter_total(body: &str) -> Result<u64, String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| format!("the IRIS alerts filter answer is not JSON ({e})"))?;
    if let Some(status) = v["status"].as_str().filter(|s| *s != "success") {
        let message = v["message"].as_str().unwrap_or_default();
        return Err(format!(
            "IRIS answered the alerts filter with status {}: {}",
            escape_text(status),
            escape_text(super::truncate_chars(message, 500).0)
        ));
    }
    v["data"]["total"]
        .as_u64()
        .ok_or_else(|| "the IRIS alerts filter answer has no data.total number".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::stages::escalate::observables::ObservableKind as K;
    use sf_policy::Bucket;

    #[test]
    fn alert_has_the_documented_fields_and_types() {
        let v = render(&event(), &Options::default());
        assert!(v["alert_title"]
            .as_str()
            .is_some_and(|s| s.starts_with("sshd")));
        assert!(v["alert_description"].is_string());
        assert_eq!(v["alert_severity_id"], 5);
        assert_eq!(v["alert_status_id"], 2);
        assert_eq!(v["alert_customer_id"], 1);
        assert_eq!(v["alert_source"], "SignalFoundry");
        assert_eq!(v["alert_source_ref"], "INC-0123456789abcdef0123");
        assert_eq!(v["alert_source_event_time"], "2024-05-01T12:01:00.000");
        assert_eq!(v["alert_tags"], "signalfoundry,severity:high");
        assert!(v["alert_context"].is_object());
        assert_eq!(v["alert_context"]["hosts"], "web01");
        assert_eq!(v["alert_source_content"]["cases"], json!({ "count": 2 }));
        let iocs = v["alert_iocs"].as_array().expect("iocs");
        assert_eq!(iocs.len(), 3);
        assert_eq!(iocs[0]["ioc_value"], "10.0.0.5");
        assert_eq!(iocs[0]["ioc_type_id"], 76);
        assert_eq!(iocs[0]["ioc_tlp_id"], 2);
        assert!(iocs[0]["ioc_description"].is_string());
        assert_eq!(iocs[1]["ioc_type_id"], 3);
        assert_eq!(iocs[2]["ioc_type_id"], 113);
        let assets = v["alert_assets"].as_array().expect("assets");
        assert_eq!(assets.len(), 1);
        assert_eq!(assets[0]["asset_name"], "web01");
        assert_eq!(assets[0]["asset_type_id"], 3);
        assert!(v.get("alert_source_link").is_none());
    }

    #[test]
    fn severity_follows_the_bucket() {
        let mut e = event();
        for (bucket, critical, expected) in [
            (Bucket::Suppressed, false, 2),
            (Bucket::Low, false, 3),
            (Bucket::Medium, false, 4),
            (Bucket::High, false, 5),
            (Bucket::High, true, 6),
        ] {
            e.incident.bucket = Some(bucket);
            e.incident.critical = critical;
            assert_eq!(
                render(&e, &Options::default())["alert_severity_id"],
                expected
            );
        }
    }

    #[test]
    fn iocs_are_deduplicated_by_type_and_value_and_options_choose_the_ids() {
        let mut e = event();
        e.observables = vec![
            obs(K::File, "/usr/bin/nc", "syscheck.path"),
            obs(K::Process, "/usr/bin/nc", "data.audit.exe"),
            obs(K::Md5, &"a".repeat(32), "syscheck.md5_after"),
        ];
        let opts = Options {
            customer_id: 7,
            status_id: 3,
            tags: vec!["wazuh, prod".into(), "signalfoundry".into()],
            ..Options::default()
        };
        let v = render(&e, &opts);
        let iocs = v["alert_iocs"].as_array().expect("iocs");
        assert_eq!(iocs.len(), 2, "{iocs:?}");
        assert_eq!(iocs[0]["ioc_type_id"], 97);
        assert_eq!(iocs[1]["ioc_type_id"], 90);
        assert_eq!(v["alert_customer_id"], 7);
        assert_eq!(v["alert_status_id"], 3);
        assert_eq!(v["alert_tags"], "wazuh  prod,signalfoundry,severity:high");
    }

    #[test]
    fn filter_query_is_url_encoded() {
        assert_eq!(
            filter_query("INC-00ab", 1),
            "source_reference=INC-00ab&alert_customer_id=1"
        );
        assert_eq!(
            filter_query("a b&c=d", 7),
            "source_reference=a+b%26c%3Dd&alert_customer_id=7"
        );
    }

    #[test]
    fn parse_filter_total_reads_data_total_and_says_what_is_wrong() {
        let ok =
            r#"{"status":"success","message":"","data":{"total":2,"alerts":[],"last_page":1}}"#;
        assert_eq!(parse_filter_total(ok), Ok(2));
        assert_eq!(
            parse_filter_total(r#"{"status":"success","data":{"total":0}}"#),
            Ok(0)
        );
        let err = parse_filter_total(r#"{"status":"error","message":"no\u001b[31m","data":{}}"#)
            .expect_err("an error answer");
        assert!(
            err.contains("status error") && err.contains("\\u{1b}"),
            "{err}"
        );
        assert!(parse_filter_total("<html>").is_err());
        assert!(parse_filter_total(r#"{"status":"success","data":{}}"#).is_err());
    }

    #[test]
    fn limits_hold_for_a_huge_event() {
        let v = render(&huge_event(), &Options::default());
        assert_eq!(v["alert_iocs"].as_array().map(Vec::len), Some(IOCS_MAX));
        assert_eq!(v["alert_assets"].as_array().map(Vec::len), Some(ASSETS_MAX));
        assert!(super::super::units(v["alert_title"].as_str().expect("title")) <= TITLE_MAX);
        let d = v["alert_description"].as_str().expect("description");
        assert!(d.len() < 40_000 && d.contains("9500 IOCs were not sent"));
        assert!(serde_json::to_vec(&v).expect("json").len() < 1024 * 1024);
    }

    #[test]
    fn hostile_text_renders_no_link_image_tag_or_control_character() {
        let v = render(&hostile_event(), &Options::default());
        assert_plain_inert(v["alert_title"].as_str().expect("title"));
        let d = v["alert_description"].as_str().expect("description");
        assert_markdown_inert(d, 0);
        assert!(!d.contains('<') && !d.contains('>'));
        assert_plain_inert(v["alert_tags"].as_str().expect("tags"));
        for s in strings(&v["alert_context"]) {
            assert_plain_inert(s);
        }
        for s in strings(&v) {
            assert_no_controls(s);
        }
    }
}
