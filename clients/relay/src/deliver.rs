//! Sending: one worker thread per destination, each in queue order, each on its own.
//!
//! Why threads and ureq rather than hyper: the work is a handful of blocking requests at most
//! one a second per destination; a thread per destination keeps a dead or slow destination
//! from holding back the others with no runtime to carry, and ureq 3 (already in the
//! workspace, with rustls) lets [`crate::net`] check every address at connect time.
//!
//! What an answer means:
//! - 2xx: done;
//! - 429: wait out `Retry-After` (seconds or a date), Discord's JSON `retry_after` or
//!   Matrix's `retry_after_ms`, then again;
//! - 5xx, 408, a timeout or a connection that fails: again after a backoff with jitter
//!   ([`BACKOFF`]);
//! - 410 anywhere, 404 from Discord: the destination is gone and is disabled at once;
//! - a redirect (never followed), any other 4xx: this message failed for good, the next goes;
//! - an address the policy refuses: the destination is disabled (a person must fix the config).
//!
//! A destination failing for longer than the config's `disable_after_days` is disabled too.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Destination, Kind};
use crate::format;
use crate::queue::{Outcome, Queue};
use crate::{Error, Result};

/// The waits between attempts after a 5xx, a 408 or a timeout (each varied by up to a fifth
/// either way, so many relays do not retry in step).
pub const BACKOFF: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The fewest milliseconds between two messages to one destination.
pub const SPACING_MS: i64 = 1_000;

/// The longest `Retry-After` the relay honours as given (a longer one is cut to this).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The most bytes of an answer the relay reads (enough for an error message).
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The wait before attempt `attempts + 1`, after `attempts` that failed.
pub fn backoff(attempts: i64) -> Duration {
    let i = (attempts.max(1) - 1).min(BACKOFF.len() as i64 - 1) as usize;
    let base = BACKOFF[i].as_secs_f64();
    let mut b = [0u8; 2];
    // Without randomness the wait is the schedule's own, which is still correct.
    let r = if getrandom::fill(&mut b).is_ok() {
        f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
    } else {
        0.5
    };
    Duration::from_secs_f64(base * (0.8 + 0.4 * r))
}

/// A wait of `secs` seconds as a server asked for it, at most [`MAX_RETRY_AFTER`]; `None` for
/// a negative or not-a-number value.
fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// What an answer's `Retry-After` (seconds or an HTTP date) asks for.
pub fn retry_after(header: &str, now_ms: i64) -> Option<Duration> {
    let h = header.trim();
    if let Ok(secs) = h.parse::<f64>() {
        return seconds(secs);
    }
    let at = jiff::fmt::rfc2822::parse(h)
        .ok()?
        .timestamp()
        .as_millisecond();
    Some(Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64).min(MAX_RETRY_AFTER))
}

/// Text from elsewhere made safe to keep and show: one line, no control characters, short.
fn tame(text: &str) -> String {
    let one: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Classifies an HTTP answer from a `kind` destination after `attempts` attempts.
pub fn classify(
    kind: Kind,
    status: u16,
    retry_after_header: Option<&str>,
    body: &str,
    attempts: i64,
    now_ms: i64,
) -> Outcome {
    let detail = || {
        let b = tame(body);
        if b.is_empty() {
            format!("answered {status}")
        } else {
            format!("answered {status}: {b}")
        }
    };
    match status {
        200..=299 => Outcome::Done { status },
        429 => {
            // Discord says `retry_after` in seconds, Matrix `retry_after_ms`.
            let in_body = || {
                let v = serde_json::from_str::<serde_json::Value>(body).ok()?;
                match v.get("retry_after").and_then(serde_json::Value::as_f64) {
                    Some(s) => seconds(s),
                    None => seconds(v.get("retry_after_ms")?.as_f64()? / 1000.0),
                }
            };
            let after = retry_after_header
                .and_then(|h| retry_after(h, now_ms))
                .or_else(in_body)
                .unwrap_or(Duration::from_secs(60));
            Outcome::Retry {
                status: Some(status),
                error: format!(
                    "rate limited: answered 429, waiting {:.1} s",
                    after.as_secs_f64()
                ),
                after,
            }
        }
        408 | 500..=599 => Outcome::Retry {
            status: Some(status),
            error: detail(),
            after: backoff(attempts),
        },
        410 => Outcome::Disable {
            status: Some(status),
            error: format!("{}: the destination is gone (disabled)", detail()),
        },
        404 if kind == Kind::Discord => Outcome::Disable {
            status: Some(status),
            error: format!("{}: the Discord webhook was deleted (disabled)", detail()),
        },
        300..=399 => Outcome::Failed {
            status: Some(status),
            error: format!(
                "answered {status}, a redirect: the relay never follows one (check the URL)"
            ),
        },
        _ => Outcome::Failed {
            status: Some(status),
            error: detail(),
        },
    }
}

/// Sends `req` and says how it went, after `attempts` attempts of this message (this one
/// included). Error messages never carry the URL, which may be a secret.
pub fn send(
    agent: &ureq::Agent,
    kind: Kind,
    req: &format::Request,
    attempts: i64,
    timeout: Duration,
) -> Outcome {
    let mut builder = if req.method == "PUT" {
        agent.put(&req.url)
    } else {
        agent.post(&req.url)
    };
    for (name, value) in &req.headers {
        builder = builder.header(*name, value);
    }
    match builder.send(&req.body[..]) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_string();
            match body {
                Ok(body) => classify(kind, status, retry.as_deref(), &body, attempts, now_ms()),
                // The status says what happened; a body too long, not text or too slow
                // changes nothing (a 2xx was still taken).
                Err(_) => classify(kind, status, retry.as_deref(), "", attempts, now_ms()),
            }
        }
        Err(e) => transport(&e, &req.url, attempts, timeout),
    }
}

fn transport(e: &ureq::Error, url: &str, attempts: i64, timeout: Duration) -> Outcome {
    let scrub = |s: String| {
        let s = s.replace(url, "<url>");
        tame(&s)
    };
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            Outcome::Disable {
                status: None,
                error: scrub(io.to_string()),
            }
        }
        ureq::Error::Timeout(_) => Outcome::Retry {
            status: None,
            error: format!("no answer within {} s", timeout.as_secs_f64()),
            after: backoff(attempts),
        },
        other => Outcome::Retry {
            status: None,
            error: scrub(format!("could not reach it: {other}")),
            after: backoff(attempts),
        },
    }
}

/// What one destination's worker did in a pass.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub destination: String,
    pub posted: usize,
    pub failed: usize,
    /// When its next message is due, if it has one waiting past this pass.
    pub next_ms: Option<i64>,
    /// Why it is disabled, if it is.
    pub disabled: Option<String>,
    /// What stopped the worker early (an unreadable secret, the queue).
    pub error: Option<String>,
}

/// Delivers what is due to `dest`, in order, waiting for what comes due within `linger`.
pub fn work(
    cfg: &Config,
    dest: &Destination,
    agent: &ureq::Agent,
    queue_path: &std::path::Path,
    linger: Duration,
) -> Result<Report> {
    let mut q = Queue::open(queue_path)?;
    let mut report = Report {
        destination: dest.name.clone(),
        ..Report::default()
    };
    loop {
        let state = q.destination(&dest.name)?;
        if let Some(why) = state.disabled_why {
            report.disabled = Some(why);
            break;
        }
        let Some(due) = q.next(&dest.name)? else {
            break;
        };
        let now = now_ms();
        let at = due
            .next_ms
            .max(state.last_sent_ms.map_or(0, |t| t + SPACING_MS));
        if at > now {
            let wait = Duration::from_millis((at - now) as u64);
            if wait > linger {
                report.next_ms = Some(at);
                break;
            }
            std::thread::sleep(wait);
            continue;
        }
        let req = match format::request(dest, &due.event, &due.post, now) {
            Ok(r) => r,
            Err(e) => {
                report.error = Some(e);
                break;
            }
        };
        q.mark_sending(&dest.name, due.seq, now)?;
        let outcome = send(agent, dest.kind, &req, due.attempts + 1, cfg.timeout);
        match &outcome {
            Outcome::Done { .. } => report.posted += 1,
            Outcome::Failed { .. } | Outcome::Disable { .. } => report.failed += 1,
            Outcome::Retry { .. } => {}
        }
        if let Some(why) = q.record(
            &dest.name,
            due.seq,
            &outcome,
            cfg.disable_after,
            now_ms(),
            now_ms(),
        )? {
            report.disabled = Some(why);
            break;
        }
    }
    Ok(report)
}

/// The HTTP agent for `cfg`: its allow-list, its timeout.
pub fn agent(cfg: &Config) -> ureq::Agent {
    crate::net::agent(
        crate::net::Policy {
            allowed: cfg.allow_private.clone(),
        },
        cfg.timeout,
    )
}

/// Delivers what is due to every destination, each in its own thread; returns when all are
/// done (none waits for another). What comes due within `linger` is waited for.
pub fn deliver_all(
    cfg: &Config,
    queue_path: &std::path::Path,
    linger: Duration,
) -> Result<Vec<Report>> {
    let agent = Arc::new(crate::net::agent(
        crate::net::Policy {
            allowed: cfg.allow_private.clone(),
        },
        cfg.timeout,
    ));
    let reports = std::thread::scope(|s| {
        let handles: Vec<_> = cfg
            .destinations
            .iter()
            .map(|d| {
                let agent = agent.clone();
                s.spawn(move || work(cfg, d, &agent, queue_path, linger))
            })
            .collect();
        handles
            .into_iter()
            .zip(&cfg.destinations)
            .map(|(h, d)| {
                let r = h.join().unwrap_or_else(|_| {
                    Err(Error::Queue(format!("the worker for {} stopped", d.name)))
                });
                r.unwrap_or_else(|e| Report {
                    destination: d.name.clone(),
                    error: Some(e.to_string()),
                    ..Report::default()
                })
            })
            .collect()
    });
    Ok(reports)
}

/// Sends `cairn-relay check`'s test message to `dest` now, outside the queue.
pub fn send_test(cfg: &Config, dest: &Destination, team: &str) -> Outcome {
    let agent = crate::net::agent(
        crate::net::Policy {
            allowed: cfg.allow_private.clone(),
        },
        cfg.timeout,
    );
    let now = now_ms();
    let key = format!("test/{now}");
    match format::request(dest, &key, &crate::post::Post::test(team, now), now) {
        Ok(req) => send(&agent, dest.kind, &req, 1, cfg.timeout),
        Err(error) => Outcome::Failed {
            status: None,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let now = 0;
        assert_eq!(
            classify(Kind::Slack, 200, None, "ok", 1, now),
            Outcome::Done { status: 200 }
        );
        let Outcome::Retry { after, .. } = classify(Kind::Slack, 429, Some("7"), "", 1, now) else {
            panic!()
        };
        assert_eq!(after, Duration::from_secs(7));
        let Outcome::Retry { after, .. } =
            classify(Kind::Discord, 429, None, r#"{"retry_after": 1.5}"#, 1, now)
        else {
            panic!()
        };
        assert_eq!(after, Duration::from_millis(1500));
        let matrix = r#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}"#;
        let Outcome::Retry { after, .. } = classify(Kind::Matrix, 429, None, matrix, 1, now) else {
            panic!()
        };
        assert_eq!(after, Duration::from_millis(2500));
        assert!(matches!(
            classify(Kind::Slack, 503, None, "", 2, now),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(Kind::Slack, 410, None, "", 1, now),
            Outcome::Disable { .. }
        ));
        assert!(matches!(
            classify(Kind::Discord, 404, None, "", 1, now),
            Outcome::Disable { .. }
        ));
        assert!(matches!(
            classify(Kind::Slack, 404, None, "", 1, now),
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            classify(Kind::Slack, 302, None, "", 1, now),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn backoff_follows_the_schedule_with_jitter() {
        for (n, base) in [(1, 5.0), (2, 300.0), (6, 36_000.0), (60, 36_000.0)] {
            let b = backoff(n).as_secs_f64();
            assert!(b >= base * 0.8 - 1e-6 && b <= base * 1.2 + 1e-6, "{n}: {b}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after("3", 0), Some(Duration::from_secs(3)));
        let now = jiff::Timestamp::from_second(1_445_412_470)
            .unwrap()
            .as_millisecond();
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_after("soon", 0), None);
        assert_eq!(retry_after("-1", 0), None);
        // What a hostile server sends is bounded, never a panic.
        assert_eq!(retry_after("1e300", 0), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("inf", 0), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("NaN", 0), None);
        let Outcome::Retry { after, .. } =
            classify(Kind::Discord, 429, None, r#"{"retry_after": 1e308}"#, 1, 0)
        else {
            panic!()
        };
        assert_eq!(after, MAX_RETRY_AFTER);
    }
}
