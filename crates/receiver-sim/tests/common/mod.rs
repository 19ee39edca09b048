//! Shared helpers of the receiver tests: a started receiver set, an HTTPS client pinning its
//! CA, and an independent Standard Webhooks signer.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use receiver_sim::{ReceiverConfig, ReceiverHandle, Receivers};
use sha2::Sha256;

pub fn start() -> ReceiverHandle {
    start_with(ReceiverConfig::default())
}

pub fn start_with(cfg: ReceiverConfig) -> ReceiverHandle {
    Receivers::start(cfg).expect("receivers start")
}

pub fn client(h: &ReceiverHandle) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).unwrap())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `v1,<base64 HMAC-SHA256(id.ts.body)>` keyed by the decoded `whsec_` secret.
pub fn sign(secret: &str, id: &str, ts: i64, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}
