//! The request and answer as the routes see them, and the two rate limiters the vendors use
//! (a token bucket for Slack, a sliding window for Teams and PagerDuty).
//!
//! Design constraints:
//! - Routes are plain functions of (`&Shared`, `&Req`) → `Out`, with the body already read,
//!   so each vendor's contract reads top to bottom without HTTP plumbing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

/// A request, its body read in full.
pub struct Req {
    pub path: String,
    pub query: String,
    /// Names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Req {
    /// The first value of a header (name lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<&str> {
        let h = self.header("authorization")?;
        let (scheme, token) = h.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    /// Query parameters, percent-decoded (`+` is a space).
    pub fn params(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(p), String::new()),
            })
            .collect()
    }
}

/// Constant-time equality of two secrets (length is not hidden; the lengths are public
/// formats).
pub fn secret_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer.
pub struct Out {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    pub retry_after: Option<u64>,
}

impl Out {
    pub fn json(status: u16, v: &Value) -> Out {
        Out {
            status,
            content_type: Some("application/json; charset=utf-8"),
            body: v.to_string().into_bytes(),
            retry_after: None,
        }
    }

    pub fn text(status: u16, s: &str) -> Out {
        Out {
            status,
            content_type: Some("text/html"),
            body: s.as_bytes().to_vec(),
            retry_after: None,
        }
    }

    pub fn empty(status: u16) -> Out {
        Out {
            status,
            content_type: None,
            body: Vec::new(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Out {
        self.retry_after = Some(secs);
        self
    }
}

/// A token bucket: `burst` tokens, refilled at `per_sec`.
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, burst: f64, per_sec: f64) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * per_sec).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most `max` admissions in any `window` looking back from now.
#[derive(Default)]
pub struct Window {
    times: VecDeque<Instant>,
}

impl Window {
    pub fn admit(&mut self, max: usize, window: Duration) -> bool {
        let now = Instant::now();
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.times.pop_front();
        }
        if self.times.len() >= max {
            return false;
        }
        self.times.push_back(now);
        true
    }
}

/// A JSON value's type name, for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let r = Req {
            path: "/alerts/filter".into(),
            query: "source_reference=inc%2F42+x&alert_customer_id=1&flag&bad=%zz%4".into(),
            headers: vec![],
            body: Bytes::new(),
        };
        assert_eq!(
            r.params(),
            vec![
                ("source_reference".into(), "inc/42 x".into()),
                ("alert_customer_id".into(), "1".into()),
                ("flag".into(), String::new()),
                ("bad".into(), "%zz%4".into()),
            ]
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_refill_rate() {
        let mut b = Bucket::new(5.0);
        let took = (0..8).filter(|_| b.take(5.0, 1.0)).count();
        assert_eq!(took, 5);
        let mut w = Window::default();
        assert!((0..4).all(|_| w.admit(4, Duration::from_secs(1))));
        assert!(!w.admit(4, Duration::from_secs(1)));
    }
}
