//! One pass of the relay: bring the replica up to date, take in what is new, deliver what is due.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, mpsc};
use std::time::Duration;

use cairn_client::sync::{self, Client, Device, Join, Options};
use cairn_core::feed::FeedQuery;
use cairn_protocol::{DeviceKind, JoinRequest};
use cairn_store::Replica;
use serde::Serialize;

use crate::config::{Config, Part};
use crate::deliver::{self, Report};
use crate::post::{Post, PostKind};
use crate::queue::{Arrival, Queue, Taken};
use crate::{Error, Result};

/// The environment variable that sets the relay's clock, for tests: an RFC 3339 instant
/// (`2026-11-30T09:00:00Z`) the clock reads at the process's start, running on from there.
pub const CLOCK_ENV: &str = "CAIRN_RELAY_NOW";

/// How far the relay's clock is from the system's: zero unless [`CLOCK_ENV`] sets it.
fn clock_offset() -> &'static std::result::Result<i64, String> {
    static OFFSET: std::sync::OnceLock<std::result::Result<i64, String>> =
        std::sync::OnceLock::new();
    OFFSET.get_or_init(|| match std::env::var(CLOCK_ENV) {
        Err(_) => Ok(0),
        Ok(v) => v
            .trim()
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond() - jiff::Timestamp::now().as_millisecond())
            .map_err(|_| format!("{CLOCK_ENV}: {v:?} is not an instant like 2026-11-30T09:00:00Z")),
    })
}

/// Whether the relay's clock can be read: [`CLOCK_ENV`], when set, is an instant.
pub fn check_clock() -> Result<()> {
    clock_offset()
        .as_ref()
        .map(|_| ())
        .map_err(|e| Error::Config(e.clone()))
}

/// The relay's clock, in UTC milliseconds: what the look at the replica (late arrivals,
/// celebrations, the first start) and the weekly digest go by. The system's, unless
/// [`CLOCK_ENV`] moves it (for tests; deliveries and signatures keep the system's).
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond() + clock_offset().as_ref().copied().unwrap_or(0)
}

/// How long one wait for news lasts at most: the server's own cap, so an idle relay asks it
/// once a minute.
pub const WAIT_S: u64 = cairn_protocol::MAX_WAIT_S;

/// How long the relay waits for a silent server before it gives up on a request.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Brings the relay's replica up to date with the team's server: the one step the run loop
/// takes before it reads the replica. A pull-only sync through the client library (a relay
/// never writes); a replica with no server (kept up to date by whoever else syncs it) is read
/// as it is.
pub fn bring_replica_up_to_date(cfg: &Config) -> Result<()> {
    let Some(mut device) = device(cfg)? else {
        return Ok(());
    };
    let options = Options {
        pull_only: true,
        ..Options::ASKED
    };
    device.sync(
        jiff::Timestamp::now().as_millisecond(),
        options,
        &mut |_| {},
    )?;
    Ok(())
}

/// The relay's device on its server: `None` when the replica has no server (or is not there
/// yet: the look at the replica says so).
fn device(cfg: &Config) -> Result<Option<Device>> {
    if !cfg.replica.exists() {
        return Ok(None);
    }
    if Replica::open(&cfg.replica)?.remote()?.is_none() {
        return Ok(None);
    }
    Ok(Some(Device::open(&cfg.replica, SYNC_TIMEOUT)?))
}

/// Joins the team at `url` with a relay's invite (`cairn-server invite create --team T
/// --relay`): a read-only device, no member, whose replica goes where the config says. The
/// first pull brings the team; returns its name.
pub fn join(cfg: &Config, url: &str, invite: &str, device_name: &str) -> Result<String> {
    if cfg.replica.exists() {
        return Err(Error::Joined(cfg.replica.clone()));
    }
    if let Some(dir) = cfg.replica.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            what: format!("cannot create {}", dir.display()),
            source: e,
        })?;
    }
    let url = sync::normalise_url(url)?;
    let join = Join {
        request: JoinRequest {
            invite: invite.trim().to_owned(),
            device_name: device_name.to_owned(),
            device_kind: DeviceKind::Relay,
            ..JoinRequest::default()
        },
        ..Join::default()
    };
    let options = Options {
        pull_only: true,
        ..Options::ASKED
    };
    let joined = sync::join(
        &Client::new(&url, None, SYNC_TIMEOUT),
        &join,
        &cfg.replica,
        jiff::Timestamp::now().as_millisecond(),
        options,
        &mut |_| {},
    )?;
    if joined.response.device_kind != DeviceKind::Relay {
        return Err(Error::Config(
            "the server took this invite for a member's device, not a relay's".into(),
        ));
    }
    Ok(joined.replica.team()?.name)
}

/// What wakes the run loop.
#[derive(Debug)]
enum Msg {
    News(News),
    /// The server has news: sync, look, then answer on the waiter's channel.
    Wake,
}

/// Waits for news at the server, one request at a time (at most [`WAIT_S`] each: an idle relay
/// asks once a minute), and wakes the loop when some comes; waits for the loop's answer
/// before it asks again, so it asks after the cursor the sync moved. Leaves `waiting` false
/// (the loop then syncs at each look) when the replica has no server or the server cannot
/// wait (a version before `/v1/wait`).
fn waiter(cfg: &Config, waiting: &AtomicBool, tx: mpsc::Sender<Msg>, synced: mpsc::Receiver<()>) {
    let mut device = None;
    let mut failures = 0u32;
    loop {
        if device.is_none() {
            match self::device(cfg) {
                Ok(Some(d)) => device = Some(d),
                // No server (yet): the loop's looks do the work; try again later.
                Ok(None) | Err(_) => {
                    waiting.store(false, Ordering::SeqCst);
                    std::thread::sleep(cfg.poll_interval);
                    continue;
                }
            }
        }
        let Some(d) = &device else { continue };
        let after = d.replica.cursor().unwrap_or(0);
        match d.wait(WAIT_S) {
            Ok(Some(head)) => {
                failures = 0;
                waiting.store(true, Ordering::SeqCst);
                if tx.send(Msg::Wake).is_err() || synced.recv().is_err() {
                    return;
                }
                // A log behind this replica (a server restored from a backup) answers every
                // wait at once: the sync just woken says what happened; ask again a look later
                // rather than at once, over and over.
                if head <= after {
                    std::thread::sleep(cfg.poll_interval);
                }
            }
            Ok(None) => {
                failures = 0;
                waiting.store(true, Ordering::SeqCst);
            }
            Err(e) => {
                waiting.store(false, Ordering::SeqCst);
                // A server too old to wait: the loop's looks sync instead, for good.
                if e.refusal().is_some_and(|r| r.status == 404) {
                    return;
                }
                failures += 1;
                if failures == 1 && tx.send(Msg::News(News::Failed(e.into()))).is_err() {
                    return;
                }
                // The loop syncs at each look while this cannot wait; ask again after one.
                std::thread::sleep(cfg.poll_interval);
                device = None;
            }
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassReport {
    /// At the first start: how many events were history (seen, never posted).
    pub history: Option<usize>,
    pub taken: Taken,
    /// The digests queued: (destination, the Monday of the week each sums up).
    pub digests: Vec<(String, String)>,
    pub deliveries: Vec<Report>,
}

/// What the running relay tells its caller.
#[derive(Debug)]
pub enum News {
    /// A look at the replica took in something (or, at the first start, recorded history).
    Taken {
        history: Option<usize>,
        taken: Taken,
    },
    /// A destination's worker delivered, failed, or found its destination disabled.
    Delivered(Report),
    /// The weekly digest of the week starting `week` was queued for `destination`.
    Digest {
        destination: String,
        week: jiff::civil::Date,
    },
    /// A step failed; the relay goes on and tries again.
    Failed(Error),
}

/// Wakes the delivery workers when something is queued.
#[derive(Debug, Default)]
struct Bell {
    rung: Mutex<u64>,
    wake: Condvar,
}

impl Bell {
    fn ring(&self) {
        let mut n = self.rung.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        self.wake.notify_all();
    }

    fn count(&self) -> u64 {
        *self.rung.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the bell rings after `seen` rings, or `limit` passes.
    fn wait(&self, seen: u64, limit: Duration) {
        let n = self.rung.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.wake.wait_timeout_while(n, limit, |n| *n == seen);
    }
}

/// A destination's worker in a running relay: delivers, then sleeps until its next message is
/// due, something new is queued, or `poll` passes.
fn worker(
    cfg: &Config,
    dest: &crate::config::Destination,
    queue_path: &Path,
    bell: &Bell,
    news: mpsc::Sender<Msg>,
) {
    let agent = deliver::agent(cfg);
    let poll = cfg.poll_interval;
    loop {
        let seen = bell.count();
        let wait = match deliver::work(cfg, dest, &agent, queue_path, poll) {
            Ok(report) => {
                let next = report.next_ms;
                let worth = report.posted + report.failed > 0
                    || report.error.is_some()
                    || (report.disabled.is_some() && report.failed > 0);
                if worth && news.send(Msg::News(News::Delivered(report))).is_err() {
                    return;
                }
                let now = jiff::Timestamp::now().as_millisecond();
                next.map_or(poll, |at| {
                    Duration::from_millis(at.saturating_sub(now).max(0) as u64).min(poll)
                })
            }
            Err(e) => {
                if news.send(Msg::News(News::Failed(e))).is_err() {
                    return;
                }
                poll
            }
        };
        bell.wait(seen, wait);
    }
}

/// A running relay: its config, its queue (held by this process alone) and its replica.
#[derive(Debug)]
pub struct Relay {
    cfg: Config,
    queue: Queue,
    queue_path: PathBuf,
    /// Held while the relay runs: a second relay on the same home would send twice.
    _lock: File,
    replica: Option<Replica>,
    /// The replica's `data_version` when it was last read: unchanged, nothing new arrived.
    read_version: Option<i64>,
    /// The keys of every event taken in so far.
    seen: Option<HashSet<String>>,
    recovered: (usize, usize),
}

/// The queue's file in a home.
pub fn queue_path(home: &Path) -> PathBuf {
    home.join("relay.sqlite3")
}

/// The event's key in the queue: its id and author (two members' events may share an id), the
/// author as the member a merged placeholder counts for (as the feed names them).
pub fn event_key(e: &cairn_core::Event, team: &cairn_core::TeamState) -> String {
    format!("{}/{}", e.id.as_str(), team.canonical(&e.author))
}

/// The most waiting events a look brings in line with the replica (edits, retractions).
const MAX_REVISED: usize = 1_000;

/// How far past the cutoff of `late_after` the newest-first read goes on (authors' clocks
/// differ).
const WINDOW_MARGIN_MS: i64 = 3_600_000;

/// The least time between two reads of the whole history in `run` (to find events that
/// arrived late; `run --once` reads it whenever the count of events asks).
pub const FULL_READ_EVERY: Duration = Duration::from_secs(600);

/// The milestones of a weekly team streak, in weeks.
const WEEKLY_MILESTONES: [u32; 9] = [4, 8, 12, 26, 52, 78, 104, 156, 208];
/// The milestones of a daily team streak, in days.
const DAILY_MILESTONES: [u32; 7] = [5, 10, 20, 50, 100, 200, 365];

/// The celebrations the team has earned by `now_ms`, each keyed so it is posted once: each
/// running challenge it reached, and the team streak on the period it reaches a milestone.
fn celebrations(
    replica: &Replica,
    team: &cairn_core::TeamState,
    now_ms: i64,
) -> Result<Vec<Arrival>> {
    use cairn_core::rules::{self, Cadence};
    let Some(today) = cairn_core::time::local_date(now_ms, &team.tz)
        .or_else(|| cairn_core::time::local_date(now_ms, "UTC"))
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if team.challenges.iter().any(|c| c.until >= today) {
        let acts = replica.acts()?;
        for c in &team.challenges {
            let p = cairn_core::goals::progress(&acts, c, today);
            if p.done && !p.ended {
                out.push(Arrival {
                    key: format!("challenge:{}", c.id),
                    at_ms: now_ms,
                    post: Some(Post::challenge_reached(team, c, p.value, now_ms)),
                });
            }
        }
    }
    let (activity, milestones, unit): (_, &[u32], _) = match team.rules.cadence {
        Cadence::Weekly => (replica.activity_by_week()?, &WEEKLY_MILESTONES, "weeks"),
        Cadence::Daily => (replica.activity()?, &DAILY_MILESTONES, "days"),
    };
    let streak = rules::team_streak(&activity, &team.tenures(), today, &team.rules);
    if milestones.contains(&streak.current) {
        // The periods that counted before this run of the streak began: the same for the
        // whole run, so a milestone is posted once per run.
        let now_counts = u32::from(streak.active_now >= streak.needed_now);
        let before = (streak.counted + now_counts).saturating_sub(streak.current);
        out.push(Arrival {
            key: format!("streak:{before}:{}", streak.current),
            at_ms: now_ms,
            post: Some(Post::streak(team, streak.current, unit, now_ms)),
        });
    }
    Ok(out)
}

impl Relay {
    /// Starts a relay: takes the home's lock, opens the queue and settles what a previous
    /// process left in flight ([`Queue::recover`]).
    pub fn start(cfg: Config) -> Result<Relay> {
        std::fs::create_dir_all(&cfg.home).map_err(|e| Error::Io {
            what: format!("cannot create {}", cfg.home.display()),
            source: e,
        })?;
        let lock_path = cfg.home.join("relay.lock");
        let lock = File::create(&lock_path).map_err(|e| Error::Io {
            what: format!("cannot open {}", lock_path.display()),
            source: e,
        })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked(cfg.home.clone())),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::Io {
                    what: format!("cannot lock {}", lock_path.display()),
                    source: e,
                });
            }
        }
        let queue_path = queue_path(&cfg.home);
        let mut queue = Queue::open(&queue_path)?;
        let kinds: Vec<_> = cfg
            .destinations
            .iter()
            .map(|d| (d.name.clone(), d.kind))
            .collect();
        let recovered = queue.recover(&kinds)?;
        Ok(Relay {
            cfg,
            queue,
            queue_path,
            _lock: lock,
            replica: None,
            read_version: None,
            seen: None,
            recovered,
        })
    }

    /// What the start found left in flight: (sent again, in doubt).
    pub fn recovered(&self) -> (usize, usize) {
        self.recovered
    }

    /// The config the relay runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// One pass: the replica brought up to date, what is new taken in, what is due delivered
    /// (waiting for what comes due within `linger`).
    pub fn pass(&mut self, linger: Duration) -> Result<PassReport> {
        bring_replica_up_to_date(&self.cfg)?;
        let (history, taken) = self.take_in(Duration::ZERO)?;
        let digests = self
            .digests(now_ms())?
            .into_iter()
            .map(|(d, week)| (d, week.to_string()))
            .collect();
        let deliveries = deliver::deliver_all(&self.cfg, &self.queue_path, linger)?;
        Ok(PassReport {
            history,
            taken,
            digests,
            deliveries,
        })
    }

    /// Runs until the process ends: one worker thread per destination delivers on its own (a
    /// dead or slow destination holds back neither the others nor the look at the replica),
    /// while this thread brings the replica up to date and takes in what is new every
    /// `poll_interval`, waking the workers when something was queued. `news` hears of each
    /// step that did something.
    pub fn run(&mut self, mut news: impl FnMut(News)) {
        let bell = Bell::default();
        let (tx, rx) = mpsc::channel();
        let (synced_tx, synced_rx) = mpsc::channel();
        let waiting = AtomicBool::new(false);
        let cfg = self.cfg.clone();
        let queue_path = self.queue_path.clone();
        std::thread::scope(|s| {
            for d in &cfg.destinations {
                let tx = tx.clone();
                let (cfg, bell, queue_path) = (&cfg, &bell, &queue_path);
                s.spawn(move || worker(cfg, d, queue_path, bell, tx));
            }
            {
                let tx = tx.clone();
                let (cfg, waiting) = (&cfg, &waiting);
                s.spawn(move || waiter(cfg, waiting, tx, synced_rx));
            }
            drop(tx);
            // The first look syncs; later ones sync when the waiter hears of news, or at each
            // look while it cannot wait (no server to wait at, or one too old).
            let (mut sync_now, mut woken) = (true, false);
            loop {
                let step = if sync_now || !waiting.load(Ordering::SeqCst) {
                    bring_replica_up_to_date(&self.cfg)
                } else {
                    Ok(())
                }
                .and_then(|()| self.take_in(FULL_READ_EVERY));
                match step {
                    Ok((history, taken)) => {
                        if taken.queued > 0 {
                            bell.ring();
                        }
                        if history.is_some() || taken.new > 0 {
                            news(News::Taken { history, taken });
                        }
                    }
                    Err(e) => news(News::Failed(e)),
                }
                // Whether or not the replica changed: the digest goes by the clock.
                match self.digests(now_ms()) {
                    Ok(queued) => {
                        if !queued.is_empty() {
                            bell.ring();
                        }
                        for (destination, week) in queued {
                            news(News::Digest { destination, week });
                        }
                    }
                    Err(e) => news(News::Failed(e)),
                }
                if std::mem::take(&mut woken) {
                    // The waiter asks again after the cursor this sync moved.
                    let _ = synced_tx.send(());
                }
                sync_now = false;
                // Wakes for the next digest when it comes before the next look: no polling.
                let wait = match self.next_digest_ms() {
                    Some(at) => Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64)
                        .min(self.cfg.poll_interval),
                    None => self.cfg.poll_interval,
                };
                let until = std::time::Instant::now() + wait;
                loop {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(Msg::News(n)) => news(n),
                        Ok(Msg::Wake) => {
                            (sync_now, woken) = (true, true);
                            break;
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        // Every worker and the waiter ended: nothing left to deliver with.
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(left);
                        }
                    }
                }
            }
        })
    }

    /// The destinations that ask for the weekly digest.
    fn digest_destinations(&self) -> Vec<&crate::config::Destination> {
        self.cfg
            .destinations
            .iter()
            .filter(|d| d.parts.contains(&Part::Digest))
            .collect()
    }

    /// When the next weekly digest is due (the relay's clock), if a destination asks for one
    /// and the replica has been read.
    pub fn next_digest_ms(&self) -> Option<i64> {
        let replica = self.replica.as_ref()?;
        let tz = crate::digest::zone(&replica.team().ok()?.tz);
        let now = now_ms();
        self.digest_destinations()
            .iter()
            .filter_map(|d| d.digest.next_due(now, &tz))
            .map(|z| z.timestamp().as_millisecond())
            .min()
    }

    /// Queues each weekly digest due at `now` (the relay's clock) for each destination that
    /// asks for it and has not had it: once per (destination, week), keyed by the week. A
    /// digest whose time came in an earlier week is skipped, and one of a week that ended
    /// before the relay's first start is history ([`crate::digest::due`]). Returns the
    /// (destination, week) queued.
    pub fn digests(&mut self, now: i64) -> Result<Vec<(String, jiff::civil::Date)>> {
        use crate::digest::{self, DueState};
        let wanting: Vec<crate::config::Destination> =
            self.digest_destinations().into_iter().cloned().collect();
        if wanting.is_empty() {
            return Ok(Vec::new());
        }
        let (Some(started), Some(replica)) = (self.queue.started_ms()?, self.replica.as_ref())
        else {
            return Ok(Vec::new());
        };
        let team = replica.team()?;
        let tz = digest::zone(&team.tz);
        let mut built = std::collections::HashMap::new();
        let mut queued = Vec::new();
        for d in &wanting {
            let Some(due) = digest::due(&d.digest, &tz, now, started) else {
                continue;
            };
            let key = digest::key(due.week);
            if due.state != DueState::Now
                || self.queue.destination(&d.name)?.disabled_ms.is_some()
                || self.queue.delivery_state(&d.name, &key)?.is_some()
            {
                continue;
            }
            let (post, used) = match built.entry(due.week) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let end = digest::week_end_ms(due.week, &tz).unwrap_or(now);
                    let held = self.queue.held_for(&key, end)?;
                    v.insert(digest::build(replica, &team, due.week, now, &held)?)
                }
            };
            if self.queue.queue_digest(&d.name, &key, post, used, now)? {
                queued.push((d.name.clone(), due.week));
            }
        }
        Ok(queued)
    }

    /// Reads what is new in the replica into the queue. At the first start every event there
    /// is history: recorded as seen, never posted. The whole history is read again (to find
    /// late arrivals) when the count of events says something arrived that the read of recent
    /// events did not see, and the last whole read is `full_read_every` old.
    pub fn take_in(&mut self, full_read_every: Duration) -> Result<(Option<usize>, Taken)> {
        if self.replica.is_none() {
            if !self.cfg.replica.exists() {
                return Err(Error::NoReplica(self.cfg.replica.clone()));
            }
            self.replica = Some(Replica::open(&self.cfg.replica)?);
        }
        let Some(replica) = self.replica.as_ref() else {
            return Err(Error::NoReplica(self.cfg.replica.clone()));
        };
        // Read before the events, so a commit during the read is seen by the next pass.
        let version = replica.data_version()?;
        if self.read_version == Some(version) {
            return Ok((None, Taken::default()));
        }
        let now = now_ms();
        let wants_celebrations = self
            .cfg
            .destinations
            .iter()
            .any(|d| d.parts.contains(&Part::Celebrations));
        if !self.queue.started()? {
            let team = replica.team()?;
            let mut keys = Vec::new();
            replica.for_each_event(|e| {
                keys.push((event_key(&e, &team), e.at_ms));
                Ok(())
            })?;
            let total = replica.stats()?.events;
            // Challenges reached before the first start are history too.
            if wants_celebrations {
                keys.extend(
                    celebrations(replica, &team, now)?
                        .into_iter()
                        .map(|a| (a.key, a.at_ms)),
                );
            }
            let n = keys.len();
            self.queue.record_history(&keys, now)?;
            self.queue.set_last_full_read(total, now)?;
            self.seen = Some(keys.into_iter().map(|(k, _)| k).collect());
            self.read_version = Some(version);
            return Ok((Some(n), Taken::default()));
        }
        let team = replica.team()?;
        // Events that can still be posted are recent: read newest first from the feed, a scan
        // bounded by what happened within `late_after`, whatever the length of the history.
        let cutoff = now - self.cfg.late_after.as_millis() as i64;
        let mut arrivals = Vec::new();
        let mut query = FeedQuery {
            limit: Some(200),
            ..FeedQuery::default()
        };
        'pages: loop {
            let page = replica.feed_page(&query)?;
            for item in &page.items {
                let e = &item.event;
                // Ids sort by their authors' clocks: read on a while past the cutoff.
                if e.at_ms < cutoff - WINDOW_MARGIN_MS {
                    break 'pages;
                }
                let key = event_key(e, &team);
                if e.at_ms >= cutoff && !self.queue.is_seen(&key)? {
                    arrivals.push(Arrival {
                        post: Post::of_event(e, &team),
                        at_ms: e.at_ms,
                        key,
                    });
                }
            }
            match page.next_before() {
                Some(before) if page.more => query.before = Some(before.clone()),
                _ => break,
            }
        }
        // What that cannot see (an event that arrived after `late_after`, to hold for the
        // digest) shows in the count of events: when it differs from the last whole read, the
        // whole history is read again, at most every `FULL_READ_EVERY`.
        let total = replica.stats()?.events;
        let (accounted, last_ms) = self.queue.last_full_read()?;
        // The events read since are accounted for.
        let accounted = accounted.map(|n| n + arrivals.len() as i64);
        // What to note of this read once what it found is in the queue.
        let mut read = None;
        if accounted != Some(total)
            && last_ms.is_none_or(|t| now - t >= full_read_every.as_millis() as i64)
        {
            if self.seen.is_none() {
                self.seen = Some(self.queue.seen_keys()?);
            }
            let seen = self.seen.get_or_insert_with(HashSet::new);
            let fresh: HashSet<String> = arrivals.iter().map(|a| a.key.clone()).collect();
            replica.for_each_event(|e| {
                let key = event_key(&e, &team);
                if !seen.contains(&key) && !fresh.contains(&key) {
                    arrivals.push(Arrival {
                        post: Post::of_event(&e, &team),
                        at_ms: e.at_ms,
                        key,
                    });
                }
                Ok(())
            })?;
            read = Some((total, now));
        } else if let (Some(n), Some(at)) = (accounted, last_ms) {
            read = Some((n, at));
        }
        // Posted in the order they happened (ids sort by time; the feed reads newest first).
        arrivals.sort_by(|a, b| a.key.cmp(&b.key));
        if wants_celebrations {
            for a in celebrations(replica, &team, now)? {
                if !self.queue.is_seen(&a.key)? {
                    arrivals.push(a);
                }
            }
        }
        // What waits to be posted is posted as it now reads: an edit shows, a retraction or a
        // withdrawal before it went takes it off the queue.
        for key in self.queue.waiting_events(MAX_REVISED)? {
            let Some((id, author)) = key.split_once('/') else {
                continue;
            };
            let post = match replica.resolve(id, author) {
                Ok(e) => Post::of_event(&e, &team),
                Err(cairn_store::Error::NoSuchEvent(_)) => None,
                Err(e) => return Err(e.into()),
            };
            self.queue.revise(
                &key,
                post.as_ref(),
                "retracted or withdrawn before it was posted",
            )?;
        }
        let mut targets = Vec::new();
        for d in &self.cfg.destinations {
            if self.queue.destination(&d.name)?.disabled_ms.is_some() {
                continue;
            }
            let kinds: Vec<PostKind> = d
                .parts
                .iter()
                .map(|p| match p {
                    Part::Recognitions => PostKind::Recognition,
                    Part::MicroActions => PostKind::MicroAction,
                    Part::TeamNotes => PostKind::TeamNote,
                    Part::Celebrations => PostKind::Celebration,
                    Part::Digest => PostKind::Digest,
                })
                .collect();
            targets.push((d.name.clone(), kinds));
        }
        let taken = self
            .queue
            .take_in(&arrivals, &targets, self.cfg.late_after, now)?;
        if let Some((events, at)) = read {
            self.queue.set_last_full_read(events, at)?;
        }
        if let Some(seen) = self.seen.as_mut() {
            seen.extend(arrivals.into_iter().map(|a| a.key));
        }
        self.read_version = Some(version);
        Ok((None, taken))
    }
}
