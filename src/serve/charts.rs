//! The overview's charts: SVG drawn on the server from `heartbeats.jsonl` (no script, no
//! external asset), one polyline per series over the last 7 days.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::serve::data::HistoryPoint;

const W: f64 = 640.0;
const H: f64 = 160.0;
const PAD: f64 = 32.0;

/// A series: its name, its colour and the value of a point.
pub type Series<'a> = (&'a str, &'a str, fn(&HistoryPoint) -> f64);

/// One chart: its title and its series.
pub fn line_chart(
    title: &str,
    points: &[HistoryPoint],
    series: &[Series<'_>],
    now: DateTime<Utc>,
) -> String {
    let t1 = now.timestamp() as f64;
    let t0 = t1 - 7.0 * 86400.0;
    let max = points
        .iter()
        .flat_map(|p| series.iter().map(move |(_, _, f)| f(p)))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let x = |t: DateTime<Utc>| PAD + (t.timestamp() as f64 - t0) / (t1 - t0) * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD + -(v / max) * (H - 2.0 * PAD);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title><rect x="0" y="0" width="{W}" height="{H}" fill="#fff" stroke="#ccd"/><text x="{PAD}" y="18" font-size="12" fill="#223">{t} (max {max:.1})</text><line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#99a"/>"##,
        t = escape(title),
        b = H - PAD,
        r = W - PAD,
    );
    for day in 0..=7 {
        let xx = PAD + f64::from(day) / 7.0 * (W - 2.0 * PAD);
        let label = DateTime::from_timestamp((t0 + f64::from(day) * 86400.0) as i64, 0)
            .map(|d| d.format("%m-%d").to_string())
            .unwrap_or_default();
        let _ = write!(
            s,
            r##"<text x="{xx:.1}" y="{ly}" font-size="10" fill="#556" text-anchor="middle">{label}</text>"##,
            ly = H - PAD + 14.0
        );
    }
    for (i, (name, colour, f)) in series.iter().enumerate() {
        let pts: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.at), y(f(p))))
            .collect();
        if pts.len() == 1 {
            let _ = write!(
                s,
                r#"<circle cx="{}" cy="{}" r="3" fill="{colour}"/>"#,
                x(points[0].at),
                y(f(&points[0]))
            );
        } else if !pts.is_empty() {
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                pts.join(" ")
            );
        }
        let _ = write!(
            s,
            r#"<text x="{lx}" y="18" font-size="11" fill="{colour}">{n}</text>"#,
            lx = W - PAD - 80.0 * (series.len() - i) as f64 + 20.0,
            n = escape(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// The overview's three charts.
pub fn overview_charts(points: &[HistoryPoint], now: DateTime<Utc>) -> Vec<String> {
    vec![
        line_chart(
            "alerts per bucket per run",
            points,
            &[
                ("high", "#c0392b", |p| p.high),
                ("medium", "#d68910", |p| p.medium),
                ("low", "#2874a6", |p| p.low),
                ("suppressed", "#7f8c8d", |p| p.suppressed),
            ],
            now,
        ),
        line_chart(
            "triage rate (alerts/s)",
            points,
            &[("rate", "#1e8449", |p| p.rate)],
            now,
        ),
        line_chart(
            "lag: newest polled alert's age (s)",
            points,
            &[("lag", "#6c3483", |p| p.lag_s)],
            now,
        ),
    ]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
