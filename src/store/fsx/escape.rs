//! Escaping for display: what was read from disk, from an alert or from another process never
//! reaches a terminal or a log as itself. Names go through [`escape_name`] (paths through
//! [`shown`]), other text through [`escape_text`]; both turn every [`must_escape`] character
//! into a visible `\u{..}` escape. Pure: no IO. Re-exported as `fsx::escape_*` (the names the
//! rest of the pipeline and ARCHITECTURE.md use), because [`FsError`](super::FsError) shows its
//! paths through [`shown`].

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The characters that never reach a terminal or a log as themselves (controls, bidi,
/// zero-width, line separators): the policy engine's definition, shared so that `policy test`
/// and the pipeline escape the same set.
pub use sf_policy::cli::must_escape;

/// Escapes a name read from disk for printing: every [`must_escape`] character and the
/// backslash itself escaped (`\n`, `\u{1b}`, `\u{202e}`, `\\`), invalid UTF-8 as `\xNN`, so
/// the text is unambiguous.
pub fn escape_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if must_escape(c) || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A path for a message: [`escape_name`] of its bytes.
pub fn shown(path: &Path) -> String {
    escape_name(path.as_os_str().as_bytes())
}

/// Escapes text that came from an alert, a file or another process (alert keys, origins,
/// notices, heartbeat reasons) for a terminal or a log: every [`must_escape`] character becomes
/// `\n`, `\t`, `\r` or `\u{..}`. Backslashes are left as they are, so text that holds escapes
/// already (an [`escape_name`]d name, a JSON-escaped alert key) is shown unchanged: for display
/// only, not reversible.
pub fn escape_text(text: &str) -> String {
    if !text.chars().any(must_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if must_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_name_removes_control_characters_and_marks_invalid_bytes() {
        assert_eq!(
            escape_name(b"a\nb\x1b[31m\xff.json"),
            "a\\nb\\u{1b}[31m\\xff.json"
        );
    }

    #[test]
    fn escape_name_also_escapes_c1_bidi_and_zero_width_characters_and_backslashes() {
        assert_eq!(
            escape_name("a\u{85}b\u{202e}c\u{200b}d\u{feff}\\e\u{7f}".as_bytes()),
            "a\\u{85}b\\u{202e}c\\u{200b}d\\u{feff}\\\\e\\u{7f}"
        );
    }

    #[test]
    fn escape_text_makes_every_control_bidi_and_zero_width_character_visible() {
        let hidden = [
            '\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{80}', '\u{85}', '\u{9b}', '\u{9f}',
            '\u{61c}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{2028}',
            '\u{2029}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2060}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{feff}',
        ];
        for c in hidden {
            let shown = escape_text(&format!("a{c}b"));
            assert_eq!(
                shown,
                format!("a\\u{{{:x}}}b", c as u32),
                "U+{:04X}",
                c as u32
            );
        }
        assert_eq!(
            escape_text("m\u{1b}]8;;x\u{7}\r\n\t"),
            "m\\u{1b}]8;;x\\u{7}\\r\\n\\t"
        );
    }

    #[test]
    fn escape_text_leaves_printable_text_and_backslashes_as_they_are() {
        for s in [
            "manager:\"m1\"/id:\"1764000000.1\"",
            "key \\u{202e} already escaped, C:\\Windows",
            "Grüße, 東京, emoji \u{1f600}, NBSP\u{a0}",
            "",
        ] {
            assert_eq!(escape_text(s), s);
        }
    }
}
