//! What the server allows, and the rate limits that hold it to that: every request's cost is
//! bounded before the server trusts the sender.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
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
    /// How long a request waits for a heavy-work slot before a 503.
    pub heavy_wait: Duration,
    /// Requests of one device in flight at once.
    pub max_device_in_flight: usize,
    /// Joins per client address: a burst, then one per `join.every`.
    pub join: Rate,
    /// Requests with a refused token per client address.
    pub bad_token: Rate,
    /// Syncs per device.
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
            heavy_wait: Duration::from_secs(5),
            max_device_in_flight: 4,
            join: Rate::new(30, Duration::from_secs(2)),
            bad_token: Rate::new(20, Duration::from_millis(500)),
            sync: Rate::new(200, Duration::from_millis(10)),
            link: Rate::new(5, Duration::from_secs(60)),
            max_link_codes: 5,
            trusted_proxies: Vec::new(),
            catch_up_after: 1_000,
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

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let v4: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(v4), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
