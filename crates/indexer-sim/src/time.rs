//! Dates and durations as OpenSearch reads them: ISO 8601 with or without offset
//! (`+0000`, `-03:00`, `Z`), partial dates, epoch millis, `now` date math, and `keep_alive`
//! durations (`1m`, `30s`).
//!
//! Promise: a date parses to the interval of milliseconds it names (`2025-09-12` is the whole
//! day), so `gt`/`lte` round up and `gte`/`lt` round down as OpenSearch does.

use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde_json::Value;

/// A date value as an interval `[lo, hi]` of epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateSpan {
    pub lo: i64,
    pub hi: i64,
}

impl DateSpan {
    fn exact(ms: i64) -> DateSpan {
        DateSpan { lo: ms, hi: ms }
    }
}

/// Parses a JSON date value (number or string). `tz` applies to strings without an offset;
/// `now_ms` anchors `now` date math.
pub fn parse_date(v: &Value, tz: Option<FixedOffset>, now_ms: i64) -> Result<DateSpan, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(DateSpan::exact)
            .ok_or_else(|| format!("failed to parse date field [{n}]")),
        Value::String(s) => parse_date_str(s, tz, now_ms),
        other => Err(format!("failed to parse date field [{other}]")),
    }
}

/// Parses a date string; see [`parse_date`].
pub fn parse_date_str(s: &str, tz: Option<FixedOffset>, now_ms: i64) -> Result<DateSpan, String> {
    let s = s.trim();
    let err = || {
        format!(
            "failed to parse date field [{s}] with format [strict_date_optional_time||epoch_millis]"
        )
    };
    if let Some(rest) = s.strip_prefix("now") {
        return date_math(now_ms, rest).ok_or_else(err);
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && s.len() != 4 {
        return s.parse::<i64>().map(DateSpan::exact).map_err(|_| err());
    }
    parse_iso(s, tz).ok_or_else(err)
}

fn date_math(now_ms: i64, mut rest: &str) -> Option<DateSpan> {
    let mut t = now_ms;
    let mut span = DateSpan::exact(t);
    while !rest.is_empty() {
        let op = rest.as_bytes()[0];
        rest = &rest[1..];
        match op {
            b'+' | b'-' => {
                let n_end = rest.bytes().take_while(u8::is_ascii_digit).count();
                let n: i64 = if n_end == 0 {
                    1
                } else {
                    rest[..n_end].parse().ok()?
                };
                rest = &rest[n_end..];
                let (unit, len) = unit_ms(rest)?;
                rest = &rest[len..];
                t = if op == b'+' {
                    t + n * unit
                } else {
                    t - n * unit
                };
                span = DateSpan::exact(t);
            }
            b'/' => {
                let (unit, len) = unit_ms(rest)?;
                rest = &rest[len..];
                let lo = t.div_euclid(unit) * unit;
                span = DateSpan {
                    lo,
                    hi: lo + unit - 1,
                };
            }
            _ => return None,
        }
    }
    Some(span)
}

fn unit_ms(s: &str) -> Option<(i64, usize)> {
    let c = s.chars().next()?;
    Some(match c {
        'y' => (365 * 86_400_000, 1),
        'M' => (30 * 86_400_000, 1),
        'w' => (7 * 86_400_000, 1),
        'd' => (86_400_000, 1),
        'h' | 'H' => (3_600_000, 1),
        'm' => (60_000, 1),
        's' => (1000, 1),
        _ => return None,
    })
}

fn take_num(s: &[u8], i: &mut usize, n: usize) -> Option<u32> {
    if *i + n > s.len() || !s[*i..*i + n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = std::str::from_utf8(&s[*i..*i + n]).ok()?.parse().ok()?;
    *i += n;
    Some(v)
}

fn parse_iso(s: &str, tz: Option<FixedOffset>) -> Option<DateSpan> {
    let b = s.as_bytes();
    let mut i = 0;
    let year = take_num(b, &mut i, 4)? as i32;
    let (mut month, mut day) = (1, 1);
    // Precision in ms of the last field given; the span is [lo, lo + precision - 1].
    let mut precision: i64;
    let mut hms = (0, 0, 0);
    let mut nanos = 0u32;
    if i == b.len() {
        let lo = NaiveDate::from_ymd_opt(year, 1, 1)?;
        let hi = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
        return span_days(lo, hi, tz);
    }
    if b[i] != b'-' {
        return None;
    }
    i += 1;
    month = take_num(b, &mut i, 2).unwrap_or(month);
    if i == b.len() {
        let lo = NaiveDate::from_ymd_opt(year, month, 1)?;
        let hi = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        return span_days(lo, hi, tz);
    }
    if b[i] != b'-' {
        return None;
    }
    i += 1;
    day = take_num(b, &mut i, 2).unwrap_or(day);
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    precision = 86_400_000;
    if i < b.len() && (b[i] == b'T' || b[i] == b't' || b[i] == b' ') {
        i += 1;
        hms.0 = take_num(b, &mut i, 2)?;
        precision = 3_600_000;
        if i < b.len() && b[i] == b':' {
            i += 1;
            hms.1 = take_num(b, &mut i, 2)?;
            precision = 60_000;
            if i < b.len() && b[i] == b':' {
                i += 1;
                hms.2 = take_num(b, &mut i, 2)?;
                precision = 1000;
                if i < b.len() && (b[i] == b'.' || b[i] == b',') {
                    i += 1;
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    let frac = &s[start..i];
                    if frac.is_empty() || frac.len() > 9 {
                        return None;
                    }
                    nanos = format!("{frac:0<9}").parse().ok()?;
                    precision = 1;
                }
            }
        }
    }
    let offset = if i == b.len() {
        tz.unwrap_or_else(utc_offset)
    } else {
        let off = parse_offset(&s[i..])?;
        i = b.len();
        off
    };
    debug_assert_eq!(i, b.len());
    let time = NaiveTime::from_hms_nano_opt(hms.0, hms.1, hms.2, nanos)?;
    let local = NaiveDateTime::new(date, time);
    let lo = offset
        .from_local_datetime(&local)
        .single()?
        .timestamp_millis();
    Some(DateSpan {
        lo,
        hi: lo + precision - 1,
    })
}

fn span_days(lo: NaiveDate, hi: NaiveDate, tz: Option<FixedOffset>) -> Option<DateSpan> {
    let off = tz.unwrap_or_else(utc_offset);
    let l = off
        .from_local_datetime(&lo.and_hms_opt(0, 0, 0)?)
        .single()?
        .timestamp_millis();
    let h = off
        .from_local_datetime(&hi.and_hms_opt(0, 0, 0)?)
        .single()?
        .timestamp_millis();
    Some(DateSpan { lo: l, hi: h - 1 })
}

fn utc_offset() -> FixedOffset {
    FixedOffset::east_opt(0).expect("zero is a valid offset")
}

/// Parses `Z`, `+HH:MM`, `+HHMM`, `+HH` (and `UTC`), as OpenSearch accepts in dates and
/// in a range's `time_zone`.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    if s == "Z" || s == "z" || s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("gmt") {
        return Some(utc_offset());
    }
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut i = 1;
    let h = take_num(b, &mut i, 2)? as i32;
    let mut m = 0;
    if i < b.len() {
        if b[i] == b':' {
            i += 1;
        }
        m = take_num(b, &mut i, 2)? as i32;
    }
    if i != b.len() || h > 18 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Parses an OpenSearch time value (`1m`, `30s`, `500ms`, `1h`, `1d`, `100micros`, `5nanos`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "d" => Duration::from_secs(n * 86_400),
        "h" => Duration::from_secs(n * 3600),
        "m" => Duration::from_secs(n * 60),
        "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "micros" => Duration::from_micros(n),
        "nanos" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Epoch milliseconds of now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, lo: i64, hi: i64) {
        let got = parse_date(&input, None, 0).unwrap();
        assert_eq!((got.lo, got.hi), (lo, hi), "{input}");
    }

    #[test]
    fn dates_parse_with_every_offset_form_and_epoch_millis() {
        let t = 1_757_665_150_387; // 2025-09-12T08:19:10.387Z
        check(json!("2025-09-12T08:19:10.387Z"), t, t);
        check(json!("2025-09-12T08:19:10.387+0000"), t, t);
        check(json!("2025-09-12T05:19:10.387-0300"), t, t);
        check(json!("2025-09-12T05:19:10.387-03:00"), t, t);
        check(json!("2025-09-12T13:49:10.387+05:30"), t, t);
        check(json!("2025-09-12T08:19:10.387"), t, t);
        check(json!("2025-09-12T08:19:10.387123Z"), t, t);
        check(json!(t), t, t);
        check(json!(t.to_string()), t, t);
        check(json!("2025-09-12T08:19:10Z"), t - 387, t - 387 + 999);
        check(
            json!("2025-09-12"),
            1_757_635_200_000,
            1_757_635_200_000 + 86_400_000 - 1,
        );
    }

    #[test]
    fn now_date_math_moves_and_rounds() {
        let now = 1_757_665_150_387;
        let got = parse_date(&json!("now-5m"), None, now).unwrap();
        assert_eq!(got.lo, now - 300_000);
        let day = parse_date(&json!("now/d"), None, now).unwrap();
        assert_eq!(day.lo, 1_757_635_200_000);
        assert_eq!(day.hi, 1_757_635_200_000 + 86_400_000 - 1);
    }

    #[test]
    fn bad_dates_and_durations_are_refused() {
        assert!(parse_date(&json!("yesterday"), None, 0).is_err());
        assert!(parse_date(&json!("2025-13-01"), None, 0).is_err());
        assert!(parse_date(&json!(true), None, 0).is_err());
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("m"), None);
    }
}
