//! What the server allows, and the rate limits that hold it to that: every request's cost is
//! bounded before the server trusts the sender.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_core::change::Bounds;

/// Every limit of the server, with safe defaults; `cairn-server serve --help` names the flags.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request body read, in bytes.
    pub max_request_bytes: usize,
    /// The largest join body read, in bytes.
    pub max_join_bytes: usize,
    /// The most changes one sync may push.
    pub max_push_changes: usize,
    /// The most operations all changes of one sync may hold together.
    pub max_push_ops: u64,
    /// The size and decoding cost one change may have.
    pub change: Bounds,
    /// The most changes one sync response carries.
    pub max_page_changes: u32,
    /// The most change bytes one sync response carries (past its first change).
    pub max_page_bytes: usize,
    /// Open connections at most; past it a new connection gets a 503 and is closed.
    pub max_connections: usize,
    /// Open connections of one client address at most (trusted proxies aside).
    pub max_connections_per_address: usize,
    /// Request bodies held in memory at once, all requests together, in bytes.
    pub max_body_memory: usize,
    /// Active devices one member may have.
    pub max_devices_per_member: u32,
    /// Time to send a request's headers, and the most a kept-alive connection stays idle.
    pub header_timeout: Duration,
    /// Time to send a request's body.
    pub body_timeout: Duration,
    /// Requests doing heavy work (decoding, applying, the database) at once.
    pub max_heavy: usize,
    /// Heavy-work slots one member holds at most at once, all their devices together.
    pub max_member_heavy: usize,
    /// How long a request waits for a heavy-work slot before a 503.
    pub heavy_wait: Duration,
    /// Requests of one device in flight at once.
    pub max_device_in_flight: usize,
    /// Requests of one member in flight at once, all their devices together.
    pub max_member_in_flight: usize,
    /// Joins per client address: a burst, then one per `join.every`.
    pub join: Rate,
    /// Requests with a refused token per client address.
    pub bad_token: Rate,
    /// Syncs per device, and per member (all their devices together).
    pub sync: Rate,
    /// Link codes minted per device.
    pub link: Rate,
    /// Live link codes one device may hold.
    pub max_link_codes: u32,
    /// Peers whose `X-Forwarded-For` header names the client (a reverse proxy in front).
    pub trusted_proxies: Vec<IpAddr>,
    /// A device more than this many log entries behind is sent whole documents, when it can
    /// take them, instead of every change.
    pub catch_up_after: u64,
    /// Waits for news (`GET /v1/wait`) pending at once, all devices together; past it a 503.
    /// Each holds a connection: kept well under `max_connections`, syncs always find room.
    pub max_waiters: usize,
    /// Waits for news one device has pending at once; past it a 503.
    pub max_device_waiters: usize,
    /// How often the waiters of a team read its head from the database (one read per team,
    /// however many wait): the latest news from another server process sharing it.
    pub wait_poll: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 8 << 20,
            max_join_bytes: 16 << 10,
            max_push_changes: 10_000,
            max_push_ops: 400_000,
            change: Bounds::default(),
            max_page_changes: 5_000,
            max_page_bytes: 4 << 20,
            max_connections: 512,
            max_connections_per_address: 64,
            max_body_memory: 64 << 20,
            max_devices_per_member: 10,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_heavy: 16,
            max_member_heavy: 4,
            heavy_wait: Duration::from_secs(5),
            max_device_in_flight: 4,
            max_member_in_flight: 8,
            join: Rate::new(30, Duration::from_secs(2)),
            bad_token: Rate::new(20, Duration::from_millis(500)),
            sync: Rate::new(200, Duration::from_millis(10)),
            link: Rate::new(5, Duration::from_secs(60)),
            max_link_codes: 5,
            trusted_proxies: Vec::new(),
            catch_up_after: 1_000,
            max_waiters: 256,
            max_device_waiters: 2,
            wait_poll: Duration::from_secs(3),
        }
    }
}

/// A token bucket's shape: `burst` requests at once, then one more every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

impl Rate {
    pub const fn new(burst: u32, every: Duration) -> Rate {
        Rate { burst, every }
    }

    /// Parses `BURST/EVERY` as the flags take it: `30/2s`, `5/1m`, `200/10ms`; `off` for no limit.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(Rate::new(u32::MAX, Duration::ZERO));
        }
        let bad = || format!("`{text}` is not a rate like 30/2s, 5/1m or 200/10ms (or `off`)");
        let (burst, every) = text.split_once('/').ok_or_else(bad)?;
        let burst: u32 = burst.trim().parse().map_err(|_| bad())?;
        let every = parse_duration(every.trim()).ok_or_else(bad)?;
        if burst == 0 || every.is_zero() {
            return Err(bad());
        }
        Ok(Rate::new(burst, every))
    }
}

/// `250ms`, `10s`, `5m`, `1h` as a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Token buckets by key (a client address or a device), with a bounded number of keys: when
/// full, buckets that have refilled are dropped (they hold nothing a new bucket would not), and
/// if none has, new keys share one bucket, so spraying addresses cannot grow memory.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Rate,
    max_keys: usize,
    inner: Mutex<BucketsInner<K>>,
}

#[derive(Debug)]
struct BucketsInner<K> {
    map: HashMap<K, Bucket>,
    overflow: Bucket,
    /// When the map was last swept of refilled buckets (at most once a second: a sweep walks
    /// every key).
    swept: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        if rate.every.is_zero() {
            self.tokens = f64::from(rate.burst);
        } else {
            let gained = now.duration_since(self.at).as_secs_f64() / rate.every.as_secs_f64();
            self.tokens = (self.tokens + gained).min(f64::from(rate.burst));
        }
        self.at = now;
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(rate.every.mul_f64(1.0 - self.tokens))
        }
    }
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(rate: Rate, max_keys: usize) -> Buckets<K> {
        Buckets {
            rate,
            max_keys,
            inner: Mutex::new(BucketsInner {
                map: HashMap::new(),
                overflow: Bucket::full(rate, Instant::now()),
                swept: Instant::now(),
            }),
        }
    }

    /// Takes a token for `key`; when there is none, how long until there is.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        if self.rate.every.is_zero() {
            return Ok(());
        }
        let now = Instant::now();
        let rate = self.rate;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = inner.map.get_mut(key) {
            return b.take(rate, now);
        }
        if inner.map.len() >= self.max_keys && now.duration_since(inner.swept).as_secs() >= 1 {
            inner.swept = now;
            inner.map.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < f64::from(rate.burst)
            });
        }
        if inner.map.len() >= self.max_keys {
            return inner.overflow.take(rate, now);
        }
        let mut b = Bucket::full(rate, now);
        let out = b.take(rate, now);
        inner.map.insert(key.clone(), b);
        out
    }

    /// Only peeks: would `key` get a token now?
    pub fn would_refuse(&self, key: &K) -> Option<Duration> {
        if self.rate.every.is_zero() {
            return None;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rate = self.rate;
        let full = inner.map.len() >= self.max_keys;
        let b = match inner.map.get_mut(key) {
            Some(b) => b,
            // A key the map has no room for shares the overflow bucket.
            None if full => &mut inner.overflow,
            None => return None,
        };
        b.refill(rate, now);
        (b.tokens < 1.0).then(|| rate.every.mul_f64(1.0 - b.tokens))
    }
}

/// Counts requests in flight per key, refusing past a cap; a [`Slot`] gives its place back when
/// dropped.
#[derive(Debug)]
pub struct InFlight {
    max: usize,
    inner: std::sync::Arc<Mutex<HashMap<String, usize>>>,
}

/// One request's place in [`InFlight`].
#[derive(Debug)]
pub struct Slot {
    key: String,
    inner: std::sync::Arc<Mutex<HashMap<String, usize>>>,
}

impl InFlight {
    pub fn new(max: usize) -> InFlight {
        InFlight {
            max,
            inner: Default::default(),
        }
    }

    /// A place for one more request of `key`, unless it has `max` in flight already.
    pub fn enter(&self, key: &str) -> Option<Slot> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.to_owned()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            key: key.to_owned(),
            inner: self.inner.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Heavy-work slots shared fairly. While one is free nobody waits; when they are all taken, a
/// slot that frees goes to the waiting team that holds the fewest, and within it to the waiting
/// member who holds the fewest (ties in turn), so one member's flood waits behind every
/// teammate's single request instead of in front of it. No member holds more than `per_member`
/// slots at once, whatever their devices.
#[derive(Debug)]
pub struct Fair {
    inner: Arc<Mutex<FairInner>>,
}

/// A (team, member) pair: whose work a slot does.
type Whose = (String, String);

type Waiters = std::collections::VecDeque<tokio::sync::oneshot::Sender<FairSlot>>;

#[derive(Debug, Default)]
struct FairInner {
    free: usize,
    per_member: usize,
    /// Slots held, by team: in all, and by member.
    held: HashMap<String, Held>,
    /// Teams with someone waiting, in turn.
    teams: Vec<String>,
    waiting: HashMap<String, TeamQueue>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    members: HashMap<String, usize>,
}

/// One team's waiting members, in turn, and each one's requests in order.
#[derive(Debug, Default)]
struct TeamQueue {
    members: Vec<String>,
    requests: HashMap<String, Waiters>,
}

/// One heavy-work slot, given back (to whoever's turn it is) when dropped.
#[derive(Debug)]
pub struct FairSlot {
    whose: Whose,
    inner: Arc<Mutex<FairInner>>,
    /// False for a slot that never reached its request (nothing to give back).
    armed: bool,
}

impl Fair {
    /// `slots` slots, `per_member` of them at most to one member at once.
    pub fn new(slots: usize, per_member: usize) -> Fair {
        Fair {
            inner: Arc::new(Mutex::new(FairInner {
                free: slots,
                per_member: per_member.max(1),
                ..FairInner::default()
            })),
        }
    }

    /// A slot for work of `member` of `team`, waiting at most `wait` for one.
    pub async fn acquire(&self, team: &str, member: &str, wait: Duration) -> Option<FairSlot> {
        let ready = {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if g.free > 0 && g.held_by(team, member) < g.per_member {
                g.take(team, member);
                Ok(FairSlot {
                    whose: (team.to_owned(), member.to_owned()),
                    inner: self.inner.clone(),
                    armed: true,
                })
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let g = &mut *g;
                if !g.waiting.contains_key(team) {
                    g.teams.push(team.to_owned());
                }
                let queue = g.waiting.entry(team.to_owned()).or_default();
                if !queue.requests.contains_key(member) {
                    queue.members.push(member.to_owned());
                }
                queue
                    .requests
                    .entry(member.to_owned())
                    .or_default()
                    .push_back(tx);
                Err(rx)
            }
        };
        match ready {
            Ok(slot) => Some(slot),
            // A slot sent just as the wait runs out is dropped with the receiver: it goes back.
            Err(rx) => tokio::time::timeout(wait, rx).await.ok()?.ok(),
        }
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).free
    }

    /// Requests waiting now (those that gave up included, until a slot passes them by).
    pub fn waiting(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.waiting
            .values()
            .flat_map(|q| q.requests.values())
            .map(|r| r.len())
            .sum()
    }
}

impl FairInner {
    fn held_by(&self, team: &str, member: &str) -> usize {
        self.held
            .get(team)
            .and_then(|h| h.members.get(member))
            .copied()
            .unwrap_or(0)
    }

    fn take(&mut self, team: &str, member: &str) {
        self.free -= 1;
        let held = self.held.entry(team.to_owned()).or_default();
        held.total += 1;
        *held.members.entry(member.to_owned()).or_default() += 1;
    }

    fn give_back(&mut self, team: &str, member: &str) {
        self.free += 1;
        let Some(held) = self.held.get_mut(team) else {
            return;
        };
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.members.get_mut(member) {
            *n -= 1;
            if *n == 0 {
                held.members.remove(member);
            }
        }
        if held.total == 0 {
            self.held.remove(team);
        }
    }

    /// Gives free slots to waiting requests: to the team holding fewest, the member of it
    /// holding fewest (ties in turn), a member at their cap passed over; the one served goes
    /// last in turn, in its team and among teams. Requests that gave up are dropped on the way.
    fn dispatch(&mut self, inner: &Arc<Mutex<FairInner>>) {
        while self.free > 0 {
            let mut best: Option<(usize, usize, (usize, usize))> = None;
            for (ti, team) in self.teams.iter().enumerate() {
                let Some(queue) = self.waiting.get(team) else {
                    continue;
                };
                let held = self.held.get(team);
                let team_held = held.map_or(0, |h| h.total);
                if best.is_some_and(|(_, _, (t, _))| t < team_held) {
                    continue;
                }
                for (mi, member) in queue.members.iter().enumerate() {
                    let n = held
                        .and_then(|h| h.members.get(member))
                        .copied()
                        .unwrap_or(0);
                    if n >= self.per_member {
                        continue;
                    }
                    if best.is_none_or(|(_, _, r)| (team_held, n) < r) {
                        best = Some((ti, mi, (team_held, n)));
                    }
                }
            }
            let Some((ti, mi, _)) = best else {
                return;
            };
            let team = self.teams.remove(ti);
            let queue = self.waiting.get_mut(&team).expect("a team in turn waits");
            let member = queue.members.remove(mi);
            let requests = queue
                .requests
                .get_mut(&member)
                .expect("a member in turn waits");
            let mut given = false;
            while let Some(tx) = requests.pop_front() {
                if tx.is_closed() {
                    continue;
                }
                let slot = FairSlot {
                    whose: (team.clone(), member.clone()),
                    inner: inner.clone(),
                    armed: true,
                };
                match tx.send(slot) {
                    Ok(()) => {
                        given = true;
                        break;
                    }
                    // Gone as it was sent: never taken, nothing to give back.
                    Err(mut slot) => slot.armed = false,
                }
            }
            if requests.is_empty() {
                queue.requests.remove(&member);
            } else {
                queue.members.push(member.clone());
            }
            if queue.members.is_empty() {
                self.waiting.remove(&team);
            } else {
                self.teams.push(team.clone());
            }
            if given {
                self.take(&team, &member);
            }
        }
    }
}

impl Drop for FairSlot {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let inner = self.inner.clone();
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        g.give_back(&self.whose.0, &self.whose.1);
        g.dispatch(&inner);
    }
}

/// The key rate limits use for a client address: the address itself, or its /64 for IPv6,
/// where one host holds a whole /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A limit on log lines: a burst, then one per `every`; what it holds back is counted and said
/// with the next line let through, so a flood of refusals cannot flood the log.
#[derive(Debug)]
pub struct LogBudget {
    bucket: Buckets<()>,
    held: std::sync::atomic::AtomicU64,
}

impl LogBudget {
    pub fn new(rate: Rate) -> LogBudget {
        LogBudget {
            bucket: Buckets::new(rate, 1),
            held: Default::default(),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were held back before it.
    pub fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        match self.bucket.take(&()) {
            Ok(()) => Some(self.held.swap(0, Relaxed)),
            Err(_) => {
                self.held.fetch_add(1, Relaxed);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_refuse_nonsense() {
        assert_eq!(
            Rate::parse("30/2s").unwrap(),
            Rate::new(30, Duration::from_secs(2))
        );
        assert_eq!(
            Rate::parse("200/10ms").unwrap(),
            Rate::new(200, Duration::from_millis(10))
        );
        assert!(Rate::parse("off").unwrap().every.is_zero());
        for bad in ["", "30", "0/1s", "5/0s", "x/1s", "5/1y", "5/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_gives_its_burst_then_says_when() {
        let b = Buckets::new(Rate::new(3, Duration::from_secs(60)), 10);
        for _ in 0..3 {
            assert!(b.take(&1).is_ok());
        }
        let wait = b.take(&1).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(b.take(&2).is_ok(), "another key has its own bucket");
    }

    #[test]
    fn sprayed_keys_share_one_bucket_past_the_cap() {
        let b = Buckets::new(Rate::new(2, Duration::from_secs(60)), 4);
        for k in 0..4 {
            assert!(b.take(&k).is_ok());
        }
        // The map is full of half-used buckets: new keys share the overflow bucket.
        assert!(b.take(&100).is_ok());
        assert!(b.take(&101).is_ok());
        assert!(b.take(&102).is_err());
        assert!(
            b.would_refuse(&103).is_some(),
            "a peek sees the shared bucket too"
        );
        assert_eq!(b.inner.lock().unwrap().map.len(), 4);
    }

    #[test]
    fn in_flight_slots_come_back() {
        let f = InFlight::new(2);
        let a = f.enter("d").unwrap();
        let _b = f.enter("d").unwrap();
        assert!(f.enter("d").is_none());
        drop(a);
        assert!(f.enter("d").is_some());
    }

    /// Lets spawned tasks run until `fair` has `n` requests waiting.
    async fn until_waiting(fair: &Fair, n: usize) {
        while fair.waiting() != n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_member_holding_fewest_not_the_busiest() {
        let fair = Arc::new(Fair::new(2, 2));
        let wait = Duration::from_secs(30);
        let m1 = fair.acquire("t", "mallory", wait).await.unwrap();
        let _m2 = fair.acquire("t", "mallory", wait).await.unwrap();
        // Mallory queues ten more, then Ana one, then Bo of another team one.
        let (got, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (i, (team, who)) in std::iter::repeat_n(("t", "mallory"), 10)
            .chain([("t", "ana"), ("u", "bo")])
            .enumerate()
        {
            let (shared, got) = (fair.clone(), got.clone());
            tasks.push(tokio::spawn(async move {
                let slot = shared.acquire(team, who, wait).await.unwrap();
                got.send(who).unwrap();
                slot
            }));
            until_waiting(&fair, i + 1).await;
        }
        // A slot frees: Bo's team holds none, so his request goes first; then Ana's, who holds
        // none in a team that holds one; then Mallory's, one at a time.
        drop(m1);
        assert_eq!(order.recv().await.unwrap(), "bo");
        drop(tasks.pop().unwrap().await.unwrap());
        assert_eq!(order.recv().await.unwrap(), "ana");
        drop(tasks.pop().unwrap().await.unwrap());
        assert_eq!(order.recv().await.unwrap(), "mallory");
        assert_eq!((fair.free(), fair.waiting()), (0, 9));
        // At their cap, Mallory's requests wait even with a slot free.
        let other = Fair::new(3, 2);
        let _a = other.acquire("t", "mallory", wait).await.unwrap();
        let _b = other.acquire("t", "mallory", wait).await.unwrap();
        assert!(
            other
                .acquire("t", "mallory", Duration::ZERO)
                .await
                .is_none()
        );
        assert_eq!(other.free(), 1);
        assert!(other.acquire("t", "ana", Duration::ZERO).await.is_some());
    }

    #[tokio::test]
    async fn a_slot_nobody_waits_for_any_more_comes_back() {
        let fair = Fair::new(1, 1);
        let held = fair
            .acquire("t", "ana", Duration::from_secs(30))
            .await
            .unwrap();
        assert!(
            fair.acquire("t", "bo", Duration::from_millis(1))
                .await
                .is_none()
        );
        drop(held);
        assert_eq!(fair.free(), 1);
        assert_eq!(fair.waiting(), 0);
        assert!(fair.acquire("t", "bo", Duration::ZERO).await.is_some());
        assert_eq!(fair.free(), 1);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let v4: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(v4), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
