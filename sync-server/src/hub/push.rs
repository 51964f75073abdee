//! Pushes: what a device may store (its own actors, its own member's journals, every change
//! numbered right and applying to its document), decided change by change and appended in one
//! write per group of pushes to a team.

use std::collections::{HashMap, HashSet};

use automerge::Change;
use cairn_core::change::{self, Shape};
use cairn_core::ids::{self, TEAM_DOC};

use super::{Hub, MAX_ATTEMPTS, cpu, lock, past_head};
use crate::docs::Loaded;
use crate::store::{Append, Device, Entry, Facts, FactsQuery, Kind, StoreError, TeamLog};
use crate::{Error, Limits, Result};

/// A push waiting for its team's turn.
#[derive(Debug)]
pub(super) struct Waiting {
    device: Device,
    docs: Pushed,
    cursor: u64,
    done: tokio::sync::oneshot::Sender<Result<usize>>,
}

/// Pushes one write takes at most.
const MAX_GROUP: usize = 128;

/// Why a group's write did not happen.
enum GroupError {
    /// Another writer came first: plan again.
    Moved,
    /// One push of the group is refused; the others can go.
    One(usize, Error),
    /// Storage failed for all of them.
    All(Error),
}

impl Hub {
    /// Stores a push, grouped with the other pushes to its team waiting meanwhile; the number of
    /// its changes newly stored.
    pub(super) async fn push(&self, device: &Device, docs: Pushed, cursor: u64) -> Result<usize> {
        let team = device.team.clone();
        let (done, mut result) = tokio::sync::oneshot::channel();
        lock(&self.waiting)
            .entry(team.clone())
            .or_default()
            .push(Waiting {
                device: device.clone(),
                docs,
                cursor,
                done,
            });
        let _turn = self.turn(&team).await;
        // Appended by whoever had the turn before?
        if let Ok(done) = result.try_recv() {
            return done;
        }
        let group = {
            let mut waiting = lock(&self.waiting);
            let queue = waiting.entry(team.clone()).or_default();
            let group: Vec<Waiting> = queue.drain(..queue.len().min(MAX_GROUP)).collect();
            if queue.is_empty() {
                waiting.remove(&team);
            }
            group
        };
        self.append_group(&team, group).await;
        result
            .await
            .unwrap_or_else(|_| Err(Error::Internal("a push was dropped unanswered".into())))
    }

    /// Appends a group of pushes in one write, answering each. A push refused leaves the group
    /// and the rest is planned again; so is everything when another writer came first.
    async fn append_group(&self, team: &str, group: Vec<Waiting>) {
        // The team's turn among every server process on the database, for the whole group.
        let turn = match self.store.turn(team).await {
            Ok(turn) => turn,
            Err(e) => {
                let e = Error::from(e);
                for w in group {
                    let _ = w.done.send(Err(e.clone()));
                }
                return;
            }
        };
        self.answer_group(team, group).await;
        turn.release().await;
    }

    /// Appends a group (the team's turn held), answering each of its pushes.
    async fn answer_group(&self, team: &str, mut group: Vec<Waiting>) {
        let mut moved = 0;
        while !group.is_empty() {
            match self.try_group(team, &group).await {
                Ok(stored) => {
                    for (w, n) in group.into_iter().zip(stored) {
                        let _ = w.done.send(Ok(n));
                    }
                    return;
                }
                Err(GroupError::One(i, e)) => {
                    let _ = group.remove(i).done.send(Err(e));
                }
                Err(GroupError::Moved) if moved < MAX_ATTEMPTS => moved += 1,
                Err(GroupError::Moved) => {
                    for w in group {
                        let _ = w
                            .done
                            .send(Err(Error::busy("the team's log kept moving; try again")));
                    }
                    return;
                }
                Err(GroupError::All(e)) => {
                    for w in group {
                        let _ = w.done.send(Err(e.clone()));
                    }
                    return;
                }
            }
        }
    }

    /// Plans a group on the team's log as it stands and appends it: how many changes of each
    /// push were new.
    async fn try_group(
        &self,
        team: &str,
        group: &[Waiting],
    ) -> std::result::Result<Vec<usize>, GroupError> {
        let all = |e: StoreError| GroupError::All(e.into());
        let mut query = FactsQuery::default();
        let mut seen = HashSet::new();
        // Sets beside the lists: a group can name thousands of documents and actors.
        let mut names: Vec<String> = Vec::new();
        let mut named = HashSet::new();
        let mut actors = HashSet::new();
        for w in group {
            for (doc, changes) in &w.docs {
                if named.insert(doc.as_str()) {
                    names.push(doc.clone());
                }
                for (c, _) in changes {
                    let actor = c.actor_id().to_bytes().to_vec();
                    if seen.insert((doc.clone(), actor.clone())) {
                        query.tips.push((doc.clone(), actor.clone()));
                        if actors.insert(actor.clone()) {
                            query.actors.push(actor);
                        }
                    }
                    query.hashes.push(c.hash().0.to_vec());
                    // Whether it was made on a withdrawn change.
                    query.hashes.extend(c.deps().iter().map(|d| d.0.to_vec()));
                }
            }
        }
        let facts = self.store.facts(team, &query).await.map_err(all)?;
        let log = facts.log;
        if let Some(i) = group.iter().position(|w| w.cursor > log.head as u64) {
            return Err(GroupError::One(
                i,
                past_head(group[i].cursor, log.head as u64),
            ));
        }
        // The group's documents, caught up with the log: their tails in one read.
        let mut taken = Vec::with_capacity(names.len());
        for doc in &names {
            let l = self.docs.take(team, doc, log.withdrawals);
            match l.start_from_snapshot(&*self.store, team, doc).await {
                Ok(l) => taken.push(l),
                Err(e) => {
                    self.put_back(team, &names, taken);
                    return Err(GroupError::All(e));
                }
            }
        }
        let after: Vec<(String, i64)> = names
            .iter()
            .zip(&taken)
            .map(|(doc, l)| (doc.clone(), l.seq))
            .collect();
        let rows = match self.store.docs_changes(team, &after).await {
            Ok(rows) => rows,
            Err(e) => {
                self.put_back(team, &names, taken);
                return Err(all(e));
            }
        };
        let loaded = {
            let (team, names) = (team.to_owned(), names.clone());
            cpu(move || {
                let mut tails: HashMap<String, Vec<(i64, Vec<u8>)>> = HashMap::new();
                for (doc, seq, data) in rows {
                    tails.entry(doc).or_default().push((seq, data));
                }
                names
                    .iter()
                    .zip(taken)
                    .map(|(doc, l)| l.fold(&team, doc, tails.remove(doc).unwrap_or_default()))
                    .collect::<Vec<Loaded>>()
            })
            .await
            .map_err(GroupError::All)?
        };
        let pushes: Vec<(Device, Pushed)> = group
            .iter()
            .map(|w| (w.device.clone(), w.docs.clone()))
            .collect();
        let planned = {
            let names = names.clone();
            cpu(move || plan(&pushes, &names, loaded, &facts, log))
                .await
                .map_err(GroupError::All)?
        };
        let (mut append, loaded, stored) = match planned {
            Ok(plan) => plan,
            Err((i, e, loaded)) => {
                self.put_back(team, &names, loaded);
                return Err(GroupError::One(i, e));
            }
        };
        if append.entries.is_empty() {
            self.put_back(team, &names, loaded);
            return Ok(stored);
        }
        append.stored_ms = crate::store::now_ms();
        match self.store.append(team, &append).await {
            Ok(head) => {
                self.news.signal(team, head);
                for (doc, l) in names.iter().zip(loaded) {
                    let due = l.snapshot_due();
                    self.docs.put(team, doc, l);
                    if due {
                        self.compactor.due(&self.store, &self.docs, team, doc);
                    }
                }
                Ok(stored)
            }
            Err(e) => {
                // Documents a failed write applied changes to are ahead of the log: dropped.
                self.put_back(team, &names, loaded);
                if e.is_race() {
                    Err(GroupError::Moved)
                } else {
                    Err(all(e))
                }
            }
        }
    }

    /// Puts back in the cache the documents a request did not change.
    fn put_back(&self, team: &str, names: &[String], loaded: Vec<Loaded>) {
        for (doc, l) in names.iter().zip(loaded) {
            if !l.dirty {
                self.docs.put(team, doc, l);
            }
        }
    }
}

/// A push's changes, grouped by document in the order they came, each with where it was in the
/// request (for messages).
pub(super) type Pushed = Vec<(String, Vec<(Change, String)>)>;

/// Checks a push's shape and decodes its changes, grouped by document in the order they came.
pub(super) fn decode_push(
    device: &Device,
    push: Vec<cairn_protocol::DocChanges>,
    limits: &Limits,
) -> Result<Pushed> {
    let pushed: usize = push.iter().map(|d| d.changes.len()).sum();
    if pushed > limits.max_push_changes {
        return Err(Error::TooLarge(format!(
            "a sync pushes at most {} changes; this one had {pushed}",
            limits.max_push_changes
        )));
    }
    // As many lists as changes at most (an empty list costs nothing but the parsing).
    if push.len() > limits.max_push_changes {
        return Err(Error::TooLarge(format!(
            "a sync pushes at most {} lists of changes; this one had {}",
            limits.max_push_changes,
            push.len()
        )));
    }
    let mut docs: Pushed = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut ops = 0u64;
    for dc in push.into_iter().filter(|dc| !dc.changes.is_empty()) {
        check_doc(device, &dc.doc)?;
        let mut decoded = Vec::with_capacity(dc.changes.len());
        for (i, bytes) in dc.changes.iter().enumerate() {
            let at = format!("change {} of {}", i + 1, dc.doc);
            let (c, shape) = decode(&bytes.0, limits, &at)?;
            ops += shape.ops;
            if ops > limits.max_push_ops {
                return Err(Error::TooLarge(format!(
                    "a sync pushes at most {} operations; send fewer changes at once",
                    limits.max_push_ops
                )));
            }
            decoded.push((c, at));
        }
        match index.get(&dc.doc) {
            Some(&i) => docs[i].1.extend(decoded),
            None => {
                index.insert(dc.doc.clone(), docs.len());
                docs.push((dc.doc, decoded));
            }
        }
    }
    Ok(docs)
}

/// Inspects and decodes one pushed change with work bounded by its size, refusing what no
/// honest client sends: oversize, compressed, damaged or too costly changes, trailing bytes,
/// counters past 32 bits, author footers.
fn decode(bytes: &[u8], limits: &Limits, at: &str) -> Result<(Change, Shape)> {
    change::decode(bytes, &limits.change).map_err(|e| match e {
        change::Refusal::TooLarge { .. } => Error::TooLarge(format!("{at}: {e}")),
        _ => Error::BadRequest(format!("{at}: {e}")),
    })
}

/// A device writes the team document and its own member's journals; a publishing device brings
/// the whole offline history, every member's journals included.
fn check_doc(device: &Device, doc: &str) -> Result<()> {
    if !ids::is_doc_id(doc) {
        return Err(Error::BadRequest(format!("`{doc}` names no document")));
    }
    // An organisation's log: who writes which of its documents was decided before (see
    // `Hub::sync_org`); a team's journal has no place there.
    if device.org.is_some() {
        if doc == TEAM_DOC || ids::is_org_doc_id(doc) {
            return Ok(());
        }
        return Err(Error::Forbidden(format!(
            "an organisation's log holds no document `{doc}`"
        )));
    }
    if ids::is_org_doc_id(doc) {
        return Err(Error::Forbidden(format!(
            "`{doc}` belongs in an organisation's log, not a team's"
        )));
    }
    if doc == TEAM_DOC || device.importing || ids::journal_owner(doc) == Some(&device.member) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "a device writes only its own member's journals, not {doc}"
    )))
}

/// Refuses a change to the team document that writes another member's chat setting (see
/// [`cairn_core::team::chat_settings_written`]): each member says for themselves whether they may
/// be named in chat, from their own devices only.
fn check_own_settings(
    device: &Device,
    team_doc: &automerge::Automerge,
    change: &Change,
    at: &str,
) -> Result<()> {
    let written = cairn_core::team::chat_settings_written(team_doc, change);
    let Some(other) = written.iter().find(|m| **m != device.member) else {
        return Ok(());
    };
    let handle = cairn_core::team::read(team_doc)
        .ok()
        .and_then(|t| t.member(other).map(|m| format!("@{}", m.handle)))
        .unwrap_or_else(|| format!("member {other}"));
    Err(Error::Forbidden(format!(
        "{at} changes whether {handle} is named in chat: only {handle} says that, from their \
         own devices"
    )))
}

/// What a group of pushes comes to: the write, the documents (in `names` order) with its changes
/// applied, how many changes of each push are new. On a refusal, which push, why, and the
/// documents (those it changed are dirty).
type Plan = std::result::Result<(Append, Vec<Loaded>, Vec<usize>), (usize, Error, Vec<Loaded>)>;

/// Decides, change by change, what of a group of pushes the log takes: each change must be
/// signed by one of its device's actors, be new (a change the log holds is acknowledged again),
/// come next in its actor's numbering, and apply to its document as the log has it. Nothing
/// that fails here is stored, so nothing stored can stop a replica.
fn plan(
    pushes: &[(Device, Pushed)],
    names: &[String],
    mut loaded: Vec<Loaded>,
    facts: &Facts,
    log: TeamLog,
) -> Plan {
    let mut planner = Planner {
        facts,
        log,
        append: Append {
            base_head: log.head,
            ..Append::default()
        },
        owned: HashMap::new(),
        known: HashMap::new(),
        tips: HashMap::new(),
        stored: 0,
    };
    let at: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut stored = Vec::with_capacity(pushes.len());
    for (i, (device, docs)) in pushes.iter().enumerate() {
        let before = planner.stored;
        for (doc, changes) in docs {
            let Some(&at_doc) = at.get(doc.as_str()) else {
                continue;
            };
            for (change, at) in changes {
                if let Err(e) = planner.take(device, doc, &mut loaded[at_doc], change.clone(), at) {
                    return Err((i, e, loaded));
                }
            }
        }
        stored.push(planner.stored - before);
    }
    Ok((planner.append, loaded, stored))
}

struct Planner<'a> {
    facts: &'a Facts,
    log: TeamLog,
    append: Append,
    /// Actors this group claims, and for which device.
    owned: HashMap<Vec<u8>, String>,
    /// Hashes this group appends: (document, dropped).
    known: HashMap<Vec<u8>, (String, bool)>,
    /// (document, actor) -> (sequence, hash) of the last change this group appends.
    tips: HashMap<(String, Vec<u8>), (i64, Vec<u8>)>,
    stored: usize,
}

impl Planner<'_> {
    fn known(&self, hash: &[u8]) -> Option<(&str, bool)> {
        self.known
            .get(hash)
            .or_else(|| self.facts.known.get(hash))
            .map(|(d, w)| (d.as_str(), *w))
    }

    fn take(
        &mut self,
        device: &Device,
        doc: &str,
        loaded: &mut Loaded,
        change: Change,
        at: &str,
    ) -> Result<()> {
        let actor = change.actor_id().to_bytes().to_vec();
        match self
            .facts
            .owners
            .get(&actor)
            .or_else(|| self.owned.get(&actor))
        {
            Some(d) if *d != device.id => {
                return Err(Error::Forbidden(format!(
                    "{at} is signed by another device's actor"
                )));
            }
            Some(_) => {}
            None => {
                self.owned.insert(actor.clone(), device.id.clone());
                self.append.claims.push((actor.clone(), device.id.clone()));
            }
        }
        let hash = change.hash().0.to_vec();
        // A change the admin withdrew, or one made on top of one, is taken and dropped: the
        // device drops it too once it reads the notice, and must not be stuck pushing it
        // meanwhile.
        if let Some((known_doc, withdrawn)) = self.known(&hash) {
            if withdrawn {
                return Ok(());
            }
            if known_doc != doc {
                return Err(Error::BadRequest(format!(
                    "{at} is already stored in another document"
                )));
            }
            return Ok(());
        }
        // Held by the document but no longer in the log (pruned): acknowledged again.
        if change::quietly(|| loaded.doc.get_change_meta_by_hash(&change.hash()).is_some())
            .unwrap_or(false)
        {
            return Ok(());
        }
        let on_withdrawn = self.log.withdrawals > 0
            && change
                .deps()
                .iter()
                .any(|d| self.known(&d.0).is_some_and(|(_, w)| w));
        // An actor's changes to a document are numbered 1, 2, 3, ... and automerge refuses any
        // other order, so the log takes them only that way: one gap or reuse would stop every
        // replica.
        let key = (doc.to_owned(), actor.clone());
        let (last, prev) = self
            .tips
            .get(&key)
            .or_else(|| self.facts.tips.get(&key))
            .map_or((0, None), |(s, h)| (*s, Some(h.clone())));
        let seq = change.seq() as i64;
        if seq <= last {
            return Err(Error::ActorReused {
                message: format!(
                    "{at} reuses sequence number {seq} of its actor with other content: the \
                     replica was restored or copied"
                ),
                doc: doc.to_owned(),
                change: hash.iter().map(|b| format!("{b:02x}")).collect(),
            });
        }
        if seq != last + 1 {
            // The server lost what the device sent before (restored from a backup): the
            // device sends it all again ([`cairn_protocol::PAST_HEAD`]).
            return Err(Error::PastHead(format!(
                "{at} is number {seq} of its actor, but the server holds {last} before it: it \
                 lost what this device sent, restored from a backup"
            )));
        }
        // Made on top of a withdrawn change: taken and dropped at once, and kept as withdrawn
        // (with no content), so what was made on top of it in turn is dropped too and the
        // actor's numbering holds.
        let (data, withdrawn_ms) = if on_withdrawn {
            self.append.withdrawals += 1;
            (Vec::new(), Some(0))
        } else {
            // Its operations come after those of its actor's previous change: an actor numbers
            // its operations once, and two operations with one number would break every replica.
            let prev_end = prev
                .and_then(|h| automerge::ChangeHash::try_from(h.as_slice()).ok())
                .and_then(|h| {
                    change::quietly(|| loaded.doc.get_change_meta_by_hash(&h).map(|m| m.max_op))
                        .ok()
                        .flatten()
                });
            if prev_end.is_some_and(|end| change.start_op().get() <= end) {
                return Err(Error::BadRequest(format!(
                    "{at} numbers its operations again from before its actor's previous change"
                )));
            }
            for dep in change.deps() {
                let missing = change::quietly(|| loaded.doc.get_change_meta_by_hash(dep).is_none());
                if missing.unwrap_or(true) {
                    return Err(Error::MissingDeps {
                        message: format!(
                            "{at} depends on a change of {doc} the server does not have"
                        ),
                        doc: doc.to_owned(),
                    });
                }
            }
            // Whether a member may be named in chat is theirs alone to say (a publishing device
            // brings a team's history from before the server, its members' settings included).
            if doc == TEAM_DOC && !device.importing {
                check_own_settings(device, &loaded.doc, &change, at)?;
            }
            // An organisation's document keeps its rules: a non-negotiable is retired, never
            // taken out, and every change to one carries its note for the teams' feeds.
            let org_before = device
                .org
                .as_ref()
                .map(|_| OrgBefore::read(doc, &loaded.doc));
            // The one check that matters most: the change applies to the document as every
            // replica will hold it.
            let raw = change.raw_bytes().to_vec();
            loaded.dirty = true;
            loaded.folded(raw.len());
            if let Err(e) = change::apply(&mut loaded.doc, vec![change]) {
                return Err(Error::BadRequest(format!("{at}: {e}")));
            }
            if let Some(before) = org_before {
                before.check(device, doc, &loaded.doc, at)?;
            }
            (raw, None)
        };
        let number = self.append.base_head + 1 + self.append.entries.len() as i64;
        self.append.entries.push(Entry {
            doc: doc.to_owned(),
            hash: hash.clone(),
            actor,
            actor_seq: seq,
            device: device.id.clone(),
            data,
            withdrawn_ms,
            kind: Kind::Change,
        });
        self.known
            .insert(hash.clone(), (doc.to_owned(), on_withdrawn));
        self.tips.insert(key, (seq, hash));
        if !on_withdrawn {
            loaded.seq = number;
            self.stored += 1;
        }
        Ok(())
    }
}

/// A document of an organisation's log read before a change, to check the change against its
/// rules once applied: the organisation's own (its stewards' non-negotiables), a member's
/// journal of kudos across teams, or a team's shared figures.
enum OrgBefore {
    Org(cairn_core::OrgState),
    Across(cairn_core::across::Crossings),
    Shared(cairn_core::figures::Shared),
}

impl OrgBefore {
    fn read(doc: &str, loaded: &automerge::Automerge) -> OrgBefore {
        if ids::across_owner(doc).is_some() {
            return OrgBefore::Across(cairn_core::across::read(doc, loaded).unwrap_or_default());
        }
        if ids::shared_owner(doc).is_some() {
            return OrgBefore::Shared(cairn_core::figures::read(loaded).unwrap_or_default());
        }
        OrgBefore::Org(cairn_core::org::read(loaded).unwrap_or_default())
    }

    /// Refuses (403) a change that breaks its document's rules.
    fn check(
        self,
        device: &Device,
        doc: &str,
        loaded: &automerge::Automerge,
        at: &str,
    ) -> Result<()> {
        let refused = |what: &str, e: &dyn std::fmt::Display| {
            Err(Error::Forbidden(format!("{at} breaks {what}: {e}")))
        };
        let writer = device.org.as_deref().cloned().unwrap_or_default();
        match self {
            OrgBefore::Org(before) => {
                let after = cairn_core::org::read(loaded).unwrap_or_default();
                match cairn_core::org::check_change(&before, &after) {
                    Ok(()) => Ok(()),
                    Err(e) => refused("the organisation's document", &e),
                }
            }
            OrgBefore::Across(before) => {
                let after = cairn_core::across::read(doc, loaded).unwrap_or_default();
                let known = |team: &str, member: &str| {
                    writer
                        .people
                        .contains(&(team.to_owned(), member.to_owned()))
                };
                match cairn_core::across::check_change(doc, &before, &after, known) {
                    Ok(()) => Ok(()),
                    Err(e) => refused("the journal of kudos across teams", &e),
                }
            }
            OrgBefore::Shared(before) => {
                let after = cairn_core::figures::read(loaded).unwrap_or_default();
                match cairn_core::figures::check_change(&writer.team, &before, &after) {
                    Ok(()) => Ok(()),
                    Err(e) => refused("the team's shared figures", &e),
                }
            }
        }
    }
}
