//! Withdrawals: what an admin takes out of a team's history, shown before it goes.
//!
//! A change is *made on* another when its operations touch what the other made: a field it set
//! (overwritten or deleted), an object it created (written into), a list element it inserted.
//! Automerge's dependencies say more than that: every change lists the heads its writer had seen,
//! so a teammate's later change, about something else entirely, has the withdrawn one in its
//! causal past without being made on it. A withdrawal therefore works one of two ways, per
//! document:
//!
//! - **out of the history**, when everything after the named change in its document was made on
//!   it (or nothing came after): the named change, and what was made on it, lose their content in
//!   the log, the document's snapshot is rebuilt without them, and a notice tells devices to drop
//!   them. This is how a journal's changes go, and how a change that never applied (an older
//!   server stored it) goes.
//! - **taken back**, when a team document's later history holds changes not made on the named
//!   one (a pillar added, then someone joined): that history stays, and the server writes one
//!   change that takes back what the named change set (the fields it put, restored to what they
//!   were before it or removed, the objects and elements it created removed), so every replica
//!   drops the harmful field and keeps everyone's later work.
//!
//! Either way nothing reaches beyond the named changes without the admin's consent
//! ([`Go::Cascade`]), a membership is never withdrawn or taken back by a cascade, and the
//! [`Withdrawal`] lists every change it touches, its author and its kind, with what became of it.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{ElementId, Key, ObjectId, OpId, OpType};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};
use cairn_core::change;
use cairn_core::ids::TEAM_DOC;
use sha2::{Digest, Sha256};

use super::{Hub, MAX_ATTEMPTS, cpu, hex};
use crate::store::{Append, Entry, FactsQuery, Kind};
use crate::{Error, Result};

/// How far a withdrawal may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Go {
    /// Nowhere: say what it would do.
    Preview,
    /// The named changes only: when it would reach beyond them, nothing is done.
    Named,
    /// The named changes and what was made on them (memberships aside).
    Cascade,
}

/// What a withdrawal does, or would do, to one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Named: out of the log and every replica.
    Withdrawn,
    /// Made on a named change: out with it.
    WithdrawnWithIt,
    /// Made after a named change in its document's history, which automerge cannot keep
    /// without it: out with it.
    WithdrawnAfterIt,
    /// Named: what it set is taken back; it stays in the history.
    TakenBack,
    /// Made on a named change: what it set is taken back with it.
    TakenBackWithIt,
    /// Made after a named change but not on it, or a membership: it stays as it is.
    Kept,
}

impl Fate {
    /// The words the admin reads.
    pub fn words(self) -> &'static str {
        match self {
            Fate::Withdrawn => "withdrawn",
            Fate::WithdrawnWithIt => "withdrawn with it (made on it)",
            Fate::WithdrawnAfterIt => "withdrawn with it (made after it, in its document)",
            Fate::TakenBack => "taken back (later history stays)",
            Fate::TakenBackWithIt => "taken back with it (made on it)",
            Fate::Kept => "kept (made after it, not on it)",
        }
    }

    /// Whether the change goes (its content, or what it set).
    pub fn goes(self) -> bool {
        self != Fate::Kept
    }
}

/// One change a withdrawal touches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Affected {
    pub doc: String,
    /// Its hash, in hex.
    pub hash: String,
    /// `@handle` of its author, their member id, `the server`, or `unknown`.
    pub author: String,
    /// What it wrote: `membership of @dee`, `pillar #Curiosity`, `event`, ...
    pub kind: String,
    pub fate: Fate,
    /// Whether the admin named it.
    pub named: bool,
}

/// What a withdrawal did, or would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Withdrawal {
    /// Every change it touches: the named ones first, then in the log's order.
    pub changes: Vec<Affected>,
    /// Whether it was done: not for a preview, nor when it reaches beyond the named changes
    /// without [`Go::Cascade`].
    pub done: bool,
    /// Whether it reaches beyond the named changes (and so needs [`Go::Cascade`]).
    pub cascades: bool,
}

impl Withdrawal {
    /// How many changes go (out of the history, or taken back).
    pub fn going(&self) -> usize {
        self.changes.iter().filter(|c| c.fate.goes()).count()
    }
}

impl Hub {
    /// Withdraws stored changes of `team` named by their hashes (hex, a unique prefix of 8 or
    /// more digits) as far as `go` allows, and says what it did or would do to every change it
    /// touches. A change named twice, or withdrawn already, is no error.
    pub async fn withdraw(
        &self,
        team: &str,
        hashes: &[String],
        now_ms: i64,
        go: Go,
    ) -> Result<Withdrawal> {
        let _turn = self.turn(team).await;
        let store_turn = self.store.turn(team).await?;
        let mut out = Err(Error::busy("the team's log kept moving; try again"));
        for _ in 0..MAX_ATTEMPTS {
            match self.withdraw_once(team, hashes, now_ms, go).await {
                // Another writer came first: plan again.
                Ok(None) => continue,
                other => {
                    out = other.map(Option::unwrap_or_default);
                    break;
                }
            }
        }
        store_turn.release().await;
        out
    }

    /// One attempt at [`Hub::withdraw`]; `None` when another writer came first.
    async fn withdraw_once(
        &self,
        team: &str,
        hashes: &[String],
        now_ms: i64,
        go: Go,
    ) -> Result<Option<Withdrawal>> {
        let log = self.store.team_log(team).await?;
        let mut wanted = HashSet::new();
        let mut docs: Vec<String> = Vec::new();
        for h in hashes {
            let h = h.trim().to_ascii_lowercase();
            if h.len() < 8 || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::BadRequest(format!(
                    "`{h}` is not a change hash (8 to 64 hex digits)"
                )));
            }
            let found = self.store.find_changes(team, &h, 2).await?;
            match found.as_slice() {
                [] => {
                    return Err(Error::NotFound(format!("team {team} holds no change {h}")));
                }
                [_, _, ..] => {
                    return Err(Error::BadRequest(format!(
                        "`{h}` names more than one change; give more of it"
                    )));
                }
                [f] if f.withdrawn => {}
                [f] => {
                    wanted.insert(f.hash.clone());
                    if !docs.contains(&f.doc) {
                        docs.push(f.doc.clone());
                    }
                }
            }
        }
        let mut plans = Vec::with_capacity(docs.len());
        for doc in &docs {
            let loaded = self
                .docs
                .take(team, doc, log.withdrawals)
                .catch_up(&*self.store, team, doc)
                .await?;
            // What only the log holds: changes an older server stored that never applied.
            let rows = self.store.doc_changes(team, doc, 0).await?;
            let (named, doc_id) = (wanted.clone(), doc.clone());
            let plan = cpu(move || plan_doc(&doc_id, loaded.doc, &named, rows)).await??;
            plans.push(plan);
        }
        let cascades = plans.iter().any(DocPlan::cascades);
        let consent = go == Go::Cascade || (go == Go::Named && !cascades);
        let plans: Vec<DocPlan> = plans.into_iter().map(DocPlan::decide).collect();
        let mut withdrawal = Withdrawal {
            changes: self.describe(team, &plans).await?,
            done: false,
            cascades,
        };
        if go == Go::Preview || !consent {
            return Ok(Some(withdrawal));
        }
        let mut append = Append {
            base_head: log.head,
            withdrawn_ms: now_ms,
            stored_ms: now_ms,
            ..Append::default()
        };
        for plan in plans {
            let doc = plan.doc.clone();
            let (removal, taking_back) = cpu(move || plan.write()).await??;
            if let Some(removal) = removal {
                append.withdraw.extend(removal.seqs);
                append.withdrawals += removal.hashes.len() as i64;
                let notice: Vec<u8> = removal.hashes.concat();
                let seq = log.head + 1 + append.entries.len() as i64;
                append.entries.push(Entry {
                    doc: doc.clone(),
                    hash: Sha256::digest([b"withdraw:".as_slice(), &notice].concat()).to_vec(),
                    actor: Vec::new(),
                    actor_seq: seq,
                    device: String::new(),
                    data: notice,
                    withdrawn_ms: None,
                    kind: Kind::Notice,
                });
                append.snapshots.push((doc.clone(), removal.rebuilt));
            }
            if let Some(change) = taking_back {
                // The server's own actor, used once: no device may ever sign with it.
                let actor = change.actor_id().to_bytes().to_vec();
                append.claims.push((actor.clone(), String::new()));
                append.entries.push(Entry {
                    doc: doc.clone(),
                    hash: change.hash().0.to_vec(),
                    actor,
                    actor_seq: change.seq() as i64,
                    device: String::new(),
                    data: change.raw_bytes().to_vec(),
                    withdrawn_ms: None,
                    kind: Kind::Change,
                });
            }
        }
        if !append.entries.is_empty() {
            match self.store.append(team, &append).await {
                Ok(head) => self.news.signal(team, head),
                Err(e) if e.is_race() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        for doc in &docs {
            self.docs.forget(team, doc);
        }
        withdrawal.done = true;
        Ok(Some(withdrawal))
    }

    /// Each change of the plans as the admin reads it: its author by handle, its kind.
    async fn describe(&self, team: &str, plans: &[DocPlan]) -> Result<Vec<Affected>> {
        let actors: Vec<Vec<u8>> = plans
            .iter()
            .flat_map(|p| p.rows.iter().map(|r| r.actor.clone()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let owners = self
            .store
            .facts(
                team,
                &FactsQuery {
                    actors,
                    ..FactsQuery::default()
                },
            )
            .await?
            .owners;
        let members: HashMap<String, String> = self
            .store
            .devices(Some(team))
            .await?
            .into_iter()
            .map(|d| (d.id, d.member))
            .collect();
        let state = self.team_state(team).await.ok();
        let handle = |member: &str| match state.as_ref().and_then(|s| s.member(member)) {
            Some(m) => format!("@{}", m.handle),
            None => member.to_owned(),
        };
        let mut out = Vec::new();
        for plan in plans {
            for row in &plan.rows {
                let Some(fate) = row.fate else { continue };
                let author = match owners.get(&row.actor) {
                    Some(d) if d.is_empty() => "the server".to_owned(),
                    Some(d) => members
                        .get(d)
                        .map_or_else(|| "unknown".to_owned(), |m| handle(m)),
                    None => "unknown".to_owned(),
                };
                let kind = row
                    .kinds
                    .iter()
                    .map(|k| match k {
                        What::Membership(id) => format!("membership of {}", handle(id)),
                        What::Pillar(id) => {
                            let name = state
                                .as_ref()
                                .and_then(|s| s.pillars.iter().find(|p| p.id == *id))
                                .map_or(id.as_str(), |p| p.name.as_str());
                            format!("pillar #{name}")
                        }
                        What::Other(what) => what.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(Affected {
                    doc: plan.doc.clone(),
                    hash: hex(&row.hash),
                    author,
                    kind,
                    fate,
                    named: row.named,
                });
            }
        }
        out.sort_by_key(|a| !a.named);
        Ok(out)
    }
}

/// What a change wrote, read from the root keys its operations reach.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Membership(String),
    Pillar(String),
    Other(String),
}

/// What a team document's root key holds (journals hold events).
fn what(doc: &str, root_key: &str) -> What {
    if doc != TEAM_DOC {
        return What::Other(if doc.starts_with("j/") {
            "event".to_owned()
        } else {
            "document".to_owned()
        });
    }
    let mut parts = root_key.splitn(3, '/');
    let (head, id) = (parts.next().unwrap_or(""), parts.next());
    match (head, id) {
        ("member", Some(id)) => What::Membership(id.to_owned()),
        ("pillar", Some(id)) => What::Pillar(id.to_owned()),
        ("commitment", Some(_)) => What::Other("commitment".into()),
        ("challenge", Some(_)) => What::Other("challenge".into()),
        ("rule", Some(_)) => What::Other("streak rules".into()),
        ("name" | "tz" | "schema", None) => What::Other("team name and zone".into()),
        _ => What::Other("team document".into()),
    }
}

/// The part of a root key a change is about: a pillar's (`pillar/ID`) for its fields, which
/// are root scalars of their own; the key itself otherwise.
fn family(key: &str) -> &str {
    match key.strip_prefix("pillar/").and_then(|rest| rest.find('/')) {
        Some(i) => &key[.."pillar/".len() + i],
        None => key,
    }
}

/// One change of a document, as a withdrawal sees it.
#[derive(Debug)]
struct Row {
    hash: Vec<u8>,
    actor: Vec<u8>,
    named: bool,
    /// What it wrote (for the admin).
    kinds: Vec<What>,
    /// What becomes of it; `None` for a change the withdrawal leaves alone.
    fate: Option<Fate>,
    /// Made on a named change (its operations touch what one made).
    made_on: bool,
    /// Has a named change in its causal past.
    after: bool,
    /// In the document (not only in the log: an older server stored it, it never applied).
    applied: bool,
}

/// How a document's withdrawal works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Out of the history: content dropped in the log, snapshot rebuilt, a notice sent.
    Remove,
    /// The history stays; a change of the server's takes back what was set.
    TakeBack,
}

/// One document's withdrawal, planned.
struct DocPlan {
    doc: String,
    mode: Mode,
    rows: Vec<Row>,
    document: Automerge,
    changes: Vec<Change>,
    /// The log's entries of the document (number and bytes), for a removal.
    log: Vec<(i64, Vec<u8>)>,
}

impl DocPlan {
    /// Whether it reaches beyond the named changes.
    fn cascades(&self) -> bool {
        self.rows.iter().any(|r| {
            !r.named
                && match self.mode {
                    Mode::Remove => r.after || r.made_on,
                    Mode::TakeBack => r.made_on && !is_membership(r),
                }
        })
    }

    /// Settles each change's fate as the withdrawal goes when it goes: with what was made on
    /// the named changes (it is done without them only when there is none).
    fn decide(mut self) -> DocPlan {
        let mode = self.mode;
        for r in &mut self.rows {
            r.fate = match (mode, r.named, r.made_on || r.after) {
                (Mode::Remove, true, _) => Some(Fate::Withdrawn),
                (Mode::Remove, false, true) if r.made_on => Some(Fate::WithdrawnWithIt),
                (Mode::Remove, false, true) => Some(Fate::WithdrawnAfterIt),
                (Mode::TakeBack, true, _) => Some(Fate::TakenBack),
                (Mode::TakeBack, false, _) if r.made_on && !is_membership(r) => {
                    Some(Fate::TakenBackWithIt)
                }
                (Mode::TakeBack, false, true) => Some(Fate::Kept),
                (_, false, false) => None,
            };
        }
        self
    }

    /// Writes what was decided: the removal (log entries, hashes for the notice, the document
    /// rebuilt without them) and the change that takes back what was set.
    fn write(self) -> Result<(Option<Removal>, Option<Change>)> {
        let broken = |p: &str| Error::Internal(format!("cannot withdraw from a document: {p}"));
        let going: HashSet<&[u8]> = self
            .rows
            .iter()
            .filter(|r| r.fate.is_some_and(Fate::goes))
            .map(|r| r.hash.as_slice())
            .collect();
        if self.mode == Mode::TakeBack {
            let changes: Vec<&Change> = self
                .changes
                .iter()
                .filter(|c| going.contains(&c.hash().0[..]))
                .collect();
            let change = take_back(&self.document, &changes).map_err(|e| broken(&e))?;
            return Ok((None, change));
        }
        let keep: Vec<Change> = self
            .changes
            .iter()
            .filter(|c| !going.contains(&c.hash().0[..]))
            .cloned()
            .collect();
        let mut doc = Automerge::new();
        change::quietly(|| doc.apply_changes(keep))
            .map_err(broken)?
            .map_err(|e| broken(&e.to_string()))?;
        let rebuilt = change::quietly(|| doc.save()).map_err(broken)?;
        let seqs = self
            .log
            .iter()
            .filter(|(_, data)| {
                Change::from_bytes(data.clone()).is_ok_and(|c| going.contains(&c.hash().0[..]))
            })
            .map(|(seq, _)| *seq)
            .collect();
        // In the document's order, for the notice.
        let hashes = self
            .rows
            .iter()
            .filter(|r| r.fate.is_some_and(Fate::goes))
            .map(|r| r.hash.clone())
            .collect();
        Ok((
            Some(Removal {
                seqs,
                hashes,
                rebuilt,
            }),
            None,
        ))
    }
}

/// What a removal takes out of one document.
struct Removal {
    /// Log entries whose content goes.
    seqs: Vec<i64>,
    /// Every change that goes, for the notice.
    hashes: Vec<Vec<u8>>,
    /// The document without them.
    rebuilt: Vec<u8>,
}

fn is_membership(r: &Row) -> bool {
    r.kinds.iter().any(|k| matches!(k, What::Membership(_)))
}

/// An operation's id as a withdrawal keys it: its counter and its actor.
type Op = (u64, ActorId);

fn op_id(o: &OpId) -> Op {
    (o.0, o.1.clone())
}

/// Plans the withdrawal of the `named` changes (hashes) from document `doc_id`, given the
/// document with every change it holds and the log's entries of it.
fn plan_doc(
    doc_id: &str,
    document: Automerge,
    named: &HashSet<Vec<u8>>,
    log: Vec<(i64, Vec<u8>)>,
) -> Result<DocPlan> {
    let broken = |p: &str| Error::Internal(format!("cannot read a document: {p}"));
    let changes: Vec<Change> = change::quietly(|| document.get_changes(&[])).map_err(broken)?;
    // Which root key each object hangs under, and the operations of named changes and of what
    // was made on them.
    let mut roots: HashMap<Op, String> = HashMap::new();
    let mut touched: HashSet<Op> = HashSet::new();
    let mut families: HashSet<String> = HashSet::new();
    let mut causal: HashSet<Vec<u8>> = HashSet::new();
    let mut rows = Vec::with_capacity(changes.len());
    let mut held = HashSet::new();
    for c in &changes {
        let hash = c.hash().0.to_vec();
        held.insert(hash.clone());
        let expanded = change::quietly(|| c.decode()).map_err(broken)?;
        let start = expanded.start_op.get();
        let actor = expanded.actor_id.clone();
        let is_named = named.contains(&hash);
        let after = !is_named && c.deps().iter().any(|d| causal.contains(&d.0[..]));
        if is_named || after {
            causal.insert(hash.clone());
        }
        let mut kinds = Vec::new();
        let mut made_on = false;
        for (i, op) in expanded.operations.iter().enumerate() {
            let id = (start + i as u64, actor.clone());
            let root = match &op.obj {
                ObjectId::Root => match &op.key {
                    Key::Map(k) => k.to_string(),
                    Key::Seq(_) => String::new(),
                },
                ObjectId::Id(o) => roots.get(&op_id(o)).cloned().unwrap_or_default(),
            };
            if matches!(op.action, OpType::Make(_)) {
                roots.insert(id.clone(), root.clone());
            }
            let w = what(doc_id, &root);
            if !kinds.contains(&w) {
                kinds.push(w);
            }
            // A pillar's fields are root scalars of their own (`pillar/ID/name`, ...): a write
            // to one of the pillar a named change wrote is made on it.
            let on_family = matches!((&op.obj, &op.key), (ObjectId::Root, Key::Map(k))
                if families.contains(family(k)));
            let on_obj = matches!(&op.obj, ObjectId::Id(o) if touched.contains(&op_id(o)));
            let on_elem =
                matches!(&op.key, Key::Seq(ElementId::Id(e)) if touched.contains(&op_id(e)));
            let on_pred = op.pred.iter().any(|p| touched.contains(&op_id(p)));
            made_on |= !is_named && (on_family || on_obj || on_elem || on_pred);
        }
        if is_named || made_on {
            for (i, op) in expanded.operations.iter().enumerate() {
                touched.insert((start + i as u64, actor.clone()));
                if let (ObjectId::Root, Key::Map(k)) = (&op.obj, &op.key) {
                    families.insert(family(k).to_owned());
                }
            }
        }
        kinds.sort();
        rows.push(Row {
            hash,
            actor: actor.to_bytes().to_vec(),
            named: is_named,
            kinds,
            fate: None,
            made_on,
            after: after && !made_on,
            applied: true,
        });
    }
    // Changes only the log holds (an older server stored them; they never applied), and those
    // made on them: they can only go out of the history.
    let mut gone_from_log: HashSet<Vec<u8>> = named.clone();
    for (_, data) in &log {
        let Ok(c) = Change::from_bytes(data.clone()) else {
            continue;
        };
        let hash = c.hash().0.to_vec();
        if held.contains(&hash) {
            continue;
        }
        let is_named = named.contains(&hash);
        if is_named || c.deps().iter().any(|d| gone_from_log.contains(&d.0[..])) {
            gone_from_log.insert(hash.clone());
            rows.push(Row {
                hash,
                actor: c.actor_id().to_bytes().to_vec(),
                named: is_named,
                kinds: vec![What::Other("a change that never applied".into())],
                fate: None,
                made_on: !is_named,
                after: false,
                applied: false,
            });
        }
    }
    // A team document whose later history holds changes not made on the named ones, or a
    // membership made on them, keeps its history: what the named ones set is taken back. What
    // never applied has nothing to take back.
    let keeps_history = rows.iter().any(|r| r.applied && r.after)
        || rows
            .iter()
            .any(|r| r.applied && r.made_on && is_membership(r));
    let mode = if doc_id == TEAM_DOC && keeps_history && rows.iter().all(|r| r.applied || !r.named)
    {
        Mode::TakeBack
    } else {
        Mode::Remove
    };
    Ok(DocPlan {
        doc: doc_id.to_owned(),
        mode,
        rows,
        document,
        changes,
        log,
    })
}

/// A change, by a fresh actor of the server's, on top of `doc` as it stands, that takes back what
/// `changes` set: each field they put, unless someone else wrote it since, goes back to what it
/// was before them (or away, if it was nothing or an object); each object and list element they
/// created goes. `None` when nothing they set is left.
fn take_back(doc: &Automerge, changes: &[&Change]) -> std::result::Result<Option<Change>, String> {
    let ours: HashSet<Op> = changes
        .iter()
        .flat_map(|c| {
            let (start, n) = (c.start_op().get(), c.len() as u64);
            (0..n).map(move |i| (start + i, c.actor_id().clone()))
        })
        .collect();
    let is_ours = |id: &automerge::ObjId| match id {
        automerge::ObjId::Id(counter, actor, _) => ours.contains(&(*counter, actor.clone())),
        automerge::ObjId::Root => false,
    };
    // The fields to take back, in order: (object, key or element, the heads before the change
    // that first set it).
    let mut map_fields: Vec<(ObjectId, String, Vec<ChangeHash>)> = Vec::new();
    let mut elements: Vec<(ObjectId, Op)> = Vec::new();
    let mut seen = HashSet::new();
    for c in changes {
        let expanded = change::quietly(|| c.decode()).map_err(|p| p.to_string())?;
        let start = expanded.start_op.get();
        for (i, op) in expanded.operations.iter().enumerate() {
            // Inside an object these changes made: it goes as a whole.
            if matches!(&op.obj, ObjectId::Id(o) if ours.contains(&op_id(o))) {
                continue;
            }
            if !matches!(op.action, OpType::Put(_) | OpType::Make(_)) {
                continue;
            }
            match &op.key {
                _ if op.insert => elements.push((
                    op.obj.clone(),
                    (start + i as u64, expanded.actor_id.clone()),
                )),
                Key::Map(k) => {
                    if seen.insert((op.obj.clone(), k.to_string())) {
                        map_fields.push((op.obj.clone(), k.to_string(), c.deps().to_vec()));
                    }
                }
                Key::Seq(ElementId::Id(e)) => elements.push((op.obj.clone(), op_id(e))),
                Key::Seq(ElementId::Head) => {}
            }
        }
    }
    let obj_id = |o: &ObjectId| -> Option<automerge::ObjId> {
        match o {
            ObjectId::Root => Some(automerge::ROOT),
            ObjectId::Id(id) => doc.import_obj(&format!("{}@{}", id.0, id.1)).ok(),
        }
    };
    let mut fork = doc.fork().with_actor(ActorId::random());
    let heads = fork.get_heads();
    let mut tx = fork.transaction();
    let mut wrote = false;
    for (obj, key, before) in &map_fields {
        let Some(obj) = obj_id(obj) else { continue };
        let now = doc.get_all(&obj, key.as_str()).map_err(|e| e.to_string())?;
        // Gone already, or written since by someone else: theirs stays.
        if now.is_empty() || !now.iter().all(|(_, id)| is_ours(id)) {
            continue;
        }
        let was = doc
            .get_all_at(&obj, key.as_str(), before)
            .map_err(|e| e.to_string())?;
        let scalar = was.into_iter().find_map(|(v, id)| match v {
            automerge::Value::Scalar(s) if !is_ours(&id) => Some(s.into_owned()),
            _ => None,
        });
        match scalar {
            Some(s) => tx.put(&obj, key.as_str(), s).map_err(|e| e.to_string())?,
            None => tx.delete(&obj, key.as_str()).map_err(|e| e.to_string())?,
        }
        wrote = true;
    }
    for (obj, element) in &elements {
        let Some(obj) = obj_id(obj) else { continue };
        let len = doc.length(&obj);
        // The element's index now, if its value is still the one these changes gave it.
        let at = (0..len).rev().find(|&i| {
            doc.get_all(&obj, i).is_ok_and(|vals| {
                !vals.is_empty()
                    && vals.iter().all(|(_, id)| is_ours(id))
                    && vals.iter().any(|(_, id)| {
                        matches!(id, automerge::ObjId::Id(c, a, _) if (*c, a.clone()) == *element)
                    })
            })
        });
        if let Some(i) = at {
            tx.delete(&obj, i).map_err(|e| e.to_string())?;
            wrote = true;
        }
    }
    if !wrote {
        let _ = tx.rollback();
        return Ok(None);
    }
    tx.commit();
    Ok(fork.get_changes(&heads).into_iter().next())
}

#[cfg(test)]
mod tests {
    use cairn_core::team;

    use super::*;

    /// A team document: Ana founds it; a change of hers adds #Curiosity; then each of `later`
    /// writes on a replica of their own that has seen it. Returns the document and the pillar
    /// change's hash.
    fn team_with_pillar(later: &[&dyn Fn(&mut Automerge)]) -> (Automerge, Vec<u8>) {
        let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        team::init(&mut doc, "Otters", "UTC", "Ana", "ana", "m-ana", 0).unwrap();
        let state = team::read(&doc).unwrap();
        let heads = doc.get_heads();
        team::add_pillar(&mut doc, &state, "Curiosity", Some("we ask"), 1).unwrap();
        let pillar = doc.get_changes(&heads)[0].hash().0.to_vec();
        for (i, write) in later.iter().enumerate() {
            let mut other = doc.fork().with_actor(ActorId::from([10 + i as u8; 16]));
            write(&mut other);
            doc.merge(&mut other).unwrap();
        }
        (doc, pillar)
    }

    fn plan(doc: &Automerge, named: &[u8]) -> DocPlan {
        let named: HashSet<Vec<u8>> = [named.to_vec()].into();
        plan_doc(TEAM_DOC, doc.clone(), &named, Vec::new()).unwrap()
    }

    #[test]
    fn a_membership_after_a_withdrawn_pillar_is_kept_and_the_pillar_taken_back() {
        // Issue 25, finding 5: Dee joins after the pillar was added, on a replica that had it.
        let dee = |d: &mut Automerge| {
            let state = team::read(&*d).unwrap();
            team::add_member(d, &state, "m-dee", "Dee", Some("dee"), 2).unwrap();
        };
        let (doc, pillar) = team_with_pillar(&[&dee]);
        let p = plan(&doc, &pillar);
        assert_eq!(p.mode, Mode::TakeBack);
        assert!(!p.cascades(), "Dee's membership is not made on the pillar");
        let p = p.decide();
        let fates: Vec<(bool, Option<Fate>)> = p.rows.iter().map(|r| (r.named, r.fate)).collect();
        assert!(fates.contains(&(true, Some(Fate::TakenBack))), "{fates:?}");
        assert!(fates.contains(&(false, Some(Fate::Kept))), "{fates:?}");
        let (removal, change) = p.write().unwrap();
        assert!(removal.is_none());
        let change = change.expect("a change that takes the pillar back");
        let mut after = doc.clone();
        after.apply_changes([change]).unwrap();
        let state = team::read(&after).unwrap();
        assert!(
            state.pillars.iter().all(|p| p.id != "curiosity"),
            "{state:?}"
        );
        assert!(state.member("m-dee").is_some(), "Dee stays");
        assert_eq!(state.pillars.len(), 3);
    }

    #[test]
    fn an_edit_made_on_the_pillar_goes_only_with_consent_and_a_later_membership_stays() {
        let edit = |d: &mut Automerge| {
            let state = team::read(&*d).unwrap();
            team::edit_pillar(d, &state, "curiosity", None, Some("we ask, then listen")).unwrap();
        };
        let dee = |d: &mut Automerge| {
            let state = team::read(&*d).unwrap();
            team::add_member(d, &state, "m-dee", "Dee", Some("dee"), 2).unwrap();
        };
        let (doc, pillar) = team_with_pillar(&[&edit, &dee]);
        let p = plan(&doc, &pillar);
        assert_eq!(p.mode, Mode::TakeBack);
        assert!(p.cascades(), "Bo's edit is made on the pillar");
        // Without consent nothing is done; with it, the pillar goes whole, and Dee stays.
        let p = p.decide();
        let made_on: Vec<Option<Fate>> = p
            .rows
            .iter()
            .filter(|r| r.made_on)
            .map(|r| r.fate)
            .collect();
        assert_eq!(made_on, [Some(Fate::TakenBackWithIt)]);
        let (_, change) = p.write().unwrap();
        let mut after = doc.clone();
        after.apply_changes([change.unwrap()]).unwrap();
        let state = team::read(&after).unwrap();
        assert!(
            state.pillars.iter().all(|p| p.id != "curiosity"),
            "{state:?}"
        );
        assert!(state.member("m-dee").is_some());
    }

    #[test]
    fn a_field_of_the_same_pillar_is_made_on_it() {
        assert_eq!(family("pillar/curiosity/about"), "pillar/curiosity");
        assert_eq!(family("pillar/curiosity"), "pillar/curiosity");
        assert_eq!(family("name"), "name");
        assert_eq!(family("member/m-1"), "member/m-1");
    }

    #[test]
    fn a_change_nothing_came_after_leaves_the_history() {
        let (doc, pillar) = team_with_pillar(&[]);
        let p = plan(&doc, &pillar);
        assert_eq!(p.mode, Mode::Remove);
        assert!(!p.cascades());
        let (removal, change) = p.decide().write().unwrap();
        assert!(change.is_none());
        let removal = removal.unwrap();
        assert_eq!(removal.hashes, [pillar]);
        let rebuilt = Automerge::load(&removal.rebuilt).unwrap();
        assert_eq!(team::read(&rebuilt).unwrap().pillars.len(), 3);
    }

    #[test]
    fn a_journal_goes_out_of_the_history_and_what_came_after_needs_consent() {
        let mut doc = Automerge::new().with_actor(ActorId::from([3u8; 16]));
        let mut hashes = Vec::new();
        for key in ["spam", "honest"] {
            let heads = doc.get_heads();
            let mut tx = doc.transaction();
            let o = tx
                .put_object(automerge::ROOT, key, automerge::ObjType::Map)
                .unwrap();
            tx.put(&o, "text", key).unwrap();
            tx.commit();
            hashes.push(doc.get_changes(&heads)[0].hash().0.to_vec());
        }
        let named: HashSet<Vec<u8>> = [hashes[0].clone()].into();
        let p = plan_doc("j/m-bo/2026-11", doc, &named, Vec::new()).unwrap();
        assert_eq!(p.mode, Mode::Remove);
        assert!(
            p.cascades(),
            "the later event goes with it, by automerge's rules"
        );
        let fates: Vec<Option<Fate>> = p.decide().rows.iter().map(|r| r.fate).collect();
        assert_eq!(fates, [Some(Fate::Withdrawn), Some(Fate::WithdrawnAfterIt)]);
    }
}
