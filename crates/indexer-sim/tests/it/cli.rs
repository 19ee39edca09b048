//! The `indexer-sim` command line.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{client, PASSWORD, USER};

#[test]
fn the_cli_prints_listening_on_a_real_port_after_writing_the_ca_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::File::create(&pw)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{PASSWORD}\n").as_bytes()))
        .unwrap();
    let ca = dir.path().join("root-ca.pem");
    let dump = dir.path().join("corpus.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_indexer-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--alerts",
            "60",
            "--seed",
            "9",
            "--end-time",
            "2025-09-12T09:00:00Z",
            "--username",
            USER,
        ])
        .arg("--password-file")
        .arg(&pw)
        .arg("--ca-out")
        .arg(&ca)
        .arg("--dump-corpus")
        .arg(&dump)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);

    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");

    let c = client(&pem, Duration::from_secs(10));
    let r = c
        .get(format!("https://localhost:{}/", addr.port()))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .post(format!(
            "https://127.0.0.1:{}/wazuh-alerts-4.x-*/_count",
            addr.port()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .body("{}")
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(v["count"], 60);

    let lines: Vec<Value> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 60);
    assert!(lines.iter().all(|l| l["_index"].is_string()
        && l["_id"].is_string()
        && l["_source"]["manager"]["name"].is_string()));

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "{code:?}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!rest.contains(PASSWORD) && !err.contains(PASSWORD) && !line.contains(PASSWORD));
}

#[test]
fn the_cli_refuses_bad_input_with_exit_2_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::File::create(&pw)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x\n"))
        .unwrap();
    let ca = dir.path().join("ca.pem");
    let base = |extra: &[&str], pwfile: &std::path::Path| -> i32 {
        let mut args: Vec<std::ffi::OsString> = [
            "indexer-sim",
            "--listen",
            "127.0.0.1:0",
            "--username",
            "u",
            "--alerts",
            "5",
        ]
        .iter()
        .map(Into::into)
        .collect();
        args.push("--password-file".into());
        args.push(pwfile.into());
        args.push("--ca-out".into());
        args.push(ca.clone().into());
        args.extend(extra.iter().map(Into::into));
        indexer_sim::cli_main(args)
    };
    assert_eq!(base(&["--fault-rate", "2"], &pw), 2);
    assert_eq!(base(&["--faults", "418"], &pw), 2);
    assert_eq!(base(&["--rate", "0"], &pw), 2);
    assert_eq!(base(&[], &dir.path().join("missing")), 2);
    assert_eq!(base(&["--corpus", "/nonexistent/corpus.jsonl"], &pw), 2);
    assert!(!ca.exists(), "nothing is written when start-up fails");
}
