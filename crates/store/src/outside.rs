//! Events given to the team from outside its documents (an organisation's notes, say): rows of
//! the index like any other, so the feed and everything reading it shows them, but written by
//! [`Replica::set_outside_events`] from what the caller read elsewhere, never from the team's
//! documents.
//!
//! Their `doc` is [`OUTSIDE`] followed by the source's name, which no document of a team can be
//! (those are `team` and `j/<member>/<YYYY-MM>`). A rebuild of the index keeps them (it rebuilds
//! what the documents hold, and they are not there), a journal's own event with the same id and
//! author wins over them (its `doc` sorts first), and a write never lands in their `doc`.

use std::collections::BTreeMap;

use cairn_core::Event;
use cairn_core::ids::EventId;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Replica, Result, index};

/// What the `doc` of a row given from outside starts with.
pub(crate) const OUTSIDE: &str = "outside:";

/// The SQL condition that holds for a row of `events` given from outside (a range of `doc`,
/// which its index serves: `;` follows `:`).
pub(crate) const OUTSIDE_ROW: &str = "(doc >= 'outside:' AND doc < 'outside;')";

/// The source of a row whose `doc` is `doc`, when it came from outside.
pub(crate) fn source_of(doc: &str) -> Option<&str> {
    doc.strip_prefix(OUTSIDE)
}

/// The rows of `doc` (a source's), by (id, author), with their recipients whatever their kind.
fn held(conn: &Connection, doc: &str) -> Result<BTreeMap<(String, String), Event>> {
    let mut rows = BTreeMap::new();
    for e in index::events_of_doc(conn, doc)? {
        rows.insert((e.id.as_str().to_owned(), e.author.clone()), e);
    }
    Ok(rows)
}

/// What to write for `wanted` where `held` is: the events to write, and the rows to take out.
fn diff<'e>(
    held: &BTreeMap<(String, String), Event>,
    wanted: &BTreeMap<(String, String), &'e Event>,
) -> (Vec<&'e Event>, Vec<(String, String)>) {
    let write = wanted
        .iter()
        .filter(|(key, e)| held.get(*key) != Some(**e))
        .map(|(_, e)| *e)
        .collect();
    let gone = held
        .keys()
        .filter(|key| !wanted.contains_key(*key))
        .cloned()
        .collect();
    (write, gone)
}

impl Replica {
    /// Makes the rows given from outside by `source` (a name of the caller's, such as
    /// `org:<id>`) exactly `events`, with their recipients: rows of the source not among them
    /// go, the others are written as given. Returns how many rows were written or taken out;
    /// when none differs, nothing is written at all (a sync that brought nothing new stays a
    /// read). One transaction.
    ///
    /// The rows show in the feed among the team's events and count as their kind does
    /// ([`Event::counts`]: an event of kind team counts for nothing). They stay through any
    /// rebuild of the index, are left out of [`Replica::for_each_event`] (they are no event of
    /// the team's documents), and no member can edit or retract them. An event whose id and
    /// author a journal of the team holds too is the journal's.
    pub fn set_outside_events(&mut self, source: &str, events: &[Event]) -> Result<usize> {
        let doc = format!("{OUTSIDE}{source}");
        // The first of two events with one id and author is the one kept.
        let mut wanted: BTreeMap<(String, String), &Event> = BTreeMap::new();
        for e in events {
            wanted
                .entry((e.id.as_str().to_owned(), e.author.clone()))
                .or_insert(e);
        }
        let (write, gone) = diff(&held(&self.conn, &doc)?, &wanted);
        if write.is_empty() && gone.is_empty() {
            return Ok(0);
        }
        let tx = self.write()?;
        // Read again under the write lock: another cairn may have written them meanwhile.
        let (write, gone) = diff(&held(&tx, &doc)?, &wanted);
        let mut changed = 0;
        for (id, author) in &gone {
            tx.prepare_cached("DELETE FROM recipients WHERE event = ?1 AND author = ?2")?
                .execute(params![id, author])?;
            changed += tx
                .prepare_cached("DELETE FROM events WHERE id = ?1 AND author = ?2 AND doc = ?3")?
                .execute(params![id, author, doc])?;
        }
        for e in write {
            changed += index::upsert_outside(&tx, &doc, e)?;
        }
        tx.commit()?;
        Ok(changed)
    }

    /// The source that gave the row of `author`'s event `id` (see
    /// [`Replica::set_outside_events`]); `None` for an event of the team's own documents, or
    /// none at all.
    pub fn outside_source(&self, id: &EventId, author: &str) -> Result<Option<String>> {
        let doc: Option<String> = self
            .conn
            .prepare_cached("SELECT doc FROM events WHERE id = ?1 AND author = ?2")?
            .query_row([id.as_str(), author], |r| r.get(0))
            .optional()?;
        Ok(doc.as_deref().and_then(source_of).map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use cairn_core::feed::FeedQuery;
    use cairn_core::ids::EventId;
    use cairn_core::{Event, Kind, NewEvent, Stamp};

    use crate::{NewTeam, Replica};

    fn replica(dir: &std::path::Path) -> Replica {
        let new = NewTeam {
            team_id: "t".into(),
            team_name: "Otters".into(),
            tz: "UTC".into(),
            member_id: "ana".into(),
            member_name: "Ana".into(),
            handle: "ana".into(),
            at_ms: 0,
        };
        Replica::create(&dir.join("r.sqlite3"), &new).unwrap()
    }

    /// A steward's note at `at_ms`, or a recognition from another team when `to` is given.
    fn note(at_ms: i64, text: &str, to: &[&str]) -> Event {
        Event {
            id: EventId::new(at_ms, [1; 5]),
            kind: if to.is_empty() {
                Kind::Team
            } else {
                Kind::Kudos
            },
            author: "@cy@Platform".into(),
            at_ms,
            tz: "UTC".into(),
            date: "2026-11-20".into(),
            late: false,
            pillar: None,
            text: text.into(),
            why: None,
            to: to.iter().map(|m| (*m).to_owned()).collect(),
            target: None,
            emoji: None,
            retracted: false,
            edited_ms: None,
            honours: None,
        }
    }

    fn feed(r: &Replica) -> Vec<String> {
        r.feed(&FeedQuery::default())
            .unwrap()
            .into_iter()
            .map(|i| format!("{} {}", i.event.author, i.event.text))
            .collect()
    }

    #[test]
    fn outside_events_are_replaced_whole_written_only_when_they_change_and_outlive_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = replica(dir.path());
        let at = 1_795_000_000_000;
        let stamp = Stamp {
            at_ms: at + 1_000,
            tz: "UTC".into(),
            date: "2026-11-20".into(),
            late: false,
        };
        let mine = EventId::new(at + 1_000, [2; 5]);
        r.add_event(
            "ana",
            &mine,
            &stamp,
            &NewEvent::action("tidied", None, None),
        )
        .unwrap();

        let first = [note(at, "added “Blameless”", &[])];
        assert_eq!(r.set_outside_events("org:o1", &first).unwrap(), 1);
        assert_eq!(
            feed(&r),
            ["ana tidied", "@cy@Platform added “Blameless”"],
            "newest first, among the team's own"
        );
        assert_eq!(
            r.outside_source(&first[0].id, "@cy@Platform").unwrap(),
            Some("org:o1".to_owned())
        );
        assert_eq!(r.outside_source(&mine, "ana").unwrap(), None);

        // The same again writes nothing: the file does not move.
        let version = r.data_version().unwrap();
        let before = std::fs::metadata(r.path()).unwrap().modified().unwrap();
        assert_eq!(r.set_outside_events("org:o1", &first).unwrap(), 0);
        assert_eq!(r.data_version().unwrap(), version);
        assert_eq!(
            std::fs::metadata(r.path()).unwrap().modified().unwrap(),
            before
        );

        // Replaced: one changed, one new with its recipients, none left over; another
        // source's rows are its own.
        let second = [
            note(at, "reworded “Blameless”", &[]),
            note(at + 5_000, "thanks", &["ana", "@ben@Platform"]),
        ];
        assert_eq!(r.set_outside_events("org:o1", &second).unwrap(), 2);
        assert_eq!(
            r.set_outside_events("other", &[note(at + 2_000, "elsewhere", &[])])
                .unwrap(),
            1
        );
        let items = r.feed(&FeedQuery::default()).unwrap();
        let texts: Vec<&str> = items.iter().map(|i| i.event.text.as_str()).collect();
        assert_eq!(
            texts,
            ["thanks", "elsewhere", "tidied", "reworded “Blameless”"]
        );
        assert_eq!(items[0].event.to, ["ana", "@ben@Platform"]);
        let to_ana = r
            .feed(&FeedQuery {
                member: Some("ana".into()),
                ..FeedQuery::default()
            })
            .unwrap();
        assert_eq!(to_ana.len(), 2, "her own and the recognition she got");

        // Kept through a rebuild of the index, which still finds nothing amiss; never a row of
        // the team's documents; never the member's to retract.
        r.rebuild_index().unwrap();
        assert_eq!(r.feed(&FeedQuery::default()).unwrap(), items);
        assert_eq!(r.verify_index().unwrap(), Vec::<String>::new());
        let mut all = Vec::new();
        r.for_each_event(|e| {
            all.push(e.text);
            Ok(())
        })
        .unwrap();
        assert_eq!(all, ["tidied"]);
        assert!(r.retract_event("ana", &second[0].id, at + 9_000).is_err());

        // A note of the team's own acts only, not the organisation's.
        let acts = r.acts().unwrap();
        assert_eq!(acts.iter().filter(|a| a.author == "ana").count(), 1);

        // Emptied: its rows go, the other source's stay.
        assert_eq!(r.set_outside_events("org:o1", &[]).unwrap(), 2);
        assert_eq!(feed(&r), ["@cy@Platform elsewhere", "ana tidied"]);
    }
}
