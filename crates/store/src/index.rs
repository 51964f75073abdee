//! The index: SQLite tables derived from the documents, which every read uses.

use automerge::{Automerge, ChangeHash, PatchAction, Prop};
use cairn_core::feed::FeedQuery;
use cairn_core::ids::{EventId, TEAM_DOC};
use cairn_core::{Commitment, Event, Kind, Member, Pillar, TeamState, journal, team};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::outside::OUTSIDE_ROW;
use crate::{Error, Result};

const EVENT_COLUMNS: &str = "id, kind, author, at_ms, tz, date, late, pillar, text, why, target, \
                             emoji, retracted, edited_ms, honours";

pub(crate) fn team(conn: &Connection) -> Result<TeamState> {
    let meta = |key: &str| -> Result<String> {
        Ok(conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    };
    let mut state = TeamState {
        name: meta("team_name")?,
        tz: meta("team_tz")?,
        ..TeamState::default()
    };
    let mut st = conn.prepare_cached("SELECT id, name, about FROM pillars ORDER BY ord")?;
    state.pillars = st
        .query_map([], |r| {
            Ok(Pillar {
                id: r.get(0)?,
                name: r.get(1)?,
                about: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st =
        conn.prepare_cached("SELECT id, text, why, by, at_ms FROM commitments ORDER BY at_ms, id")?;
    state.commitments = st
        .query_map([], |r| {
            Ok(Commitment {
                id: r.get(0)?,
                text: r.get(1)?,
                why: r.get(2)?,
                by: r.get(3)?,
                at_ms: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare_cached(
        "SELECT id, name, handle, joined_ms, left_ms, merged_into, placeholder, arrived_ms,
                chat
         FROM members ORDER BY handle, id",
    )?;
    let members = st
        .query_map([], |r| {
            Ok(Member {
                id: r.get(0)?,
                name: r.get(1)?,
                handle: r.get(2)?,
                joined_ms: r.get(3)?,
                left_ms: r.get(4)?,
                merged_into: r.get(5)?,
                placeholder: r.get(6)?,
                arrived_ms: r.get(7)?,
                chat: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    state.place_members(members);
    let setting = |key: &str| -> Result<Option<String>> {
        Ok(conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    };
    state.rules = cairn_core::rules::Rules::from_texts(
        setting("team_rest_days")?.as_deref(),
        setting("team_cadence")?.as_deref(),
        setting("team_quorum")?.as_deref(),
        setting("team_late_days")?.as_deref(),
    );
    let mut st = conn.prepare_cached(
        "SELECT id, title, metric, target, start, until FROM challenges ORDER BY ord",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, u32>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (id, title, metric, target, start, until) = row?;
        state
            .challenges
            .extend(cairn_core::goals::Challenge::from_texts(
                id, title, &metric, target, &start, &until,
            ));
    }
    Ok(state)
}

/// Rewrites the team tables from the team document.
pub(crate) fn reindex_team(conn: &Connection, doc: &Automerge) -> Result<()> {
    write_team(conn, &team::read(doc)?)
}

fn write_team(conn: &Connection, state: &TeamState) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM members; DELETE FROM pillars; DELETE FROM commitments;
         DELETE FROM challenges;",
    )?;
    for (i, c) in state.challenges.iter().enumerate() {
        conn.execute(
            "INSERT INTO challenges (id, title, metric, target, start, until, ord)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                c.id,
                c.title,
                c.metric.as_str(),
                c.target,
                c.start.to_string(),
                c.until.to_string(),
                i as i64
            ],
        )?;
    }
    let rules = &state.rules;
    let rest = cairn_core::rules::format_rest_days(&rules.rest_days);
    let cadence = rules.cadence.to_string();
    let quorum = rules.quorum.to_string();
    let late = rules.late_days.to_string();
    for (key, value) in [
        ("team_late_days", &late),
        ("team_name", &state.name),
        ("team_tz", &state.tz),
        ("team_rest_days", &rest),
        ("team_cadence", &cadence),
        ("team_quorum", &quorum),
    ] {
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
    }
    for (i, p) in state.pillars.iter().enumerate() {
        conn.execute(
            "INSERT INTO pillars (id, name, about, ord) VALUES (?1, ?2, ?3, ?4)",
            params![p.id, p.name, p.about, i as i64],
        )?;
    }
    for c in &state.commitments {
        conn.execute(
            "INSERT INTO commitments (id, text, why, by, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.id, c.text, c.why, c.by, c.at_ms],
        )?;
    }
    for m in state.members.iter().chain(&state.former) {
        conn.execute(
            "INSERT INTO members (id, name, handle, joined_ms, left_ms, merged_into, placeholder,
                                  arrived_ms, chat)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                m.id,
                m.name,
                m.handle,
                m.joined_ms,
                m.left_ms,
                m.merged_into,
                m.placeholder,
                m.arrived_ms,
                m.chat
            ],
        )?;
    }
    Ok(())
}

/// Brings the index up to date with document `doc_id` after changes took it from the heads
/// `before` (those the index last saw; none for a document new to it) to its own: every change
/// written here or applied from the server goes through this. Only the events the changes
/// touched are read again (an automerge diff names them), so a change to one event of a large
/// journal costs one row; the team document, small, is read whole.
pub(crate) fn update(
    conn: &Connection,
    doc_id: &str,
    doc: &Automerge,
    before: &[ChangeHash],
) -> Result<()> {
    if doc_id == TEAM_DOC {
        return reindex_team(conn, doc);
    }
    if before.is_empty() {
        return index_new_doc(conn, doc_id, doc);
    }
    // Heads the document does not hold (automerge would leave them out of the diff silently),
    // or a diff that panics on odd data: the whole document is read instead.
    if before
        .iter()
        .any(|h| doc.get_change_meta_by_hash(h).is_none())
    {
        return reindex_doc(conn, doc_id, doc);
    }
    let Ok(patches) = cairn_core::change::quietly(|| doc.diff(before, &doc.get_heads())) else {
        return reindex_doc(conn, doc_id, doc);
    };
    let mut touched = std::collections::BTreeSet::new();
    for patch in patches {
        // The event's key at the root: the first step of the path into it, or the key itself.
        let key = match (patch.path.first(), &patch.action) {
            (Some((_, Prop::Map(key))), _) => key,
            (
                None,
                PatchAction::PutMap { key, .. }
                | PatchAction::DeleteMap { key }
                | PatchAction::Conflict {
                    prop: Prop::Map(key),
                }
                | PatchAction::Increment {
                    prop: Prop::Map(key),
                    ..
                },
            ) => key,
            _ => continue,
        };
        if let Some(id) = EventId::parse(key) {
            touched.insert(id);
        }
    }
    for id in touched {
        match journal::get_own(doc_id, doc, &id) {
            Some(e) => upsert_event(conn, doc_id, &e)?,
            // Taken out of the journal (only a faulty peer does that), or no longer readable.
            // (A copy of the same id in another of the author's journals, which only a faulty
            // peer makes, comes back at the next rebuild of the index, as before.)
            None => {
                conn.prepare_cached(
                    "DELETE FROM recipients WHERE (event, author) IN
                         (SELECT id, author FROM events WHERE id = ?1 AND doc = ?2)",
                )?
                .execute([id.as_str(), doc_id])?;
                conn.prepare_cached("DELETE FROM events WHERE id = ?1 AND doc = ?2")?
                    .execute([id.as_str(), doc_id])?;
            }
        }
    }
    Ok(())
}

/// Rewrites the rows of one document.
pub(crate) fn reindex_doc(conn: &Connection, doc_id: &str, doc: &Automerge) -> Result<()> {
    if doc_id == TEAM_DOC {
        return reindex_team(conn, doc);
    }
    conn.prepare_cached(
        "DELETE FROM recipients
         WHERE (event, author) IN (SELECT id, author FROM events WHERE doc = ?1)",
    )?
    .execute([doc_id])?;
    conn.prepare_cached("DELETE FROM events WHERE doc = ?1")?
        .execute([doc_id])?;
    index_new_doc(conn, doc_id, doc)
}

/// Writes the rows of a document that has none yet.
pub(crate) fn index_new_doc(conn: &Connection, doc_id: &str, doc: &Automerge) -> Result<()> {
    write_rows(conn, doc_id, &rows(doc_id, doc)?)
}

/// What a document puts in the index, read apart from the index (on any thread).
#[derive(Debug)]
pub(crate) enum Rows {
    Team(Box<TeamState>),
    Events(Vec<Event>),
}

pub(crate) fn rows(doc_id: &str, doc: &Automerge) -> Result<Rows> {
    if doc_id == TEAM_DOC {
        return Ok(Rows::Team(Box::new(team::read(doc)?)));
    }
    Ok(Rows::Events(journal::read_own(doc_id, doc)?))
}

/// Writes the rows of a document that has none in the index yet.
pub(crate) fn write_rows(conn: &Connection, doc_id: &str, rows: &Rows) -> Result<()> {
    match rows {
        Rows::Team(state) => write_team(conn, state),
        Rows::Events(events) => {
            for e in events {
                insert_event(conn, doc_id, e)?;
            }
            Ok(())
        }
    }
}

/// The index's own indexes that a new replica taking a whole team at once goes without, as
/// (name, SQL): built again in one sort each when the catch-up ends. They are the ones whose
/// rows would land all over their tree (by pillar, tag, target, recipient, week). The keys the
/// upserts rely on stay, and so do the indexes a catch-up fills in order, since documents come
/// in the order of their ids (a member's journals, month by month): `events_doc`,
/// `events_author` and `events_activity`. Keeping those costs less than sorting them again at
/// the end, which nothing else could overlap.
pub(crate) fn bulk_indexes(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut st = conn.prepare(
        "SELECT name, sql FROM sqlite_master
         WHERE type = 'index' AND sql IS NOT NULL
           AND name NOT IN ('events_doc', 'events_author', 'events_activity')
           AND tbl_name IN ('events', 'recipients', 'members', 'pillars', 'commitments',
                            'challenges', 'member_days')
         ORDER BY name",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether the triggers keep `member_days` (and through it `member_weeks`). Only a replica an
/// older cairn left in the middle of a catch-up in bulk has them lifted between commands: the
/// days are then counted from the events until the catch-up ends.
pub(crate) fn days_kept(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master
                        WHERE type = 'trigger' AND name = 'member_days_insert')",
        [],
        |r| r.get(0),
    )?)
}

/// The triggers that keep `member_days`, lifted while one transaction indexes many documents:
/// rewriting a document's rows fires them twice per row (its rows go, then come back), where
/// counting the days of the authors touched once at the end is one scan of each one's rows.
#[derive(Debug)]
pub(crate) struct DaysPaused {
    /// Whether the triggers were there (a catch-up in bulk has lifted them already and counts
    /// every day when it ends).
    lifted: bool,
    authors: std::collections::BTreeSet<String>,
}

impl DaysPaused {
    /// Lifts the triggers when `docs` documents are about to be indexed and that is worth a
    /// change of schema inside the transaction (rolled back with it).
    pub(crate) fn start(conn: &Connection, docs: usize) -> Result<DaysPaused> {
        let there = days_kept(conn)?;
        let lifted = there && docs >= 4;
        if lifted {
            conn.execute_batch(
                "DROP TRIGGER member_days_insert; DROP TRIGGER member_days_delete;
                 DROP TRIGGER member_days_update;",
            )?;
        }
        Ok(DaysPaused {
            lifted,
            authors: Default::default(),
        })
    }

    /// Notes that the rows of document `doc_id` were written (only journals hold events).
    pub(crate) fn touched(&mut self, doc_id: &str) {
        if self.lifted
            && let Some(owner) = cairn_core::ids::journal_owner(doc_id)
            && !self.authors.contains(owner)
        {
            self.authors.insert(owner.to_owned());
        }
    }

    /// Counts the days of the authors touched again and puts the triggers back.
    pub(crate) fn finish(self, conn: &Connection) -> Result<()> {
        if !self.lifted {
            return Ok(());
        }
        {
            let mut clear = conn.prepare_cached("DELETE FROM member_days WHERE author = ?1")?;
            let mut count = conn.prepare_cached(crate::schema::MEMBER_DAYS_OF_AUTHOR)?;
            for a in &self.authors {
                clear.execute([a])?;
                count.execute([a])?;
            }
        }
        conn.execute_batch(crate::schema::MEMBER_DAYS_TRIGGERS)?;
        Ok(())
    }
}

/// Empties the index of what the documents hold; the rows given from outside stay (no document
/// would bring them back).
pub(crate) fn clear(conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!(
        "DELETE FROM member_days; DELETE FROM member_weeks;
         DELETE FROM recipients WHERE (event, author) NOT IN
             (SELECT id, author FROM events WHERE {OUTSIDE_ROW});
         DELETE FROM events WHERE NOT {OUTSIDE_ROW};
         DELETE FROM members; DELETE FROM pillars; DELETE FROM commitments;
         DELETE FROM challenges;"
    ))?;
    Ok(())
}

/// The parameters of an event's row, in the order of the `events` table's columns.
macro_rules! event_params {
    ($doc_id:expr, $e:expr) => {
        params![
            $e.id.as_str(),
            $e.id.tag(),
            $doc_id,
            $e.kind.as_str(),
            $e.author,
            $e.at_ms,
            $e.tz,
            $e.date,
            $e.late,
            $e.pillar,
            $e.text,
            $e.why,
            $e.target.as_ref().map(EventId::as_str),
            $e.emoji,
            $e.retracted,
            $e.edited_ms,
            $e.honours,
        ]
    };
}

/// Writes the row of an event of a document new to the index: a plain insert, without the
/// recipients' delete a rewrite needs, unless the author's id is there already (from another
/// of their journals: then as [`upsert_event`] does).
fn insert_event(conn: &Connection, doc_id: &str, e: &Event) -> Result<()> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (id, tag, doc, kind, author, at_ms, tz, date, late, pillar,
             text, why, target, emoji, retracted, edited_ms, honours)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (id, author) DO NOTHING",
        )?
        .execute(event_params!(doc_id, e))?;
    if inserted == 0 {
        return upsert_event(conn, doc_id, e);
    }
    insert_recipients(conn, e)
}

fn insert_recipients(conn: &Connection, e: &Event) -> Result<()> {
    // (`OR REPLACE`: a stray row, which nothing is known to leave, must not stop a catch-up.)
    let mut ins = conn.prepare_cached(
        "INSERT OR REPLACE INTO recipients (event, author, ord, member) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (i, to) in e.to.iter().enumerate() {
        ins.execute(params![e.id.as_str(), e.author, i as i64, to])?;
    }
    Ok(())
}

pub(crate) fn upsert_event(conn: &Connection, doc_id: &str, e: &Event) -> Result<()> {
    // An event is its author's: another member's event with the same id is a row of its own
    // (the key is the id and the author), never merged into this one. One author's two journals
    // holding the same id (only a faulty peer makes that) must not make replicas disagree: the
    // journal whose id sorts first keeps it, whatever order the documents arrived in.
    let written = conn
        .prepare_cached(
            "INSERT INTO events (id, tag, doc, kind, author, at_ms, tz, date, late, pillar,
             text, why, target, emoji, retracted, edited_ms, honours)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (id, author) DO UPDATE SET tag = excluded.tag, doc = excluded.doc,
             kind = excluded.kind, at_ms = excluded.at_ms,
             tz = excluded.tz, date = excluded.date, late = excluded.late,
             pillar = excluded.pillar, text = excluded.text, why = excluded.why,
             target = excluded.target, emoji = excluded.emoji, retracted = excluded.retracted,
             edited_ms = excluded.edited_ms, honours = excluded.honours
         WHERE excluded.doc <= events.doc",
        )?
        .execute(event_params!(doc_id, e))?;
    if written == 0 {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM recipients WHERE event = ?1 AND author = ?2")?
        .execute([e.id.as_str(), e.author.as_str()])?;
    insert_recipients(conn, e)
}

/// Writes the row of an event given from outside (`doc` is its source's, see
/// [`crate::Replica::set_outside_events`]) with its recipients; a row of the same id and
/// author that another `doc` holds (a journal's) is left as it is. Returns the rows written.
pub(crate) fn upsert_outside(conn: &Connection, doc: &str, e: &Event) -> Result<usize> {
    let written = conn
        .prepare_cached(
            "INSERT INTO events (id, tag, doc, kind, author, at_ms, tz, date, late, pillar,
             text, why, target, emoji, retracted, edited_ms, honours)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (id, author) DO UPDATE SET tag = excluded.tag, kind = excluded.kind,
             at_ms = excluded.at_ms, tz = excluded.tz, date = excluded.date,
             late = excluded.late, pillar = excluded.pillar, text = excluded.text,
             why = excluded.why, target = excluded.target, emoji = excluded.emoji,
             retracted = excluded.retracted, edited_ms = excluded.edited_ms,
             honours = excluded.honours
         WHERE events.doc = excluded.doc",
        )?
        .execute(event_params!(doc, e))?;
    if written > 0 {
        conn.prepare_cached("DELETE FROM recipients WHERE event = ?1 AND author = ?2")?
            .execute([e.id.as_str(), e.author.as_str()])?;
        insert_recipients(conn, e)?;
    }
    Ok(written)
}

/// Every row of document `doc`, with the recipients of each whatever its kind.
pub(crate) fn events_of_doc(conn: &Connection, doc: &str) -> Result<Vec<Event>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE doc = ?1 ORDER BY id, author");
    let mut events: Vec<Event> = conn
        .prepare_cached(&sql)?
        .query_map([doc], event_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut st = conn.prepare_cached(
        "SELECT member FROM recipients WHERE event = ?1 AND author = ?2 ORDER BY ord",
    )?;
    for e in &mut events {
        e.to = st
            .query_map([e.id.as_str(), e.author.as_str()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(events)
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    let id: String = r.get(0)?;
    let kind: String = r.get(1)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad {what} in the index").into(),
        )
    };
    Ok(Event {
        id: EventId::parse(&id).ok_or_else(|| bad("event id"))?,
        kind: Kind::parse(&kind).ok_or_else(|| bad("kind"))?,
        author: r.get(2)?,
        at_ms: r.get(3)?,
        tz: r.get(4)?,
        date: r.get(5)?,
        late: r.get(6)?,
        pillar: r.get(7)?,
        text: r.get(8)?,
        why: r.get(9)?,
        to: Vec::new(),
        target: r
            .get::<_, Option<String>>(10)?
            .and_then(|t| EventId::parse(&t)),
        emoji: r.get(11)?,
        retracted: r.get(12)?,
        edited_ms: r.get(13)?,
        honours: r.get(14)?,
    })
}

fn fill_recipients(conn: &Connection, events: &mut [Event]) -> Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT member FROM recipients WHERE event = ?1 AND author = ?2 ORDER BY ord",
    )?;
    for e in events.iter_mut().filter(|e| e.kind == Kind::Kudos) {
        e.to = st
            .query_map([e.id.as_str(), e.author.as_str()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(())
}

/// Every event with id `id`: one, or one per author when members' ids collide.
pub(crate) fn events_with_id(conn: &Connection, id: &EventId) -> Result<Vec<Event>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1 ORDER BY author");
    let mut events: Vec<Event> = conn
        .prepare_cached(&sql)?
        .query_map([id.as_str()], event_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    fill_recipients(conn, &mut events)?;
    Ok(events)
}

/// The event `id` of `author`.
pub(crate) fn event(conn: &Connection, id: &EventId, author: &str) -> Result<Option<Event>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1 AND author = ?2");
    let found = conn
        .prepare_cached(&sql)?
        .query_row([id.as_str(), author], event_from_row)
        .optional()?;
    let Some(e) = found else { return Ok(None) };
    let mut one = [e];
    fill_recipients(conn, &mut one)?;
    let [e] = one;
    Ok(Some(e))
}

/// The journal holding `author`'s event `id`.
pub(crate) fn doc_of(conn: &Connection, id: &EventId, author: &str) -> Result<String> {
    conn.prepare_cached("SELECT doc FROM events WHERE id = ?1 AND author = ?2")?
        .query_row([id.as_str(), author], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NoSuchEvent(id.short().to_owned()))
}

pub(crate) fn ids_by_tag_prefix(
    conn: &Connection,
    prefix: &str,
    max: usize,
) -> Result<Vec<EventId>> {
    // Tags use only lowercase letters and digits, all below `~`.
    let upper = format!("{prefix}~");
    let mut st = conn.prepare_cached(
        "SELECT DISTINCT id FROM events WHERE tag >= ?1 AND tag < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let ids = st
        .query_map(params![prefix, upper, max as i64], |r| {
            r.get::<_, String>(0)
        })?
        .filter_map(|r| r.ok().and_then(|s| EventId::parse(&s)))
        .collect();
    Ok(ids)
}

pub(crate) fn live_reactions(
    conn: &Connection,
    target: &EventId,
    author: &str,
    emoji: &str,
) -> Result<Vec<EventId>> {
    let mut st = conn.prepare_cached(
        "SELECT id FROM events WHERE target = ?1 AND author = ?2 AND emoji = ?3
         AND kind = 'reaction' AND retracted = 0",
    )?;
    let ids = st
        .query_map(params![target.as_str(), author, emoji], |r| {
            r.get::<_, String>(0)
        })?
        .filter_map(|r| r.ok().and_then(|s| EventId::parse(&s)))
        .collect();
    Ok(ids)
}

/// The events the feed shows, newest first, filtered and limited in SQL: a page of `q.limit`
/// and the event after it, by which [`cairn_core::feed::page`] knows whether more match.
pub(crate) fn feed_events(conn: &Connection, q: &FeedQuery) -> Result<Vec<Event>> {
    let (sql, mut args) = feed_sql(q);
    let mut st = conn.prepare(&sql)?;
    let Some(limit) = q.limit else {
        let mut events: Vec<Event> = st
            .query_map(rusqlite::params_from_iter(args.iter()), event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        fill_recipients(conn, &mut events)?;
        return Ok(events);
    };
    // The page and the event after it; more when that one shares the page's last id (two
    // members' events may), since a page never ends between them.
    let mut take = limit + 1;
    let mut events: Vec<Event> = loop {
        if let Some(last) = args.last_mut() {
            *last = Box::new(take as i64);
        }
        let events: Vec<Event> = st
            .query_map(rusqlite::params_from_iter(args.iter()), event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        let split = events.len() == take && take >= 2 && events[take - 1].id == events[take - 2].id;
        if !split {
            break events;
        }
        take *= 2;
    };
    fill_recipients(conn, &mut events)?;
    Ok(events)
}

/// The feed's query and its parameters; with a limit, the last parameter is the `LIMIT`. Every
/// bound is on the primary key (the id), so a page reads the same few rows however long the
/// history: `before` and `until` start the scan, `since` ends it.
pub(crate) fn feed_sql(q: &FeedQuery) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
    let mut sql =
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE kind != 'reaction' AND retracted = 0");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    if let Some(p) = &q.pillar {
        args.push(Box::new(p.clone()));
        sql.push_str(&format!(" AND pillar = ?{}", args.len()));
    }
    if let Some(m) = &q.member {
        args.push(Box::new(m.clone()));
        let n = args.len();
        sql.push_str(&format!(
            " AND (author = ?{n} OR (id, author) IN \
             (SELECT event, author FROM recipients WHERE member = ?{n} \
              OR member IN (SELECT id FROM members WHERE merged_into = ?{n})))"
        ));
    }
    if let Some(d) = &q.since {
        args.push(Box::new(d.clone()));
        sql.push_str(&format!(" AND date >= ?{}", args.len()));
        // A bound on the id lets SQLite scan only the primary key's tail.
        if let Some(first) = cairn_core::ids::earliest_id_on(d) {
            args.push(Box::new(first.as_str().to_owned()));
            sql.push_str(&format!(" AND id >= ?{}", args.len()));
        }
    }
    if let Some(d) = &q.until {
        args.push(Box::new(d.clone()));
        sql.push_str(&format!(" AND date <= ?{}", args.len()));
        // And one that starts the scan a few days after that day, not at today.
        if let Some(after) = cairn_core::ids::id_after_day(d) {
            args.push(Box::new(after.as_str().to_owned()));
            sql.push_str(&format!(" AND id < ?{}", args.len()));
        }
    }
    if let Some(before) = &q.before {
        args.push(Box::new(before.as_str().to_owned()));
        sql.push_str(&format!(" AND id < ?{}", args.len()));
    }
    sql.push_str(" ORDER BY id DESC, author");
    if let Some(limit) = q.limit {
        args.push(Box::new(limit as i64));
        sql.push_str(&format!(" LIMIT ?{}", args.len()));
    }
    (sql, args)
}

/// The live reactions to the given events.
pub(crate) fn reactions_to<'a>(
    conn: &Connection,
    targets: impl Iterator<Item = &'a EventId>,
) -> Result<Vec<Event>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE target = ?1 AND kind = 'reaction' AND retracted = 0"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut out = Vec::new();
    for t in targets {
        for r in st.query_map([t.as_str()], event_from_row)? {
            out.push(r?);
        }
    }
    Ok(out)
}

pub(crate) fn for_each_event(
    conn: &Connection,
    mut f: impl FnMut(Event) -> Result<()>,
) -> Result<()> {
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE NOT {OUTSIDE_ROW} ORDER BY id, author");
    let mut st = conn.prepare(&sql)?;
    let mut to_st = conn.prepare_cached(
        "SELECT member FROM recipients WHERE event = ?1 AND author = ?2 ORDER BY ord",
    )?;
    let mut rows = st.query([])?;
    while let Some(row) = rows.next()? {
        let mut e = event_from_row(row)?;
        if e.kind == Kind::Kudos {
            e.to = to_st
                .query_map([e.id.as_str(), e.author.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
        }
        f(e)?;
    }
    Ok(())
}

/// Each placeholder merged into a member, and the member it counts for (chains followed). Read
/// from the members' rows alone, which hold merges already checked when the team was indexed;
/// empty, and one small query, for a team that never merged anyone.
pub(crate) fn aliases(conn: &Connection) -> Result<std::collections::HashMap<String, String>> {
    let mut st =
        conn.prepare_cached("SELECT id, merged_into FROM members WHERE merged_into IS NOT NULL")?;
    let direct: std::collections::HashMap<String, String> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(direct
        .keys()
        .map(|from| {
            let mut to = &direct[from];
            // Chains are short; the bound keeps a faulty row from looping.
            for _ in 0..8 {
                match direct.get(to) {
                    Some(next) => to = next,
                    None => break,
                }
            }
            (from.clone(), to.clone())
        })
        .collect())
}
