//! Reads of the index: the feed, events by name, the days members acted, the acts that count.

use std::collections::HashMap;
use std::rc::Rc;

use cairn_core::feed::{FeedItem, FeedPage, FeedQuery};
use cairn_core::ids::{self, EventId};
use cairn_core::time::Date;
use cairn_core::{Event, Kind};

use crate::{Error, Replica, Result, index, schema};

/// Which of the days members acted a read wants.
#[derive(Clone, Copy)]
enum Days<'a> {
    All,
    Weeks,
    Since(Date),
    Of(&'a str),
}

impl Replica {
    /// The dates member `id`'s calendar skipped by travel (see [`cairn_core::rules::travel_skips`]),
    /// from the instants and local dates of what they logged at the time.
    pub fn travel_skips(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeSet<cairn_core::time::Date>> {
        let mut st = self.conn.prepare_cached(schema::TRAVEL_STAMPS)?;
        let mut stamps = Vec::new();
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            let date = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            if let Some(d) = cairn_core::time::parse_date(date) {
                stamps.push((r.get::<_, i64>(0)?, d));
            }
        }
        Ok(cairn_core::rules::travel_skips(&stamps))
    }

    /// Whether member `id` has written any event: a placeholder added by hand never has.
    pub fn has_written(&self, id: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM events WHERE author = ?1)",
            [id],
            |r| r.get(0),
        )?)
    }

    /// Finds the event named by `text`: a full id, or a prefix (4 characters or more) of its tag.
    /// When two members' events share the id, `me`'s own is the one meant; otherwise the name is
    /// ambiguous.
    pub fn resolve(&self, text: &str, me: &str) -> Result<Event> {
        let id = self.resolve_id(text)?;
        let text = text.trim().to_lowercase();
        let mut found = index::events_with_id(&self.conn, &id)?;
        if found.len() > 1 {
            if let Some(i) = found.iter().position(|e| e.author == me) {
                return Ok(found.swap_remove(i));
            }
            let team = index::team(&self.conn)?;
            let candidates = found
                .iter()
                .map(|e| format!("{} by @{}", e.id.tag(), team.handle_of(&e.author)))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::AmbiguousEvent {
                prefix: text,
                candidates,
            });
        }
        found.pop().ok_or(Error::NoSuchEvent(text))
    }

    /// The event id `text` names: a full id, whether or not this replica holds an event with it
    /// (a page of the feed goes on from an id even once its event is gone), or a prefix (4
    /// characters or more) of the tag of one it holds, retracted or not.
    pub fn resolve_id(&self, text: &str) -> Result<EventId> {
        let text = text.trim().to_lowercase();
        let id = if let Some(id) = EventId::parse(&text) {
            Some(id)
        } else if text.len() >= 4 && ids::is_id_text(&text) {
            let mut ids = index::ids_by_tag_prefix(&self.conn, &text, 6)?;
            if ids.len() > 1 {
                ids.truncate(5);
                let candidates = ids
                    .iter()
                    .map(|i| i.tag().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::AmbiguousEvent {
                    prefix: text,
                    candidates,
                });
            }
            ids.pop()
        } else {
            None
        };
        id.ok_or(Error::NoSuchEvent(text))
    }

    /// The feed, from the index, read in one snapshot: all of it, or the first page when
    /// `query.limit` is set (see [`Replica::feed_page`]).
    pub fn feed(&self, query: &FeedQuery) -> Result<Vec<FeedItem>> {
        Ok(self.feed_page(query)?.items)
    }

    /// A page of the feed, from the index, read in one snapshot: `query.limit` items, newest
    /// first, and whether older ones match too. The next page is the same query with `before`
    /// set to [`FeedPage::next_before`]; each costs a bounded scan of the index, whatever the
    /// length of the history.
    pub fn feed_page(&self, query: &FeedQuery) -> Result<FeedPage> {
        let tx = self.conn.unchecked_transaction()?;
        let mut events = index::feed_events(&tx, query)?;
        // A placeholder merged into a member: their kudos name that member.
        let aliases = index::aliases(&tx)?;
        if !aliases.is_empty() {
            for e in &mut events {
                let mut to: Vec<String> = Vec::with_capacity(e.to.len());
                for m in &e.to {
                    let m = aliases.get(m).unwrap_or(m).clone();
                    if !to.contains(&m) {
                        to.push(m);
                    }
                }
                e.to = to;
                if let Some(a) = aliases.get(&e.author) {
                    e.author = a.clone();
                }
            }
        }
        let targets: std::collections::BTreeSet<&EventId> = events.iter().map(|e| &e.id).collect();
        let reactions = index::reactions_to(&tx, targets.into_iter())?;
        Ok(cairn_core::feed::page(
            events.iter().chain(reactions.iter()),
            query,
        ))
    }

    /// Who was active on which local date: one pair per member and date with a micro-action or
    /// a recognition that was not retracted (what streaks count). Member ids are shared, not
    /// copied per row: there are tens of thousands of pairs and a few hundred members.
    pub fn activity(&self) -> Result<Vec<(Rc<str>, Date)>> {
        self.days(Days::All)
    }

    /// Who was active in which week, as (member, the Monday that starts it), each pair once:
    /// what the weekly team streak needs, a row per member and week instead of one per day.
    pub fn activity_by_week(&self) -> Result<Vec<(Rc<str>, Date)>> {
        self.days(Days::Weeks)
    }

    /// [`Replica::activity`] from the week of `from` on: what a heatmap of the last weeks needs.
    pub fn activity_since(&self, from: Date) -> Result<Vec<(Rc<str>, Date)>> {
        self.days(Days::Since(from))
    }

    /// The dates member `id` was active (their own and those of placeholders merged into them).
    pub fn active_days(&self, id: &str) -> Result<std::collections::BTreeSet<Date>> {
        Ok(self
            .days(Days::Of(id))?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    fn days(&self, which: Days<'_>) -> Result<Vec<(Rc<str>, Date)>> {
        let aliases = index::aliases(&self.conn)?;
        // Kept by triggers on `events`: a row per member and day, not one per event. A catch-up
        // in bulk an older cairn left unfinished has lifted them: the events are read.
        let bulk = !index::days_kept(&self.conn)?;
        let table = if bulk {
            format!("({})", schema::COUNTED_DAYS)
        } else {
            "member_days".to_owned()
        };
        // Each query's rows are (author, date).
        let (sql, params): (String, Vec<String>) = match which {
            Days::All => (format!("SELECT author, date FROM {table}"), vec![]),
            Days::Weeks if bulk => (format!("SELECT DISTINCT author, week FROM {table}"), vec![]),
            Days::Weeks => ("SELECT author, week FROM member_weeks".to_owned(), vec![]),
            Days::Since(from) => (
                format!("SELECT author, date FROM {table} WHERE week >= ?1"),
                vec![from.to_string()],
            ),
            // The member (unless merged into someone else) and the placeholders merged into
            // them.
            Days::Of(id) => {
                let mut who: Vec<String> = Vec::new();
                if !aliases.contains_key(id) {
                    who.push(id.to_owned());
                }
                who.extend(
                    aliases
                        .iter()
                        .filter(|(_, to)| *to == id)
                        .map(|(from, _)| from.clone()),
                );
                let marks = vec!["?"; who.len()].join(", ");
                (
                    format!("SELECT author, date FROM {table} WHERE author IN ({marks})"),
                    who,
                )
            }
        };
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(&params))?;
        let mut names: HashMap<String, Rc<str>> = HashMap::new();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let author = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let author = aliases.get(author).map_or(author, String::as_str);
            let Some(date) = cairn_core::time::parse_date(
                r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?,
            ) else {
                continue;
            };
            let name = match names.get(author) {
                Some(n) => n.clone(),
                None => {
                    let n: Rc<str> = author.into();
                    names.insert(author.to_owned(), n.clone());
                    n
                }
            };
            out.push((name, date));
        }
        Ok(out)
    }

    /// Every act that counts for badges and challenges (micro-actions and recognitions, not
    /// retracted), in time order, with recognitions' recipients.
    pub fn acts(&self) -> Result<Vec<cairn_core::goals::Act>> {
        // Two scans in the same (event, author) order, merged here: a lookup of the recipients
        // per event would cost a B-tree search for each of them.
        let tx = self.conn.unchecked_transaction()?;
        let aliases = index::aliases(&tx)?;
        let canon = |id: &str| -> String { aliases.get(id).map_or(id, String::as_str).to_owned() };
        let mut events = tx.prepare_cached(schema::ACTS)?;
        let mut recipients = tx.prepare_cached(
            "SELECT event, author, member FROM recipients ORDER BY event, author, ord",
        )?;
        let mut to_rows = recipients.query([])?;
        let mut pending = to_rows.next()?;
        let mut rows = events.query([])?;
        let mut out: Vec<cairn_core::goals::Act> = Vec::new();
        while let Some(r) = rows.next()? {
            let id = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let author = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let mut to = Vec::new();
            // Recipients come in the same order: skip those of events not counted, take these.
            while let Some(t) = pending {
                let ev = t.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let by = t.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                match (ev, by).cmp(&(id, author)) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        let m = canon(t.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?);
                        if !to.contains(&m) {
                            to.push(m);
                        }
                    }
                    std::cmp::Ordering::Greater => break,
                }
                pending = to_rows.next()?;
            }
            let date = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
            let kind = r.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
            let (Some(date), Some(kind)) = (cairn_core::time::parse_date(date), Kind::parse(kind))
            else {
                continue;
            };
            out.push(cairn_core::goals::Act {
                author: canon(author),
                date,
                kind,
                pillar: r.get(4)?,
                to,
            });
        }
        Ok(out)
    }

    /// The date and the non-negotiable (its id) of every act that honoured one of the
    /// organisation's (micro-actions and recognitions, not retracted), by the team's people:
    /// a recognition across teams counts for its giver's team alone. In date order.
    pub fn honoured(&self) -> Result<Vec<(Date, String)>> {
        let mut st = self.conn.prepare_cached(schema::HONOURED)?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let date = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            if let Some(date) = cairn_core::time::parse_date(date) {
                out.push((date, r.get(1)?));
            }
        }
        Ok(out)
    }

    /// Calls `f` with every event of the team's documents, reactions and retracted ones
    /// included, in id order (not those given from outside: see
    /// [`Replica::set_outside_events`]).
    pub fn for_each_event(&self, f: impl FnMut(Event) -> Result<()>) -> Result<()> {
        index::for_each_event(&self.conn, f)
    }
}

#[cfg(test)]
mod tests {
    use cairn_core::feed::FeedQuery;
    use cairn_core::ids::EventId;

    use crate::{NewTeam, Replica, index};

    /// How SQLite runs the feed's query for `q`: one line per step of its plan.
    fn plan(replica: &Replica, q: &FeedQuery) -> String {
        let (sql, args) = index::feed_sql(q);
        let mut st = replica
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = st
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn every_page_of_the_feed_is_a_range_of_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let new = NewTeam {
            team_id: "t".into(),
            team_name: "Otters".into(),
            tz: "UTC".into(),
            member_id: "ana".into(),
            member_name: "Ana".into(),
            handle: "ana".into(),
            at_ms: 0,
        };
        let replica = Replica::create(&dir.path().join("r.sqlite3"), &new).unwrap();
        replica.conn.execute_batch("ANALYZE").unwrap();
        let page = |f: &dyn Fn(&mut FeedQuery)| {
            let mut q = FeedQuery {
                limit: Some(20),
                ..FeedQuery::default()
            };
            f(&mut q);
            plan(&replica, &q)
        };
        let before = Some(EventId::new(1_795_000_000_000, [7; 5]));
        for (what, plan) in [
            ("the latest", page(&|_| {})),
            ("before an id", page(&|q| q.before = before.clone())),
            (
                "until a day",
                page(&|q| q.until = Some("2026-11-20".into())),
            ),
            (
                "until a day and before an id",
                page(&|q| {
                    q.until = Some("2026-11-20".into());
                    q.before = before.clone();
                }),
            ),
            (
                "since a day",
                page(&|q| q.since = Some("2026-11-20".into())),
            ),
        ] {
            // Read backwards along the primary key from where the page starts, never sorted
            // first: no page costs more for a longer history.
            assert!(
                !plan.contains("TEMP B-TREE FOR ORDER BY"),
                "{what}:\n{plan}"
            );
            let newest = what == "the latest" || what == "since a day";
            assert!(
                newest || plan.contains("USING PRIMARY KEY (id<?)"),
                "{what}:\n{plan}"
            );
        }
    }
}
