//! The documents as the server holds them: every pushed change is applied to its document before
//! it is stored, so nothing stored can stop a replica. Recently used documents stay in memory,
//! each with the number of the last log entry folded into it; a document is taken out of the
//! cache while a request works on it and put back only after its changes are committed, so a
//! failed request never leaves a document ahead of the log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::Result;
use crate::store::Store;
use automerge::{Automerge, Change, ReadDoc as _};
use cairn_core::change;

/// A document and how far into the team's log it is.
#[derive(Debug)]
pub struct Loaded {
    pub doc: Automerge,
    /// The last log entry of this document folded into `doc`.
    pub seq: i64,
    /// How many of the team's changes had been withdrawn when it was loaded: a withdrawal (by
    /// the admin command, in another process) makes it stale.
    pub withdrawals: i64,
    /// Whether this request applied a change to it (then it goes back only after a commit).
    pub dirty: bool,
    /// Changes folded in since its last snapshot was kept (or since it was loaded without one),
    /// and their bytes.
    pub since_snapshot: usize,
    pub tail_bytes: usize,
    /// The size of the snapshot it was loaded from or last kept (0: none).
    pub snapshot_bytes: usize,
    /// When it was first read from storage.
    pub read_at: std::time::Instant,
}

/// A document's snapshot is kept again when more than this many changes came after it...
pub const SNAPSHOT_AFTER_CHANGES: usize = 1;
/// ...and their bytes are at least this share of the snapshot's (1/8): a device far behind
/// then downloads at most an eighth more than the document's compacted size, and each byte
/// pushed costs at most eight bytes of saving, whatever the document's size.
pub const SNAPSHOT_TAIL_SHARE: usize = 8;

/// Whether a document with a snapshot of `snapshot_bytes` and a tail of `changes` changes of
/// `bytes` after it should be compacted into a new snapshot.
pub fn snapshot_due(changes: usize, bytes: usize, snapshot_bytes: usize) -> bool {
    changes > SNAPSHOT_AFTER_CHANGES && bytes.saturating_mul(SNAPSHOT_TAIL_SHARE) >= snapshot_bytes
}

impl Loaded {
    fn empty(withdrawals: i64) -> Loaded {
        Loaded {
            doc: Automerge::new(),
            seq: 0,
            withdrawals,
            dirty: false,
            since_snapshot: 0,
            tail_bytes: 0,
            snapshot_bytes: 0,
            read_at: std::time::Instant::now(),
        }
    }

    /// Whether its snapshot is due.
    pub fn snapshot_due(&self) -> bool {
        snapshot_due(self.since_snapshot, self.tail_bytes, self.snapshot_bytes)
    }

    /// Notes a change folded in.
    pub fn folded(&mut self, bytes: usize) {
        self.since_snapshot += 1;
        self.tail_bytes += bytes;
    }

    /// Notes that a snapshot of `bytes` was kept as of its present state.
    pub fn kept(&mut self, bytes: usize) {
        self.since_snapshot = 0;
        self.tail_bytes = 0;
        self.snapshot_bytes = bytes;
    }

    /// Folds in the document's log entries after `self.seq` (read from `store`, applied on the
    /// blocking pool). A stored change that does not apply (stored by a server before it applied
    /// changes) is skipped and logged: withdraw it with `cairn-server change withdraw`.
    pub async fn catch_up(self, store: &dyn Store, team: &str, doc: &str) -> Result<Loaded> {
        let loaded = self.start_from_snapshot(store, team, doc).await?;
        let rows = store.doc_changes(team, doc, loaded.seq).await?;
        if rows.is_empty() {
            return Ok(loaded);
        }
        let (team, doc) = (team.to_owned(), doc.to_owned());
        tokio::task::spawn_blocking(move || loaded.fold(&team, &doc, rows))
            .await
            .map_err(|e| crate::Error::Internal(format!("a worker failed: {e}")))
    }

    /// A document not loaded yet (`seq` 0) starts from its snapshot, when it has one; the log
    /// after it is then all that is left to fold in.
    pub async fn start_from_snapshot(
        mut self,
        store: &dyn Store,
        team: &str,
        doc: &str,
    ) -> Result<Loaded> {
        if self.seq == 0
            && let Some((seq, data)) = store.snapshot(team, doc).await?
        {
            // Loaded from its snapshot, then only the tail after it. A snapshot that does not
            // load is passed over (the log has everything), and said.
            let size = data.len();
            let loaded = tokio::task::spawn_blocking(move || {
                change::quietly(|| Automerge::load(&data))
                    .map_err(str::to_owned)
                    .and_then(|r| r.map_err(|e| e.to_string()))
            })
            .await
            .map_err(|e| crate::Error::Internal(format!("a worker failed: {e}")))?;
            match loaded {
                Ok(doc_state) => {
                    self.doc = doc_state;
                    self.seq = seq;
                    self.kept(size);
                }
                Err(e) => {
                    // The log has everything only if nothing of it was pruned.
                    if store.team_log(team).await?.pruned > 0 {
                        tracing::error!(team, doc = ?doc, seq, error = %e,
                            "a snapshot does not load and the log was pruned; restore a backup");
                        return Err(crate::Error::Internal(format!(
                            "the snapshot of {doc} does not load"
                        )));
                    }
                    tracing::error!(team, doc = ?doc, seq, error = %e,
                        "a snapshot does not load; replaying the log instead");
                }
            }
        }
        Ok(self)
    }

    /// Folds in `rows`, the document's log entries after `self.seq` in log order (on the
    /// caller's thread: call it on the blocking pool).
    pub fn fold(mut self, team: &str, doc: &str, rows: Vec<(i64, Vec<u8>)>) -> Loaded {
        if rows.is_empty() {
            return self;
        }
        let mut batch = Vec::new();
        let mut last = self.seq;
        for (seq, data) in rows {
            last = seq;
            let size = data.len();
            match Change::from_bytes(data) {
                Ok(c) => {
                    self.folded(size);
                    batch.push((seq, c));
                }
                Err(e) => {
                    tracing::error!(team, doc = ?doc, seq, error = %e,
                        "a stored change does not decode; withdraw it");
                }
            }
        }
        let changes: Vec<Change> = batch.iter().map(|(_, c)| c.clone()).collect();
        let backup = self.doc.clone();
        if change::apply(&mut self.doc, changes).is_err() {
            // One at a time, to find and skip the ones that do not apply.
            self.doc = backup;
            for (seq, c) in batch {
                let before = self.doc.clone();
                let hash = c.hash();
                if let Err(e) = change::apply(&mut self.doc, vec![c]) {
                    self.doc = before;
                    tracing::error!(team, doc = ?doc, seq, hash = %hash, error = %e,
                        "a stored change does not apply; withdraw it");
                }
            }
        }
        self.seq = last;
        self
    }
}

/// Recently used documents, at most `capacity` of them.
#[derive(Debug)]
pub struct DocCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tick: u64,
    docs: HashMap<(String, String), (u64, std::time::Instant, Loaded)>,
}

/// A document held longer than this is read again from storage: other server processes may
/// have written its log meanwhile, and a pruning (whose horizon is far longer) may have taken
/// the entries after it out of the log.
pub const MAX_HELD: std::time::Duration = std::time::Duration::from_secs(600);

impl DocCache {
    pub fn new(capacity: usize) -> DocCache {
        DocCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `doc` of `team` out of the cache, or an empty one to catch up from the log; a copy
    /// from before the team's last withdrawal is not used.
    pub fn take(&self, team: &str, doc: &str, withdrawals: i64) -> Loaded {
        self.take_held(team, doc)
            .filter(|l| l.withdrawals == withdrawals)
            .unwrap_or_else(|| Loaded::empty(withdrawals))
    }

    /// Puts a document back; of two copies the one further into the log stays.
    pub fn put(&self, team: &str, doc: &str, mut loaded: Loaded) {
        loaded.dirty = false;
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let key = (team.to_owned(), doc.to_owned());
        if let Some((_, _, old)) = inner.docs.get(&key)
            && old.seq >= loaded.seq
        {
            return;
        }
        // Held since it was first read (a document caught up keeps its first reading's age).
        let since = loaded.read_at;
        inner.docs.insert(key, (tick, since, loaded));
        while inner.docs.len() > self.capacity {
            let oldest = inner
                .docs
                .iter()
                .min_by_key(|(_, (t, _, _))| *t)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => inner.docs.remove(&k),
                None => break,
            };
        }
    }

    /// Takes `doc` of `team` out of the cache when it is there, whatever its age.
    pub fn take_held(&self, team: &str, doc: &str) -> Option<Loaded> {
        self.lock()
            .docs
            .remove(&(team.to_owned(), doc.to_owned()))
            .filter(|(_, at, _)| at.elapsed() < MAX_HELD)
            .map(|(_, _, l)| l)
    }

    /// Forgets every cached document of `team` named `doc`.
    pub fn forget(&self, team: &str, doc: &str) {
        self.lock().docs.remove(&(team.to_owned(), doc.to_owned()));
    }

    /// How many documents are held.
    pub fn held(&self) -> usize {
        self.lock().docs.len()
    }
}

/// Saves a document and keeps the result as its snapshot, unless changes of its team were
/// withdrawn since it was loaded. Returns the document and, when kept, the snapshot. A failure
/// costs only the snapshot: the log has everything.
pub async fn keep_snapshot(
    store: &dyn Store,
    team: &str,
    doc: &str,
    loaded: Loaded,
) -> (Loaded, Option<Vec<u8>>) {
    let worked = tokio::task::spawn_blocking(move || {
        // A document missing some of its history is never kept as a snapshot.
        let saved = change::quietly(|| {
            if loaded.doc.get_missing_deps(&[]).is_empty() {
                Some(loaded.doc.save())
            } else {
                None
            }
        })
        .and_then(|s: Option<Vec<u8>>| s.ok_or("the document misses some of its history"));
        (saved, loaded)
    })
    .await;
    let (saved, mut loaded) = match worked {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(team, doc = ?doc, error = %e, "cannot save a snapshot");
            return (Loaded::empty(0), None);
        }
    };
    let data = match saved {
        Ok(data) => data,
        Err(e) => {
            tracing::warn!(team, doc = ?doc, error = %e, "cannot save a snapshot");
            return (loaded, None);
        }
    };
    match store
        .put_snapshot(team, doc, loaded.seq, &data, loaded.withdrawals)
        .await
    {
        Ok(true) => {
            loaded.kept(data.len());
            (loaded, Some(data))
        }
        Ok(false) => (loaded, None),
        Err(e) => {
            tracing::warn!(team, doc = ?doc, error = %e, "cannot keep a snapshot");
            (loaded, None)
        }
    }
}

/// Keeps the snapshots that pushes made due, one document at a time on a task of its own, so a
/// push never waits for a document to be saved.
#[derive(Debug, Default)]
pub struct Compactor {
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<(String, String)>,
    queued: HashSet<(String, String)>,
    working: bool,
    started: bool,
}

impl Compactor {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for the snapshot of `doc` (held in `cache`) to be kept soon.
    pub fn due(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        cache: &Arc<DocCache>,
        team: &str,
        doc: &str,
    ) {
        let mut q = self.lock();
        let key = (team.to_owned(), doc.to_owned());
        if q.queued.insert(key.clone()) {
            q.order.push_back(key);
        }
        if !q.started {
            q.started = true;
            let (me, store, cache) = (self.clone(), store.clone(), cache.clone());
            tokio::spawn(async move { me.work(store, cache).await });
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Documents waiting for their snapshot or being saved.
    pub fn pending(&self) -> usize {
        let q = self.lock();
        q.order.len() + usize::from(q.working)
    }

    async fn work(self: Arc<Self>, store: Arc<dyn Store>, cache: Arc<DocCache>) {
        loop {
            let next = {
                let mut q = self.lock();
                let next = q.order.pop_front();
                if let Some(key) = &next {
                    q.queued.remove(key);
                }
                q.working = next.is_some();
                next
            };
            let Some((team, doc)) = next else {
                self.wake.notified().await;
                continue;
            };
            // A document not held (taken by a push, or pushed out) is compacted later, by the
            // next push that makes it due or the next catch-up that needs it.
            if let Some(loaded) = cache.take_held(&team, &doc) {
                let loaded = if loaded.snapshot_due() {
                    keep_snapshot(&*store, &team, &doc, loaded).await.0
                } else {
                    loaded
                };
                cache.put(&team, &doc, loaded);
            }
        }
    }
}
