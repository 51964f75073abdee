//! Diagnostics: counts, a rebuild of the index, a check of it against the documents, and a
//! repair of documents that cannot load (a snapshot a server sent before cairn inspected them,
//! too costly to load or damaged): what cannot load is set aside and the document rebuilt from
//! the rest.

use automerge::Automerge;
use cairn_core::ids::TEAM_DOC;
use cairn_core::{change, journal, snapshot, team};
use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::docs::{MAX_DOC_OPS, load_doc, stored_bounds};
use crate::{Error, Replica, Result, get_meta, index, schema, set_meta};

/// Counts describing a replica, for `doctor` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub docs: i64,
    pub chunks: i64,
    pub events: i64,
    pub outbox: i64,
}

/// Rebuilds the whole index from the documents inside `tx`.
pub(crate) fn reindex_all(tx: &Transaction<'_>) -> Result<()> {
    let days = index::DaysPaused::start(tx, usize::MAX)?;
    index::clear(tx)?;
    let docs: Vec<String> = {
        let mut st = tx.prepare("SELECT id FROM docs ORDER BY id")?;
        st.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    for id in docs {
        let doc = load_doc(tx, &id)?;
        index::reindex_doc(tx, &id, &doc)?;
    }
    // Counted from the events whether the triggers were there or not (a catch-up in bulk an
    // older cairn left unfinished has lifted them).
    tx.execute_batch(schema::MEMBER_DAYS_REBUILD)?;
    days.finish(tx)
}

impl Replica {
    /// Counts of documents, chunks, events and outbox entries.
    pub fn stats(&self) -> Result<Stats> {
        let count = |sql: &str| -> Result<i64> { Ok(self.conn.query_row(sql, [], |r| r.get(0))?) };
        Ok(Stats {
            docs: count("SELECT count(*) FROM docs")?,
            chunks: count("SELECT count(*) FROM chunks")?,
            events: count("SELECT count(*) FROM events")?,
            outbox: count("SELECT count(*) FROM outbox")?,
        })
    }

    /// Rebuilds the whole index from the documents, in one transaction.
    pub fn rebuild_index(&mut self) -> Result<()> {
        let tx = self.write()?;
        reindex_all(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Compares the index with the documents; returns one line per difference found, and one
    /// per document that cannot be loaded (see [`Replica::repair`]).
    pub fn verify_index(&self) -> Result<Vec<String>> {
        // One snapshot, so a writer in another shell cannot make a healthy index look wrong.
        let tx = self.conn.unchecked_transaction()?;
        let conn: &Connection = &tx;
        let mut problems = Vec::new();
        let mut st = conn.prepare("SELECT id FROM docs ORDER BY id")?;
        let docs: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut seen = 0i64;
        let mut unloaded = Vec::new();
        for id in &docs {
            let doc = match load_doc(conn, id) {
                Ok(doc) => doc,
                Err(Error::Document { detail, .. }) => {
                    problems.push(format!("document {id} cannot be loaded: {detail}"));
                    unloaded.push(id.as_str());
                    continue;
                }
                Err(e) => return Err(e),
            };
            if id == TEAM_DOC {
                let from_doc = team::read(&doc)?;
                let from_index = index::team(conn)?;
                if from_doc != from_index {
                    problems.push("the team in the index differs from the team document".into());
                }
                if from_doc.name.is_empty() && emptied_by_a_notice(conn)? {
                    problems.push(
                        "the team document names no team: a withdrawal notice an older cairn \
                         honoured emptied it"
                            .into(),
                    );
                }
                continue;
            }
            for e in journal::read_own(id, &doc)? {
                seen += 1;
                let Some(row) = index::event(conn, &e.id, &e.author)? else {
                    problems.push(format!("event {} is missing from the index", e.id));
                    continue;
                };
                let row_doc = index::doc_of(conn, &e.id, &e.author)?;
                if row_doc.as_str() < id.as_str() {
                    // The same author's id in another journal that sorts first: that one keeps it.
                    seen -= 1;
                } else if row_doc != *id {
                    problems.push(format!("event {} is indexed from another journal", e.id));
                } else if row != e {
                    problems.push(format!("event {} differs from its journal", e.id));
                }
            }
        }
        // (The events of a document that cannot be loaded are not counted against it, nor
        // those given from outside, which no document holds.)
        let mut indexed: i64 = conn.query_row(
            &format!(
                "SELECT count(*) FROM events WHERE NOT {}",
                crate::outside::OUTSIDE_ROW
            ),
            [],
            |r| r.get(0),
        )?;
        for id in unloaded {
            let n: i64 =
                conn.query_row("SELECT count(*) FROM events WHERE doc = ?1", [id], |r| {
                    r.get(0)
                })?;
            indexed -= n;
        }
        if indexed != seen {
            let noun = if indexed == 1 { "event" } else { "events" };
            problems.push(format!(
                "the index holds {indexed} {noun}, the journals {seen}"
            ));
        }
        // The days and weeks members acted, as the triggers kept them, against a count of the
        // events (not kept while a catch-up in bulk an older cairn left is unfinished: counted
        // when it ends).
        if index::days_kept(conn)? {
            let astray = |table: &str, columns: &str, counted: &str| -> Result<i64> {
                Ok(conn.query_row(
                    &format!(
                        "WITH counted AS ({counted})
                         SELECT (SELECT count(*) FROM (
                             SELECT {columns} FROM {table} EXCEPT SELECT {columns} FROM counted
                         )) + (SELECT count(*) FROM (
                             SELECT {columns} FROM counted EXCEPT SELECT {columns} FROM {table}
                         ))"
                    ),
                    [],
                    |r| r.get(0),
                )?)
            };
            let days = astray(
                "member_days",
                "author, date, week, acts",
                schema::COUNTED_DAYS,
            )?;
            if days > 0 {
                problems.push(format!(
                    "{days} of the days members acted are out of step with their events"
                ));
            }
            let weeks = astray("member_weeks", "author, week, days", schema::COUNTED_WEEKS)?;
            if weeks > 0 {
                problems.push(format!(
                    "{weeks} of the weeks members acted are out of step with their days"
                ));
            }
        }
        Ok(problems)
    }
}

/// Whether the team document's history was cut by a withdrawal notice this replica honoured.
fn emptied_by_a_notice(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM withdrawn WHERE doc = ?1)",
        [TEAM_DOC],
        |r| r.get(0),
    )?)
}

/// What [`Replica::repair`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Each document rebuilt, with why (what was set aside, the first reason).
    pub docs: Vec<(String, String)>,
    /// Pieces of stored documents set aside (`cairn doctor` lists them with the changes set
    /// aside).
    pub set_aside: usize,
    /// Withdrawal notices of the team document forgotten: an older cairn honoured one that
    /// emptied the team.
    pub forgotten: usize,
    /// Whether the next sync catches up from the start, to bring again what was set aside.
    pub refetch: bool,
}

impl Replica {
    /// Repairs what an older cairn let in: every document that cannot be loaded (a piece of it
    /// would cost more to load than a document may, or does not load) is rebuilt from the
    /// pieces that can, the others set aside with why; this device's unsent changes to it are
    /// applied again (those whose history went wait for it). A team document emptied by a
    /// withdrawal notice gets its notices forgotten. Either way the next sync catches up from
    /// the start, and an honest server brings back what went. Documents that load are left as
    /// they are.
    pub fn repair(&mut self, now_ms: i64) -> Result<Repaired> {
        let tx = self.write()?;
        let mut out = Repaired::default();
        let ids: Vec<String> = {
            let mut st = tx.prepare("SELECT id FROM docs ORDER BY id")?;
            st.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for id in ids {
            match load_doc(&tx, &id) {
                Ok(_) => continue,
                Err(Error::Document { detail, .. }) => {
                    out.set_aside += rebuild(&tx, &id, now_ms)?;
                    out.docs.push((id, detail));
                }
                Err(e) => return Err(e),
            }
        }
        if index::team(&tx)?.name.is_empty() && emptied_by_a_notice(&tx)? {
            out.forgotten = tx.execute("DELETE FROM withdrawn WHERE doc = ?1", [TEAM_DOC])?;
        }
        if !out.docs.is_empty() || out.forgotten > 0 {
            out.refetch = get_meta(&tx, "server_url")?.is_some();
            if out.refetch {
                set_meta(&tx, "cursor", "0")?;
                tx.execute("DELETE FROM meta WHERE key = 'catch_up'", [])?;
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Rebuilds document `doc_id` from the stored pieces that can load, setting the others aside;
/// returns how many were set aside.
fn rebuild(tx: &Transaction<'_>, doc_id: &str, now_ms: i64) -> Result<usize> {
    let mut pieces: Vec<Vec<u8>> = tx
        .query_row("SELECT snapshot FROM docs WHERE id = ?1", [doc_id], |r| {
            r.get(0)
        })
        .optional()?
        .into_iter()
        .collect();
    {
        let mut st = tx.prepare("SELECT data FROM chunks WHERE doc = ?1 ORDER BY seq")?;
        let rows = st.query_map([doc_id], |r| r.get::<_, Vec<u8>>(0))?;
        for row in rows {
            pieces.push(row?);
        }
    }
    let mut aside = 0;
    let mut put_aside = |bytes: &[u8], why: String| -> Result<()> {
        aside += 1;
        crate::sync::set_aside(
            tx,
            doc_id,
            bytes,
            &format!("set aside by a repair: {why}"),
            now_ms,
        )
    };
    // Whole documents merged one after another, within what a document may hold; changes
    // applied after them, through the careful way a pulled page takes.
    let bounds = stored_bounds();
    let mut doc = Automerge::new();
    let mut ops = 0u64;
    let mut fresh = Vec::new();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        let chunks = match snapshot::split(piece) {
            Ok(chunks) => chunks,
            Err(why) => {
                put_aside(piece, why.to_string())?;
                continue;
            }
        };
        for chunk in chunks {
            if !snapshot::is_document(chunk) {
                match change::decode(chunk, &bounds.change) {
                    Ok((c, _)) => fresh.push(c),
                    Err(why) => put_aside(chunk, why.to_string())?,
                }
                continue;
            }
            let cost = match snapshot::inspect(chunk, &bounds) {
                Ok(cost) => cost.ops.max(cost.span),
                Err(why) => {
                    put_aside(chunk, why.to_string())?;
                    continue;
                }
            };
            if ops + cost > MAX_DOC_OPS {
                put_aside(
                    chunk,
                    format!("the document would hold more than {MAX_DOC_OPS} operations"),
                )?;
                continue;
            }
            let mut next = doc.clone();
            match change::quietly(|| next.load_incremental(chunk)) {
                Ok(Ok(_)) => {
                    doc = next;
                    ops += cost;
                }
                Ok(Err(e)) => put_aside(chunk, e.to_string())?,
                Err(p) => put_aside(chunk, p.to_owned())?,
            }
        }
    }
    // This device's unsent changes to it go back in too.
    {
        let mut st = tx.prepare("SELECT change FROM outbox WHERE doc = ?1 ORDER BY seq")?;
        let rows = st.query_map([doc_id], |r| r.get::<_, Vec<u8>>(0))?;
        for row in rows {
            if let Ok((c, _)) = change::decode(&row?, &bounds.change) {
                fresh.push(c);
            }
        }
    }
    crate::docs::replace_doc(tx, doc_id, &doc)?;
    crate::sync::apply_stored(tx, doc_id, doc, fresh, now_ms)?;
    Ok(aside)
}
