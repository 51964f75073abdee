//! The rules of who may write what, once, above any storage: joining (which invite joins whom),
//! tokens, link codes, what a device may push (its own actors, its own member's journals, every
//! change numbered right and applying to its document) and withdrawals. Storage ([`Store`])
//! only keeps what the hub decided; the hub never speaks SQL and the store never decides.
//!
//! A push is planned on the team's head as read, then appended in one write that names that
//! head; when another writer (another server process) got there first, the hub reads again and
//! plans again. Within one process, pushes to one team take turns, so that happens only between
//! processes.
//!
//! Layout, one module per job: `access` (teams, invites, joins, tokens, link codes), `push`
//! (what a push may store, planned and appended in groups), `pull` (the log after a cursor, and
//! catch-ups by whole documents), `withdraw` (changes taken out of the log and every replica),
//! `compact` (snapshots kept on a catch-up's way), `news` (waiting for a team's log to move,
//! [`Hub::wait`]), `org` (organisations: their teams, stewards, and who reads and writes their
//! log); the exchange itself ([`Hub::sync`]) here.

mod access;
mod compact;
mod news;
mod org;
mod pull;
mod push;
mod withdraw;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cairn_core::ids::{self, TEAM_DOC};
use cairn_protocol::{SyncRequest, SyncResponse};
use sha2::{Digest, Sha256};

pub use self::access::{NamedDevice, Whom, admit, invite_id};
pub use self::news::Waited;
pub use self::org::{OrgTeam, OrgView, Steward};
use self::push::{Waiting, decode_push};
pub use self::withdraw::{Affected, Fate, Go, Withdrawal};
use crate::docs::{Compactor, DocCache};
use crate::store::{Device, Store};
use crate::{Error, Limits, Result};

/// Documents kept in memory by default: a team's document and the journals its devices write
/// this month, for a few teams.
pub const DOC_CACHE: usize = 512;

/// How often a push is planned again when other server processes keep writing the same team.
const MAX_ATTEMPTS: usize = 16;

/// Pushes to one team take turns in a process: this many turn-keepers, a team hashed to one.
const TURNS: usize = 64;

/// The server's rules over a store.
#[derive(Debug)]
pub struct Hub {
    store: Arc<dyn Store>,
    docs: Arc<DocCache>,
    compactor: Arc<Compactor>,
    turns: Vec<tokio::sync::Mutex<()>>,
    /// Pushes waiting for their team's turn, by team: whoever gets the turn appends them all in
    /// one write (a group commit), so a busy team costs one transaction per turn, not per push.
    waiting: std::sync::Mutex<HashMap<String, Vec<Waiting>>>,
    /// Each team's head as this process last wrote or read it, for waiters.
    news: news::News,
    /// The identity of the database's logs, read once ([`Store::server_log`]).
    log: tokio::sync::OnceCell<String>,
}

/// What one sync moved, for the metrics.
#[derive(Clone, Debug, Default)]
pub struct SyncCounts {
    pub stored: usize,
    pub pulled: usize,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `n` random characters of the id alphabet (5 bits each).
pub fn random_code(n: usize) -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(ids::random_text(&bytes, n))
}

/// How often a device's last-seen time is written, so a no-op sync stays a read.
const LAST_SEEN_EVERY_MS: i64 = 60_000;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the blocking pool: automerge work a request causes stays off the runtime.
async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a worker failed: {e}")))
}

impl Hub {
    /// The rules over `store`, keeping up to `cached` documents in memory.
    pub fn new(store: Arc<dyn Store>, cached: usize) -> Hub {
        Hub {
            store,
            docs: Arc::new(DocCache::new(cached)),
            compactor: Arc::default(),
            turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            waiting: std::sync::Mutex::new(HashMap::new()),
            news: news::News::default(),
            log: tokio::sync::OnceCell::new(),
        }
    }

    /// The identity of the database's logs, said with every sync: a backup gets a new one (and
    /// `cairn-server restored` gives one), so devices notice a restore. Read once a process:
    /// a restore happens with the servers stopped.
    pub async fn server_log(&self) -> Result<String> {
        Ok(self
            .log
            .get_or_try_init(|| self.store.server_log())
            .await?
            .clone())
    }

    /// The storage underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How many documents are held in memory.
    pub fn cached_docs(&self) -> usize {
        self.docs.held()
    }

    /// How many documents wait for their snapshot to be kept.
    pub fn compactions_pending(&self) -> usize {
        self.compactor.pending()
    }

    /// The readiness check: a write, so a full disk or a read-only database shows.
    pub async fn ready(&self, now_ms: i64) -> Result<()> {
        Ok(self.store.ready(now_ms).await?)
    }

    async fn turn(&self, team: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        team.hash(&mut h);
        self.turns[h.finish() as usize % TURNS].lock().await
    }

    /// One exchange: stores what `device` pushed (checked, applied to its document, once), then
    /// pages out the change log after the request's cursor. Either the whole push is stored or
    /// none of it.
    pub async fn sync(
        &self,
        device: &Device,
        req: SyncRequest,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(SyncResponse, SyncCounts)> {
        // A relay pulls and never writes: any change it sends is refused whole, before it is
        // decoded.
        if device.relay && req.push.iter().any(|d| !d.changes.is_empty()) {
            return Err(access::read_only());
        }
        let mut counts = SyncCounts {
            bytes_in: req
                .push
                .iter()
                .flat_map(|d| d.changes.iter())
                .map(|c| c.0.len())
                .sum(),
            ..SyncCounts::default()
        };
        let pushed: usize = req.push.iter().map(|d| d.changes.len()).sum();
        let SyncRequest {
            cursor,
            push,
            max_pull,
            import_done,
            withdrawals,
            snapshots,
            catch_up,
            org_docs: _,
        } = req;
        // Inspect and decode every change first, on the blocking pool: the work a client can
        // cause is bounded by what it sent and decided before storage is asked anything.
        let docs = {
            let (device, limits) = (device.clone(), limits.clone());
            cpu(move || decode_push(&device, push, &limits)).await??
        };
        let mut acked = 0u32;
        // What the device pushed it holds: not sent back in this exchange's page.
        let skip: HashSet<Vec<u8>> = docs
            .iter()
            .flat_map(|(_, changes)| changes.iter().map(|(c, _)| c.hash().0.to_vec()))
            .collect();
        if !docs.is_empty() {
            counts.stored = self.push(device, docs, cursor).await?;
            acked = pushed as u32;
        }
        let behind = u64::try_from(device.team_head)
            .unwrap_or(0)
            .saturating_sub(cursor);
        // Entries up to the last one pruned are gone from the log: a device behind it can only
        // catch up from whole documents.
        let pruned = cursor < u64::try_from(device.team_pruned).unwrap_or(0);
        // A request that pulls nothing (`max_pull: 0`, as `cairn doctor` asks) is answered with
        // the head alone, whatever the device's place.
        let pulls = max_pull != Some(0);
        let gone = || {
            Error::Conflict(
                "this server pruned the part of the team's history this device still needs; an \
                 up-to-date cairn catches up from whole documents: update cairn, then sync"
                    .into(),
            )
        };
        if pruned && pulls && !snapshots {
            return Err(gone());
        }
        let by_docs =
            snapshots && pulls && (pruned || catch_up.is_some() || behind > limits.catch_up_after);
        let mut resp = if by_docs {
            self.pull_docs(device, cursor, catch_up, limits, &mut counts)
                .await?
        } else {
            let page = self
                .pull(
                    device,
                    cursor,
                    skip,
                    max_pull,
                    withdrawals,
                    limits,
                    &mut counts,
                )
                .await?;
            match page {
                Some(resp) => resp,
                // Pruned since the token was read: the log has holes before the cursor.
                None if snapshots => {
                    self.pull_docs(device, cursor, None, limits, &mut counts)
                        .await?
                }
                None => return Err(gone()),
            }
        };
        resp.acked = acked;
        resp.log = Some(self.server_log().await?);

        let stale = device
            .last_seen_ms
            .is_none_or(|t| now_ms - t > LAST_SEEN_EVERY_MS);
        let finishing = import_done && device.importing;
        if finishing || stale {
            self.store.touch(&device.id, now_ms, finishing).await?;
        }
        Ok((resp, counts))
    }

    /// The team as its team document says (for claiming a member by handle).
    async fn team_state(&self, team: &str) -> Result<cairn_core::TeamState> {
        let log = self.store.team_log(team).await?;
        let loaded = self
            .docs
            .take(team, TEAM_DOC, log.withdrawals)
            .catch_up(&*self.store, team, TEAM_DOC)
            .await?;
        let state = cairn_core::team::read(&loaded.doc).map_err(|e| Error::Internal(e.to_string()));
        // Only committed entries were read, so the document can go back as it is.
        self.docs.put(team, TEAM_DOC, loaded);
        state
    }
}

fn past_head(cursor: u64, head: u64) -> Error {
    Error::PastHead(format!(
        "the cursor {cursor} is past the team's last change {head}: this server lost history \
         or the replica came from elsewhere"
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex(&bytes).len(), 512);
        assert!(hex(&bytes).starts_with("000102"));
    }
}
