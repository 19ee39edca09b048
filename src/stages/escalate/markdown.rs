//! Making attacker-controlled text inert in `summary.md`: control characters escaped, IOCs
//! defanged, every value inside a code span or fenced code block that it cannot close.
//!
//! Design constraints:
//! - What comes out of [`escape_inline`] parses (CommonMark, GFM and every pulldown-cmark
//!   extension) as exactly one inline code span, and [`escape_block`] as exactly one fenced code
//!   block, whatever the input: no link, image, HTML, emphasis or table can start inside them,
//!   because a fence is always longer than any backtick run of the content.
//! - No control character reaches the file: C0, DEL, C1, Unicode format characters (bidi
//!   overrides and isolates, zero-width characters, the BOM, tag characters), line and paragraph
//!   separators and a few invisible fillers become visible escapes (`\n`, `\t`, `\r`, `\u{1b}`),
//!   as `fsx::escape_name` writes them. A fenced block keeps its line breaks (a CR before LF is
//!   dropped); everything else is escaped.
//! - Escaping comes first, defanging second, so what is defanged is exactly what is shown.
//! - Defang what came from the attacker's side, not our own words: [`escape_inline`] and
//!   [`escape_block`] defang (alert text); [`escape_inline_fields`] leaves dotted field paths of
//!   the alert (`agent.name`, `rule.id`, `data.win.eventdata.image`: a word whose first label is
//!   one of [`FIELD_ROOTS`]) readable and defangs the rest (field names, policy text and the
//!   decision trace, which quotes alert values); [`escape_inline_readable`] defangs nothing
//!   (vendor references an analyst opens), and [`escape_name`] nothing in a plain host name or
//!   address (the agent's own names and addresses; any other text in those fields is defanged). All three are one
//!   code span with control characters escaped, so none is ever a live link.
//! - Defanging follows SOC report habits: `hxxp://`, `hxxps://`, `fxp://`, other schemes as
//!   `scheme[:]//`; `javascript:`, `vbscript:` and `mailto:` as `name[:]`; dots of IPv4 addresses
//!   and of host names as `[.]`; every colon of an IPv6 address as `[:]`
//!   (`2001[:]db8[:][:]bad[:]1`, found by [`super::observables::ipv6_spans`]); the `@` of an
//!   e-mail address as `[@]`. A dotted word is a host name when its last label is a top-level
//!   domain ([`super::tlds`]), or when it follows `://`, `@` or `\\`, or starts with `www.`. A
//!   file name such as `cscript.exe` is left alone; one whose extension is also a TLD (`x.zip`,
//!   `run.sh`) is defanged too, which is harmless.
//! - Backslashes after a web scheme are read as browsers read them: `http:\\evil.example\p`,
//!   `https:/\` and `https:\/` open as `http://`, so they are defanged as URLs
//!   (`hxxp:\\evil[.]example\p`, the separators kept as they are). Other schemes and drive
//!   letters (`C:\Windows`) keep their backslashes untouched.
//! - A backslash in a value is shown as it is (backslash escapes have no meaning inside code), so
//!   a literal `\u{1b}` in an alert reads the same as an escaped ESC; the raw value is in
//!   `alert.json` and `observables.json`.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

/// Longest value shown inline, in characters; longer values are cut and marked.
pub const INLINE_MAX_CHARS: usize = 1_000;
/// Longest text shown in a fenced block, in characters.
pub const BLOCK_MAX_CHARS: usize = 8_000;

/// `s` as a Markdown inline code span: control characters escaped, IOCs defanged, fenced with
/// more backticks than any run inside it. Values longer than [`INLINE_MAX_CHARS`] are cut (the
/// span says so). An empty value is shown as the (non-code) text `(empty)`.
pub fn escape_inline(s: &str) -> String {
    let (cut, truncated) = truncate_chars(s, INLINE_MAX_CHARS);
    let mut text = defang(&escape_controls(cut, false));
    if truncated {
        text.push_str(" …(cut)");
    }
    code_span(&text)
}

/// `s` as one inline code span with control characters escaped and nothing defanged: for our
/// own names and addresses (the agent's, the manager's) and vendor references. A code span holds
/// no link, so a URL here is text to read or copy, never a live link.
pub fn escape_inline_readable(s: &str) -> String {
    let (cut, truncated) = truncate_chars(s, INLINE_MAX_CHARS);
    let mut text = escape_controls(cut, false);
    if truncated {
        text.push_str(" …(cut)");
    }
    code_span(&text)
}

/// A name or address of our own (an agent's name, id or IP, a manager's name): shown as it is
/// ([`escape_inline_readable`]) when it is a plain host name or address (letters, digits, `.`,
/// `-`, `_`, `:`), else as alert text ([`escape_inline`]), since a name with spaces, slashes or
/// control characters was not chosen by us.
pub fn escape_name(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if plain {
        escape_inline_readable(s)
    } else {
        escape_inline(s)
    }
}

/// [`escape_inline`] for our own text that names alert fields and may quote alert values (field
/// paths, the decision trace): dotted field paths stay readable, everything else is defanged.
pub fn escape_inline_fields(s: &str) -> String {
    let (cut, truncated) = truncate_chars(s, INLINE_MAX_CHARS);
    let mut text = defang_with(&escape_controls(cut, false), true);
    if truncated {
        text.push_str(" …(cut)");
    }
    code_span(&text)
}

/// First labels of the alert's dotted field paths (Wazuh's top-level keys and the policy's
/// subjects): a dotted word starting with one of them is a field path, not a host name, in
/// [`escape_inline_fields`].
pub const FIELD_ROOTS: &[&str] = &[
    "agent",
    "rule",
    "data",
    "decoder",
    "manager",
    "predecoder",
    "syscheck",
    "cluster",
    "input",
    "previous_output",
    "full_log",
    "location",
    "geolocation",
    "incident",
    "win",
    "eventdata",
    "system",
    "audit",
    "vulnerability",
    "virustotal",
    "case",
    "decision",
];

/// `s` as a fenced code block (with a trailing newline): line breaks kept, everything else as in
/// [`escape_inline`]. Text longer than [`BLOCK_MAX_CHARS`] is cut and a last line says so.
pub fn escape_block(s: &str) -> String {
    let (cut, truncated) = truncate_chars(s, BLOCK_MAX_CHARS);
    let mut text = defang(&escape_controls(cut, true));
    if truncated {
        text.push_str("\n…(cut: the whole text is in alert.json)");
    }
    fence_escaped(&text)
}

/// Rows of already escaped cells as aligned text columns (two spaces apart, no trailing
/// blanks), one line a row: the body of a fenced table.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, w) in row.iter().zip(widths) {
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Wraps text that is already escaped and defanged in a fenced code block it cannot close.
pub fn fence_escaped(text: &str) -> String {
    let fence = "`".repeat((longest_backtick_run(text) + 1).max(3));
    let mut out = String::with_capacity(text.len() + 2 * fence.len() + 4);
    out.push_str(&fence);
    out.push('\n');
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// One line of escaped, defanged text without any Markdown around it: only for the inside of a
/// fenced block built with [`fence_escaped`].
pub fn escape_plain(s: &str) -> String {
    defang(&escape_controls(s, false))
}

/// The first `max` characters of `s`, and whether anything was cut.
pub fn truncate_chars(s: &str, max: usize) -> (&str, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

/// True for the characters that never reach `summary.md` as themselves.
pub fn must_escape(c: char) -> bool {
    let u = c as u32;
    c.is_control() // C0, DEL, C1
        || matches!(u,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFEFF | 0xFFA0
            | 0xFFF9..=0xFFFB | 0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890 | 0x0891 | 0x08E2
            | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0000..=0xE007F)
}

/// Replaces every character [`must_escape`] names with visible text. With `keep_newlines`, LF
/// stays a line break and a CR right before it is dropped (CRLF and LF read the same).
pub fn escape_controls(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\r' if keep_newlines && chars.peek() == Some(&'\n') => {}
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn longest_backtick_run(s: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// Wraps already-escaped text in a code span that it cannot close. A space pads each side when
/// the text starts or ends with a backtick or a space (CommonMark strips exactly one space from
/// each side when both are there, so the content is shown as it is).
fn code_span(text: &str) -> String {
    if text.is_empty() {
        return "(empty)".to_string();
    }
    let fence = "`".repeat(longest_backtick_run(text) + 1);
    let pad = text.starts_with(['`', ' ']) || text.ends_with(['`', ' ']);
    let sp = if pad { " " } else { "" };
    format!("{fence}{sp}{text}{sp}{fence}")
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("defang patterns are valid regular expressions"))
}

fn tlds() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| super::tlds::TLDS.split_whitespace().collect())
}

/// True when `label` is a top-level domain: one of the root zone's ASCII names, or a label of
/// two or more letters with a non-ASCII one (an internationalised TLD), or a punycode label.
fn is_tld(label: &str) -> bool {
    let lower = label.to_lowercase();
    if lower.starts_with("xn--") && lower.len() > 4 {
        return true;
    }
    if label.is_ascii() {
        return tlds().contains(lower.as_str());
    }
    label.chars().count() >= 2 && label.chars().all(char::is_alphabetic)
}

fn is_dot(c: char) -> bool {
    // U+3002, U+FF0E and U+FF61 are read as dots in host names by IDNA-aware software.
    matches!(c, '.' | '\u{3002}' | '\u{FF0E}' | '\u{FF61}')
}

/// Defangs URLs, host names, IPv4 addresses and e-mail addresses in already-escaped text.
pub fn defang(s: &str) -> String {
    defang_with(s, false)
}

/// [`defang`], leaving dotted field paths alone when `keep_fields` (see [`FIELD_ROOTS`]).
fn defang_with(s: &str, keep_fields: bool) -> String {
    static SCHEME: OnceLock<Regex> = OnceLock::new();
    static PSEUDO: OnceLock<Regex> = OnceLock::new();
    static DOTTED: OnceLock<Regex> = OnceLock::new();
    // 1. Schemes: `://`, or a separator with a backslash (only web schemes are URLs then).
    let scheme = re(
        &SCHEME,
        r"(?i)\b([a-z][a-z0-9+.\-]{0,30})(://|:[/\\]*\\[/\\]*)",
    );
    let s = scheme.replace_all(s, |c: &regex::Captures<'_>| {
        let name = &c[1];
        let sep = &c[2];
        let lower = name.to_ascii_lowercase();
        let web = matches!(
            lower.as_str(),
            "http" | "https" | "ftp" | "ftps" | "hxxp" | "hxxps" | "fxp" | "fxps"
        );
        if sep != "://" && !web {
            return c[0].to_string();
        }
        match lower.as_str() {
            "http" | "https" | "ftp" | "ftps" => {
                // Keep the case of the first and last letters: HTTP -> HXXP, http -> hxxp.
                let mut out = String::new();
                for (i, ch) in name.chars().enumerate() {
                    let is_t = ch.eq_ignore_ascii_case(&'t');
                    let replace = match lower.as_str() {
                        "http" | "https" => (i == 1 || i == 2) && is_t,
                        _ => i == 1 && is_t,
                    };
                    if replace {
                        out.push(if ch.is_ascii_uppercase() { 'X' } else { 'x' });
                    } else {
                        out.push(ch);
                    }
                }
                format!("{out}{sep}")
            }
            "hxxp" | "hxxps" | "fxp" | "fxps" => format!("{name}{sep}"),
            _ => format!("{name}[:]//"),
        }
    });
    let pseudo = re(&PSEUDO, r"(?i)\b(javascript|vbscript|mailto):");
    let s = pseudo.replace_all(&s, "$1[:]");
    // 2. IPv6 addresses: every colon.
    let mut v6 = String::with_capacity(s.len() + 16);
    let mut last = 0;
    for (start, end) in super::observables::ipv6_spans(&s) {
        v6.push_str(&s[last..start]);
        v6.push_str(&s[start..end].replace(':', "[:]"));
        last = end;
    }
    v6.push_str(&s[last..]);
    let s = v6;
    // 3. Dotted words: host names, IPv4 addresses, e-mail domains.
    let dotted = re(
        &DOTTED,
        r"[\p{L}\p{N}_\-]+(?:[.\x{3002}\x{FF0E}\x{FF61}][\p{L}\p{N}_\-]+)+",
    );
    let mut out = String::with_capacity(s.len() + 16);
    let mut last = 0;
    for m in dotted.find_iter(&s) {
        let before = &s[..m.start()];
        let word = m.as_str();
        if !is_host_like(word, before) {
            continue;
        }
        if keep_fields && is_field_path(word, before) {
            continue;
        }
        let mut prefix = &s[last..m.start()];
        let at = prefix.ends_with('@') && before_is_mailbox(before);
        if at {
            prefix = &prefix[..prefix.len() - 1];
        }
        out.push_str(prefix);
        if at {
            out.push_str("[@]");
        }
        for c in word.chars() {
            if is_dot(c) {
                out.push('[');
                out.push(c);
                out.push(']');
            } else {
                out.push(c);
            }
        }
        last = m.end();
    }
    out.push_str(&s[last..]);
    out
}

/// A dotted word that names an alert field (`agent.name`), not in a host's position (after
/// `://` or `@`).
fn is_field_path(word: &str, before: &str) -> bool {
    if before.ends_with("//") || before.ends_with('@') {
        return false;
    }
    let first = word.split(is_dot).next().unwrap_or("");
    FIELD_ROOTS.iter().any(|r| first.eq_ignore_ascii_case(r))
}

/// The text before a word ends with a (defanged) web scheme and a separator of slashes and
/// backslashes (`hxxp:\\`, `hxxps:/\`): the word is the URL's host.
fn after_web_scheme(before: &str) -> bool {
    let t = before.trim_end_matches(['/', '\\']);
    let Some(t) = t.strip_suffix(':').filter(|_| t.len() < before.len()) else {
        return false;
    };
    ["hxxp", "hxxps", "fxp", "fxps"].iter().any(|name| {
        let Some(at) = t.len().checked_sub(name.len()) else {
            return false;
        };
        t.is_char_boundary(at)
            && t[at..].eq_ignore_ascii_case(name)
            && !t[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    })
}

/// The text before an `@` ends with a mailbox name (`user` of `user@host`).
fn before_is_mailbox(before: &str) -> bool {
    let local = &before[..before.len() - 1];
    local
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || "._%+-!#$&'*/=?^{|}~".contains(c))
}

fn is_host_like(word: &str, before: &str) -> bool {
    let labels: Vec<&str> = word.split(is_dot).collect();
    if labels.iter().any(|l| l.is_empty()) {
        return false;
    }
    let all_numeric = labels.iter().all(|l| l.chars().all(|c| c.is_ascii_digit()));
    if all_numeric {
        // An IPv4 address, not a version string: four labels of 0-255.
        return labels.len() == 4
            && labels
                .iter()
                .all(|l| l.len() <= 3 && l.parse::<u16>().is_ok_and(|n| n <= 255));
    }
    let Some(last) = labels.last() else {
        return false;
    };
    let last_is_name = last.chars().all(|c| c.is_alphanumeric() || c == '-')
        && last.chars().any(char::is_alphabetic);
    if !last_is_name {
        return false;
    }
    let in_host_position = before.ends_with("://")
        || before.ends_with("[:]//")
        || before.ends_with('@')
        || after_web_scheme(before)
        || labels[0].eq_ignore_ascii_case("www");
    if in_host_position {
        return true;
    }
    // After backslashes: a UNC host (`\\host\share`, also with Wazuh's doubling) when they
    // follow the start of the text, a space or punctuation; a Windows path component
    // (`C:\Windows\Microsoft.NET`) when they follow a name or a drive letter.
    let run = before.len() - before.trim_end_matches('\\').len();
    if run > 0 {
        let prev = before[..before.len() - run].chars().next_back();
        let after_name = prev.is_some_and(|c| c.is_alphanumeric() || ":._-$}~".contains(c));
        return if after_name {
            false
        } else {
            run >= 2 || is_tld(last)
        };
    }
    is_tld(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

    fn check_defang(input: &str, expected: &str) {
        assert_eq!(defang(input), expected, "defang({input:?})");
    }

    #[test]
    fn defang_rewrites_schemes_hosts_ips_and_mail_addresses_as_soc_reports_do() {
        check_defang("http://evil.example/x", "hxxp://evil[.]example/x");
        check_defang("HTTPS://Evil.Example", "HXXPS://Evil[.]Example");
        check_defang("ftp://10.0.0.1/a", "fxp://10[.]0[.]0[.]1/a");
        check_defang("smb://fileserver.corp/x", "smb[:]//fileserver[.]corp/x");
        check_defang("www.evil.example", "www[.]evil[.]example");
        check_defang("www.evil.unknowntld", "www[.]evil[.]unknowntld");
        check_defang("user@evil.example", "user[@]evil[.]example");
        check_defang("from 10.0.0.1 port 22", "from 10[.]0[.]0[.]1 port 22");
        check_defang("javascript:alert(1)", "javascript[:]alert(1)");
        check_defang("see evil.com, now", "see evil[.]com, now");
        check_defang(
            "\\\\fileserver.weird\\share",
            "\\\\fileserver[.]weird\\share",
        );
        check_defang("evil\u{3002}com", "evil[\u{3002}]com");
        check_defang("\\\\\\\\evil.weird\\\\s", "\\\\\\\\evil[.]weird\\\\s");
        check_defang("\\\\10.0.0.1\\c$", "\\\\10[.]0[.]0[.]1\\c$");
    }

    #[test]
    fn defang_brackets_every_colon_of_an_ipv6_address() {
        check_defang(
            "from 2001:db8::bad:1 port 22",
            "from 2001[:]db8[:][:]bad[:]1 port 22",
        );
        check_defang("::1", "[:][:]1");
        check_defang("fe80::1%eth0", "fe80[:][:]1%eth0");
        check_defang(
            "2001:DB8:0:0:8:800:200C:417A",
            "2001[:]DB8[:]0[:]0[:]8[:]800[:]200C[:]417A",
        );
        check_defang("via ::ffff:10.66.6.7.", "via [:][:]ffff[:]10[.]66[.]6[.]7.");
        check_defang(
            "https://[2001:db8::c2]:8443/x",
            "hxxps://[2001[:]db8[:][:]c2]:8443/x",
        );
        check_defang("(2001:db8::1),", "(2001[:]db8[:][:]1),");
    }

    #[test]
    fn defang_leaves_times_mac_addresses_and_code_paths_alone() {
        for s in [
            "03:35:52.290",
            "12:34:56",
            "00:1a:2b:3c:4d:5e",
            "std::fs::write",
            "Event::Start",
            "key :: value",
            "::",
            "a:b",
            "1:2:3:4:5:6:7:8:9",
            "2001:db8::1.5",
        ] {
            check_defang(s, s);
        }
    }

    #[test]
    fn defang_reads_backslashes_after_a_web_scheme_as_a_browser_does() {
        check_defang(
            "http:\\\\evil.example\\payload",
            "hxxp:\\\\evil[.]example\\payload",
        );
        check_defang("HTTPS:/\\evil.example/x", "HXXPS:/\\evil[.]example/x");
        check_defang("https:\\/evil.weird", "hxxps:\\/evil[.]weird");
        check_defang("http:\\evil.example", "hxxp:\\evil[.]example");
        check_defang("ftp:\\\\10.0.0.1\\a", "fxp:\\\\10[.]0[.]0[.]1\\a");
        check_defang(
            "curl http:\\\\\\\\evil.example\\\\p",
            "curl hxxp:\\\\\\\\evil[.]example\\\\p",
        );
        // Other schemes and drive letters keep their backslashes as they are.
        check_defang("C:\\Windows\\Microsoft.NET", "C:\\Windows\\Microsoft.NET");
    }

    #[test]
    fn defang_leaves_file_names_versions_and_plain_words_alone() {
        for s in [
            "C:\\Windows\\System32\\cscript.exe",
            "C:\\Windows\\Microsoft.NET\\Framework",
            "C:\\\\Windows\\\\Microsoft.NET\\\\Framework",
            "System.Management.Automation.dll",
            "5.812.10240.16384",
            "10.0.17763.1",
            "/etc/hosts.allow",
            "Integrity checksum changed.",
            "v4.0.30319",
            "CYLOSEC\\Administrator",
            "1752118315.6279996",
        ] {
            check_defang(s, s);
        }
    }

    #[test]
    fn our_own_names_and_field_paths_stay_readable_and_alert_text_is_still_defanged() {
        assert_eq!(
            escape_inline_fields("agent.name is \"evil.example\", rule.id 5710"),
            "`agent.name is \"evil[.]example\", rule.id 5710`"
        );
        assert_eq!(
            escape_inline_fields("data.win.eventdata.image from http://rule.id/x"),
            "`data.win.eventdata.image from hxxp://rule[.]id/x`"
        );
        assert_eq!(
            escape_name("WIN-1T5RE39Q2K5.cylosec.local"),
            "`WIN-1T5RE39Q2K5.cylosec.local`"
        );
        assert_eq!(escape_name("10.0.0.9"), "`10.0.0.9`");
        assert_eq!(escape_name("2001:db8::7"), "`2001:db8::7`");
        // Not a plain name: alert text, defanged.
        assert_eq!(
            escape_name("WIN-EVIL evil.example"),
            "`WIN-EVIL evil[.]example`"
        );
        assert_eq!(
            escape_inline_readable("https://nvd.nist.gov/vuln/detail/CVE-2020-12395"),
            "`https://nvd.nist.gov/vuln/detail/CVE-2020-12395`"
        );
        assert_eq!(escape_inline_readable("a\u{1b}[31m"), "`a\\u{1b}[31m`");
    }

    #[test]
    fn escape_controls_makes_every_control_and_format_character_visible() {
        assert_eq!(
            escape_controls("a\x1b[31mb\x07\0\r\n\t\u{202e}\u{200b}\u{85}\u{7f}", false),
            "a\\u{1b}[31mb\\u{7}\\u{0}\\r\\n\\t\\u{202e}\\u{200b}\\u{85}\\u{7f}"
        );
        assert_eq!(escape_controls("a\r\nb\rc\n", true), "a\nb\\rc\n");
    }

    /// `escape_inline(s)` inside a paragraph parses to exactly one code span, under CommonMark
    /// and under every extension.
    /// Every escaper for inline text (defanging or not) gives one code span and nothing else.
    fn assert_one_code_span(s: &str) {
        for escape in [
            escape_inline,
            escape_inline_readable,
            escape_inline_fields,
            escape_name,
        ] {
            assert_one_code_span_of(s, &escape(s));
        }
    }

    fn assert_one_code_span_of(s: &str, span: &str) {
        let md = format!("Value: {span} end\n");
        for opts in [Options::empty(), Options::all()] {
            let events: Vec<Event<'_>> = Parser::new_ext(&md, opts).collect();
            let codes: Vec<&Event<'_>> = events
                .iter()
                .filter(|e| matches!(e, Event::Code(_)))
                .collect();
            let expected = usize::from(!s.is_empty());
            assert_eq!(codes.len(), expected, "{s:?} -> {md:?} -> {events:?}");
            for e in &events {
                match e {
                    Event::Start(Tag::Paragraph) | Event::End(TagEnd::Paragraph) => {}
                    Event::Code(_) => {}
                    Event::Text(t) => assert!(
                        ["Value: ", " end", "Value: (empty) end"].contains(&t.as_ref()),
                        "{s:?}: unexpected text {t:?} in {events:?}"
                    ),
                    other => panic!("{s:?}: unexpected event {other:?} in {md:?}"),
                }
            }
            assert!(!md.chars().any(|c| c != '\n' && must_escape(c)));
        }
    }

    const HOSTILE: &[&str] = &[
        "](javascript:alert(1))",
        "[x](javascript:alert(1))",
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "![x](http://evil.example/a.png)",
        "http://evil.example/x",
        "<http://evil.example/x>",
        "www.evil.example",
        "user@evil.example",
        "<user@evil.example>",
        "`",
        "``",
        "a`b``c```d",
        "```",
        "` leading",
        "trailing `",
        " spaced ",
        "\x1b[31mred\x1b[0m",
        "bell\x07",
        "nul\0nul",
        "line\nbreak\r\nand\rcr",
        "../../etc/passwd",
        "right\u{202e}gnp.exe",
        "*emph* _under_ **strong** ~~strike~~",
        "$x$ $$y$$",
        "[^1] [^1]: footnote",
        "| a | b |",
        "# heading {#id .class}",
        "&lt;script&gt; &#60;",
        "\\`not escaped\\`",
        "",
        "   ",
        "<!-- comment -->",
        "[ref]: http://evil.example",
    ];

    #[test]
    fn escape_inline_yields_exactly_one_code_span_for_hostile_values() {
        for s in HOSTILE {
            assert_one_code_span(s);
        }
    }

    #[test]
    fn escape_inline_yields_one_code_span_for_random_mixes_of_hostile_fragments() {
        let trials: usize = match std::env::var("SF_SCALE").ok().as_deref() {
            Some("full") => 100_000,
            Some(n) => n.parse().unwrap_or(2_000),
            None => 2_000,
        };
        let pieces: Vec<&str> = HOSTILE
            .iter()
            .copied()
            .chain([
                "`", "``", " ", "<", ">", "[", "]", "(", ")", "!", "\\", "\n", "|", "$",
            ])
            .collect();
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        for _ in 0..trials {
            let mut s = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 60) as usize + 1;
            for _ in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            assert_one_code_span(&s);
        }
    }

    #[test]
    fn escape_block_yields_exactly_one_fenced_block_that_keeps_line_breaks() {
        let hostile = HOSTILE.join("\n");
        let block = escape_block(&format!("{hostile}\n```\n````\n~~~\n    indented\n"));
        let md = format!("Before\n\n{block}\nAfter\n");
        for opts in [Options::empty(), Options::all()] {
            let events: Vec<Event<'_>> = Parser::new_ext(&md, opts).collect();
            let starts = events
                .iter()
                .filter(|e| matches!(e, Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_)))))
                .count();
            assert_eq!(starts, 1, "{events:?}");
            for e in &events {
                assert!(
                    !matches!(
                        e,
                        Event::Html(_)
                            | Event::InlineHtml(_)
                            | Event::Start(Tag::Link { .. })
                            | Event::Start(Tag::Image { .. })
                    ),
                    "{e:?}"
                );
            }
            let text: String = events
                .iter()
                .filter_map(|e| match e {
                    Event::Text(t) => Some(t.to_string()),
                    _ => None,
                })
                .collect();
            assert!(text.contains("line\nbreak\nand\\rcr"), "{text}");
            assert!(text.contains("hxxp://evil[.]example/x"));
        }
        assert!(!md.chars().any(|c| c != '\n' && must_escape(c)));
    }

    #[test]
    fn long_values_are_cut_and_say_so() {
        let long = "a".repeat(INLINE_MAX_CHARS + 10);
        let span = escape_inline(&long);
        assert!(span.contains("…(cut)"));
        assert!(span.len() < INLINE_MAX_CHARS + 20);
        let block = escape_block(&"b\n".repeat(BLOCK_MAX_CHARS));
        assert!(block.contains("…(cut: the whole text is in alert.json)"));
    }
}
