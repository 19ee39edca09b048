//! Alert values as matchers see them: a dotted field path walks nested objects (and every element
//! of an array met on the way), each value found is a [`Scalar`], strings have their backslash runs
//! collapsed, and numbers compare equal to numeric strings.

use serde_json::Value;
use std::borrow::Cow;

/// One value of a field, as a matcher tests it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Num(&'a serde_json::Number),
    Bool(bool),
    /// An object: present, but no string, number or boolean test matches it.
    Other,
}

impl<'a> Scalar<'a> {
    /// The text string tests see: strings with backslash runs collapsed, numbers and booleans as
    /// JSON writes them, objects none.
    pub(crate) fn text(self) -> Option<Cow<'a, str>> {
        match self {
            Scalar::Str(s) => Some(collapse_backslashes(s)),
            Scalar::Num(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
            Scalar::Other => None,
        }
    }

    /// The number this value stands for: a JSON number, or a numeric string (`"510"`, `"-1.5"`).
    pub(crate) fn number(self) -> Option<f64> {
        match self {
            Scalar::Num(n) => n.as_f64(),
            Scalar::Str(s) => numeric_str(s),
            Scalar::Bool(_) | Scalar::Other => None,
        }
    }
}

/// Collapses every run of backslashes to one backslash (Wazuh doubles them in eventchannel
/// fields). Borrows when there is nothing to collapse.
pub fn collapse_backslashes(s: &str) -> Cow<'_, str> {
    if !has_backslash_run(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut previous_was_backslash = false;
    for c in s.chars() {
        let is_backslash = c == '\\';
        if !(is_backslash && previous_was_backslash) {
            out.push(c);
        }
        previous_was_backslash = is_backslash;
    }
    Cow::Owned(out)
}

/// Whether two backslashes follow each other somewhere (memchr-fast for the common none case).
fn has_backslash_run(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s.get(from..).and_then(|rest| rest.find('\\')) {
        let at = from + i;
        if bytes.get(at + 1) == Some(&b'\\') {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Writes `s` quoted and escaped as `{:?}` would, copying it whole when nothing needs escaping.
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        use std::fmt::Write as _;
        let _ = write!(out, "{s:?}");
    }
}

/// A fast, unkeyed hasher (the rustc "Fx" hash) for the policy's lookup tables. The tables are
/// built from the policy file only; alert values are looked up, never inserted, so there is no
/// table for an attacker to flood.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// A string that is a plain decimal number: optional `-`, digits, optional `.` and digits.
/// (Not `f64::from_str`, which also takes `inf`, `NaN` and `1e5`.)
pub(crate) fn numeric_str(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    s.parse().ok()
}

/// The text an index key uses for a number, so that `510`, `510.0` and `"510"` meet.
pub(crate) fn canonical_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        // Exact: |x| < 2^53, and x is whole.
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// The index key of a scalar: numbers (and numeric strings) by value, other strings as they are.
pub(crate) fn index_key(s: Scalar<'_>) -> Option<Cow<'_, str>> {
    if let Scalar::Str(text) = s {
        // Fast path for the common case: rule.id "510" is already canonical.
        let b = text.as_bytes();
        if !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1) {
            return Some(Cow::Borrowed(text));
        }
    }
    if let Some(x) = s.number() {
        return Some(Cow::Owned(canonical_number(x)));
    }
    match s {
        Scalar::Str(text) => Some(collapse_backslashes(text)),
        Scalar::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        Scalar::Num(_) | Scalar::Other => None,
    }
}

/// Calls `f` on every value at `path` (walking into arrays on the way and at the end) until it
/// returns true; returns whether it did. A missing field or `null` has no values.
pub(crate) fn any_at<'a, F>(v: &'a Value, path: &[Box<str>], f: &mut F) -> bool
where
    F: FnMut(Scalar<'a>) -> bool,
{
    match path.split_first() {
        None => any_leaf(v, f),
        Some((segment, rest)) => match v {
            Value::Object(map) => map.get(&**segment).is_some_and(|c| any_at(c, rest, f)),
            Value::Array(items) => items.iter().any(|item| any_at(item, path, f)),
            _ => false,
        },
    }
}

fn any_leaf<'a, F>(v: &'a Value, f: &mut F) -> bool
where
    F: FnMut(Scalar<'a>) -> bool,
{
    match v {
        Value::Null => false,
        Value::Bool(b) => f(Scalar::Bool(*b)),
        Value::Number(n) => f(Scalar::Num(n)),
        Value::String(s) => f(Scalar::Str(s)),
        Value::Array(items) => items.iter().any(|item| any_leaf(item, f)),
        Value::Object(_) => f(Scalar::Other),
    }
}

/// The value at a dotted path, without walking into arrays (for the few fixed fields the engine
/// reads itself: `rule.level`, `agent.name`, ...).
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |cur, segment| cur.as_object()?.get(*segment))
}

/// "a string", "an object", ...: a JSON value's type, for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backslash_runs_collapse_to_one() {
        assert_eq!(collapse_backslashes(r"C:\\\\Windows\\x"), r"C:\Windows\x");
        assert_eq!(collapse_backslashes(r"C:\Windows"), r"C:\Windows");
        assert!(matches!(collapse_backslashes("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn backslash_runs_are_found_anywhere() {
        assert!(has_backslash_run(r"a\\b"));
        assert!(has_backslash_run(r"a\b\\"));
        assert!(!has_backslash_run(r"a\b\c\"));
        assert!(!has_backslash_run(""));
    }

    #[test]
    fn quoting_matches_debug_formatting() {
        for s in [
            "plain",
            "with \"quote\"",
            "back\\slash",
            "ctl\u{1b}[0m",
            "nl\n",
            "é",
        ] {
            let mut out = String::new();
            push_quoted(&mut out, s);
            assert_eq!(out, format!("{s:?}"));
        }
    }

    #[test]
    fn numeric_strings_are_plain_decimals_only() {
        assert_eq!(numeric_str("510"), Some(510.0));
        assert_eq!(numeric_str("-1.5"), Some(-1.5));
        for not_numeric in ["", "-", "1.", ".5", "inf", "NaN", "1e5", " 5", "5 ", "0x10"] {
            assert_eq!(numeric_str(not_numeric), None, "{not_numeric:?}");
        }
    }

    #[test]
    fn index_keys_meet_across_numbers_and_numeric_strings() {
        let n = serde_json::Number::from(510);
        assert_eq!(index_key(Scalar::Str("510")).as_deref(), Some("510"));
        assert_eq!(index_key(Scalar::Str("0510")).as_deref(), Some("510"));
        assert_eq!(index_key(Scalar::Num(&n)).as_deref(), Some("510"));
        assert_eq!(index_key(Scalar::Str("abc")).as_deref(), Some("abc"));
    }
}
