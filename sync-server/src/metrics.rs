//! Counters for Prometheus, written by hand in its text format: a few atomics need no crate.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of the request duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The routes we count, a fixed and small set so labels stay low-cardinality.
pub const ROUTES: [&str; 6] = ["sync", "join", "link", "info", "wait", "other"];

/// Everything the server counts.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; 5]; ROUTES.len()],
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_us: AtomicU64,
    changes_stored: AtomicU64,
    changes_pulled: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    body_bytes: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    waiting: AtomicU64,
    /// Waits ended, by how: news, nothing new, the server stopping.
    waits: [AtomicU64; 3],
}

/// How a wait for news ended, as the metrics count it.
const WAIT_OUTCOMES: [&str; 3] = ["news", "timeout", "stopping"];

/// A wait for news, counted among those pending while it lives.
#[derive(Debug)]
pub struct Pending<'a>(&'a Metrics);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

/// Status classes: 2xx, 3xx, 4xx, 5xx, other.
fn class(status: u16) -> usize {
    match status {
        200..=299 => 0,
        300..=399 => 1,
        400..=499 => 2,
        500..=599 => 3,
        _ => 4,
    }
}

const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "other"];

impl Metrics {
    /// Counts one request on `route` that ended with `status` after `secs`.
    pub fn request(&self, route: &str, status: u16, secs: f64) {
        let r = ROUTES
            .iter()
            .position(|x| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        self.requests[r][class(status)].fetch_add(1, Relaxed);
        if route == "sync" {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    self.duration_buckets[i].fetch_add(1, Relaxed);
                }
            }
            self.duration_count.fetch_add(1, Relaxed);
            self.duration_sum_us.fetch_add((secs * 1e6) as u64, Relaxed);
        }
    }

    /// Counts what one sync moved.
    pub fn synced(&self, c: &crate::hub::SyncCounts) {
        self.changes_stored.fetch_add(c.stored as u64, Relaxed);
        self.changes_pulled.fetch_add(c.pulled as u64, Relaxed);
        self.bytes_in.fetch_add(c.bytes_in as u64, Relaxed);
        self.bytes_out.fetch_add(c.bytes_out as u64, Relaxed);
    }

    /// Counts bytes of request bodies taken in (as they inflate, for gzipped ones).
    pub fn body_read(&self, bytes: usize) {
        self.body_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// Counts a connection opened.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
    }

    /// Counts a connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// Counts a wait for news pending until the guard drops (however the request ends: a
    /// client that hangs up drops it too).
    pub fn wait_began(&self) -> Pending<'_> {
        self.waiting.fetch_add(1, Relaxed);
        Pending(self)
    }

    /// Counts a wait for news that ended with `outcome`.
    pub fn wait_ended(&self, outcome: crate::hub::Waited) {
        use crate::hub::Waited;
        let i = match outcome {
            Waited::News(_) => 0,
            Waited::Timeout => 1,
            Waited::Stopping => 2,
        };
        self.waits[i].fetch_add(1, Relaxed);
    }

    /// Counts a connection refused because too many were open.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition; `docs` is how many documents the server holds in memory,
    /// `compacting` how many wait for their snapshot to be kept.
    pub fn render(&self, docs: usize, compacting: usize, backend: &str) -> String {
        let mut out = String::new();
        out.push_str("# HELP cairn_server_info The server's storage backend.\n");
        out.push_str("# TYPE cairn_server_info gauge\n");
        let _ = writeln!(out, "cairn_server_info{{backend=\"{backend}\"}} 1");
        out.push_str("# HELP cairn_http_requests_total HTTP requests by route and status class.\n");
        out.push_str("# TYPE cairn_http_requests_total counter\n");
        for (r, route) in ROUTES.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let n = self.requests[r][c].load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "cairn_http_requests_total{{route=\"{route}\",status=\"{class}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP cairn_sync_duration_seconds Time to answer a sync.\n");
        out.push_str("# TYPE cairn_sync_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "cairn_sync_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.duration_buckets[i].load(Relaxed)
            );
        }
        let count = self.duration_count.load(Relaxed);
        let _ = writeln!(
            out,
            "cairn_sync_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.duration_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "cairn_sync_duration_seconds_sum {sum}");
        let _ = writeln!(out, "cairn_sync_duration_seconds_count {count}");
        for (name, help, v) in [
            (
                "cairn_changes_stored_total",
                "Changes added to team logs.",
                &self.changes_stored,
            ),
            (
                "cairn_changes_pulled_total",
                "Changes sent to devices.",
                &self.changes_pulled,
            ),
            (
                "cairn_change_bytes_in_total",
                "Bytes of changes received.",
                &self.bytes_in,
            ),
            (
                "cairn_change_bytes_out_total",
                "Bytes of changes sent.",
                &self.bytes_out,
            ),
            (
                "cairn_request_body_bytes_total",
                "Bytes of request bodies read, as they inflate.",
                &self.body_bytes,
            ),
            (
                "cairn_connections_refused_total",
                "Connections refused because too many were open.",
                &self.connections_refused,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        out.push_str("# HELP cairn_waits_total Waits for news ended, by how.\n");
        out.push_str("# TYPE cairn_waits_total counter\n");
        for (i, outcome) in WAIT_OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "cairn_waits_total{{outcome=\"{outcome}\"}} {}",
                self.waits[i].load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "cairn_waiting",
                "Waits for news pending now.",
                self.waiting.load(Relaxed),
            ),
            (
                "cairn_connections_open",
                "Connections open now.",
                self.connections_open.load(Relaxed),
            ),
            (
                "cairn_documents_cached",
                "Documents held in memory to check pushed changes against.",
                docs as u64,
            ),
            (
                "cairn_documents_compacting",
                "Documents waiting for their snapshot to be kept.",
                compacting as u64,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
