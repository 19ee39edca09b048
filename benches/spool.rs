//! The spool benchmark: list and order a large queue, cap it to 2,000 with the real binary, and
//! compare with a bare rename loop over the same files and with the predecessor model's cap step.
//!
//! `cargo bench --bench spool` runs it at `SF_BENCH_N` files (default 500,000) in `SF_BENCH_DIR`
//! (default: a temp dir; use a fresh filesystem, for example a loop-mounted ext4 image, never one
//! right after a mass delete). `SF_SEED_PIPELINE` points at the predecessor model
//! (default `../shared/baseline/seed_pipeline.py`; skipped when absent). Under `cargo test
//! --benches` it runs at 250 files and a cap of 200 as a smoke test (a few seconds), whatever
//! `SF_BENCH_N` says.

#![allow(clippy::disallowed_methods)] // benchmark scaffolding writes its own inputs

use std::process::Command;
use std::time::Instant;

mod common;

use common::{alert_line, bench_dir, benching, seed_pipeline, sf, size};
use signalfoundry::store::fsx::DirFd;
use signalfoundry::store::names;

/// The cap of a benchmark run; a smoke run caps 250 files to 200.
const CAP: usize = 2000;
const SMOKE_CAP: usize = 200;

fn main() {
    let bench = benching();
    let cap = if bench { CAP } else { SMOKE_CAP };
    let n = size("SF_BENCH_N", 500_000, SMOKE_CAP + 50);
    let (base, _guard) = bench_dir("spool-bench");
    println!("spool bench: {n} files in {}", base.display());

    let jsonl = base.join("alerts.jsonl");
    let mut text = String::with_capacity(n * 260);
    for i in 0..n {
        text.push_str(&alert_line(i));
        text.push('\n');
    }
    std::fs::write(&jsonl, text).expect("write jsonl");
    let setup = base.join("setup.toml");
    std::fs::write(&setup, "[durability]\nfsync = \"off\"\n").expect("config");
    let capcfg = base.join("cap.toml");
    std::fs::write(
        &capcfg,
        format!("[queue]\ncap = {cap}\n[durability]\nfsync = \"batch\"\n"),
    )
    .expect("config");
    let listcfg = base.join("list.toml");
    std::fs::write(
        &listcfg,
        format!(
            "[queue]\ncap = {}\n[durability]\nfsync = \"batch\"\n",
            n + 1
        ),
    )
    .expect("config");

    // Two identical queues: one for `signalfoundry cap`, one for the bare rename loop.
    let ours = base.join("ours");
    let bare = base.join("bare");
    for s in [&ours, &bare] {
        let (_, secs) = sf(s, &setup, &["ingest", jsonl.to_str().expect("utf-8")]);
        println!(
            "setup: ingest {n} alerts into {} in {secs:.2}s",
            s.display()
        );
    }

    // 1. List and order the queue (in-process, the library's listing), warm.
    let q = DirFd::open(&ours.join("queue")).expect("queue");
    let t = Instant::now();
    let names = names::list_sorted(&q).expect("list");
    let list_secs = t.elapsed().as_secs_f64();
    assert_eq!(names.len(), n);
    println!("list+order: {n} names in {list_secs:.3}s (readdir + parse + sort; no stat)");

    // The same listing through the binary, under strace when available: stat calls counted.
    if bench && Command::new("strace").arg("-V").output().is_ok() {
        let o = Command::new("strace")
            .args(["-f", "-c", "-e", "trace=stat,lstat,fstat,newfstatat,statx"])
            .arg(env!("CARGO_BIN_EXE_signalfoundry"))
            .arg("--state")
            .arg(&ours)
            .arg("--config")
            .arg(&listcfg)
            .arg("cap")
            .output()
            .expect("strace");
        let table = String::from_utf8_lossy(&o.stderr);
        let total = table
            .lines()
            .find(|l| l.contains("total"))
            .unwrap_or("total: none")
            .trim()
            .to_string();
        println!("strace -c of `cap` with nothing to move ({n} files listed): {total}");
    }

    // 2. signalfoundry cap: 500K down to 2,000 (fsync = batch, ledger rows follow).
    let (out, cap_secs) = sf(&ours, &capcfg, &["cap"]);
    println!("signalfoundry cap: {cap_secs:.3}s :: {}", out.trim());

    // 3. Bare rename loop over the same files: list, sort, rename the tail (no ledger, no sync).
    let bq = bare.join("queue");
    let bo = bare.join("overflow");
    let t = Instant::now();
    let mut bnames: Vec<_> = std::fs::read_dir(&bq)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    bnames.sort();
    for name in &bnames[cap..] {
        std::fs::rename(bq.join(name), bo.join(name)).expect("rename");
    }
    let bare_secs = t.elapsed().as_secs_f64();
    println!(
        "bare rename loop: {} renames in {bare_secs:.3}s",
        bnames.len() - cap
    );
    println!(
        "ratio cap / bare = {:.2}x (target: within 1.5x)",
        cap_secs / bare_secs
    );

    // 4. The predecessor model's cap step (glob, stat-sort, shutil.move) on the moved copy.
    if let (true, Some(seed)) = (bench, seed_pipeline()) {
        // Reuse the bare copy: put the files back under the model's layout.
        let sq = base.join("seed/queue");
        std::fs::create_dir_all(sq.parent().expect("parent")).expect("mkdir");
        std::fs::rename(&bo, &sq).expect("move overflow");
        for name in &bnames[..cap] {
            std::fs::rename(bq.join(name), sq.join(name)).expect("rename");
        }
        let code = format!(
            "import sys, time, pathlib; sys.path.insert(0, {dir:?}); import seed_pipeline as s; \
             st = pathlib.Path({state:?}); t = time.perf_counter(); \
             moved, vanished = s.enforce_queue_cap(st / 'queue', st / 'archive' / 'overflow', {cap}); \
             print('seed cap: moved=%d vanished=%d seconds=%.3f' % (moved, vanished, time.perf_counter() - t))",
            dir = seed.parent().expect("dir").display().to_string(),
            state = base.join("seed").display().to_string(),
        );
        let o = Command::new("python3")
            .args(["-c", &code])
            .output()
            .expect("python3");
        let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
        println!("{line}");
        if let Some(s) = line
            .split("seconds=")
            .nth(1)
            .and_then(|x| x.parse::<f64>().ok())
        {
            println!("ratio seed / signalfoundry cap = {:.2}x", s / cap_secs);
        }
    }
    if std::env::var_os("SF_BENCH_DIR").is_some() {
        let _ = std::fs::remove_dir_all(&base);
    }
}
