//! The READMEs' shown sessions, run: every ```` ```console ```` block of `README.md` and of the
//! crates' READMEs is a list of `$ signalfoundry ...` commands, each followed by what it prints
//! on stdout. A line `...` stands for any number of lines, `{..}` inside a line for any text.
//! The commands run in one fresh directory per README holding the real alerts of
//! `tests/data/wazuh-alerts/`, sf-policy's `default-policy.toml` and its `examples/`, as the
//! READMEs say.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{bin, text};

/// One `$ command` of a README and the stdout it shows.
struct Shown {
    at: String,
    args: Vec<String>,
    expected: Vec<String>,
}

fn sessions(readme: &Path) -> Vec<Shown> {
    let body = std::fs::read_to_string(readme).expect("README");
    let mut out: Vec<Shown> = Vec::new();
    let mut in_console = false;
    for (n, line) in body.lines().enumerate() {
        if !in_console {
            in_console = line.trim_end() == "```console";
            continue;
        }
        if line.starts_with("```") {
            in_console = false;
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            let mut words = cmd.split_whitespace().map(str::to_string);
            assert_eq!(
                words.next().as_deref(),
                Some("signalfoundry"),
                "{}:{}: a shown session runs signalfoundry",
                readme.display(),
                n + 1
            );
            out.push(Shown {
                at: format!("{}:{}", readme.display(), n + 1),
                args: words.collect(),
                expected: Vec::new(),
            });
        } else {
            let s = out.last_mut().unwrap_or_else(|| {
                panic!("{}:{}: output before any command", readme.display(), n + 1)
            });
            s.expected.push(line.to_string());
        }
    }
    out
}

/// `line` matches `pattern`, in which each `{..}` is any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("{..}");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The lines match the expected ones, `...` standing for any number of lines.
fn lines_match(expected: &[String], got: &[&str]) -> bool {
    match expected.split_first() {
        None => got.is_empty(),
        Some((e, rest)) if e == "..." => {
            (0..=got.len()).any(|skip| lines_match(rest, &got[skip..]))
        }
        Some((e, rest)) => got
            .split_first()
            .is_some_and(|(g, more)| line_matches(e, g) && lines_match(rest, more)),
    }
}

/// A directory with what the READMEs' sessions name.
fn workdir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sources: Vec<PathBuf> = vec![root.join("crates/sf-policy/default-policy.toml")];
    for d in ["tests/data/wazuh-alerts", "crates/sf-policy/examples"] {
        for e in std::fs::read_dir(root.join(d)).expect(d) {
            sources.push(e.expect("entry").path());
        }
    }
    for src in sources {
        let name = src.file_name().expect("a file name");
        std::fs::copy(&src, dir.path().join(name)).expect("copy");
    }
    dir
}

fn run_sessions(readme: &str, min: usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(readme);
    let shown = sessions(&path);
    assert!(shown.len() >= min, "{readme}: {} sessions", shown.len());
    let dir = workdir();
    for s in &shown {
        let o = Command::new(bin())
            .args(&s.args)
            .current_dir(dir.path())
            .env_remove("SIGNALFOUNDRY_CONFIG")
            .env_remove("SIGNALFOUNDRY_INDEXER_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .expect("run the shown command");
        let stdout = String::from_utf8_lossy(&o.stdout);
        let got: Vec<&str> = stdout.lines().collect();
        assert!(
            lines_match(&s.expected, &got),
            "{}: `signalfoundry {}` does not print what the README shows.\nshown:\n{}\n{}",
            s.at,
            s.args.join(" "),
            s.expected.join("\n"),
            text(&o)
        );
    }
}

#[test]
fn the_readme_shows_what_the_demo_prints() {
    run_sessions("README.md", 1);
}

#[test]
fn the_policy_readme_shows_what_policy_check_and_policy_test_print() {
    run_sessions("crates/sf-policy/README.md", 3);
}

#[test]
fn the_session_matcher_takes_ellipses_and_wildcards_and_nothing_else() {
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&e(&["a", "...", "z"]), &["a", "b", "c", "z"]));
    assert!(lines_match(&e(&["a", "...", "z"]), &["a", "z"]));
    assert!(!lines_match(&e(&["a", "...", "z"]), &["a", "b"]));
    assert!(!lines_match(&e(&["a", "b"]), &["a", "b", "c"]));
    assert!(line_matches("n={..} m={..}", "n=12 m=3"));
    assert!(!line_matches("n={..} m=3", "n=12 m=4"));
    assert!(!line_matches("exact", "exact but longer"));
}
