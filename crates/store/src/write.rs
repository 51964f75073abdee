//! The writes a member makes: events, reactions, edits, retractions, changes of the team. Each
//! is one transaction holding the document's new changes, their outbox entries and the index
//! rows they touch.

use automerge::Automerge;
use cairn_core::ids::{self, EventId, TEAM_DOC};
use cairn_core::{Edit, Kind, NewEvent, Stamp, TeamState, journal};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::docs::{actor_for, load_doc, store_chunk};
use crate::{Error, Reacted, Replica, Result, index};

/// The journal holding `author`'s own event `id`; someone else's event is refused as theirs,
/// and so is one given from outside (no journal holds it).
fn own_doc(conn: &Connection, id: &EventId, author: &str) -> Result<String> {
    match index::doc_of(conn, id, author) {
        Err(Error::NoSuchEvent(_)) if !index::events_with_id(conn, id)?.is_empty() => {
            Err(cairn_core::Error::NotYours(id.short().to_owned()).into())
        }
        Ok(doc) if crate::outside::source_of(&doc).is_some() => {
            Err(cairn_core::Error::NotYours(id.short().to_owned()).into())
        }
        other => other,
    }
}

impl Replica {
    /// Logs a micro-action or a recognition by `author`.
    pub fn add_event(
        &mut self,
        author: &str,
        id: &EventId,
        stamp: &Stamp,
        new: &NewEvent,
    ) -> Result<()> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let doc = ids::journal_doc(author, &ids::month_of(stamp.at_ms));
        Self::change_in(&tx, &doc, author, |d| {
            journal::add(d, &team, author, id, stamp, new)
        })?;
        tx.commit()?;
        Ok(())
    }

    /// Logs many events by `author` in one transaction, loading each journal once: for imports
    /// and for seeding large replicas. Stops at the first invalid event, writing nothing.
    pub fn add_events(
        &mut self,
        author: &str,
        events: &[(EventId, Stamp, NewEvent)],
    ) -> Result<()> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let mut start = 0;
        while start < events.len() {
            let month = ids::month_of(events[start].1.at_ms);
            let end = events[start..]
                .iter()
                .position(|(_, s, _)| ids::month_of(s.at_ms) != month)
                .map_or(events.len(), |n| start + n);
            let batch = &events[start..end];
            let doc_id = ids::journal_doc(author, &month);
            Self::change_in(&tx, &doc_id, author, |d| {
                for (id, stamp, new) in batch {
                    journal::add(d, &team, author, id, stamp, new)?;
                }
                Ok(())
            })?;
            start = end;
        }
        tx.commit()?;
        Ok(())
    }

    /// Reacts to event `target` with `emoji`; a second identical reaction takes it back.
    pub fn react(
        &mut self,
        author: &str,
        target: &EventId,
        emoji: &str,
        id: &EventId,
        stamp: &Stamp,
    ) -> Result<Reacted> {
        let tx = self.write()?;
        // Two members' events may share an id; a reaction names the id, so it shows on each.
        let Some(t) = index::events_with_id(&tx, target)?.into_iter().next() else {
            return Err(Error::NoSuchEvent(target.short().to_owned()));
        };
        if t.kind == Kind::Reaction {
            return Err(cairn_core::Error::ReactToReaction.into());
        }
        if t.retracted {
            return Err(cairn_core::Error::Retracted(target.short().to_owned()).into());
        }
        // The same reaction made on two devices shows once; taking it back takes back both.
        let mine = index::live_reactions(&tx, target, author, emoji.trim())?;
        let outcome = if !mine.is_empty() {
            for r in &mine {
                let doc = index::doc_of(&tx, r, author)?;
                Self::change_in(&tx, &doc, author, |d| {
                    journal::retract(d, author, r, stamp.at_ms)
                })?;
            }
            Reacted::Removed
        } else {
            let team = index::team(&tx)?;
            let doc = ids::journal_doc(author, &ids::month_of(stamp.at_ms));
            let new = NewEvent::reaction(target.clone(), emoji);
            Self::change_in(&tx, &doc, author, |d| {
                journal::add(d, &team, author, id, stamp, &new)
            })?;
            Reacted::Added
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Edits `author`'s own event `id`.
    pub fn edit_event(
        &mut self,
        author: &str,
        id: &EventId,
        edit: &Edit,
        at_ms: i64,
    ) -> Result<()> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let doc = own_doc(&tx, id, author)?;
        Self::change_in(&tx, &doc, author, |d| {
            journal::edit(d, &team, author, id, edit, at_ms)
        })?;
        tx.commit()?;
        Ok(())
    }

    /// Retracts `author`'s own event `id`.
    pub fn retract_event(&mut self, author: &str, id: &EventId, at_ms: i64) -> Result<()> {
        let tx = self.write()?;
        let doc = own_doc(&tx, id, author)?;
        Self::change_in(&tx, &doc, author, |d| {
            journal::retract(d, author, id, at_ms)
        })?;
        tx.commit()?;
        Ok(())
    }

    /// Changes document `doc_id` as member `by`: in an organisation's replica, a journal of
    /// kudos across teams or a team's shared figures (the team's own documents have their own
    /// writes). An `op` that writes nothing stores nothing.
    pub fn change_doc<T>(
        &mut self,
        doc_id: &str,
        by: &str,
        op: impl FnOnce(&mut Automerge) -> cairn_core::Result<T>,
    ) -> Result<T> {
        if !ids::is_org_doc_id(doc_id) {
            return Err(Error::BadChange(format!(
                "`{doc_id}` is not a document of an organisation's"
            )));
        }
        let tx = self.write()?;
        let out = Self::change_in(&tx, doc_id, by, op)?;
        tx.commit()?;
        Ok(out)
    }

    /// Document `doc_id` as this replica holds it (empty when it holds none).
    pub fn read_doc(&self, doc_id: &str) -> Result<Automerge> {
        load_doc(&self.conn, doc_id)
    }

    /// The ids of the documents this replica holds whose id starts with `prefix`, sorted.
    pub fn doc_ids(&self, prefix: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id FROM docs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id",
        )?;
        let ids = st
            .query_map([prefix], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids)
    }

    /// Changes the team document as member `by`.
    pub fn change_team<T>(
        &mut self,
        by: &str,
        op: impl FnOnce(&mut Automerge, &TeamState) -> cairn_core::Result<T>,
    ) -> Result<T> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let out = Self::change_in(&tx, TEAM_DOC, by, |d| op(d, &team))?;
        tx.commit()?;
        Ok(out)
    }

    /// Changes the team document as member `by`, and notes the change in the feed (an event of
    /// kind team in `by`'s journal, saying what changed), in one transaction: `op` returns its
    /// result and the note's words.
    pub fn change_team_noted<T>(
        &mut self,
        by: &str,
        id: &EventId,
        stamp: &Stamp,
        op: impl FnOnce(&mut Automerge, &TeamState) -> cairn_core::Result<(T, String)>,
    ) -> Result<T> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let (out, note) = Self::change_in(&tx, TEAM_DOC, by, |d| op(d, &team))?;
        let team = index::team(&tx)?;
        let doc = ids::journal_doc(by, &ids::month_of(stamp.at_ms));
        Self::change_in(&tx, &doc, by, |d| {
            journal::add(d, &team, by, id, stamp, &NewEvent::team(&note))
        })?;
        tx.commit()?;
        Ok(out)
    }

    pub(crate) fn write(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Loads document `doc_id` (empty if new), applies `op` as member `member`'s actor, and writes
    /// the new changes, the outbox entries and the index rows they touch, all inside `tx`.
    pub(crate) fn change_in<T>(
        tx: &Transaction<'_>,
        doc_id: &str,
        member: &str,
        op: impl FnOnce(&mut Automerge) -> cairn_core::Result<T>,
    ) -> Result<T> {
        let mut doc = load_doc(tx, doc_id)?;
        doc.set_actor(actor_for(tx, member)?);
        let heads = doc.get_heads();
        let out = op(&mut doc)?;
        let changes = doc.get_changes(&heads);
        if changes.is_empty() {
            return Ok(out);
        }
        let mut chunk = Vec::new();
        {
            let mut outbox =
                tx.prepare_cached("INSERT INTO outbox (doc, hash, change) VALUES (?1, ?2, ?3)")?;
            for c in &changes {
                chunk.extend_from_slice(c.raw_bytes());
                outbox.execute(params![doc_id, c.hash().0.as_slice(), c.raw_bytes()])?;
            }
        }
        store_chunk(tx, doc_id, &doc, &chunk)?;
        index::update(tx, doc_id, &doc, &heads)?;
        Ok(out)
    }
}
