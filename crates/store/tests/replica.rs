//! The replica on real SQLite files.

use cairn_core::feed::FeedQuery;
use cairn_core::ids::EventId;
use cairn_core::{Edit, NewEvent, Stamp, team};
use cairn_store::{Error, NewTeam, Reacted, Replica};

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    replica: Replica,
    clock: i64,
}

const T0: i64 = 1_795_000_000_000; // 2026-11-18

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home").join("replica.sqlite3");
        let new = NewTeam {
            team_id: "team1".into(),
            team_name: "Otters".into(),
            tz: "Europe/Paris".into(),
            member_id: "ana".into(),
            member_name: "Ana".into(),
            handle: "ana".into(),
            at_ms: T0,
        };
        let mut replica = Replica::create(&path, &new).unwrap();
        replica
            .change_team("ana", |doc, state| {
                team::add_member(doc, state, "ben", "Ben", None, T0)
            })
            .unwrap();
        Fixture {
            _dir: dir,
            path,
            replica,
            clock: T0,
        }
    }

    fn stamp(&mut self) -> (EventId, Stamp) {
        self.clock += 1_000;
        let n = self.clock.to_be_bytes();
        let id = EventId::new(self.clock, [n[3], n[4], n[5], n[6], n[7]]);
        let stamp = Stamp {
            at_ms: self.clock,
            tz: "Europe/Paris".into(),
            date: "2026-11-18".into(),
            late: false,
        };
        (id, stamp)
    }

    fn log(&mut self, who: &str, text: &str) -> EventId {
        let (id, stamp) = self.stamp();
        self.replica
            .add_event(who, &id, &stamp, &NewEvent::action(text, None, None))
            .unwrap();
        id
    }

    fn texts(&self) -> Vec<String> {
        self.replica
            .feed(&FeedQuery::default())
            .unwrap()
            .into_iter()
            .map(|i| i.event.text)
            .collect()
    }

    /// The whole file's bytes after a checkpoint, to show a failed write changed nothing.
    fn snapshot(&self) -> Vec<u8> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        drop(conn);
        std::fs::read(&self.path).unwrap()
    }
}

#[test]
fn events_show_in_the_feed_newest_first_and_survive_reopening() {
    let mut f = Fixture::new();
    f.log("ana", "one");
    f.log("ben", "two");
    let (id, stamp) = f.stamp();
    f.replica
        .add_event(
            "ana",
            &id,
            &stamp,
            &NewEvent::kudos(vec!["ben".into()], "thanks", Some("trust".into())),
        )
        .unwrap();
    assert_eq!(f.texts(), ["thanks", "two", "one"]);
    let reopened = Replica::open(&f.path).unwrap();
    let feed = reopened.feed(&FeedQuery::default()).unwrap();
    assert_eq!(feed[0].event.to, ["ben"]);
    assert!(reopened.verify_index().unwrap().is_empty());
}

#[test]
fn edits_retractions_and_reactions() {
    let mut f = Fixture::new();
    let a = f.log("ana", "first");
    let edit = Edit {
        text: Some("first, edited".into()),
        ..Edit::default()
    };
    f.replica.edit_event("ana", &a, &edit, f.clock).unwrap();
    let (rid, st) = f.stamp();
    assert_eq!(
        f.replica.react("ben", &a, "🎉", &rid, &st).unwrap(),
        Reacted::Added
    );
    let feed = f.replica.feed(&FeedQuery::default()).unwrap();
    assert_eq!(feed[0].event.text, "first, edited");
    assert_eq!(feed[0].reactions[0].by, ["ben"]);
    // The same reaction again takes it back.
    let (rid2, st2) = f.stamp();
    assert_eq!(
        f.replica.react("ben", &a, "🎉", &rid2, &st2).unwrap(),
        Reacted::Removed
    );
    assert!(
        f.replica.feed(&FeedQuery::default()).unwrap()[0]
            .reactions
            .is_empty()
    );
    f.replica.retract_event("ana", &a, f.clock).unwrap();
    assert!(f.texts().is_empty());
    assert!(f.replica.verify_index().unwrap().is_empty());
}

#[test]
fn refused_writes_leave_the_file_unchanged() {
    let mut f = Fixture::new();
    let a = f.log("ana", "mine");
    let before = f.snapshot();
    let edit = Edit {
        text: Some("hijacked".into()),
        ..Edit::default()
    };
    assert!(matches!(
        f.replica.edit_event("ben", &a, &edit, f.clock),
        Err(Error::Core(cairn_core::Error::NotYours(_)))
    ));
    assert!(f.replica.retract_event("ben", &a, f.clock).is_err());
    let (id, stamp) = f.stamp();
    for bad in [
        NewEvent::action("   ", None, None),
        NewEvent::action(&"x".repeat(501), None, None),
        NewEvent::action("x", Some("speed".into()), None),
        NewEvent::kudos(vec!["zed".into()], "x", None),
        NewEvent::kudos(vec!["ana".into()], "self", None),
    ] {
        assert!(f.replica.add_event("ana", &id, &stamp, &bad).is_err());
    }
    assert_eq!(f.snapshot(), before);
}

#[test]
fn the_feed_pages_through_the_whole_history_by_id() {
    let mut f = Fixture::new();
    let mut ids = Vec::new();
    for n in 0..25 {
        let who = if n % 2 == 0 { "ana" } else { "ben" };
        ids.push(f.log(who, &format!("e{n}")));
    }
    // Ana's event with the id of Ben's e11: the page that reaches it holds both.
    let (_, stamp) = f.stamp();
    let twin = NewEvent::action("twin", None, None);
    f.replica.add_event("ana", &ids[11], &stamp, &twin).unwrap();
    // Logged last, for the day before.
    let (late_id, mut late) = f.stamp();
    late.date = "2026-11-17".into();
    late.late = true;
    let logged = NewEvent::action("late", None, None);
    f.replica
        .add_event("ana", &late_id, &late, &logged)
        .unwrap();
    let walk = |base: FeedQuery| -> (Vec<String>, Vec<usize>) {
        let mut q = FeedQuery {
            limit: Some(5),
            ..base
        };
        let (mut texts, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let page = f.replica.feed_page(&q).unwrap();
            texts.extend(page.items.iter().map(|i| i.event.text.clone()));
            sizes.push(page.items.len());
            match page.next_before() {
                Some(id) => q.before = Some(id.clone()),
                None => break,
            }
        }
        (texts, sizes)
    };
    let (texts, sizes) = walk(FeedQuery::default());
    let mut want: Vec<String> = (0..25).rev().map(|n| format!("e{n}")).collect();
    want.insert(0, "late".into());
    want.insert(14, "twin".into());
    assert_eq!(texts, want, "every event once, newest first");
    assert_eq!(sizes, [5, 5, 6, 5, 5, 1], "the twins share a page");
    // Until a day: what counts for it, logged late or not.
    let until = |d: &str| FeedQuery {
        until: Some(d.into()),
        ..FeedQuery::default()
    };
    assert_eq!(walk(until("2026-11-17")).0, ["late"]);
    assert_eq!(walk(until("2026-11-18")).0, want);
    // A page goes on from an id whose event is gone since.
    f.replica.retract_event("ben", &ids[21], f.clock).unwrap();
    let from = FeedQuery {
        limit: Some(2),
        before: Some(ids[21].clone()),
        ..FeedQuery::default()
    };
    let page = f.replica.feed_page(&from).unwrap();
    let texts: Vec<_> = page.items.iter().map(|i| i.event.text.as_str()).collect();
    assert_eq!(texts, ["e20", "e19"]);
    assert!(page.more);
    // The id to go on from: a full id, held or not, or a prefix of a held one's tag.
    let elsewhere = EventId::new(T0 - 1, [9; 5]);
    assert_eq!(f.replica.resolve_id(elsewhere.as_str()).unwrap(), elsewhere);
    assert_eq!(f.replica.resolve_id(ids[21].tag()).unwrap(), ids[21]);
    assert!(matches!(
        f.replica.resolve_id("zzzzzzzz"),
        Err(Error::NoSuchEvent(_))
    ));
}

#[test]
fn an_index_missing_an_event_is_told_in_words_that_fit() {
    let mut f = Fixture::new();
    let kept = f.log("ana", "kept");
    let lost = f.log("ana", "lost");
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute("DELETE FROM events WHERE id = ?1", [lost.as_str()])
        .unwrap();
    let problems = f.replica.verify_index().unwrap();
    assert!(
        problems.contains(&"the index holds 1 event, the journals 2".to_owned()),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.contains(kept.as_str())),
        "{problems:?}"
    );
}

#[test]
fn events_are_found_by_a_prefix_of_their_tag() {
    let mut f = Fixture::new();
    let a = f.log("ana", "x");
    assert_eq!(f.replica.resolve(a.short(), "m1").unwrap().id, a);
    assert_eq!(f.replica.resolve(a.as_str(), "m1").unwrap().id, a);
    assert_eq!(f.replica.resolve(&a.tag()[..4], "m1").unwrap().id, a);
    assert!(matches!(
        f.replica.resolve("zzzzzzzz", "m1"),
        Err(Error::NoSuchEvent(_))
    ));
    assert!(matches!(
        f.replica.resolve("ab", "m1"),
        Err(Error::NoSuchEvent(_))
    ));
}

#[test]
fn many_writes_compact_and_the_index_rebuilds_identically() {
    let mut f = Fixture::new();
    for i in 0..150 {
        f.log(
            if i % 2 == 0 { "ana" } else { "ben" },
            &format!("event {i}"),
        );
    }
    let stats = f.replica.stats().unwrap();
    assert_eq!(stats.events, 150);
    assert!(stats.chunks < 150, "chunks were compacted: {stats:?}");
    let before = f.replica.feed(&FeedQuery::default()).unwrap();
    f.replica.rebuild_index().unwrap();
    assert_eq!(f.replica.feed(&FeedQuery::default()).unwrap(), before);
    assert!(f.replica.verify_index().unwrap().is_empty());
}

#[test]
fn missing_corrupt_and_newer_replicas_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.sqlite3");
    assert!(matches!(Replica::open(&missing), Err(Error::Missing(_))));
    assert!(!missing.exists(), "opening must not create a replica");

    let garbage = dir.path().join("garbage.sqlite3");
    std::fs::write(
        &garbage,
        b"this is not a database at all, not even close........",
    )
    .unwrap();
    assert!(matches!(
        Replica::open(&garbage),
        Err(Error::Corrupt { .. })
    ));

    let f = Fixture::new();
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Replica::open(&f.path),
        Err(Error::TooNew { found: 99, .. })
    ));
}

#[test]
fn create_refuses_to_overwrite() {
    let f = Fixture::new();
    let new = NewTeam {
        team_id: "t2".into(),
        team_name: "Other".into(),
        tz: "UTC".into(),
        member_id: "x".into(),
        member_name: "X".into(),
        handle: "x".into(),
        at_ms: 0,
    };
    assert!(matches!(
        Replica::create(&f.path, &new),
        Err(Error::Exists(_))
    ));
}

#[test]
fn batches_span_months_and_stop_whole_on_a_bad_event() {
    let mut f = Fixture::new();
    let mut batch = Vec::new();
    for i in 0..40i64 {
        // Two events a day across about three weeks, crossing into December.
        let (id, mut stamp) = f.stamp();
        stamp.at_ms = T0 + i * 43_200_000;
        batch.push((id, stamp, NewEvent::action(&format!("b{i}"), None, None)));
    }
    f.replica.add_events("ben", &batch).unwrap();
    assert_eq!(f.replica.stats().unwrap().events, 40);
    assert_eq!(
        f.replica.stats().unwrap().docs,
        3,
        "team + November + December"
    );
    let (id, stamp) = f.stamp();
    let bad = vec![
        (
            id.clone(),
            stamp.clone(),
            NewEvent::action("fine", None, None),
        ),
        (
            EventId::new(stamp.at_ms + 1, [9; 5]),
            stamp,
            NewEvent::action("", None, None),
        ),
    ];
    assert!(f.replica.add_events("ben", &bad).is_err());
    assert_eq!(f.replica.stats().unwrap().events, 40);
    assert!(f.replica.verify_index().unwrap().is_empty());
}

#[test]
fn a_replica_of_schema_one_upgrades_with_its_rules_and_challenges() {
    let mut f = Fixture::new();
    let c = cairn_core::goals::Challenge {
        id: "c1".into(),
        title: "Thirty thanks".into(),
        metric: cairn_core::goals::Metric::Kudos,
        target: 30,
        start: "2026-11-01".parse().unwrap(),
        until: "2026-11-30".parse().unwrap(),
    };
    f.replica
        .change_team("ana", |doc, _| {
            team::set_rules(
                doc,
                None,
                Some(cairn_core::rules::Cadence::Daily),
                None,
                None,
            )?;
            team::add_challenge(doc, &c, "ana", T0)
        })
        .unwrap();
    let want = f.replica.team().unwrap();
    drop(f.replica);
    // Take the file back to schema 1, as an older cairn left it.
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER member_days_insert; DROP TRIGGER member_days_delete;
         DROP TRIGGER member_days_update; DROP TABLE member_days; DROP TABLE member_weeks;
         DROP INDEX events_activity; DROP TABLE challenges;
         DROP TABLE waiting; DROP TABLE set_aside; DROP TABLE withdrawn; DROP TABLE withdrawals;
         ALTER TABLE members DROP COLUMN left_ms; ALTER TABLE members DROP COLUMN merged_into;
         ALTER TABLE members DROP COLUMN placeholder; ALTER TABLE members DROP COLUMN arrived_ms;
         DELETE FROM meta WHERE key IN ('team_rest_days', 'team_cadence', 'team_quorum');
         ALTER TABLE members DROP COLUMN chat;
         DROP INDEX events_honours; ALTER TABLE events DROP COLUMN honours;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let replica = Replica::open(&f.path).unwrap();
    let got = replica.team().unwrap();
    assert_eq!(got, want);
    assert_eq!(
        got.rules.rest_days,
        cairn_core::rules::Rules::default().rest_days
    );
    assert_eq!(got.challenges.len(), 1);
    assert!(replica.verify_index().unwrap().is_empty());
}

#[test]
fn the_days_members_acted_follow_every_write_and_a_replica_of_schema_five_gains_them() {
    let mut f = Fixture::new();
    let a = f.log("ana", "Paired on a review");
    f.log("ana", "Explained the why");
    let b = f.log("ben", "Fixed the flaky test");
    let days = |r: &Replica| {
        let mut d: Vec<(String, String)> = r
            .activity()
            .unwrap()
            .into_iter()
            .map(|(m, d)| (m.to_string(), d.to_string()))
            .collect();
        d.sort();
        d
    };
    let both = vec![
        ("ana".to_owned(), "2026-11-18".to_owned()),
        ("ben".to_owned(), "2026-11-18".to_owned()),
    ];
    assert_eq!(days(&f.replica), both);
    // Ben's only act taken back: his day goes; one of Ana's two: hers stays.
    f.replica.retract_event("ben", &b, T0 + 60_000).unwrap();
    f.replica.retract_event("ana", &a, T0 + 60_000).unwrap();
    assert_eq!(days(&f.replica), both[..1]);
    assert!(f.replica.verify_index().unwrap().is_empty());

    // A replica an older cairn left at schema 5: the days are counted when it opens.
    let (id, stamp) = f.stamp();
    drop(f.replica);
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER member_days_insert; DROP TRIGGER member_days_delete;
         DROP TRIGGER member_days_update; DROP TABLE member_days; DROP TABLE member_weeks;
         ALTER TABLE members DROP COLUMN placeholder; ALTER TABLE members DROP COLUMN arrived_ms;
         DROP TABLE withdrawals; ALTER TABLE withdrawn DROP COLUMN change;
         ALTER TABLE members DROP COLUMN chat;
         DROP INDEX events_honours; ALTER TABLE events DROP COLUMN honours;
         PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(conn);
    let mut replica = Replica::open(&f.path).unwrap();
    assert_eq!(days(&replica), both[..1]);
    assert!(replica.verify_index().unwrap().is_empty());
    // And the triggers came with them: a new act of Ben's counts again.
    replica
        .add_event(
            "ben",
            &id,
            &stamp,
            &NewEvent::action("Back at it", None, None),
        )
        .unwrap();
    assert_eq!(days(&replica), both);

    // A count out of step is what `cairn doctor` reports.
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute("UPDATE member_days SET acts = acts + 1", [])
        .unwrap();
    let problems = replica.verify_index().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("days members acted")),
        "{problems:?}"
    );
    assert!(
        !problems.iter().any(|p| p.contains("weeks members acted")),
        "{problems:?}"
    );
    conn.execute("UPDATE member_days SET acts = acts - 1", [])
        .unwrap();
    conn.execute("UPDATE member_weeks SET week = '2026-11-09'", [])
        .unwrap();
    let problems = replica.verify_index().unwrap();
    assert_eq!(
        problems,
        ["4 of the weeks members acted are out of step with their days"]
    );
    // A rebuild of the index counts them again.
    replica.rebuild_index().unwrap();
    assert!(replica.verify_index().unwrap().is_empty());
    assert_eq!(days(&replica), both);
}

#[test]
fn streaks_read_the_days_by_week_since_a_date_and_of_one_member_with_those_merged_into_them() {
    let mut f = Fixture::new();
    f.replica
        .change_team("ana", |doc, state| {
            team::add_member(doc, state, "cy", "Cy", None, T0)
        })
        .unwrap();
    let mut log_on = |who: &str, date: &str| {
        let (id, mut stamp) = f.stamp();
        stamp.date = date.to_owned();
        f.replica
            .add_event(
                who,
                &id,
                &stamp,
                &NewEvent::action("A small thing", None, None),
            )
            .unwrap();
    };
    // 2026-11-09 and 2026-11-16 are Mondays (a date may be up to 9 days before its instant).
    log_on("ana", "2026-11-18");
    log_on("ana", "2026-11-19");
    log_on("cy", "2026-11-17");
    log_on("ben", "2026-11-12");
    let pairs = |v: Vec<(std::rc::Rc<str>, cairn_core::time::Date)>| {
        v.into_iter()
            .map(|(m, d)| (m.to_string(), d.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let want = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(m, d)| ((*m).to_owned(), (*d).to_owned()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let weeks = f.replica.activity_by_week().unwrap();
    assert_eq!(weeks.len(), 3, "{weeks:?}");
    assert_eq!(
        pairs(weeks),
        want(&[
            ("ana", "2026-11-16"),
            ("ben", "2026-11-09"),
            ("cy", "2026-11-16")
        ])
    );
    let monday: cairn_core::time::Date = "2026-11-16".parse().unwrap();
    assert_eq!(
        pairs(f.replica.activity_since(monday).unwrap()),
        want(&[
            ("ana", "2026-11-18"),
            ("ana", "2026-11-19"),
            ("cy", "2026-11-17")
        ])
    );
    let days = |r: &Replica, who: &str| {
        r.active_days(who)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(days(&f.replica, "ana"), ["2026-11-18", "2026-11-19"]);
    // Cy was a placeholder for Ana: her days are Ana's now, everywhere.
    f.replica
        .change_team("ana", |doc, state| {
            team::merge_member(doc, state, "cy", "ana")
        })
        .unwrap();
    assert_eq!(
        days(&f.replica, "ana"),
        ["2026-11-17", "2026-11-18", "2026-11-19"]
    );
    assert!(days(&f.replica, "cy").is_empty());
    assert_eq!(
        pairs(f.replica.activity_by_week().unwrap()),
        want(&[("ana", "2026-11-16"), ("ben", "2026-11-09")])
    );
    assert!(f.replica.verify_index().unwrap().is_empty());
}

#[test]
fn a_replica_left_at_schema_six_in_the_middle_of_a_catch_up_in_bulk_opens_whole() {
    let mut f = Fixture::new();
    f.log("ana", "Paired on a review");
    f.log("ben", "Fixed the flaky test");
    let want = f.replica.activity().unwrap().len();
    let (id, stamp) = f.stamp();
    drop(f.replica);
    // As cairn at schema 6 left it when a catch-up in bulk was cut between pages: the days not
    // kept, an index and the triggers lifted, the statements that put them back in `meta`.
    let schema_six_back = "DELETE FROM member_days; INSERT INTO member_days (author, date, acts)
        SELECT author, date, count(*) AS acts FROM events
        WHERE kind IN ('action', 'kudos') AND retracted = 0 GROUP BY author, date;
    CREATE INDEX events_author ON events (author, id);
    CREATE TRIGGER member_days_insert AFTER INSERT ON events
    WHEN NEW.kind IN ('action', 'kudos') AND NEW.retracted = 0
    BEGIN
        INSERT INTO member_days (author, date, acts) VALUES (NEW.author, NEW.date, 1)
        ON CONFLICT (author, date) DO UPDATE SET acts = acts + 1;
    END;
    CREATE TRIGGER member_days_delete AFTER DELETE ON events
    WHEN OLD.kind IN ('action', 'kudos') AND OLD.retracted = 0
    BEGIN
        UPDATE member_days SET acts = acts - 1 WHERE author = OLD.author AND date = OLD.date;
        DELETE FROM member_days WHERE author = OLD.author AND date = OLD.date AND acts <= 0;
    END;
    CREATE TRIGGER member_days_update
    AFTER UPDATE OF author, date, kind, retracted ON events
    BEGIN
        UPDATE member_days SET acts = acts - 1
        WHERE author = OLD.author AND date = OLD.date
          AND OLD.kind IN ('action', 'kudos') AND OLD.retracted = 0;
        DELETE FROM member_days WHERE author = OLD.author AND date = OLD.date AND acts <= 0;
        INSERT INTO member_days (author, date, acts)
        SELECT NEW.author, NEW.date, 1 WHERE NEW.kind IN ('action', 'kudos') AND NEW.retracted = 0
        ON CONFLICT (author, date) DO UPDATE SET acts = acts + 1;
    END";
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER member_days_insert; DROP TRIGGER member_days_delete;
         DROP TRIGGER member_days_update; DROP TRIGGER member_weeks_insert;
         DROP TRIGGER member_weeks_delete; DROP TABLE member_weeks; DROP INDEX member_days_week;
         ALTER TABLE member_days DROP COLUMN week; DELETE FROM member_days;
         DROP INDEX events_author; ALTER TABLE members DROP COLUMN placeholder;
         ALTER TABLE members DROP COLUMN arrived_ms; DROP TABLE withdrawals; ALTER TABLE withdrawn DROP COLUMN change;
         ALTER TABLE members DROP COLUMN chat;
         DROP INDEX events_honours; ALTER TABLE events DROP COLUMN honours;
         PRAGMA user_version = 6;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('bulk_indexes', ?1)",
        [schema_six_back],
    )
    .unwrap();
    drop(conn);
    let mut replica = Replica::open(&f.path).unwrap();
    assert!(replica.verify_index().unwrap().is_empty());
    assert_eq!(replica.activity().unwrap().len(), want);
    assert_eq!(replica.activity_by_week().unwrap().len(), want);
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    let back: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN
                 ('events_author', 'member_days_insert', 'member_weeks_insert')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(back, 3);
    // The triggers keep the days and the weeks from here on.
    replica
        .add_event("ana", &id, &stamp, &NewEvent::action("Again", None, None))
        .unwrap();
    assert!(replica.verify_index().unwrap().is_empty());
}

#[test]
fn a_replica_left_at_schema_seven_learns_which_members_are_placeholders() {
    let mut f = Fixture::new();
    for (id, name) in [("cy", "Cy"), ("di", "Di")] {
        f.replica
            .change_team("ana", |doc, state| {
                team::add_placeholder(doc, state, id, name, None, T0)
            })
            .unwrap();
    }
    f.replica
        .change_team("ana", |doc, state| {
            team::arrive(doc, state, "di", T0 + 1_000)
        })
        .unwrap();
    let want = f.replica.team().unwrap();
    assert_eq!(want.counted(&[]), ["ana", "ben", "di"]);
    drop(f.replica);
    // As an older cairn left it: no place in the index for what its team document (synced from
    // a newer cairn) says of placeholders.
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute_batch(
        "ALTER TABLE members DROP COLUMN placeholder; ALTER TABLE members DROP COLUMN arrived_ms;
         DROP TABLE withdrawals; ALTER TABLE withdrawn DROP COLUMN change;
         ALTER TABLE members DROP COLUMN chat;
         DROP INDEX events_honours; ALTER TABLE events DROP COLUMN honours;
         PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(conn);
    let replica = Replica::open(&f.path).unwrap();
    assert!(replica.verify_index().unwrap().is_empty());
    let team = replica.team().unwrap();
    assert_eq!(team, want);
    let cy = team.member("cy").unwrap();
    assert!(cy.placeholder && cy.arrived_ms.is_none());
    assert_eq!(team.member("di").unwrap().arrived_ms, Some(T0 + 1_000));
    assert!(!team.member("ben").unwrap().placeholder);
}

#[test]
fn a_replica_left_at_schema_ten_learns_who_may_be_named_in_chat() {
    let mut f = Fixture::new();
    f.replica
        .change_team("ben", |doc, state| {
            team::set_named_in_chat(doc, state, "ben", false)
        })
        .unwrap();
    let want = f.replica.team().unwrap();
    assert!(!want.named_in_chat("ben"));
    assert!(want.named_in_chat("ana"));
    drop(f.replica);
    // As an older cairn left it: no place in the index for the setting its team document
    // (synced from a newer cairn) holds.
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute_batch(
        "ALTER TABLE members DROP COLUMN chat; DROP INDEX events_honours;
         ALTER TABLE events DROP COLUMN honours; PRAGMA user_version = 10;",
    )
    .unwrap();
    drop(conn);
    let replica = Replica::open(&f.path).unwrap();
    assert!(replica.verify_index().unwrap().is_empty());
    let team = replica.team().unwrap();
    assert_eq!(team, want);
    assert!(!team.named_in_chat("ben"));
    assert_eq!(team.member("ana").unwrap().chat, None);
}

#[test]
fn acts_name_the_non_negotiable_they_honour_and_a_replica_of_schema_eleven_learns_them() {
    let mut f = Fixture::new();
    let honouring =
        |text: &str, id: &str| NewEvent::action(text, None, None).honouring(Some(id.to_owned()));
    let (a, stamp) = f.stamp();
    f.replica
        .add_event("ana", &a, &stamp, &honouring("Greeted Cy", "nn0greet"))
        .unwrap();
    let (b, stamp) = f.stamp();
    let kudos = NewEvent::kudos(vec!["ana".into()], "Showed Cy around", None)
        .honouring(Some("nn0greet".into()));
    f.replica.add_event("ben", &b, &stamp, &kudos).unwrap();
    let (c, stamp) = f.stamp();
    f.replica
        .add_event("ben", &c, &stamp, &honouring("Said why", "nn1why"))
        .unwrap();
    let (gone, stamp) = f.stamp();
    f.replica
        .add_event("ana", &gone, &stamp, &honouring("Taken back", "nn1why"))
        .unwrap();
    f.log("ana", "Honours nothing");
    f.replica.retract_event("ana", &gone, T0 + 60_000).unwrap();
    let day: cairn_core::time::Date = "2026-11-18".parse().unwrap();
    let want = vec![
        (day, "nn0greet".to_owned()),
        (day, "nn0greet".to_owned()),
        (day, "nn1why".to_owned()),
    ];
    assert_eq!(f.replica.honoured().unwrap(), want);
    // The feed shows it.
    let feed = f.replica.feed(&FeedQuery::default()).unwrap();
    let of = |id: &EventId| feed.iter().find(|i| &i.event.id == id).unwrap();
    assert_eq!(of(&b).event.honours.as_deref(), Some("nn0greet"));
    assert_eq!(feed[0].event.honours, None);
    // A rebuild of the index finds the same.
    f.replica.rebuild_index().unwrap();
    assert_eq!(f.replica.honoured().unwrap(), want);
    assert!(f.replica.verify_index().unwrap().is_empty());
    drop(f.replica);
    // A replica an older cairn left at schema 11, which took these acts in (from a newer
    // cairn's sync) without the non-negotiable: it learns them when it opens.
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute_batch(
        "DROP INDEX events_honours; ALTER TABLE events DROP COLUMN honours;
         PRAGMA user_version = 11;",
    )
    .unwrap();
    drop(conn);
    let replica = Replica::open(&f.path).unwrap();
    assert_eq!(replica.honoured().unwrap(), want);
    assert!(replica.verify_index().unwrap().is_empty());
    let feed = replica.feed(&FeedQuery::default()).unwrap();
    let c = feed.iter().find(|i| i.event.id == c).unwrap();
    assert_eq!(c.event.honours.as_deref(), Some("nn1why"));
}

#[test]
fn a_replica_of_schema_eight_no_longer_takes_a_retraction_for_an_edit() {
    let mut f = Fixture::new();
    let kept = f.log("ana", "stays");
    let gone = f.log("ana", "goes");
    f.replica.retract_event("ana", &gone, T0 + 60_000).unwrap();
    drop(f.replica);
    // As an older cairn indexed it: the retraction's time as an edit's.
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.execute_batch(&format!(
        "UPDATE events SET edited_ms = {} WHERE retracted = 1; DROP TABLE withdrawals;
         ALTER TABLE withdrawn DROP COLUMN change; ALTER TABLE members DROP COLUMN chat;
         DROP INDEX events_honours; ALTER TABLE events DROP COLUMN honours;
         PRAGMA user_version = 8;",
        T0 + 60_000
    ))
    .unwrap();
    let edited: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE edited_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(edited, 1);
    drop(conn);
    let replica = Replica::open(&f.path).unwrap();
    assert!(replica.verify_index().unwrap().is_empty());
    let mut all = Vec::new();
    replica
        .for_each_event(|e| {
            all.push((e.id.clone(), e.retracted, e.edited_ms));
            Ok(())
        })
        .unwrap();
    all.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    assert_eq!(all, [(kept, false, None), (gone, true, None)]);
}

#[cfg(unix)]
#[test]
fn a_link_where_a_file_of_the_replica_goes_is_refused_and_left_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let Fixture {
        _dir,
        path,
        replica,
        ..
    } = f;
    drop(replica);
    let elsewhere = tempfile::tempdir().unwrap();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let target = elsewhere.path().join(format!("target{suffix}"));
        if suffix.is_empty() {
            std::fs::rename(&file, &target).unwrap();
        } else {
            let _ = std::fs::remove_file(&file);
            std::fs::write(&target, "precious").unwrap();
        }
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&target, &file).unwrap();
        let bytes = std::fs::read(&target).unwrap();
        for opened in [
            Replica::open(&path).map(drop),
            Replica::peek(&path).map(drop),
        ] {
            assert!(
                matches!(&opened, Err(Error::NotAFile { path: p, what: "a symbolic link" }) if *p == file),
                "{suffix}: {opened:?}"
            );
        }
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{suffix}");
        assert_eq!(std::fs::read(&target).unwrap(), bytes, "{suffix}");
        std::fs::remove_file(&file).unwrap();
        if suffix.is_empty() {
            std::fs::rename(&target, &file).unwrap();
        }
    }
    // Back in place, as plain files, it opens, made private again.
    Replica::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
