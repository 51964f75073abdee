//! A replica far behind takes whole documents (a snapshot and the changes after it) as well as
//! single changes, in any mix and any order, and ends where a replay of every change ends.
//!
//! The property: two members write on one device (actions, kudos, reactions, edits and
//! retractions); a joined replica that writes an event of its own at some point meanwhile
//! receives their log as a random schedule of single changes and of snapshots of any document
//! as of any point of the log (before, after or between the changes it already has). Once
//! everything has arrived (perhaps only as whole documents), it holds the same events, team and index as a replica that replayed
//! every change, and its own change still waits in its outbox.

use automerge::{Automerge, Change};
use cairn_core::feed::FeedQuery;
use cairn_core::ids::EventId;
use cairn_core::{Edit, NewEvent, Stamp};
use cairn_store::{Incoming, IncomingDoc, NewTeam, Remote, Replica};
use proptest::prelude::*;
use proptest::sample::Index;

const T0: i64 = 1_795_000_000_000;
const WRITERS: [&str; 2] = ["ana", "ben"];

fn remote() -> Remote {
    Remote {
        url: "http://127.0.0.1:1".into(),
        device_id: "d1".into(),
        token: "secret".into(),
    }
}

fn stamp(at: i64) -> Stamp {
    Stamp {
        at_ms: at,
        tz: "UTC".into(),
        date: "2026-11-18".into(),
        late: false,
    }
}

fn id(n: u64) -> EventId {
    let b = n.to_be_bytes();
    EventId::new(T0 + n as i64 * 60_000, [b[3], b[4], b[5], b[6], b[7]])
}

/// One thing a writer does.
#[derive(Clone, Debug)]
enum Op {
    Action(usize),
    Kudos(usize),
    React(usize, Index),
    Edit(usize, Index),
    Retract(usize, Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(Op::Action),
        2 => (0..2usize).prop_map(Op::Kudos),
        2 => (0..2usize, any::<Index>()).prop_map(|(w, i)| Op::React(w, i)),
        2 => (0..2usize, any::<Index>()).prop_map(|(w, i)| Op::Edit(w, i)),
        1 => (0..2usize, any::<Index>()).prop_map(|(w, i)| Op::Retract(w, i)),
    ]
}

/// One delivery to the replica far behind.
#[derive(Clone, Debug)]
enum Step {
    /// The next few changes of the log, one by one.
    Changes(usize),
    /// A document as it stood after some prefix of the log (ahead of what came, or behind),
    /// with some of its changes after that prefix.
    Snapshot(Index, Index, usize),
    /// The replica writes an event of its own (once it knows the team).
    Write,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1..6usize).prop_map(Step::Changes),
        3 => (any::<Index>(), any::<Index>(), 0..4usize)
            .prop_map(|(d, at, tail)| Step::Snapshot(d, at, tail)),
        1 => Just(Step::Write),
    ]
}

/// The source replica: the team, then `ops` by the two writers; returns its log.
fn history(dir: &std::path::Path, ops: &[Op]) -> Vec<Incoming> {
    let new = NewTeam {
        team_id: "team1".into(),
        team_name: "Otters".into(),
        tz: "UTC".into(),
        member_id: "ana".into(),
        member_name: "Ana".into(),
        handle: "ana".into(),
        at_ms: T0,
    };
    let mut a = Replica::create(&dir.join("source.sqlite3"), &new).unwrap();
    for (m, name) in [("ben", "Ben"), ("cy", "Cy")] {
        a.change_team("ana", |doc, state| {
            cairn_core::team::add_member(doc, state, m, name, None, T0)
        })
        .unwrap();
    }
    let mut made: Vec<Vec<EventId>> = vec![Vec::new(), Vec::new()];
    let mut all: Vec<EventId> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let n = n as u64 + 1;
        let at = T0 + n as i64 * 60_000;
        // Refusals (an edit of a retracted event, a reaction to a reaction) are part of the
        // game: the writer simply did not do it.
        match op {
            Op::Action(w) => {
                let new = NewEvent::action(&format!("action {n}"), None, None);
                if a.add_event(WRITERS[*w], &id(n), &stamp(at), &new).is_ok() {
                    made[*w].push(id(n));
                    all.push(id(n));
                }
            }
            Op::Kudos(w) => {
                let to = vec![WRITERS[1 - *w].to_owned()];
                let new = NewEvent::kudos(to, &format!("kudos {n}"), None);
                if a.add_event(WRITERS[*w], &id(n), &stamp(at), &new).is_ok() {
                    made[*w].push(id(n));
                    all.push(id(n));
                }
            }
            Op::React(w, i) if !all.is_empty() => {
                let target = all[i.index(all.len())].clone();
                let _ = a.react(WRITERS[*w], &target, "🎉", &id(n), &stamp(at));
            }
            Op::Edit(w, i) if !made[*w].is_empty() => {
                let target = made[*w][i.index(made[*w].len())].clone();
                let edit = Edit {
                    text: Some(format!("edited {n}")),
                    pillar: None,
                    why: Some("so it is right".into()),
                };
                let _ = a.edit_event(WRITERS[*w], &target, &edit, at);
            }
            Op::Retract(w, i) if !made[*w].is_empty() => {
                let target = made[*w][i.index(made[*w].len())].clone();
                let _ = a.retract_event(WRITERS[*w], &target, at);
            }
            _ => {}
        }
    }
    a.outbox(100_000, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|o| Incoming {
            doc: o.doc,
            change: o.change,
        })
        .collect()
}

/// Document `doc` as it stood after the first `upto` entries of `log`, saved, with its next
/// `tail` changes after that.
fn with_tail(log: &[Incoming], doc: &str, upto: usize, tail: usize) -> IncomingDoc {
    let mut whole = snapshot(log, doc, upto);
    whole.changes = log[upto..]
        .iter()
        .filter(|c| c.doc == doc)
        .take(tail)
        .map(|c| c.change.clone())
        .collect();
    whole
}

/// Document `doc` as it stood after the first `upto` entries of `log`, saved.
fn snapshot(log: &[Incoming], doc: &str, upto: usize) -> IncomingDoc {
    let mut d = Automerge::new();
    let changes: Vec<Change> = log[..upto]
        .iter()
        .filter(|c| c.doc == doc)
        .map(|c| Change::from_bytes(c.change.clone()).unwrap())
        .collect();
    d.apply_changes(changes).unwrap();
    IncomingDoc {
        doc: doc.to_owned(),
        snapshot: if d.get_heads().is_empty() {
            Vec::new()
        } else {
            d.save()
        },
        changes: Vec::new(),
    }
}

/// The documents of `log`, in the order of their ids.
fn doc_ids(log: &[Incoming]) -> Vec<String> {
    log.iter()
        .map(|c| c.doc.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Every document of `log` as it stands at its end, in the order of their ids.
fn whole_team(log: &[Incoming]) -> Vec<IncomingDoc> {
    doc_ids(log)
        .iter()
        .map(|d| snapshot(log, d, log.len()))
        .collect()
}

/// `n` events by the two writers in turn: kudos every `kudos_every`th, micro-actions between.
fn by_turns(n: usize, kudos_every: usize) -> Vec<Op> {
    (0..n)
        .map(|n| {
            if n % kudos_every == 0 {
                Op::Kudos(n % 2)
            } else {
                Op::Action(n % 2)
            }
        })
        .collect()
}

/// What a replica shows: every event as the feed has it, and the team.
fn view(r: &Replica) -> (Vec<String>, String) {
    let mut events = Vec::new();
    r.for_each_event(|e| {
        events.push(format!("{e:?}"));
        Ok(())
    })
    .unwrap();
    events.sort();
    let feed = r.feed(&FeedQuery::default()).unwrap();
    events.push(format!("{feed:?}"));
    (events, format!("{:?}", r.team().unwrap()))
}

fn cy_writes(r: &mut Replica) -> bool {
    let new = NewEvent::action("cy was here", None, None);
    r.team()
        .is_ok_and(|t| t.members.iter().any(|m| m.id == "cy"))
        && r.add_event("cy", &id(9_999), &stamp(T0 + 9_999 * 60_000), &new)
            .is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("CAIRN_FUZZ_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn snapshots_and_single_changes_in_any_mix_end_as_a_replay(
        ops in prop::collection::vec(op(), 1..24),
        steps in prop::collection::vec(step(), 0..16),
        last in 0..3u8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = history(dir.path(), &ops);
        let mut docs: Vec<String> = log.iter().map(|c| c.doc.clone()).collect();
        docs.sort();
        docs.dedup();

        let mut far = Replica::create_joined(&dir.path().join("far.sqlite3"), "team1", "cy", &remote())
            .unwrap();
        let mut pos = 0;
        let mut wrote = false;
        for s in &steps {
            match s {
                Step::Changes(k) => {
                    let to = (pos + k).min(log.len());
                    far.apply_exchange(None, &log[pos..to], 0, T0).unwrap();
                    pos = to;
                }
                Step::Snapshot(d, at, tail) => {
                    let doc = &docs[d.index(docs.len())];
                    let whole = with_tail(&log, doc, at.index(log.len() + 1), *tail);
                    far.apply_docs(None, &[whole], None, 0, T0).unwrap();
                }
                Step::Write => wrote = wrote || cy_writes(&mut far),
            }
        }
        // Then everything: whole documents alone, or with every single change before or after.
        // (Each as of the middle of the log with the changes after it, as a server sends them.)
        let wholes: Vec<IncomingDoc> =
            docs.iter().map(|d| with_tail(&log, d, log.len() / 2, usize::MAX)).collect();
        match last {
            0 => {
                far.apply_docs(None, &wholes, None, 9, T0).unwrap();
            }
            1 => {
                far.apply_exchange(None, &log, 0, T0).unwrap();
                far.apply_docs(None, &wholes, None, 9, T0).unwrap();
            }
            _ => {
                far.apply_docs(None, &wholes, None, 0, T0).unwrap();
                far.apply_exchange(None, &log, 9, T0).unwrap();
            }
        }
        if !wrote {
            wrote = cy_writes(&mut far);
        }
        prop_assert!(wrote);
        prop_assert_eq!(far.cursor().unwrap(), 9);
        prop_assert!(far.verify_index().unwrap().is_empty(), "{:?}", far.verify_index());
        prop_assert_eq!(far.waiting_changes().unwrap(), 0);
        // Its own change still waits to go up.
        let own: Vec<Incoming> = far
            .outbox(100, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|o| Incoming { doc: o.doc, change: o.change })
            .collect();
        prop_assert!(!own.is_empty());

        // The replay: every change one by one, and the far replica's own.
        let mut replay =
            Replica::create_joined(&dir.path().join("replay.sqlite3"), "team1", "cy", &remote())
                .unwrap();
        replay.apply_exchange(None, &log, 9, T0).unwrap();
        replay.apply_exchange(None, &own, 9, T0).unwrap();
        prop_assert_eq!(view(&far), view(&replay));

        // And a replica closed and opened again reads the same.
        drop(far);
        let far = Replica::open(&dir.path().join("far.sqlite3")).unwrap();
        prop_assert_eq!(view(&far), view(&replay));
    }
}

#[test]
fn a_snapshot_that_does_not_load_is_set_aside_and_the_rest_applies() {
    let dir = tempfile::tempdir().unwrap();
    let log = history(dir.path(), &[Op::Action(0), Op::Action(1)]);
    let mut far =
        Replica::create_joined(&dir.path().join("far.sqlite3"), "team1", "cy", &remote()).unwrap();
    let mut broken = snapshot(&log, "team", log.len());
    let n = broken.snapshot.len();
    broken.snapshot[n / 2] ^= 0xff;
    broken.snapshot.truncate(n - 3);
    let mut docs = vec![broken];
    docs.extend(
        log.iter()
            .map(|c| c.doc.clone())
            .filter(|d| d != "team")
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|d| snapshot(&log, &d, log.len())),
    );
    let got = far.apply_docs(None, &docs, None, 3, T0).unwrap();
    assert_eq!(got.set_aside, 1);
    assert_eq!(far.set_aside(usize::MAX).unwrap().len(), 1);
    // The team comes again as changes, and then everything shows.
    far.apply_exchange(None, &log, 4, T0).unwrap();
    let feed = far.feed(&FeedQuery::default()).unwrap();
    assert_eq!(feed.len(), 2);
    assert!(far.verify_index().unwrap().is_empty());
}

#[test]
fn the_days_members_acted_stay_right_through_a_bulk_catch_up_cut_between_pages() {
    let dir = tempfile::tempdir().unwrap();
    let ops: Vec<Op> = (0..12).map(|n| Op::Action(n % 2)).collect();
    let log = history(dir.path(), &ops);
    let docs: Vec<IncomingDoc> = whole_team(&log);
    assert!(docs.len() >= 3, "the team and two journals: {}", docs.len());
    let days = |r: &Replica| {
        let mut d: Vec<String> = r
            .activity()
            .unwrap()
            .into_iter()
            .map(|(m, d)| format!("{m} {d}"))
            .collect();
        d.sort();
        d
    };
    let mut replay =
        Replica::create_joined(&dir.path().join("replay.sqlite3"), "team1", "cy", &remote())
            .unwrap();
    replay.apply_exchange(None, &log, 9, T0).unwrap();
    let want = days(&replay);
    assert_eq!(want.len(), 2, "{want:?}");

    // The first page, then the catch-up is cut: the replica is used meanwhile.
    let mut far =
        Replica::create_joined(&dir.path().join("far.sqlite3"), "team1", "cy", &remote()).unwrap();
    let (first, rest) = docs.split_at(2);
    let cut = cairn_store::CatchUpState {
        through: 9,
        after_doc: first[1].doc.clone(),
    };
    far.apply_docs(None, first, Some(&cut), 0, T0).unwrap();
    let partway = days(&far);
    assert!(
        !partway.is_empty() && want.starts_with(&partway[..1]),
        "{partway:?}"
    );
    assert!(far.verify_index().unwrap().is_empty());
    // A rebuild of the index in the middle (`cairn doctor --reindex`) keeps them too.
    far.rebuild_index().unwrap();
    assert_eq!(days(&far), partway);
    // The rest arrives: every day is there, and kept by the triggers from then on.
    far.apply_docs(None, rest, None, 9, T0).unwrap();
    assert_eq!(days(&far), want);
    assert!(far.verify_index().unwrap().is_empty());
}

#[test]
fn one_authors_id_in_two_journals_gives_the_same_index_whatever_order_a_bulk_catch_up_takes() {
    // Only a faulty peer writes one id into two of its author's journals; the journal whose id
    // sorts first keeps the event, in whichever order the documents come (a new replica takes
    // rows by plain inserts, falling back to the rule when the id is there already).
    let dir = tempfile::tempdir().unwrap();
    let log = history(dir.path(), &[Op::Action(0), Op::Kudos(1)]);
    let team = {
        let mut d = Automerge::new();
        for c in log.iter().filter(|c| c.doc == "team") {
            d.apply_changes([Change::from_bytes(c.change.clone()).unwrap()])
                .unwrap();
        }
        cairn_core::team::read(&d).unwrap()
    };
    let journal = |month: &str, text: &str, to: Vec<String>| {
        let mut d = Automerge::new();
        let new = if to.is_empty() {
            NewEvent::action(text, None, None)
        } else {
            NewEvent::kudos(to, text, None)
        };
        cairn_core::journal::add(&mut d, &team, "ana", &id(1), &stamp(T0), &new).unwrap();
        IncomingDoc {
            doc: cairn_core::ids::journal_doc("ana", month),
            snapshot: d.save(),
            changes: Vec::new(),
        }
    };
    let first = journal("2020-01", "kept", vec!["ben".into(), "cy".into()]);
    let second = journal("2020-02", "not kept", vec!["ben".into()]);
    let docs: Vec<IncomingDoc> = whole_team(&log);
    let mut views = Vec::new();
    for (n, order) in [[first.clone(), second.clone()], [second, first]]
        .into_iter()
        .enumerate()
    {
        let mut docs = docs.clone();
        docs.extend(order);
        let path = dir.path().join(format!("far{n}.sqlite3"));
        let mut far = Replica::create_joined(&path, "team1", "cy", &remote()).unwrap();
        far.apply_docs(None, &docs, None, log.len() as u64, T0)
            .unwrap();
        assert!(far.verify_index().unwrap().is_empty());
        let got = view(&far);
        far.rebuild_index().unwrap();
        assert_eq!(view(&far), got, "a rebuild gives the same index");
        views.push(got);
    }
    assert_eq!(views[0], views[1]);
    let kept = views[0].0.join("\n");
    assert!(
        kept.contains(r#"text: "kept""#) && !kept.contains("not kept"),
        "{kept}"
    );
    assert!(
        kept.contains(r#"to: ["ben", "cy"]"#),
        "the kept event's recipients: {kept}"
    );
}

#[test]
fn a_document_twice_in_one_page_ends_as_a_replay() {
    // A faulty or restored server may send one document twice in a page, as of two points of
    // the log: the second copy merges into the first, whichever came first.
    let dir = tempfile::tempdir().unwrap();
    let log = history(dir.path(), &by_turns(10, 3));
    let mut replay =
        Replica::create_joined(&dir.path().join("replay.sqlite3"), "team1", "cy", &remote())
            .unwrap();
    replay.apply_exchange(None, &log, 9, T0).unwrap();
    let ids = doc_ids(&log);
    let journal = ids.iter().find(|d| d.starts_with("j/")).unwrap().clone();
    let early = log.iter().position(|c| c.doc == journal).unwrap() + 1;
    for early_first in [true, false] {
        let mut docs = whole_team(&log);
        let copy = with_tail(&log, &journal, early, 1);
        if early_first {
            docs.insert(0, copy);
        } else {
            docs.push(copy);
        }
        let path = dir.path().join(format!("far-{early_first}.sqlite3"));
        let mut far = Replica::create_joined(&path, "team1", "cy", &remote()).unwrap();
        far.apply_docs(None, &docs, None, 9, T0).unwrap();
        assert_eq!(view(&far), view(&replay), "early copy first: {early_first}");
        assert!(far.verify_index().unwrap().is_empty());
    }
}

#[test]
fn a_finished_catch_up_leaves_its_pages_in_the_database_file() {
    // The end of the catch-up copies what is left of the log into the database file (nothing
    // left for the next command to copy).
    let dir = tempfile::tempdir().unwrap();
    let ops: Vec<Op> = (0..300).map(|n| Op::Action(n % 2)).collect();
    let log = history(dir.path(), &ops);
    let docs: Vec<IncomingDoc> = whole_team(&log);
    let path = dir.path().join("far.sqlite3");
    let mut far = Replica::create_joined(&path, "team1", "cy", &remote()).unwrap();
    let (first, rest) = docs.split_at(1);
    let cut = cairn_store::CatchUpState {
        through: 9,
        after_doc: first[0].doc.clone(),
    };
    far.apply_docs(None, first, Some(&cut), 0, T0).unwrap();
    far.apply_docs(None, rest, None, 9, T0).unwrap();
    let look = rusqlite::Connection::open(&path).unwrap();
    let pages: i64 = look
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let file = std::fs::metadata(&path).unwrap().len();
    assert_eq!(file as i64, pages, "the database file holds every page");
    drop(far);
}

/// The indexes and triggers of a replica's schema, each with its statement.
fn schema_objects(path: &std::path::Path) -> Vec<(String, Option<String>)> {
    let look = rusqlite::Connection::open(path).unwrap();
    let mut stmt = look
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_bulk_catch_up_in_pages_ends_with_the_indexes_and_rows_a_replay_has() {
    // The indexes lifted for a catch-up in bulk are built when its last page begins, before
    // that page's rows go in: every index is back, whole (the last page is a journal, whose
    // rows go through the indexes just built), and the index is the replay's.
    let dir = tempfile::tempdir().unwrap();
    let log = history(dir.path(), &by_turns(40, 4));
    let replay_path = dir.path().join("replay.sqlite3");
    let mut replay = Replica::create_joined(&replay_path, "team1", "cy", &remote()).unwrap();
    replay.apply_exchange(None, &log, 9, T0).unwrap();
    let docs = whole_team(&log);
    assert!(docs.len() >= 3, "{}", docs.len());
    let path = dir.path().join("far.sqlite3");
    let mut far = Replica::create_joined(&path, "team1", "cy", &remote()).unwrap();
    // (Any order of documents is taken: the first journal comes last.)
    assert!(docs[1].doc.starts_with("j/"), "{}", docs[1].doc);
    let pages = [&docs[..1], &docs[2..], &docs[1..2]];
    for (i, page) in pages.iter().enumerate() {
        let state = (i + 1 < pages.len()).then(|| cairn_store::CatchUpState {
            through: 9,
            after_doc: page.last().unwrap().doc.clone(),
        });
        far.apply_docs(None, page, state.as_ref(), 9, T0).unwrap();
        if i == 0 {
            let lifted = !schema_objects(&path)
                .iter()
                .any(|(name, _)| name == "events_pillar");
            assert!(lifted, "the first page of a new replica goes in bulk");
        }
    }
    assert_eq!(schema_objects(&path), schema_objects(&replay_path));
    let check: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(view(&far), view(&replay));
    assert!(far.verify_index().unwrap().is_empty());
}

#[test]
fn the_pages_of_a_catch_up_reach_the_database_file_before_it_ends() {
    // Each page's part of the log is copied into the database beside the next page, not all
    // at the end: by the time the replica is closed, the first page is in the file.
    let dir = tempfile::tempdir().unwrap();
    let ops: Vec<Op> = (0..300).map(|n| Op::Action(n % 2)).collect();
    let log = history(dir.path(), &ops);
    let docs = whole_team(&log);
    let path = dir.path().join("far.sqlite3");
    let mut far = Replica::create_joined(&path, "team1", "cy", &remote()).unwrap();
    let cut = cairn_store::CatchUpState {
        through: 9,
        after_doc: docs[1].doc.clone(),
    };
    far.apply_docs(None, &docs[..2], Some(&cut), 0, T0).unwrap();
    // Another connection that has read the replica: closing it is then not the last close,
    // which would copy the log itself.
    let look = rusqlite::Connection::open(&path).unwrap();
    let size = |look: &rusqlite::Connection| -> i64 {
        look.query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let pages = size(&look);
    drop(far);
    let file = std::fs::metadata(&path).unwrap().len();
    assert_eq!(file as i64, pages, "the database file holds the first page");
    assert_eq!(size(&look), pages);
}
