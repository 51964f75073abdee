//! The web rows: `cairn web` serving the seeded replica, each page's server-side render time (its
//! `Server-Timing` header) and size.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Failure, NOW, summarize};

/// The pages measured, each a clean URL of the app, and their rows' names.
pub const PAGES: [(&str, &str); 5] = [
    ("/feed", "web feed"),
    ("/streaks", "web streaks"),
    ("/team", "web team"),
    ("/digest", "web digest"),
    ("/me", "web me"),
];

/// One page's figures.
#[derive(Debug, Clone)]
pub struct PageFigure {
    pub path: &'static str,
    pub label: &'static str,
    /// Render time on the server, in milliseconds, the replica unchanged since the last render.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The median render right after another process wrote to the replica.
    pub cold: f64,
    /// The HTML's size.
    pub bytes: usize,
}

/// The pages of one seeded replica.
#[derive(Debug, Clone)]
pub struct WebFigures {
    pub events: usize,
    pub pages: Vec<PageFigure>,
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn measure(
    cairn: &Path,
    home: &Path,
    events: usize,
    runs: usize,
    warmup: usize,
) -> Result<WebFigures, Failure> {
    let mut child = Command::new(cairn)
        .args(["web", "--sync-every", "0"])
        .env("CAIRN_HOME", home)
        .env("CAIRN_NOW", NOW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::run(format!("cannot run {} web: {e}", cairn.display())))?;
    let stdout = child.stdout.take();
    let running = Running(child);
    let mut link = String::new();
    if let Some(out) = stdout {
        BufReader::new(out)
            .read_line(&mut link)
            .map_err(|e| Failure::run(format!("cairn web printed no link: {e}")))?;
    }
    let link = link.trim();
    let (base, key) = link
        .split_once("/?key=")
        .ok_or_else(|| Failure::run(format!("cairn web printed no link: {link:?}")))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    // The link's key is spent by its first use, for a session cookie: the pages take that.
    let spent = agent
        .get(format!("{base}/?key={key}"))
        .call()
        .map_err(|e| Failure::run(format!("GET the link: {e}")))?;
    let cookie = spent
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::run(format!(
                "the link answered {} and no session cookie",
                spent.status()
            ))
        })?;
    let mut pages = Vec::new();
    let mut wrote = 0;
    for (path, label) in PAGES {
        let mut samples = Vec::with_capacity(runs);
        let mut colds = Vec::with_capacity(runs);
        let mut bytes = 0;
        // Each run twice: right after a write by another process, then again unchanged.
        for n in 0..2 * (warmup + runs) {
            let cold = n % 2 == 0;
            if cold {
                wrote += 1;
                let status = Command::new(cairn)
                    .args(["log", &format!("bench web {wrote}")])
                    .env("CAIRN_HOME", home)
                    .env("CAIRN_NOW", NOW)
                    .env("CAIRN_AUTO_SYNC", "0")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .map_err(|e| Failure::run(format!("cannot run cairn log: {e}")))?;
                if !status.success() {
                    return Err(Failure::run(format!("cairn log failed: {status}")));
                }
            }
            let mut resp = agent
                .get(format!("{base}{path}"))
                .header("Cookie", &cookie)
                .call()
                .map_err(|e| Failure::run(format!("GET {path}: {e}")))?;
            if resp.status() != 200 {
                return Err(Failure::run(format!(
                    "GET {path} answered {} on the {events}-event replica",
                    resp.status()
                )));
            }
            let render = resp
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split("dur=").nth(1))
                .and_then(|ms| ms.trim().parse::<f64>().ok())
                .ok_or_else(|| Failure::run(format!("GET {path} has no Server-Timing")))?;
            bytes = resp
                .body_mut()
                .with_config()
                .limit(16 * 1024 * 1024)
                .read_to_vec()
                .map_err(|e| Failure::run(format!("GET {path}: {e}")))?
                .len();
            if n / 2 >= warmup {
                let took = Duration::from_secs_f64(render / 1e3);
                if cold {
                    colds.push(took);
                } else {
                    samples.push(took);
                }
            }
        }
        let (median, min, max) = summarize(&mut samples);
        let (cold, _, _) = summarize(&mut colds);
        eprintln!(
            "{events:>7} events  web {path:<8} median {median:.2} ms ({cold:.2} ms right after a write), {bytes} bytes"
        );
        pages.push(PageFigure {
            path,
            label,
            median,
            min,
            max,
            cold,
            bytes,
        });
    }
    drop(running);
    Ok(WebFigures { events, pages })
}
