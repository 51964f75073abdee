//! Withdrawal notices: the server's admin withdrew changes, and this replica drops them too,
//! with what was made on them, unless that would hurt.
//!
//! A notice is the server's word, and a server may be wrong or hostile. So a notice never
//! removes a change of this device that the server never acknowledged (no server can hold, let
//! alone withdraw, what it never took); this device's changes not yet acknowledged that were
//! made on a withdrawn one keep what they did, written again by a fresh actor on the document
//! without it; and a notice that would remove the team's founding or a member's membership is
//! held back whole and said. What each notice removed (or why it was held back) is kept in
//! `withdrawals`, and the changes that left in `withdrawn`, bytes and all, for review.

use std::collections::{HashMap, HashSet};

use automerge::{Automerge, Change, ChangeHash};
use cairn_core::change;
use cairn_core::ids::{TEAM_DOC, is_doc_id};
use cairn_core::{TeamState, journal, team};
use rusqlite::{OptionalExtension, params};

use crate::docs::{actor_for, load_doc};
use crate::sync::withdrawn_hashes;
use crate::{Error, Replica, Result, get_meta, index};

/// What a withdrawal notice did to this replica (or, held back, would have done).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Withdrawal {
    /// The document it named.
    pub doc: String,
    pub at_ms: i64,
    /// The changes it named.
    pub named: usize,
    /// Changes that left the document: the named ones this replica held, and what was made on
    /// them.
    pub dropped: usize,
    /// Named changes of this device the server never acknowledged: kept.
    pub refused: usize,
    /// This device's changes, unacknowledged (or acknowledged by the very exchange that brought
    /// the notice), made on withdrawn ones: what they did is written again, to be sent.
    pub redone: usize,
    /// Held back whole, with what it would have removed (the team's founding, a member's
    /// membership): nothing left the replica.
    pub held: Option<String>,
    /// What left, a line each (events with their authors, parts of the team), at most
    /// [`MAX_LINES`] and a line saying how many more.
    pub what: Vec<String>,
}

/// The most lines kept of what one notice removed.
pub const MAX_LINES: usize = 20;

impl Replica {
    /// Applies a withdrawal notice for `doc_id` naming `hashes`: drops those changes, with every
    /// change that depends on them, from the document, the index, the outbox and the changes
    /// waiting or set aside; they are refused if they ever come again. The outbox entries
    /// through `acked_through` are ones the server acknowledged in the exchange that brought
    /// the notice; those after it, it never took.
    ///
    /// Never drops what it must not (see the module's documentation): a named change the server
    /// never acknowledged is kept; this device's unsent changes made on a withdrawn one are
    /// written again without it; a notice that would remove the team's founding or a
    /// membership is held back. Either way it is recorded ([`Replica::withdrawals`]).
    pub fn withdraw(
        &mut self,
        doc_id: &str,
        hashes: &[Vec<u8>],
        acked_through: Option<i64>,
        now_ms: i64,
    ) -> Result<Withdrawal> {
        if !is_doc_id(doc_id) {
            return Err(Error::BadChange(format!("`{doc_id}` names no document")));
        }
        let tx = self.write()?;
        let mut out = Withdrawal {
            doc: doc_id.to_owned(),
            at_ms: now_ms,
            named: hashes.len(),
            ..Withdrawal::default()
        };
        // This device's changes to the document still in the outbox, and which of them the
        // server never acknowledged.
        let outbox: Vec<(i64, Vec<u8>)> = tx
            .prepare("SELECT seq, hash FROM outbox WHERE doc = ?1")?
            .query_map([doc_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let acked = acked_through.unwrap_or(i64::MIN);
        let unacked: HashSet<&[u8]> = outbox
            .iter()
            .filter(|(seq, _)| *seq > acked)
            .map(|(_, h)| h.as_slice())
            .collect();
        let own: HashSet<&[u8]> = outbox.iter().map(|(_, h)| h.as_slice()).collect();
        let mut named: Vec<&Vec<u8>> = Vec::with_capacity(hashes.len());
        for h in hashes {
            if unacked.contains(h.as_slice()) {
                out.refused += 1;
            } else {
                named.push(h);
            }
        }
        let mut gone = withdrawn_hashes(&tx, doc_id)?;
        gone.extend(
            named
                .iter()
                .filter_map(|h| ChangeHash::try_from(h.as_slice()).ok()),
        );
        let doc = load_doc(&tx, doc_id)?;
        let bad = |p: String| Error::BadChange(format!("in {doc_id}: {p}"));
        let all = change::quietly(|| doc.get_changes(&[])).map_err(|p| bad(p.to_owned()))?;
        // (In causal order: what depends on a change comes after it.)
        let mut keep = Vec::with_capacity(all.len());
        let mut dropped: Vec<Change> = Vec::new();
        for c in &all {
            if gone.contains(&c.hash()) || c.deps().iter().any(|d| gone.contains(d)) {
                gone.insert(c.hash());
                dropped.push(c.clone());
            } else {
                keep.push(c.clone());
            }
        }
        let rebuilt = if dropped.is_empty() {
            None
        } else {
            let mut rebuilt = Automerge::new();
            change::quietly(|| rebuilt.apply_changes(keep))
                .map_err(|p| bad(p.to_owned()))?
                .map_err(|e| bad(e.to_string()))?;
            Some(rebuilt)
        };
        // The team document: never its founding nor a membership.
        if doc_id == TEAM_DOC
            && let Some(rebuilt) = &rebuilt
        {
            let lost = lost_from_team(&team::read(&doc)?, &team::read(rebuilt).ok());
            if !lost.is_empty() {
                out.held = Some(lost.join(", "));
                record(&tx, &out)?;
                tx.commit()?;
                return Ok(out);
            }
        }
        let mut rebuilt = rebuilt;
        out.dropped = dropped.len();
        {
            let mut keep_gone = tx.prepare_cached(
                "INSERT INTO withdrawn (hash, doc, at_ms, change) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (hash) DO NOTHING",
            )?;
            for h in &named {
                keep_gone.execute(params![h, doc_id, now_ms, None::<Vec<u8>>])?;
            }
            for c in &dropped {
                // A named one keeps its bytes too.
                tx.execute(
                    "UPDATE withdrawn SET change = ?2 WHERE hash = ?1 AND change IS NULL",
                    params![c.hash().0.as_slice(), c.raw_bytes()],
                )?;
                keep_gone.execute(params![
                    c.hash().0.as_slice(),
                    doc_id,
                    now_ms,
                    c.raw_bytes()
                ])?;
            }
        }
        let left: Vec<Vec<u8>> = named
            .iter()
            .map(|h| h.to_vec())
            .chain(dropped.iter().map(|c| c.hash().0.to_vec()))
            .collect();
        for h in &left {
            for table in ["waiting", "set_aside", "outbox"] {
                tx.execute(&format!("DELETE FROM {table} WHERE hash = ?1"), [h])?;
            }
        }
        // What waits on a dropped change would wait for ever; what this device made on one
        // the server took and dropped.
        let waiting: Vec<(Vec<u8>, Vec<u8>)> = tx
            .prepare("SELECT hash, change FROM waiting WHERE doc = ?1")?
            .query_map([doc_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (h, bytes) in waiting {
            if let Ok(c) = Change::from_bytes(bytes)
                && c.deps().iter().any(|d| gone.contains(d))
            {
                tx.execute("DELETE FROM waiting WHERE hash = ?1", [h])?;
            }
        }
        // An actor of this device whose changes left the document would number its next change
        // as one the server already holds: the member writes with a new actor from now on.
        let mut members: HashMap<Vec<u8>, String> = HashMap::new();
        for c in &dropped {
            let actor = c.actor_id().to_bytes().to_vec();
            if members.contains_key(&actor) {
                continue;
            }
            let member: Option<String> = tx
                .query_row(
                    "SELECT member FROM actors WHERE actor = ?1",
                    [&actor],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(m) = member {
                tx.execute("DELETE FROM actors WHERE actor = ?1", [&actor])?;
                members.insert(actor, m);
            }
        }
        // This device's own changes that went with a withdrawn one they were made on: what they
        // did is written again, without what was withdrawn under them, by a fresh actor of
        // their member. (One the notice named goes: the server held it.)
        let named_set: HashSet<&[u8]> = named.iter().map(|h| h.as_slice()).collect();
        let mine: Vec<&Change> = dropped
            .iter()
            .filter(|c| {
                own.contains(c.hash().0.as_slice()) && !named_set.contains(c.hash().0.as_slice())
            })
            .collect();
        if let (Some(rebuilt), false) = (&mut rebuilt, mine.is_empty()) {
            let theirs: HashSet<ChangeHash> = mine.iter().map(|c| c.hash()).collect();
            let mut before = Automerge::new();
            let without: Vec<Change> = all
                .iter()
                .filter(|c| !theirs.contains(&c.hash()))
                .cloned()
                .collect();
            change::quietly(|| before.apply_changes(without))
                .map_err(|p| bad(p.to_owned()))?
                .map_err(|e| bad(e.to_string()))?;
            let actor = mine[0].actor_id().to_bytes().to_vec();
            let member = match members.get(&actor) {
                Some(m) => m.clone(),
                None => get_meta(&tx, "me")?.unwrap_or_default(),
            };
            let heads = rebuilt.get_heads();
            rebuilt.set_actor(actor_for(&tx, &member)?);
            if cairn_core::rebase::redo(rebuilt, &before, &doc)? {
                let mut add = tx
                    .prepare_cached("INSERT INTO outbox (doc, hash, change) VALUES (?1, ?2, ?3)")?;
                for c in rebuilt.get_changes(&heads) {
                    add.execute(params![doc_id, c.hash().0.as_slice(), c.raw_bytes()])?;
                }
            }
            out.redone = mine.len();
        }
        if let Some(rebuilt) = &rebuilt {
            out.what = what_went(&tx, doc_id, &doc, rebuilt)?;
            crate::docs::replace_doc(&tx, doc_id, rebuilt)?;
        }
        record(&tx, &out)?;
        tx.commit()?;
        Ok(out)
    }

    /// The withdrawal notices this replica applied or held back, newest first: at most `limit`
    /// of them, and how many there are in all.
    pub fn withdrawals(&self, limit: usize) -> Result<(Vec<Withdrawal>, u64)> {
        let total: i64 = self
            .conn
            .query_row("SELECT count(*) FROM withdrawals", [], |r| r.get(0))?;
        let mut st = self.conn.prepare(
            "SELECT doc, at_ms, named, dropped, refused, redone, held, what FROM withdrawals
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            let what: String = r.get(7)?;
            Ok(Withdrawal {
                doc: r.get(0)?,
                at_ms: r.get(1)?,
                named: r.get::<_, i64>(2)? as usize,
                dropped: r.get::<_, i64>(3)? as usize,
                refused: r.get::<_, i64>(4)? as usize,
                redone: r.get::<_, i64>(5)? as usize,
                held: r.get(6)?,
                what: what.lines().map(str::to_owned).collect(),
            })
        })?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total as u64))
    }
}

/// Keeps what a notice did.
fn record(tx: &rusqlite::Transaction<'_>, w: &Withdrawal) -> Result<()> {
    tx.execute(
        "INSERT INTO withdrawals (doc, at_ms, named, dropped, refused, redone, held, what)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            w.doc,
            w.at_ms,
            w.named as i64,
            w.dropped as i64,
            w.refused as i64,
            w.redone as i64,
            w.held,
            w.what.join("\n")
        ],
    )?;
    Ok(())
}

/// What of the team would go from `was` to `now` that a withdrawal must never take: its
/// founding, and any member's membership.
fn lost_from_team(was: &TeamState, now: &Option<TeamState>) -> Vec<String> {
    let Some(now) = now else {
        return vec!["the team's founding".to_owned()];
    };
    let mut lost = Vec::new();
    if !was.name.is_empty() && now.name.is_empty() {
        lost.push("the team's founding".to_owned());
    }
    let here: HashSet<&str> = now
        .members
        .iter()
        .chain(&now.former)
        .map(|m| m.id.as_str())
        .collect();
    for m in was.members.iter().chain(&was.former) {
        if !here.contains(m.id.as_str()) {
            lost.push(format!("@{}'s membership", m.handle));
        }
    }
    lost
}

/// What left document `doc_id` going from `was` to `now`, a line each, for people.
fn what_went(
    tx: &rusqlite::Transaction<'_>,
    doc_id: &str,
    was: &Automerge,
    now: &Automerge,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    if doc_id == TEAM_DOC {
        let (was, now) = (team::read(was)?, team::read(now)?);
        if was.name != now.name {
            lines.push(format!("the team's name `{}`", was.name));
        }
        for p in &was.pillars {
            if !now.pillars.iter().any(|q| q.id == p.id) {
                lines.push(format!("pillar #{}", p.name));
            } else if !now.pillars.contains(p) {
                lines.push(format!("a change to pillar #{}", p.name));
            }
        }
        for c in &was.commitments {
            if !now.commitments.contains(c) {
                lines.push(format!("commitment \"{}\"", short(&c.text)));
            }
        }
        for c in &was.challenges {
            if !now.challenges.contains(c) {
                lines.push(format!("challenge \"{}\"", short(&c.title)));
            }
        }
        for m in was.members.iter().chain(&was.former) {
            if !now.members.iter().chain(&now.former).any(|n| n == m) {
                lines.push(format!("a change to @{}", m.handle));
            }
        }
        if was.rules != now.rules {
            lines.push("a change to the team's rules".to_owned());
        }
    } else {
        let state = index::team(tx)?;
        let after: HashMap<(String, String), cairn_core::Event> = journal::read(now)?
            .into_iter()
            .map(|e| ((e.id.as_str().to_owned(), e.author.clone()), e))
            .collect();
        for e in journal::read(was)? {
            let by = format!("@{}", state.handle_of(&e.author));
            match after.get(&(e.id.as_str().to_owned(), e.author.clone())) {
                None => lines.push(format!(
                    "{} {} by {by}: \"{}\"",
                    e.kind.as_str(),
                    e.id.short(),
                    short(&e.text)
                )),
                Some(n) if *n != e => lines.push(format!(
                    "a change to {} {} by {by}",
                    e.kind.as_str(),
                    e.id.short()
                )),
                Some(_) => {}
            }
        }
    }
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("and {more} more"));
    }
    Ok(lines)
}

/// At most sixty characters of `text`, on one line.
fn short(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 60 {
        format!("{}…", one.chars().take(59).collect::<String>())
    } else {
        one
    }
}
