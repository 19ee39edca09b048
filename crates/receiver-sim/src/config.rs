//! `ReceiverConfig` (the credentials each vendor would hand out, the seed) and `Faults` (the
//! injected failures of the HTTP routes).
//!
//! Design constraints:
//! - The default is fault-free and carries fixed test credentials, so `ReceiverConfig::default()`
//!   is a working setup; a test changes only what it exercises.
//! - Every credential is checked at start in the vendor's own format (a `whsec_` secret of
//!   24–64 bytes, a 32-character PagerDuty routing key), so a misconfigured test fails at
//!   start, not as a puzzling 401 later.

use std::time::Duration;

use base64::Engine;

use crate::error::Error;

/// Injected failures for the HTTP routes (never SMTP). Each request draws once from a
/// generator seeded by `ReceiverConfig::seed`; the probabilities are exclusive and their sum
/// must not exceed 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Answer 429 with `Retry-After: retry_after_secs`, in the vendor's throttling shape,
    /// without processing the request.
    pub p429: f64,
    /// The `Retry-After` seconds of an injected 429.
    pub retry_after_secs: u64,
    /// Answer 500 in the vendor's shape without processing the request.
    pub p500: f64,
    /// Sleep `slow` and then answer normally (a sender with a shorter timeout gives up while
    /// the request is still processed: a delivery it does not know about).
    pub p_slow: f64,
    /// How long a slow answer waits.
    pub slow: Duration,
    /// Process and record the request, then close the connection without answering: the
    /// sender sees an error, retries, and the retry arrives as a duplicate.
    pub p_lost: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            p429: 0.0,
            retry_after_secs: 1,
            p500: 0.0,
            p_slow: 0.0,
            slow: Duration::from_secs(2),
            p_lost: 0.0,
        }
    }
}

impl Faults {
    /// No faults at all (the default).
    pub fn none() -> Self {
        Faults::default()
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let ps = [
            ("p429", self.p429),
            ("p500", self.p500),
            ("p_slow", self.p_slow),
            ("p_lost", self.p_lost),
        ];
        for (name, p) in ps {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Config(format!(
                    "fault probability {name} must be between 0 and 1, got {p}"
                )));
            }
        }
        let sum: f64 = ps.iter().map(|(_, p)| p).sum();
        if sum > 1.0 + 1e-9 {
            return Err(Error::Config(format!(
                "fault probabilities must sum to at most 1, got {sum}"
            )));
        }
        Ok(())
    }
}

/// What the receivers accept. Credentials play the role of the vendor's configuration: a
/// request carrying anything else is refused the way the vendor refuses it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiverConfig {
    /// Seeds the fault generator: the same request order gives the same faults.
    pub seed: u64,
    pub faults: Faults,
    /// The Slack, Teams and PagerDuty rate limits (on by default, as the real services).
    pub vendor_rate_limits: bool,
    /// TheHive API key (`Authorization: Bearer <key>`).
    pub thehive_api_key: String,
    /// The organisation named in TheHive's duplicate-alert message.
    pub thehive_org: String,
    /// DFIR-IRIS API key (`Authorization: Bearer <key>`).
    pub iris_api_key: String,
    /// Standard Webhooks secret: `whsec_` + base64 of 24–64 bytes.
    pub webhook_secret: String,
    /// PagerDuty integration (routing) key: 32 characters.
    pub pagerduty_routing_key: String,
    /// SMTP AUTH user name.
    pub smtp_username: String,
    /// SMTP AUTH password.
    pub smtp_password: String,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            seed: 0,
            faults: Faults::default(),
            vendor_rate_limits: true,
            thehive_api_key: "thehive-test-api-key".into(),
            thehive_org: "SignalFoundry".into(),
            iris_api_key: "iris-test-api-key".into(),
            webhook_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            pagerduty_routing_key: "R0UT1NGKEY0123456789abcdefABCDEF".into(),
            smtp_username: "signalfoundry".into(),
            smtp_password: "smtp-test-password".into(),
        }
    }
}

impl ReceiverConfig {
    /// Checks the settings; returns the decoded webhook signing key.
    pub(crate) fn validate(&self) -> Result<Vec<u8>, Error> {
        self.faults.validate()?;
        let key = webhook_key(&self.webhook_secret)?;
        if self.pagerduty_routing_key.chars().count() != 32 {
            return Err(Error::Config(format!(
                "a PagerDuty routing key has 32 characters, got {}",
                self.pagerduty_routing_key.chars().count()
            )));
        }
        for (name, v) in [
            ("thehive_api_key", &self.thehive_api_key),
            ("iris_api_key", &self.iris_api_key),
            ("smtp_username", &self.smtp_username),
            ("smtp_password", &self.smtp_password),
        ] {
            if v.is_empty() {
                return Err(Error::Config(format!("{name} must not be empty")));
            }
        }
        Ok(key)
    }
}

/// Decodes a Standard Webhooks `whsec_` secret: the key is the base64-decoded remainder, 24 to
/// 64 bytes (spec/standard-webhooks.md, "Signature scheme").
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, Error> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| Error::Config("a webhook secret starts with whsec_".into()))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| Error::Config(format!("the webhook secret is not base64: {e}")))?;
    if !(24..=64).contains(&key.len()) {
        return Err(Error::Config(format!(
            "a webhook secret decodes to 24 to 64 bytes, got {}",
            key.len()
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_fault_free() {
        let c = ReceiverConfig::default();
        c.validate().unwrap();
        assert_eq!(
            c.faults.p429 + c.faults.p500 + c.faults.p_slow + c.faults.p_lost,
            0.0
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut c = ReceiverConfig {
            webhook_secret: "secret".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        c.webhook_secret = "whsec_c2hvcnQ=".into();
        assert!(c.validate().is_err());
        c = ReceiverConfig {
            pagerduty_routing_key: "short".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let f = Faults {
            p429: 0.6,
            p500: 0.6,
            ..Default::default()
        };
        assert!(f.validate().is_err());
    }
}
