//! Storage: what the server keeps, behind one narrow async trait, and nothing about who may write
//! what (that is [`crate::hub`]'s). Two backends: [`sqlite`] (embedded, the default: one file, one
//! process) and [`postgres`] (any number of server processes on one database). Each has its own
//! versioned migrations, run when it opens. [`open`] picks one from the `--db` value.
//!
//! An organisation's log is a team's log like any other (a row of `teams` with its own
//! numbering, documents and snapshots), marked as an organisation's in `orgs`, so it is kept,
//! pulled, pruned and copied by the same code; [`Store::teams`] and [`Store::team_names`] leave
//! it out. `org_teams` says which organisation a team belongs to (one at most), `org_stewards`
//! which members of which team write its documents.
//!
//! Every team has one append-only log numbered 1, 2, 3, ... with no gap, in commit order: a
//! write to it names the head it was planned on ([`Append::base_head`]) and fails with
//! [`StoreError::HeadMoved`] when another writer got there first, so a reader's cursor never
//! passes a number still being committed.

use std::fmt::Debug;

use async_trait::async_trait;

pub mod postgres;
pub mod sqlite;

/// Why storage failed: a typed outcome the hub decides on, never by its words.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// What was asked for is not there.
    #[error("{0}")]
    NotFound(String),
    /// The team's log is no longer at the head a write was planned on (another writer came
    /// first): read again and decide again.
    #[error("the team's log moved on")]
    HeadMoved,
    /// An actor the write claims was claimed by another device meanwhile.
    #[error("an actor was taken meanwhile")]
    ActorTaken,
    /// The database refused a write that collided with another (a row that must be unique is
    /// there already, a serialization failure, a deadlock): read again and decide again.
    #[error("{0}")]
    Collided(String),
    /// A registration's invite has no use left or expired (another server took its last use
    /// meanwhile, say).
    #[error("this invite code has been used up")]
    InviteSpent,
    /// A registration's member has this many active devices already, the most allowed.
    #[error("this member has {active} devices already")]
    DeviceCap { active: i64 },
    /// A publication to a team whose log has begun.
    #[error("this team already has members on the server; join it instead")]
    Published,
    /// The database to copy into holds teams already.
    #[error("the database to copy into holds teams already")]
    NotEmpty,
    /// A copy read back differs from its source in `what`.
    #[error(
        "the copy differs from the source in its {what}: was the source's server still running? \
         Start again on an empty database"
    )]
    CopyDiffers { what: &'static str },
    /// The database cannot answer now: the client should come back later.
    #[error("{0}")]
    Unavailable(Unavailable),
    /// Anything else: a bug or a broken database, for the operator.
    #[error("{0}")]
    Other(String),
}

/// Why the database cannot answer now.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Busy or locked: a moment is enough.
    #[error("the database is busy")]
    Busy,
    /// The disk is full: the operator's to fix, which takes longer.
    #[error("the server's disk is full")]
    DiskFull,
    /// Not reachable, restarting, out of connections, read-only: as the database said.
    #[error("{0}")]
    Down(String),
}

impl Unavailable {
    /// How long a client waits before it tries again.
    pub fn retry_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Unavailable::DiskFull => 60,
            Unavailable::Busy | Unavailable::Down(_) => 1,
        })
    }
}

impl StoreError {
    /// Another writer came first: the hub reads again and plans again.
    pub fn is_race(&self) -> bool {
        matches!(
            self,
            StoreError::HeadMoved | StoreError::ActorTaken | StoreError::Collided(_)
        )
    }
}

/// The result of a storage call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A team, as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TeamInfo {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub changes: i64,
    pub devices: i64,
    /// Bytes of change data its log holds, and of its documents' snapshots.
    pub log_bytes: i64,
    pub snapshot_bytes: i64,
    /// Changes pruned from its log so far (folded into snapshots), and their bytes.
    pub pruned_changes: i64,
    pub pruned_bytes: i64,
}

/// An organisation's rows, for the admin and for copying.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrgRows {
    /// Organisations' (id, name, created_ms), oldest first (their name and log are their row
    /// of `teams`; a copy loads the id only).
    pub orgs: Vec<(String, String, i64)>,
    /// (team, organisation): the teams attached to an organisation.
    pub teams: Vec<(String, String)>,
    /// (organisation, team, member): its stewards, each a member of one of its teams.
    pub stewards: Vec<(String, String, String)>,
}

impl OrgRows {
    fn sorted(mut self) -> OrgRows {
        self.orgs.sort();
        self.teams.sort();
        self.stewards.sort();
        self
    }
}

/// What a device of a team may do with its team's organisation, read in one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgAccess {
    pub org: String,
    pub name: String,
    /// The organisation's log: its head and the last entry pruned.
    pub head: i64,
    pub pruned: i64,
    /// The member is one of its stewards (through this team).
    pub steward: bool,
}

/// What one pruning took out of a team's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub changes: i64,
    pub bytes: i64,
}

/// A snapshot as stored (for copying).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRow {
    pub team: String,
    pub doc: String,
    pub seq: i64,
    pub data: Vec<u8>,
    pub kept_ms: i64,
}

/// The time now, in milliseconds since the epoch (when a snapshot was kept).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A device, as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    pub id: String,
    pub team: String,
    pub member: String,
    pub name: String,
    pub created_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// A relay: a read-only device of no member (its `member` is empty).
    #[serde(default)]
    pub relay: bool,
}

/// The device a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub team: String,
    pub member: String,
    /// Still bringing its member's offline history (`cairn publish`).
    pub importing: bool,
    pub last_seen_ms: Option<i64>,
    pub revoked: bool,
    /// The team's head as read with the token: a sync with nothing to push from a device already
    /// there needs nothing more.
    pub team_head: i64,
    /// The last entry pruned from the team's log: a device behind it catches up from whole
    /// documents.
    pub team_pruned: i64,
    /// A relay: it reads and never writes, and is no member (its `member` is empty).
    pub relay: bool,
    /// The log it reads and writes through is an organisation's (its `team` is the
    /// organisation's id): what is pushed there is checked against each document's rules.
    pub org: Option<std::sync::Arc<OrgWriter>>,
}

/// A device writing into an organisation's log, as [`Device::org`] says it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrgWriter {
    /// The team the device belongs to (its [`Device::team`] is the organisation's id).
    pub team: String,
    /// Everyone of the organisation's teams, as (team, member), when the push writes kudos
    /// across teams (only they may be named); empty otherwise.
    pub people: std::collections::BTreeSet<(String, String)>,
}

/// Where a team's log stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TeamLog {
    /// The number of its last entry (0: none yet).
    pub head: i64,
    /// How many of its changes were ever withdrawn (a cached document from before a withdrawal
    /// is stale).
    pub withdrawals: i64,
    /// The last entry pruned from it (0: none; read by [`Store::team_log`] only).
    pub pruned: i64,
}

/// An invite as stored (its code only as a hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub team: String,
    /// Made for this member: it joins a device as them.
    pub member: Option<String>,
    /// Made for the team's founder: the only invite that brings a team its first history.
    pub founder: bool,
    pub uses_left: i64,
    pub expires_ms: i64,
    /// Made for a relay: it registers read-only devices of no member.
    pub relay: bool,
}

/// A live invite, as the admin sees it: never its code, which only its holder knows; its id is
/// the start of the code's hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InviteInfo {
    #[serde(skip)]
    pub code_hash: Vec<u8>,
    pub team: String,
    pub member: Option<String>,
    /// Made for the team's founder.
    pub founder: bool,
    pub uses_left: i64,
    pub expires_ms: i64,
    pub created_ms: i64,
    /// The device that made it (a link code for a member's second device).
    pub created_by: Option<String>,
    /// Made for a relay (`cairn-relay`).
    pub relay: bool,
}

/// An invite to store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewInvite {
    pub code_hash: Vec<u8>,
    pub team: String,
    pub member: Option<String>,
    /// Made for the team's founder: the only invite that brings a team its first history.
    pub founder: bool,
    pub uses: i64,
    pub expires_ms: i64,
    pub created_ms: i64,
    /// The device that made it (a link code): revoking the device takes it back.
    pub created_by: Option<String>,
    /// Made for a relay: it registers read-only devices of no member.
    pub relay: bool,
}

/// One member's active devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDevices {
    pub member: String,
    pub active: i64,
    pub importing: i64,
}

/// A device to register by spending an invite, decided by the hub.
///
/// The hub decides twice: before (on what it read) and in the registration's own transaction,
/// where another server may have spent the invite's last use or registered the member's last
/// device meanwhile. The second time the backend reads [`Seen`] with the team's row locked and
/// asks `admit`, the hub's rule, whether the registration still goes; backends only read and
/// write.
#[derive(Clone, Debug)]
pub struct Registration {
    pub invite_hash: Vec<u8>,
    pub team: String,
    pub member: String,
    pub device_id: String,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub now_ms: i64,
    /// A publication: the device brings its member's offline history, and every other active
    /// device of the team (an abandoned publication's) is revoked with its link codes, in the
    /// same write.
    pub publish: bool,
    /// The team's name from now on (a publication whose replica names the team otherwise).
    pub rename: Option<String>,
    /// The member's active devices at most, this one included.
    pub max_devices: i64,
    /// Spent and expired invites older than this are deleted on the way.
    pub forget_before_ms: i64,
    /// A relay's device: read-only, of no member (`member` is empty, and `max_devices` bounds
    /// the team's relays).
    pub relay: bool,
    /// The hub's rule: whether the registration goes on what its transaction [`Seen`]
    /// (`crate::hub::admit`), refusing with a typed outcome.
    pub admit: fn(&Registration, &Seen) -> Result<()>,
}

/// What a registration's transaction reads, the team's row locked, for [`Registration::admit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The invite's uses left and expiry; `None` when it is gone.
    pub invite: Option<(i64, i64)>,
    /// The team's head.
    pub head: i64,
    /// The member's active devices, before a publication revokes any.
    pub active: i64,
}

/// What kind of entry a log row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An automerge change.
    Change = 0,
    /// A notice that the changes whose hashes its data lists (32 bytes each) were withdrawn.
    Notice = 1,
}

impl Kind {
    pub fn from_i64(n: i64) -> Kind {
        if n == 1 { Kind::Notice } else { Kind::Change }
    }
}

/// A log entry to append; its number is the head's next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub doc: String,
    pub hash: Vec<u8>,
    pub actor: Vec<u8>,
    pub actor_seq: i64,
    pub device: String,
    pub data: Vec<u8>,
    /// Taken and dropped at once (made on a withdrawn change): kept for its hash and numbering.
    pub withdrawn_ms: Option<i64>,
    pub kind: Kind,
}

/// One atomic write to a team's log.
#[derive(Clone, Debug, Default)]
pub struct Append {
    /// The head the hub planned on: anything else means another writer came first.
    pub base_head: i64,
    pub entries: Vec<Entry>,
    /// Actors signing for the first time, each with the device that owns it from now on.
    pub claims: Vec<(Vec<u8>, String)>,
    /// Entries (by number) withdrawn by this write: their content goes.
    pub withdraw: Vec<i64>,
    pub withdrawn_ms: i64,
    /// How many changes this write withdraws or drops.
    pub withdrawals: i64,
    /// When it is written (a horizon for pruning counts from it).
    pub stored_ms: i64,
    /// Documents a withdrawal hands back whole, as they are without what it withdrew (their
    /// snapshot as of the write's last entry).
    pub snapshots: Vec<(String, Vec<u8>)>,
}

/// What the hub needs to know about a push before it decides.
#[derive(Clone, Debug, Default)]
pub struct FactsQuery {
    pub actors: Vec<Vec<u8>>,
    pub hashes: Vec<Vec<u8>>,
    /// (document, actor): each actor's last change in each document.
    pub tips: Vec<(String, Vec<u8>)>,
}

/// The answers to a [`FactsQuery`], read with the team's log.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub log: TeamLog,
    /// Actor -> the device that owns it.
    pub owners: std::collections::HashMap<Vec<u8>, String>,
    /// Hash -> (its document, whether it was withdrawn), for the hashes the team's log holds.
    pub known: std::collections::HashMap<Vec<u8>, (String, bool)>,
    /// (document, actor) -> (its last sequence number, that change's hash).
    pub tips: std::collections::HashMap<(String, Vec<u8>), (i64, Vec<u8>)>,
}

/// A page of the log to read.
#[derive(Clone, Debug)]
pub struct PullQuery {
    pub team: String,
    /// The hashes of the changes the request pushed: the device holds them, so they are not
    /// sent back to it. (Not every entry the device ever pushed: a replica copied or restored
    /// shares its device with another copy, and each must get what the other sent.)
    pub skip: std::collections::HashSet<Vec<u8>>,
    pub after: i64,
    pub max: u32,
    /// Past this many bytes of data the page ends (it holds at least one entry).
    pub max_bytes: usize,
    /// Withdrawal notices too (clients that understand them).
    pub notices: bool,
}

/// A log entry as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub seq: i64,
    pub doc: String,
    pub data: Vec<u8>,
    pub kind: Kind,
}

/// A page of the log, read in one snapshot with the head.
#[derive(Clone, Debug)]
pub struct Page {
    pub head: i64,
    pub entries: Vec<Logged>,
    /// The page ended on `max` or `max_bytes`, not on the head.
    pub more: bool,
    /// The last entry pruned from the log, read with the page: a cursor before it would skip
    /// what was pruned.
    pub pruned: i64,
}

/// A page of a catch-up by whole documents to read: the documents changed after `after`, in
/// the order of their ids, after `after_doc`.
#[derive(Clone, Debug)]
pub struct DocsQuery {
    pub team: String,
    /// The device's cursor: it holds every entry through it.
    pub after: i64,
    pub after_doc: String,
    pub max_docs: u32,
    /// Past this many bytes the page ends (it holds at least one document).
    pub max_bytes: usize,
    /// The withdrawal notices after `after` through this entry too (on a catch-up's first page).
    pub notices_through: Option<i64>,
}

/// A document as a catch-up reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocRead {
    pub doc: String,
    /// Its snapshot and the entry it is as of, when that entry is after the query's `after`.
    pub snapshot: Option<(i64, Vec<u8>)>,
    /// Its changes after the snapshot (or after `after`) that were not withdrawn, in log order.
    pub tail: Vec<(i64, Vec<u8>)>,
}

/// A page of a catch-up, read in one snapshot with the head.
#[derive(Clone, Debug, Default)]
pub struct DocsPage {
    pub head: i64,
    pub withdrawals: i64,
    pub docs: Vec<DocRead>,
    /// Documents changed after `after` that sort after this page's last.
    pub left: i64,
    pub notices: Vec<Logged>,
}

/// A stored change found by its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub doc: String,
    pub withdrawn: bool,
}

/// One table's rows, for copying a database into another.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dump {
    pub teams: Vec<(String, String, i64, i64, i64)>,
    /// Invites, `uses` being the uses left.
    pub invites: Vec<NewInvite>,
    pub devices: Vec<DeviceRow>,
    pub actors: Vec<(Vec<u8>, String)>,
    /// Teams whose log was pruned: (team, last entry pruned, changes, bytes).
    pub pruned: Vec<(String, i64, i64, i64)>,
    pub snapshots: Vec<SnapshotRow>,
}

/// A device as stored, token hash included (for copying).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub info: DeviceInfo,
    pub token_hash: Vec<u8>,
    pub importing: bool,
}

/// A log row as stored, every column (for copying).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub team: String,
    pub seq: i64,
    pub entry: Entry,
    pub stored_ms: Option<i64>,
}

/// A team's turn to write, held until [`Turn::release`] (or dropped, later).
#[derive(Default)]
pub struct Turn(pub Option<Box<dyn Release>>);

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Turn(held)"
        } else {
            "Turn"
        })
    }
}

/// What a backend does to end a turn.
#[async_trait]
pub trait Release: Send + Sync {
    async fn release(self: Box<Self>);
}

impl Turn {
    /// Ends the turn now, so the next writer (in any process) goes at once.
    pub async fn release(self) {
        if let Some(inner) = self.0 {
            inner.release().await;
        }
    }
}

/// The server's storage.
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// A write that shows whether the database takes writes.
    async fn ready(&self, now_ms: i64) -> Result<()>;

    async fn create_team(&self, id: &str, name: &str, now_ms: i64) -> Result<()>;
    /// Every team, oldest first.
    async fn teams(&self) -> Result<Vec<TeamInfo>>;
    /// Where the team's log stands; `NotFound` for no such team.
    async fn team_log(&self, team: &str) -> Result<TeamLog>;
    /// The team's name; `NotFound` for no such team.
    async fn team_name(&self, team: &str) -> Result<String>;
    /// Every team's id and name, oldest first (cheaper than [`Store::teams`]).
    async fn team_names(&self) -> Result<Vec<(String, String)>>;

    async fn add_invite(&self, invite: &NewInvite) -> Result<()>;
    async fn invite(&self, code_hash: &[u8]) -> Result<Option<Invite>>;
    /// The invites that can still be used (uses left, not expired), of one team or all, oldest
    /// first.
    async fn invites(&self, team: Option<&str>, now_ms: i64) -> Result<Vec<InviteInfo>>;
    /// Removes an invite; false when there was none with that hash.
    async fn remove_invite(&self, code_hash: &[u8]) -> Result<bool>;
    /// Link codes `device` made that are neither used nor expired.
    async fn live_links(&self, device: &str, now_ms: i64) -> Result<i64>;
    /// Registers a device, spending one use of its invite, in one transaction: reads [`Seen`]
    /// with the team's row locked and registers only if [`Registration::admit`] says so,
    /// returning its refusal otherwise.
    async fn register(&self, reg: &Registration) -> Result<()>;

    /// Devices, of one team or all, oldest first.
    async fn devices(&self, team: Option<&str>) -> Result<Vec<DeviceInfo>>;
    /// Active devices of a team, by member; relays are no member and not among them.
    async fn member_devices(&self, team: &str) -> Result<Vec<MemberDevices>>;
    /// The device whose token hashes to `token_hash`, revoked or not.
    async fn device_by_token(&self, token_hash: &[u8]) -> Result<Option<Device>>;
    /// Revokes a device and takes back its link codes; `NotFound` for no such device.
    async fn revoke(&self, device: &str, now_ms: i64) -> Result<()>;
    /// Notes that a device was seen; `import_done` ends its publication.
    async fn touch(&self, device: &str, now_ms: i64, import_done: bool) -> Result<()>;

    /// Takes the team's turn to write its log among every server process on this database,
    /// until the guard drops: pushes then rarely find the log moved under them. (SQLite: one
    /// process, whose hub keeps turns itself; nothing to take.)
    async fn turn(&self, team: &str) -> Result<Turn>;

    /// Where the team's log stands and what it says about a push's actors, hashes and tips;
    /// `NotFound` for no such team.
    async fn facts(&self, team: &str, query: &FactsQuery) -> Result<Facts>;
    /// Appends to a team's log in one transaction, returning the new head. [`StoreError::HeadMoved`]
    /// when the head is no longer `base_head`, [`StoreError::ActorTaken`] when an actor was taken
    /// meanwhile, [`StoreError::Collided`] when an entry is there already.
    async fn append(&self, team: &str, append: &Append) -> Result<i64>;
    /// A document's changes after entry `after` that were not withdrawn, in log order.
    async fn doc_changes(&self, team: &str, doc: &str, after: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = self.docs_changes(team, &[(doc.to_owned(), after)]).await?;
        Ok(rows.into_iter().map(|(_, seq, data)| (seq, data)).collect())
    }
    /// The changes of several documents, each after its own entry, that were not withdrawn:
    /// (document, entry, data) in log order. One call for a push's documents.
    async fn docs_changes(
        &self,
        team: &str,
        after: &[(String, i64)],
    ) -> Result<Vec<(String, i64, Vec<u8>)>>;
    /// A document's compacted state (automerge `save()`) and the log entry it is as of.
    async fn snapshot(&self, team: &str, doc: &str) -> Result<Option<(i64, Vec<u8>)>>;
    /// Keeps a document's compacted state as of log entry `seq`, unless a newer one is kept or
    /// the team's changes were withdrawn more than `withdrawals` times (the state may then hold
    /// withdrawn content: a withdrawal drops the snapshots of the documents it touches).
    /// Whether it was kept.
    async fn put_snapshot(
        &self,
        team: &str,
        doc: &str,
        seq: i64,
        data: &[u8],
        withdrawals: i64,
    ) -> Result<bool>;
    /// A page of the log after `query.after`, with the head, in one snapshot.
    async fn pull(&self, query: &PullQuery) -> Result<Page>;
    /// A page of whole documents for a device far behind, with the head, in one snapshot.
    async fn pull_docs(&self, query: &DocsQuery) -> Result<DocsPage>;
    /// Takes out of the team's log the changes stored before `before_ms` that its documents'
    /// snapshots (kept before then too) hold, but each actor's last change in each document,
    /// withdrawn changes and notices; `NotFound` for no such team.
    async fn prune(&self, team: &str, before_ms: i64) -> Result<Pruned>;
    /// Changes (not notices) whose hash starts with `prefix` (hex), at most `limit`.
    async fn find_changes(&self, team: &str, prefix: &str, limit: u32) -> Result<Vec<Found>>;

    /// The identity of this database's logs ([`cairn_protocol::SyncResponse::log`]).
    async fn server_log(&self) -> Result<String>;
    /// Gives this database's logs a new identity, after a restore: every device sends again
    /// what the server may have lost. Returns it.
    async fn renew_server_log(&self) -> Result<String>;

    /// Creates an organisation and its (empty) log, in one transaction.
    async fn create_org(&self, id: &str, name: &str, now_ms: i64) -> Result<()>;
    /// Every organisation, its teams and stewards.
    async fn org_rows(&self) -> Result<OrgRows>;
    /// Attaches `team` to `org`, or detaches it (`None`), taking away the stewardships of its
    /// members in the organisation it leaves, in one transaction.
    async fn set_team_org(&self, team: &str, org: Option<&str>) -> Result<()>;
    /// Names a member of `team` a steward of `org`, or no longer (`steward: false`); whether
    /// anything changed.
    async fn set_steward(&self, org: &str, team: &str, member: &str, steward: bool)
    -> Result<bool>;
    /// The organisation `team` belongs to and whether `member` is one of its stewards; `None`
    /// for a team of no organisation.
    async fn org_access(&self, team: &str, member: &str) -> Result<Option<OrgAccess>>;
    /// Loads organisations' rows into a database holding their `teams` rows already (a copy).
    async fn load_orgs(&self, rows: &OrgRows) -> Result<()>;

    /// Every row but the logs, for a copy.
    async fn dump(&self) -> Result<Dump>;
    /// Log rows after (team, seq), in that order, at most `limit`.
    async fn dump_log(&self, after: (&str, i64), limit: u32) -> Result<Vec<LogRow>>;
    /// Loads a dump into an empty database.
    async fn load(&self, dump: &Dump) -> Result<()>;
    async fn load_log(&self, rows: &[LogRow]) -> Result<()>;
}

/// Opens the storage a `--db` value names: a `postgres://` or `postgresql://` URL, or a SQLite
/// file path.
pub async fn open(db: &str, options: &Options) -> Result<std::sync::Arc<dyn Store>> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            postgres::PgStore::open(db, options.pool).await?,
        ))
    } else {
        let path = std::path::PathBuf::from(db);
        let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Other(format!("a worker failed: {e}")))??;
        if options.checkpoint_in_background {
            store.checkpoint_in_background()?;
        }
        Ok(std::sync::Arc::new(store))
    }
}

/// How [`open`] opens a database.
#[derive(Clone, Debug)]
pub struct Options {
    /// PostgreSQL connections at most.
    pub pool: usize,
    /// SQLite: copy the WAL into the database from a thread of its own (a server does; a
    /// one-shot admin command need not).
    pub checkpoint_in_background: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            pool: 16,
            checkpoint_in_background: false,
        }
    }
}

/// Shows a database value without its password, for logs and `/readyz`.
pub fn redact(db: &str) -> String {
    if let Some((scheme, rest)) = db.split_once("://")
        && let Some((auth, host)) = rest.rsplit_once('@')
    {
        let user = auth.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}@{host}");
    }
    db.to_owned()
}

/// What [`copy`] copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub teams: usize,
    /// Organisations (whose logs are among the entries).
    pub orgs: usize,
    pub devices: usize,
    pub invites: usize,
    pub entries: u64,
}

/// Copies every team, organisation (its teams and stewards), invite, device, actor and log entry
/// of `from` into `to` (which must hold
/// no team yet), then reads both back and checks they hold the same. Call `progress` with the
/// entries copied so far. The source must not change meanwhile (stop its server): a change made
/// during the copy fails the check.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    mut progress: impl FnMut(u64),
) -> Result<Copied> {
    const PAGE: u32 = 2_000;
    let dump = from.dump().await?;
    to.load(&dump).await?;
    let orgs = from.org_rows().await?;
    to.load_orgs(&orgs).await?;
    let mut copied = Copied {
        teams: dump.teams.len().saturating_sub(orgs.orgs.len()),
        orgs: orgs.orgs.len(),
        devices: dump.devices.len(),
        invites: dump.invites.len(),
        entries: 0,
    };
    let mut after = (String::new(), 0i64);
    loop {
        let rows = from.dump_log((&after.0, after.1), PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = (last.team.clone(), last.seq);
        to.load_log(&rows).await?;
        copied.entries += rows.len() as u64;
        progress(copied.entries);
    }
    // Read back both sides, row for row.
    let mismatch = |what: &'static str| StoreError::CopyDiffers { what };
    if sorted(from.dump().await?) != sorted(to.dump().await?) {
        return Err(mismatch("teams, invites, devices or actors"));
    }
    if from.org_rows().await?.sorted() != to.org_rows().await?.sorted() {
        return Err(mismatch("organisations"));
    }
    let (mut a, mut b) = ((String::new(), 0i64), (String::new(), 0i64));
    let mut checked = 0u64;
    loop {
        let left = from.dump_log((&a.0, a.1), PAGE).await?;
        let right = to.dump_log((&b.0, b.1), PAGE).await?;
        if left != right {
            return Err(mismatch("log"));
        }
        let Some(last) = left.last() else { break };
        a = (last.team.clone(), last.seq);
        b = a.clone();
        checked += left.len() as u64;
    }
    if checked != copied.entries {
        return Err(mismatch("log"));
    }
    Ok(copied)
}

fn sorted(mut d: Dump) -> Dump {
    d.teams.sort();
    d.invites.sort_by(|x, y| x.code_hash.cmp(&y.code_hash));
    d.devices.sort_by(|x, y| x.info.id.cmp(&y.info.id));
    d.actors.sort();
    d.pruned.sort();
    d.snapshots
        .sort_by(|x, y| (&x.team, &x.doc).cmp(&(&y.team, &y.doc)));
    d
}
