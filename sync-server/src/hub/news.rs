//! News: waiting, at no cost while idle, until a team's change log moves past a number.
//!
//! Every write this process makes to a team's log ([`Hub::push`], withdrawals) signals the new
//! head on the team's `watch` channel, and a waiter wakes on it. Another process's writes (a
//! second server on the same PostgreSQL database, an admin command's withdrawal) are not
//! signalled here: waiters of a team read its head from the store now and then
//! ([`crate::Limits::wait_poll`]), one read per team and period however many wait, so news
//! from elsewhere arrives within that period.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Hub, lock};
use crate::Result;
use crate::store::Device;

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The log's head is past the number waited on (or, when it is below it, the server's log
    /// is behind the client: it hears so from its next sync).
    News(u64),
    /// Nothing new within the time given.
    Timeout,
    /// The server is stopping.
    Stopping,
}

/// The heads of the teams this process has seen, each on a channel waiters watch.
#[derive(Debug, Default)]
pub(super) struct News {
    /// One entry per team written or waited on since the start: as many as the teams.
    teams: std::sync::Mutex<HashMap<String, Arc<TeamNews>>>,
}

#[derive(Debug)]
struct TeamNews {
    head: watch::Sender<i64>,
    /// When the store was last asked for the head on behalf of this team's waiters.
    polled: std::sync::Mutex<Instant>,
}

impl TeamNews {
    /// Raises the head to `head` (it never goes back), waking the waiters if it moved.
    fn raise(&self, head: i64) {
        self.head.send_if_modified(|h| {
            let moved = head > *h;
            if moved {
                *h = head;
            }
            moved
        });
    }

    /// Whether this waiter is the one to ask the store now: nobody did within `every`.
    fn take_poll(&self, every: Duration) -> bool {
        let mut polled = lock(&self.polled);
        let now = Instant::now();
        // A little slack, so waiters whose ticks fall close together do not each ask.
        if now.duration_since(*polled) + every / 10 >= every {
            *polled = now;
            true
        } else {
            false
        }
    }
}

impl News {
    fn team(&self, team: &str, head: i64) -> Arc<TeamNews> {
        let mut teams = lock(&self.teams);
        let entry = teams.entry(team.to_owned()).or_insert_with(|| {
            Arc::new(TeamNews {
                head: watch::Sender::new(head),
                polled: std::sync::Mutex::new(Instant::now()),
            })
        });
        entry.clone()
    }

    /// The team's log stands at `head` now (after a write is committed).
    pub(super) fn signal(&self, team: &str, head: i64) {
        self.team(team, head).raise(head);
    }
}

impl Hub {
    /// Waits until the log of `device`'s team has an entry after `after`, for at most
    /// `timeout`, or until `stop` completes; waiters read the head from the store at most once
    /// per `poll` and team (for writes by other processes).
    pub async fn wait(
        &self,
        device: &Device,
        after: u64,
        timeout: Duration,
        poll: Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<Waited> {
        let deadline = Instant::now() + timeout;
        // The head read with the token is as fresh as the database: the channel takes it, so a
        // write another process made is seen at once.
        let news = self.news.team(&device.team, device.team_head);
        news.raise(device.team_head);
        let mut heads = news.head.subscribe();
        let poll = poll.max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(Instant::now() + poll, poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep, stop);
        loop {
            let head = u64::try_from(*heads.borrow_and_update()).unwrap_or(0);
            // A head below `after` is a log behind the client's cursor: the next sync says so.
            if head != after {
                return Ok(Waited::News(head));
            }
            tokio::select! {
                // The sender lives as long as the registry: it never closes.
                _ = heads.changed() => {}
                () = &mut sleep => return Ok(Waited::Timeout),
                () = &mut stop => return Ok(Waited::Stopping),
                _ = tick.tick() => {
                    if news.take_poll(poll) {
                        // A failed read is tried again at the next tick; the wait stays bounded.
                        if let Ok(log) = self.store.team_log(&device.team).await {
                            news.raise(log.head);
                        }
                    }
                }
            }
        }
    }
}
