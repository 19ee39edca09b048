//! `signalfoundry ingest FILE`: JSON lines (Wazuh's `alerts.json`, or indexer hits) into the
//! queue with canonical names and rows, deduplicated by key. A bad line is quarantined with its
//! line number and reason; nothing is dropped. Ingest never applies the cap.
//!
//! `FILE` may be `-` (standard input), a FIFO or `/dev/stdin`: lines are then queued as they
//! arrive, a batch at [`CHUNK`] lines or [`IDLE_FLUSH`] after the last line, whichever comes
//! first (`tail -F alerts.json | signalfoundry ingest -`).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::model::alert;
use crate::store::ledger::{Ledger, NewRow};
use crate::store::quarantine::Quarantine;
use crate::store::spool::{AdmitCounts, Parsed, Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {}: {source}", crate::store::fsx::shown(path))]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// What ingest did: its summary line is its counters ([`crate::stages::Report`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestReport {
    pub lines: u64,
    pub blank: u64,
    /// Lines that were not an alert (quarantined with their line number).
    pub bad_lines: u64,
    pub counts: AdmitCounts,
}

impl crate::stages::Report for IngestReport {
    const NAME: &'static str = "ingest";

    fn counters(&self) -> crate::stages::Counters {
        crate::stages::Counters::from([
            ("lines", self.lines),
            ("queued", self.counts.queued),
            ("duplicates", self.counts.duplicates),
            ("conflicts", self.counts.conflicts),
            ("bad_lines", self.bad_lines),
            // The spool's and the bad lines.
            ("quarantined", self.counts.quarantined + self.bad_lines),
            ("blank", self.blank),
        ])
    }
}

/// Lines handed to the spool at once.
const CHUNK: usize = 1000;
/// A stream's batch is queued this long after its last line (no alert waits for a full batch).
pub const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// Where lines come from: a regular file read in place, or a stream read by a thread of its
/// own so that a pause in the input flushes the batch.
enum Lines {
    File(BufReader<File>),
    Stream(std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>),
}

enum Next {
    Line(usize),
    Idle,
    End,
}

impl Lines {
    fn open(path: &Path) -> std::io::Result<(Lines, u64)> {
        let stream = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::sync_channel(CHUNK * 4);
            std::thread::spawn(move || {
                let mut r = BufReader::with_capacity(1 << 20, r);
                loop {
                    let mut buf = Vec::new();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) => return,
                        Ok(_) => {
                            if tx.send(Ok(buf)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
            Lines::Stream(rx)
        };
        if path == Path::new("-") {
            return Ok((stream(Box::new(std::io::stdin())), 0));
        }
        let file = File::open(path)?;
        let md = file.metadata()?;
        if md.is_file() {
            Ok((
                Lines::File(BufReader::with_capacity(1 << 20, file)),
                md.len(),
            ))
        } else {
            Ok((stream(Box::new(file)), 0))
        }
    }

    /// The next line into `line` (with its newline), a pause of a stream, or the end.
    fn next(&mut self, line: &mut Vec<u8>) -> std::io::Result<Next> {
        match self {
            Lines::File(r) => Ok(match r.read_until(b'\n', line)? {
                0 => Next::End,
                n => Next::Line(n),
            }),
            Lines::Stream(rx) => match rx.recv_timeout(IDLE_FLUSH) {
                Ok(Ok(v)) => {
                    line.extend_from_slice(&v);
                    Ok(Next::Line(v.len()))
                }
                Ok(Err(e)) => Err(e),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(Next::Idle),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Ok(Next::End),
            },
        }
    }
}

/// Splits an indexer hit into its `_source` and `(_index, _id)`; a bare alert passes through.
pub fn unwrap_hit(mut m: Map<String, Value>) -> (Map<String, Value>, Option<(String, String)>) {
    if let Some(Value::Object(_)) = m.get("_source") {
        let index = m.get("_index").and_then(Value::as_str).map(str::to_string);
        let id = m.get("_id").and_then(Value::as_str).map(str::to_string);
        if let Some(Value::Object(src)) = m.remove("_source") {
            return (src, index.zip(id));
        }
    }
    (m, None)
}

pub fn run(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<IngestReport, IngestError> {
    let read_err = |source| IngestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let (mut lines, total) = Lines::open(path).map_err(read_err)?;
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("ingest {bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut now = now;
    let mut report = IngestReport::default();
    let mut batch: Vec<Parsed> = Vec::with_capacity(CHUNK);
    let mut bad: Vec<NewRow> = Vec::new();
    let mut line = Vec::new();
    let shown = if path == Path::new("-") {
        "stdin".to_string()
    } else {
        crate::store::fsx::shown(path)
    };
    let q = Quarantine {
        state: sp.state,
        durability: sp.durability,
    };
    loop {
        line.clear();
        let n = match lines.next(&mut line).map_err(read_err)? {
            Next::End => break,
            Next::Idle => {
                flush(sp, ledger, &mut batch, &mut bad, now, &mut report)?;
                now = Utc::now();
                continue;
            }
            Next::Line(n) => n,
        };
        bar.inc(n as u64);
        report.lines += 1;
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            report.blank += 1;
            continue;
        }
        let origin = format!("ingest {shown} line {}", report.lines);
        if line.len() as u64 > sp.max_alert_bytes {
            let reason = format!(
                "line {} is {} bytes, over max_alert_bytes ({})",
                report.lines,
                line.len(),
                sp.max_alert_bytes
            );
            bad.push(q.write_in(&line, &origin, &reason, now)?);
            report.bad_lines += 1;
            continue;
        }
        match alert::parse_strict(&line) {
            Ok(m) => {
                let (alert, index_id) = unwrap_hit(m);
                let bytes = if index_id.is_some() {
                    serde_json::to_vec(&alert).unwrap_or_else(|_| line.clone())
                } else {
                    line.clone()
                };
                batch.push(Parsed {
                    bytes,
                    alert,
                    index_id,
                    origin,
                });
            }
            Err(e) => {
                let reason = format!("line {}: {e}", report.lines);
                bad.push(q.write_in(&line, &origin, &reason, now)?);
                report.bad_lines += 1;
            }
        }
        if batch.len() >= CHUNK {
            flush(sp, ledger, &mut batch, &mut bad, now, &mut report)?;
        }
    }
    flush(sp, ledger, &mut batch, &mut bad, now, &mut report)?;
    bar.finish_and_clear();
    Ok(report)
}

fn flush(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    batch: &mut Vec<Parsed>,
    bad: &mut Vec<NewRow>,
    now: DateTime<Utc>,
    report: &mut IngestReport,
) -> Result<(), SpoolError> {
    if batch.is_empty() && bad.is_empty() {
        return Ok(());
    }
    let rows = std::mem::take(bad);
    let c = sp.enqueue(ledger, std::mem::take(batch), now, "ingest", |tx| {
        for r in &rows {
            tx.insert(r)?;
        }
        Ok(())
    })?;
    report.counts.add(&c);
    Ok(())
}
