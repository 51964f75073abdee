//! The CLI's side of the sync client (which lives in `cairn_client::sync`): what a person at a
//! terminal is told while a request is under way or a long catch-up runs, and the hook of the
//! crash tests.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub use cairn_client::sync::{Client, QUIET_TIMEOUT, Report, TIMEOUT, printable};
use cairn_client::sync::{Notice, Step, Unit};

use crate::error::Result;

/// Catching up on more than this many changes shows progress on a terminal...
const PROGRESS_FROM: u64 = 2_000;
/// ...or on more than this many whole documents.
const PROGRESS_DOCS_FROM: u64 = 50;

/// Turns what the user typed into a base URL: `http(s)://host[:port][/path]`, no trailing slash.
pub fn normalise_url(url: &str) -> Result<String> {
    Ok(cairn_client::sync::normalise_url(url)?)
}

/// A client of the server at `base` that says on stderr when the server is busy and it waits
/// to try again (see [`Client::new`] for `timeout`).
pub fn client(base: &str, token: Option<String>, timeout: Duration) -> Client {
    Client::new(base, token, timeout).observe(tell)
}

/// Says on stderr what a request under way meets.
pub fn tell(notice: &Notice) {
    match notice {
        Notice::StillWaiting {
            base,
            elapsed,
            timeout,
        } => eprintln!(
            "still waiting for the server at {base} ({} s; gives up after {} s)",
            elapsed.as_secs(),
            timeout.as_secs()
        ),
        Notice::Retrying { slow_down, wait } => {
            let why = if *slow_down {
                "asks this device to slow down"
            } else {
                "is busy"
            };
            eprintln!(
                "the server {why}; trying again in {} s",
                wait.as_secs().max(1)
            );
        }
    }
}

/// What the CLI does at each step of an exchange: the crash tests' hook, and a progress bar
/// when `show_progress` (on a terminal, for long catch-ups only). [`Steps::finish`] ends the
/// bar's line.
pub struct Steps {
    progress: Progress,
}

impl Steps {
    pub fn new(show_progress: bool) -> Steps {
        Steps {
            progress: Progress::new(show_progress),
        }
    }

    pub fn step(&mut self, step: Step) {
        match step {
            Step::Answered { request } => {
                // For the crash tests: die in the worst place, after the server stored the
                // push and before this replica recorded it.
                // (`exit` runs no destructors: the replica is left as a crash would leave it,
                // without the core dump an abort might write.)
                // (Its value: the response to die at, 1 for the first.)
                if let Some(n) = std::env::var_os("CAIRN_TEST_CRASH_AFTER_RESPONSE")
                    && n.to_str().and_then(|n| n.parse().ok()).unwrap_or(1) == request
                {
                    std::process::exit(86);
                }
            }
            Step::Progress {
                done,
                total,
                unit: Unit::Changes,
            } => {
                if total >= PROGRESS_FROM {
                    self.progress.draw(done, total, "changes");
                }
            }
            Step::Progress {
                done,
                total,
                unit: Unit::Documents,
            } => {
                if total >= PROGRESS_DOCS_FROM {
                    self.progress.draw(done, total, "documents");
                }
            }
        }
    }

    /// Ends the progress bar's line, if one was drawn.
    pub fn finish(&mut self) {
        self.progress.finish();
    }
}

/// A one-line progress bar on stderr, drawn only on a terminal: what is done of what there is,
/// and how fast it goes.
struct Progress {
    on: bool,
    drawn: bool,
    started: Instant,
}

impl Progress {
    fn new(wanted: bool) -> Self {
        Progress {
            on: wanted && std::io::stderr().is_terminal(),
            drawn: false,
            started: Instant::now(),
        }
    }

    fn draw(&mut self, done: u64, total: u64, what: &str) {
        if !self.on {
            return;
        }
        let width = 30;
        let filled = (done.min(total) * width / total.max(1)) as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            "-".repeat(width as usize - filled)
        );
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (done as f64 / secs).round() as u64;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rcatching up [{bar}] {done}/{total} {what}, {rate}/s\x1b[K"
        );
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
        }
    }
}
