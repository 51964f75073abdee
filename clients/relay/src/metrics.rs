//! Prometheus metrics, read from the queue when scraped (so they survive restarts: rows are
//! never deleted, and the counts of `done` and `failed` messages only grow).
//!
//! `cairn-relay run --metrics ADDR` serves them at `http://ADDR/metrics` from one thread: a
//! request line and headers of at most 8 KiB, 5 s to send them, then the page.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::config::Config;
use crate::queue::Queue;

const STATES: [&str; 5] = ["pending", "sending", "done", "failed", "in_doubt"];

/// A label value with Prometheus' three escapes.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page for `cfg`'s destinations, read from `queue` at `now_ms`.
pub fn render(cfg: &Config, queue: &Queue, now_ms: i64) -> Result<String> {
    struct Row {
        name: String,
        counts: Vec<(String, i64)>,
        disabled: bool,
        failing_ms: Option<i64>,
        oldest_ms: Option<i64>,
    }
    let mut rows = Vec::new();
    for d in &cfg.destinations {
        let state = queue.destination(&d.name)?;
        rows.push(Row {
            name: label(&d.name),
            counts: queue.counts(&d.name)?,
            disabled: state.disabled_ms.is_some(),
            failing_ms: state.failing_since_ms,
            oldest_ms: queue.oldest_pending_ms(&d.name)?,
        });
    }
    let secs = |ms: Option<i64>| ms.map_or(0.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0);
    let mut out = String::new();
    let head = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    head(
        &mut out,
        "cairn_relay_messages",
        "Messages per destination and state (the done and failed counts only grow).",
    );
    for r in &rows {
        for s in STATES {
            let n = r.counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            let _ = writeln!(
                out,
                "cairn_relay_messages{{destination=\"{}\",state=\"{s}\"}} {n}",
                r.name
            );
        }
    }
    // Each gauge: its name, its help, its value for a destination.
    type Gauge<'a> = (&'static str, &'static str, &'a dyn Fn(&Row) -> f64);
    let gauges: [Gauge<'_>; 3] = [
        (
            "cairn_relay_destination_disabled",
            "1 when the relay disabled the destination (status says why).",
            &|r| f64::from(u8::from(r.disabled)),
        ),
        (
            "cairn_relay_destination_failing_seconds",
            "How long the destination has been failing; 0 when its last attempt went through.",
            &|r| secs(r.failing_ms),
        ),
        (
            "cairn_relay_oldest_pending_seconds",
            "Age of the oldest message waiting for the destination; 0 when none waits.",
            &|r| secs(r.oldest_ms),
        ),
    ];
    for (name, help, value) in gauges {
        head(&mut out, name, help);
        for r in &rows {
            let _ = writeln!(out, "{name}{{destination=\"{}\"}} {}", r.name, value(r));
        }
    }
    head(
        &mut out,
        "cairn_relay_held_for_digest",
        "Events that arrived too late to post alone, kept for the digest.",
    );
    let _ = writeln!(out, "cairn_relay_held_for_digest {}", queue.held()?.len());
    Ok(out)
}

/// Answers one connection: `GET /metrics` gets the page, anything else 404.
fn answer(cfg: &Config, queue_path: &Path, mut stream: std::net::TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.len() > 8 * 1024 {
            return;
        }
    }
    let line = got.split(|b| *b == b'\r').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") {
        let now = jiff::Timestamp::now().as_millisecond();
        match Queue::open(queue_path).and_then(|q| render(cfg, &q, now)) {
            Ok(page) => ("200 OK", page),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        }
    } else {
        ("404 Not Found", "the metrics are at /metrics\n".to_owned())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Serves the metrics from `listener` on a thread of its own, for as long as the process runs.
pub fn serve(cfg: Config, queue_path: std::path::PathBuf, listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(&cfg, &queue_path, stream);
        }
    });
}
