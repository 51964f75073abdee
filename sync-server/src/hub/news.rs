//! News: waiting, at no cost while idle, until a team's change log moves past a number.
//!
//! Every write this process makes to a team's log ([`Hub::push`], withdrawals) signals the new
//! head on the team's `watch` channel, and a waiter wakes on it. Another process's writes (a
//! second server on the same PostgreSQL database, an admin command's withdrawal) are not
//! signalled here: waiters of a team read its head from the store now and then
//! ([`crate::Limits::wait_poll`]), one read per team and period however many wait, so news
//! from elsewhere arrives within that period.
//!
//! PostgreSQL's LISTEN/NOTIFY would bring it sooner, but a transaction that notifies takes a
//! lock that serialises the commits of every notifying transaction in the database: every push
//! of every team would queue behind it, for a wake-up a few seconds earlier on deployments of
//! several processes only. The read costs one indexed row per team and period instead.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Whom;

    /// A hub on a fresh SQLite file with one published team, and its founder's device.
    async fn hub() -> (tempfile::TempDir, Arc<Hub>, Device) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.sqlite3");
        let store = crate::store::open(path.to_str().unwrap(), &Default::default())
            .await
            .unwrap();
        let hub = Arc::new(Hub::new(store, 16));
        let team = hub.create_team("Otters", 0).await.unwrap();
        let code = hub
            .create_invite(&team.id, 1, i64::MAX, 0, Whom::Founder)
            .await
            .unwrap();
        let req = cairn_protocol::JoinRequest {
            invite: code,
            device_name: "ana's laptop".into(),
            publish: Some("ana".into()),
            ..Default::default()
        };
        let token = hub.join(&req, 0, 10).await.unwrap().token.0;
        let device = hub.authenticate(&token).await.unwrap();
        (dir, hub, device)
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_wait_ends_on_news_on_its_time_or_when_the_server_stops() {
        let (_dir, hub, device) = hub().await;
        // News signalled while it waits.
        let waiting = {
            let (hub, device) = (hub.clone(), device.clone());
            tokio::spawn(async move {
                hub.wait(&device, 0, LONG, LONG, std::future::pending())
                    .await
            })
        };
        tokio::task::yield_now().await;
        hub.news.signal(&device.team, 3);
        assert_eq!(waiting.await.unwrap().unwrap(), Waited::News(3));
        // A head never goes back: a late signal of an older one changes nothing.
        hub.news.signal(&device.team, 2);
        let got = hub.wait(
            &device,
            3,
            Duration::from_millis(20),
            LONG,
            std::future::pending(),
        );
        assert_eq!(got.await.unwrap(), Waited::Timeout);
        // Ahead of the log (a restored server): answered at once with the head.
        let got = hub.wait(&device, 9, LONG, LONG, std::future::pending());
        assert_eq!(got.await.unwrap(), Waited::News(3));
        // The server stops.
        let got = hub.wait(&device, 3, LONG, LONG, std::future::ready(()));
        assert_eq!(got.await.unwrap(), Waited::Stopping);
    }

    #[tokio::test]
    async fn a_write_another_process_made_is_read_from_the_store() {
        let (_dir, hub, device) = hub().await;
        // Nothing in the log yet: the polls find nothing.
        assert_eq!(device.team_head, 0);
        let got = hub.wait(
            &device,
            0,
            Duration::from_millis(300),
            Duration::from_millis(100),
            std::future::pending(),
        );
        assert_eq!(got.await.unwrap(), Waited::Timeout);
        // Another process appends (here: straight to the store, as it would through its hub).
        let append = crate::store::Append {
            base_head: 0,
            entries: vec![crate::store::Entry {
                doc: "team".into(),
                hash: vec![1; 32],
                actor: vec![2; 16],
                actor_seq: 1,
                device: device.id.clone(),
                data: vec![0],
                withdrawn_ms: None,
                kind: crate::store::Kind::Change,
            }],
            ..Default::default()
        };
        assert_eq!(hub.store.append(&device.team, &append).await.unwrap(), 1);
        let got = hub.wait(
            &device,
            0,
            Duration::from_secs(10),
            Duration::from_millis(100),
            std::future::pending(),
        );
        assert_eq!(got.await.unwrap(), Waited::News(1));
    }
}
