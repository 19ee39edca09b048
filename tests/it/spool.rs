//! The race-safe spool: cap under a vanisher, cap order, claim races, dead claimers, hostile
//! entries.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{alert_line, canonical_names, num, scale, summary, Env};

const CONFIG: &str = "[queue]\ncap = 2000\n[durability]\nfsync = \"batch\"\n";

fn queue_of(env: &Env, n: usize) -> Vec<String> {
    // Levels 0..=11 (none protected), one second apart.
    let lines: Vec<String> = (0..n)
        .map(|i| alert_line(i, (i % 12) as u32, i as u64))
        .collect();
    for chunk in lines.chunks(100_000) {
        env.ingest_lines(chunk);
    }
    let names = canonical_names(&env.path("queue"));
    assert_eq!(names.len(), n);
    names
}

/// What a cap under a deleter left: cap's summary, the names deleted, and the canonical names
/// in queue/ and overflow/ (every original one in exactly one of the three places).
struct CapUnderDeleter {
    summary: std::collections::BTreeMap<String, String>,
    deleted: HashSet<String>,
    queue: HashSet<String>,
    overflow: HashSet<String>,
}

/// When the deleter of [`cap_under_a_deleter`] starts.
#[derive(Clone, Copy, PartialEq)]
enum DeleteWhen {
    /// Once overflow/ holds an alert: after cap has listed the queue.
    AfterFirstMove,
    /// Between the exchange and cap's listing of what it moved (cap holds still there).
    InTheExchangeWindow,
}

/// Runs cap while `debug-vanish` deletes ~3% of the names it listed in queue/ (holding queue/
/// open).
fn cap_under_a_deleter(
    env: &Env,
    original: &[String],
    seed: &str,
    when: DeleteWhen,
) -> CapUnderDeleter {
    let queue = env.path("queue");
    let overflow = env.path("overflow");
    let mut args = vec!["debug-vanish", "--dir", queue.to_str().expect("path")];
    match when {
        DeleteWhen::AfterFirstMove => {
            args.extend(["--after", overflow.to_str().expect("path")]);
        }
        DeleteWhen::InTheExchangeWindow => args.push("--after-exchange"),
    }
    args.extend(["--fraction", "0.03", "--seed", seed]);
    let deleter = env
        .cmd(&args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn deleter");
    let mut cap = env.cmd(&["cap"]);
    if when == DeleteWhen::InTheExchangeWindow {
        cap.env("SIGNALFOUNDRY_DEBUG_CAP_PAUSE_MS", "3000");
    }
    let cap = cap.output().expect("cap");
    let del = deleter.wait_with_output().expect("deleter");
    assert!(
        cap.status.success(),
        "cap: {}",
        String::from_utf8_lossy(&cap.stderr)
    );
    assert!(del.status.success());
    let deleted: HashSet<String> = String::from_utf8(del.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.strip_prefix("deleted ").map(str::to_string))
        .collect();
    assert!(!deleted.is_empty(), "the deleter deleted nothing");
    let queue: HashSet<String> = canonical_names(&env.path("queue")).into_iter().collect();
    let overflow: HashSet<String> = canonical_names(&env.path("overflow")).into_iter().collect();
    // Every original alert is in exactly one of queue, overflow, removed-by-the-other-process.
    for name in original {
        let places = [
            queue.contains(name),
            overflow.contains(name),
            deleted.contains(name),
        ];
        assert_eq!(
            places.iter().filter(|x| **x).count(),
            1,
            "{name} is in {places:?}"
        );
    }
    assert_eq!(queue.len() + overflow.len() + deleted.len(), original.len());
    CapUnderDeleter {
        summary: summary(&String::from_utf8(cap.stdout).expect("utf-8"), "cap:"),
        deleted,
        queue,
        overflow,
    }
}

#[test]
fn cap_under_a_concurrent_deleter_accounts_for_every_alert() {
    let n = scale(50_000, 500_000);
    let env = Env::new(CONFIG);
    let original = queue_of(&env, n);
    // overflow/ is not empty (an entry that is no alert, ignored like any such name), so this
    // cap defers by the rename loop, one rename per alert (the deferral by exchange has its
    // own test below).
    std::fs::write(env.path("overflow").join("NOTES"), "not an alert").expect("plant");
    let CapUnderDeleter {
        summary: s,
        deleted,
        overflow,
        ..
    } = cap_under_a_deleter(&env, &original, "7", DeleteWhen::AfterFirstMove);
    // The cap listed all n (the deleter waited for its first move), planned n - cap moves,
    // and each one either moved or found no file.
    let (deferred, vanished) = (num(&s, "deferred"), num(&s, "vanished"));
    assert_eq!(deferred + vanished, (n - 2000) as u64, "{s:?}");
    assert_eq!(deferred as usize, overflow.len());
    assert!(vanished > 0, "the deleter raced no move: {s:?}");
    assert!(vanished as usize <= deleted.len());
    assert_eq!(num(&s, "collisions"), 0);
    // The ledger agrees with the disk for what remains.
    let states = env.states();
    assert_eq!(
        states.get("overflow").copied().unwrap_or(0) as usize,
        overflow.len()
    );
}

#[test]
fn a_large_deferral_exchanges_the_directories_and_accounts_for_every_alert_under_a_deleter() {
    use std::os::unix::fs::MetadataExt;
    let n = scale(50_000, 500_000);
    let env = Env::new(CONFIG);
    let original = queue_of(&env, n);
    let queue_ino = std::fs::metadata(env.path("queue")).expect("queue").ino();
    let CapUnderDeleter {
        summary: s,
        deleted,
        queue,
        overflow,
    } = cap_under_a_deleter(&env, &original, "11", DeleteWhen::AfterFirstMove);
    assert_eq!(
        std::fs::metadata(env.path("overflow"))
            .expect("overflow")
            .ino(),
        queue_ino,
        "the deferral went by exchange: the old queue directory is overflow/ now"
    );
    // The queue keeps the head of the order (levels 0..=11: none protected): every one of the
    // first 2,000 is queued unless deleted, and nothing else is queued.
    let head: HashSet<String> = original[..2000].iter().cloned().collect();
    assert!(head
        .iter()
        .all(|h| queue.contains(h) || deleted.contains(h)));
    assert!(queue.is_subset(&head), "{s:?}");
    let (deferred, vanished) = (num(&s, "deferred"), num(&s, "vanished"));
    // Every listed alert was deferred, renamed back (queued) or found gone (vanished), and
    // every deletion is either a vanish or a deferred alert deleted after its move.
    assert_eq!(deferred + vanished + queue.len() as u64, n as u64, "{s:?}");
    assert!(overflow.len() as u64 <= deferred);
    assert_eq!(
        vanished + deferred - overflow.len() as u64,
        deleted.len() as u64,
        "{s:?}"
    );
    assert_eq!(num(&s, "queue"), queue.len() as u64, "{s:?}");
    assert_eq!(num(&s, "collisions"), 0);
    assert!(!env.path(".cap-exchange").exists());
    let states = env.states();
    assert_eq!(states.get("overflow").copied().unwrap_or(0), deferred);
    assert_eq!(states.get("queued").copied().unwrap_or(0), 2000);
}

#[test]
fn alerts_deleted_between_the_exchange_and_its_listing_are_each_counted_vanished() {
    let n = scale(20_000, 200_000);
    let env = Env::new(CONFIG);
    let original = queue_of(&env, n);
    let CapUnderDeleter {
        summary: s,
        deleted,
        queue,
        overflow,
    } = cap_under_a_deleter(&env, &original, "13", DeleteWhen::InTheExchangeWindow);
    // Every deletion fell in the window: a deferred alert then missing from the listing, or
    // one that stays then missing at its rename back. Both are vanishes, and nothing else is.
    let (deferred, vanished) = (num(&s, "deferred"), num(&s, "vanished"));
    assert_eq!(vanished, deleted.len() as u64, "{s:?}");
    assert_eq!(deferred, overflow.len() as u64, "{s:?}");
    assert_eq!(num(&s, "queue"), queue.len() as u64, "{s:?}");
    assert_eq!(deferred + vanished + queue.len() as u64, n as u64);
    let head: HashSet<String> = original[..2000].iter().cloned().collect();
    assert!(
        deleted.iter().any(|d| head.contains(d)) && deleted.iter().any(|d| !head.contains(d)),
        "deletions of both kinds"
    );
    let states = env.states();
    assert_eq!(states.get("overflow").copied().unwrap_or(0), deferred);
}

#[test]
fn after_a_crash_mid_exchange_cap_takes_protected_alerts_back_past_the_cap_and_run_passes() {
    let env = Env::new("[queue]\ncap = 10\nprotect_level = 12\n[durability]\nfsync = \"batch\"\n");
    // 30 alerts, 15 of them protected (level 12), then the state a crash during the renames
    // back leaves: the exchange done (every queued file in overflow/, rows still `queued`), 12
    // protected alerts back in queue/ (over the cap of 10), a foreign name still in
    // overflow/, and the marker.
    let lines: Vec<String> = (0..30)
        .map(|i| alert_line(i, if i % 2 == 0 { 12 } else { 3 }, i as u64))
        .collect();
    env.ingest_lines(&lines);
    let all = canonical_names(&env.path("queue"));
    let swap = env.path(".swap");
    std::fs::rename(env.path("queue"), &swap).expect("queue aside");
    std::fs::rename(env.path("overflow"), env.path("queue")).expect("empty overflow to queue");
    std::fs::rename(&swap, env.path("overflow")).expect("old queue to overflow");
    for name in &all[..12] {
        std::fs::rename(
            env.path("overflow").join(name),
            env.path("queue").join(name),
        )
        .expect("renamed back");
    }
    std::fs::write(env.path("overflow").join("dropped-by-hand.json"), "{}").expect("foreign");
    std::fs::write(env.path(".cap-exchange"), "").expect("marker");
    let s = summary(&env.ok(&["cap"]), "cap:");
    assert_eq!(num(&s, "refilled"), 3, "{s:?}");
    // All 15 protected alerts (the head of the order) are queued again, over the cap of 10;
    // the foreign name went back to queue/ and was admitted (an empty object: a level-0
    // alert, deferred at once).
    assert_eq!(num(&s, "admitted"), 1, "{s:?}");
    assert_eq!(canonical_names(&env.path("queue")), all[..15].to_vec());
    let deferred = canonical_names(&env.path("overflow"));
    assert_eq!(deferred.len(), 16);
    assert!(all[15..].iter().all(|n| deferred.contains(n)));
    assert!(!env.path("overflow/dropped-by-hand.json").exists());
    assert!(!env.path(".cap-exchange").exists(), "the repair is done");
    let out = env.ok(&["run"]);
    assert_eq!(out.lines().last(), Some("VERDICT=PASS"), "{out}");
    assert_eq!(env.states().get("escalated").copied(), Some(15));
}

#[test]
fn cap_defers_the_tail_of_the_order_and_refills_from_the_head() {
    let env = Env::new("[queue]\ncap = 4\nprotect_level = 12\n[durability]\nfsync = \"off\"\n");
    // (i, level, second)
    let spec = [
        (0, 3, 50),
        (1, 3, 10),
        (2, 12, 99),
        (3, 15, 5),
        (4, 7, 1),
        (5, 7, 2),
        (6, 0, 0),
        (7, 3, 30),
    ];
    let lines: Vec<String> = spec.iter().map(|&(i, l, s)| alert_line(i, l, s)).collect();
    env.ingest_lines(&lines);
    let queue_before = canonical_names(&env.path("queue"));
    assert_eq!(queue_before.len(), 8);
    // Order: 15@5, 12@99, 7@1, 7@2, 3@10, 3@30, 3@50, 0@0. Tail 4 deferred: 3@10, 3@30, 3@50, 0@0.
    let out = env.ok(&["cap"]);
    let s = summary(&out, "cap:");
    assert_eq!(num(&s, "deferred"), 4);
    assert_eq!(queue_before[..4], canonical_names(&env.path("queue"))[..]);
    assert_eq!(
        queue_before[4..],
        canonical_names(&env.path("overflow"))[..]
    );
    // Room for two: the head of the overflow's order comes back (3@10, 3@30).
    std::fs::write(&env.config, "[queue]\ncap = 6\nprotect_level = 12\n").expect("config");
    let s = summary(&env.ok(&["cap"]), "cap:");
    assert_eq!(num(&s, "refilled"), 2);
    assert_eq!(
        canonical_names(&env.path("queue")),
        queue_before[..6].to_vec()
    );
    assert_eq!(
        canonical_names(&env.path("overflow")),
        queue_before[6..].to_vec()
    );
    let states = env.states();
    assert_eq!((states["queued"], states["overflow"]), (6, 2));
}

#[test]
fn cap_never_defers_alerts_at_protect_level() {
    let env = Env::new("[queue]\ncap = 2\nprotect_level = 10\n[durability]\nfsync = \"off\"\n");
    let lines: Vec<String> = (0..6)
        .map(|i| alert_line(i, if i < 4 { 10 + i as u32 } else { 2 }, i as u64))
        .collect();
    env.ingest_lines(&lines);
    let s = summary(&env.ok(&["cap"]), "cap:");
    assert_eq!(num(&s, "deferred"), 2);
    assert_eq!(num(&s, "protected_over_cap"), 2);
    assert_eq!(canonical_names(&env.path("queue")).len(), 4);
    for name in canonical_names(&env.path("overflow")) {
        assert!(name.starts_with("97-"), "a level-2 alert, not {name}");
    }
}

/// Starts a `debug-claim --hold` worker and reads its stdout up to its summary line.
fn start_claimer(
    env: &Env,
) -> (
    Child,
    Vec<String>,
    std::collections::BTreeMap<String, String>,
) {
    read_claimer(env.cmd(&["debug-claim", "--hold"]))
}

/// Spawns a claimer command and reads its claims and summary.
fn read_claimer(
    mut cmd: std::process::Command,
) -> (
    Child,
    Vec<String>,
    std::collections::BTreeMap<String, String>,
) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn claimer");
    let out = child.stdout.take().expect("stdout");
    let mut claimed = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("claimed ") {
            claimed.push(n.to_string());
        } else if line.starts_with("claim:") {
            let s = summary(&line, "claim:");
            return (child, claimed, s);
        }
    }
    panic!("claimer ended without a summary");
}

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn concurrent_claimers_claim_each_file_exactly_once() {
    let n = scale(10_000, 100_000);
    let env = Env::new(CONFIG);
    let names: BTreeSet<String> = queue_of(&env, n).into_iter().collect();
    // Start them together so their listings overlap.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let cmd = env.cmd(&["debug-claim", "--hold"]);
            std::thread::spawn(move || read_claimer(cmd))
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect();
    let mut seen = BTreeSet::new();
    let (mut listed, mut vanished) = (0, 0);
    for (_, claimed, s) in &results {
        for c in claimed {
            assert!(seen.insert(c.clone()), "{c} claimed twice");
        }
        assert_eq!(num(s, "claimed") as usize, claimed.len());
        // Every name a claimer listed was either won or lost to another claimer (vanished).
        assert_eq!(
            num(s, "listed"),
            num(s, "claimed") + num(s, "vanished"),
            "{s:?}"
        );
        listed += num(s, "listed");
        vanished += num(s, "vanished");
    }
    assert_eq!(seen, names, "every file claimed exactly once");
    assert_eq!(listed - vanished, n as u64);
    let states = env.states();
    assert_eq!(
        states.get("processing").copied(),
        Some(n as u64),
        "{states:?}"
    );
    assert!(!states.contains_key("lost"));
    for (c, _, _) in results {
        kill(c);
    }
}

#[test]
fn a_killed_claimers_claims_go_back_and_a_live_workers_are_never_taken() {
    let env = Env::new(CONFIG);
    let names = queue_of(&env, 500);
    let (a, claimed_a, s) = start_claimer(&env);
    assert_eq!(claimed_a.len(), 500, "{s:?}");
    // SIGKILL while it holds every claim.
    kill(a);
    let (b, claimed_b, s) = start_claimer(&env);
    assert_eq!(num(&s, "recovered_workers"), 1);
    assert_eq!(num(&s, "requeued"), 500);
    let mut got = claimed_b.clone();
    got.sort();
    assert_eq!(got, names, "nothing lost");
    // B is alive: a third worker must leave its claims alone.
    let (c, claimed_c, s) = start_claimer(&env);
    assert_eq!(num(&s, "live_workers"), 1);
    assert_eq!(num(&s, "recovered_workers"), 0);
    assert!(claimed_c.is_empty());
    let wdirs: Vec<_> = std::fs::read_dir(env.path("processing"))
        .expect("read")
        .map(|e| e.expect("e").path())
        .collect();
    let total: usize = wdirs.iter().map(|d| canonical_names(d).len()).sum();
    assert_eq!(total, 500);
    assert_eq!(env.states().get("processing").copied(), Some(500));
    kill(b);
    kill(c);
}

#[test]
fn hostile_entries_are_quarantined_or_ignored_without_reading_through_links() {
    let env = Env::new("[durability]\nfsync = \"off\"\n");
    env.ok(&["cap"]); // creates the state directory
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let secret = alert_line(900, 5, 0);
    std::fs::write(outside.join("secret.json"), &secret).expect("write");
    std::fs::write(outside.join("hard.json"), alert_line(901, 5, 0)).expect("write");
    for (k, dir) in ["queue", "incoming"].iter().enumerate() {
        let d = env.path(dir);
        std::os::unix::fs::symlink(outside.join("secret.json"), d.join("link.json"))
            .expect("symlink");
        std::fs::hard_link(outside.join("hard.json"), d.join("hard.json")).expect("hardlink");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("fifo.json"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        std::fs::create_dir(d.join("x.json")).expect("mkdir");
        std::fs::write(d.join("new\nline.json"), alert_line(910 + k, 4, 1)).expect("write");
        std::fs::write(d.join(".hidden.json"), "not an alert").expect("write");
        std::fs::write(d.join("notes.txt"), "not an alert").expect("write");
    }
    let start = Instant::now();
    let o = env.run(&["cap"]);
    assert!(start.elapsed() < Duration::from_secs(30), "no hang");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Each refused entry is reported with its reason, its name escaped.
    for reason in [
        "symbolic link",
        "links (hard link refused)",
        "FIFO",
        "a directory",
    ] {
        assert_eq!(
            stderr.matches(reason).count(),
            2,
            "{reason} twice in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("new\nline"),
        "a raw newline in a name reached the log"
    );
    let q = env.path("quarantine");
    let reasons: Vec<String> = std::fs::read_dir(&q)
        .expect("read")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "reason"))
        .map(|p| std::fs::read_to_string(p).expect("reason"))
        .collect();
    assert_eq!(reasons.len(), 8, "{reasons:?}");
    // The links were moved, not followed: the outside files are intact and were not queued.
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.json")).expect("read"),
        secret
    );
    assert!(std::fs::symlink_metadata(q.join("x")).is_err());
    let queued = canonical_names(&env.path("queue"));
    assert_eq!(
        queued.len(),
        2,
        "the two newline-named alerts: {queued:?}\n{stderr}"
    );
    let keys: Vec<String> = {
        let c = env.ledger();
        let mut st = c
            .prepare("SELECT alert_key FROM alerts WHERE state = 'queued'")
            .expect("prepare");
        st.query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    assert!(
        keys.iter()
            .all(|k| !k.contains("1764000000.900") && !k.contains("1764000000.901")),
        "{keys:?}"
    );
    // Dot-files and non-.json files are left alone.
    for dir in ["queue", "incoming"] {
        assert!(env.path(dir).join(".hidden.json").exists());
        assert!(env.path(dir).join("notes.txt").exists());
    }
    assert_eq!(env.states().get("quarantined").copied(), Some(8));
}

#[test]
fn leftover_worker_folders_of_dead_workers_are_removed_and_live_ones_kept() {
    let env = Env::new(CONFIG);
    queue_of(&env, 10);
    let processing = env.path("processing");
    // A worker killed between removing its lock and its folder; one killed before locking.
    std::fs::create_dir(processing.join("w-1-deadbeef")).expect("mkdir");
    let gone_pid = 4_000_000; // above Linux's pid_max: no such process
    std::fs::create_dir(processing.join(format!(".tmp-w-{gone_pid}-cafe0001"))).expect("mkdir");
    // A starting worker of a live process (this one) is left alone.
    let live = processing.join(format!(".tmp-w-{}-cafe0002", std::process::id()));
    std::fs::create_dir(&live).expect("mkdir");
    let (c, claimed, _) = start_claimer(&env);
    assert_eq!(claimed.len(), 10);
    assert!(!processing.join("w-1-deadbeef").exists());
    assert!(!processing
        .join(format!(".tmp-w-{gone_pid}-cafe0001"))
        .exists());
    assert!(live.exists());
    kill(c);
}
