//! Diagnostics: counts, a rebuild of the index, and a check of it against the documents.

use cairn_core::ids::TEAM_DOC;
use cairn_core::{journal, team};
use rusqlite::{Connection, Transaction};

use crate::docs::load_doc;
use crate::{Replica, Result, index, schema};

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

    /// Compares the index with the documents; returns one line per difference found.
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
        for id in &docs {
            let doc = load_doc(conn, id)?;
            if id == TEAM_DOC {
                let from_doc = team::read(&doc)?;
                let from_index = index::team(conn)?;
                if from_doc != from_index {
                    problems.push("the team in the index differs from the team document".into());
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
        let indexed: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
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
