//! What a hostile (or broken) server sends cannot hurt a replica: snapshots are inspected with
//! bounded work before anything loads them, a page of what cannot be used is refused whole past
//! a cap, withdrawal notices never take this device's unsent work, the team's founding or a
//! membership, and a replica that took a bomb before all this is repaired.

use std::time::{Duration, Instant};

use automerge::Change;
use cairn_core::feed::FeedQuery;
use cairn_core::ids::{EventId, TEAM_DOC, journal_doc, month_of};
use cairn_core::snapshot::{compressed_bomb, op_bomb};
use cairn_core::{NewEvent, Stamp, team};
use cairn_store::{Error, Incoming, IncomingDoc, MAX_UNUSABLE, NewTeam, Remote, Replica};

const T0: i64 = 1_795_000_000_000;

fn remote() -> Remote {
    Remote {
        url: "http://127.0.0.1:1".into(),
        device_id: "d1".into(),
        token: "secret".into(),
    }
}

fn founder(dir: &std::path::Path) -> Replica {
    let new = NewTeam {
        team_id: "team1".into(),
        team_name: "Otters".into(),
        tz: "UTC".into(),
        member_id: "ana".into(),
        member_name: "Ana".into(),
        handle: "ana".into(),
        at_ms: T0,
    };
    Replica::create(&dir.join("a.sqlite3"), &new).unwrap()
}

fn joined(dir: &std::path::Path, name: &str) -> Replica {
    Replica::create_joined(
        &dir.join(format!("{name}.sqlite3")),
        "team1",
        name,
        &remote(),
    )
    .unwrap()
}

fn log(r: &mut Replica, who: &str, n: i64, text: &str) {
    let at = T0 + n * 60_000;
    let b = n.to_be_bytes();
    let id = EventId::new(at, [b[3], b[4], b[5], b[6], b[7]]);
    let stamp = Stamp {
        at_ms: at,
        tz: "UTC".into(),
        date: "2026-11-18".into(),
        late: false,
    };
    r.add_event(who, &id, &stamp, &NewEvent::action(text, None, None))
        .unwrap();
}

fn texts(r: &Replica) -> Vec<String> {
    let mut t: Vec<String> = r
        .feed(&FeedQuery::default())
        .unwrap()
        .into_iter()
        .filter(|i| i.event.kind != cairn_core::Kind::Team)
        .map(|i| i.event.text)
        .collect();
    t.sort();
    t
}

/// The outbox as a page of the log.
fn pending(r: &Replica) -> Vec<Incoming> {
    r.outbox(10_000, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|o| Incoming {
            doc: o.doc,
            change: o.change,
        })
        .collect()
}

/// The server takes everything in the outbox: it leaves; returns it as a page of the log.
fn send(r: &mut Replica) -> Vec<Incoming> {
    let out = r.outbox(10_000, usize::MAX).unwrap();
    let page = pending(r);
    if let Some(last) = out.last() {
        let cursor = r.cursor().unwrap() + out.len() as u64;
        r.apply_exchange(Some(last.seq), &[], cursor, T0).unwrap();
    }
    page
}

fn hash(bytes: &[u8]) -> Vec<u8> {
    Change::from_bytes(bytes.to_vec())
        .unwrap()
        .hash()
        .0
        .to_vec()
}

/// The journal `who` logs into at `T0`.
fn journal(who: &str) -> String {
    journal_doc(who, &month_of(T0))
}

fn doc(id: &str, snapshot: Vec<u8>) -> IncomingDoc {
    IncomingDoc {
        doc: id.to_owned(),
        snapshot,
        changes: Vec::new(),
    }
}

#[track_caller]
fn quick(started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn snapshot_bombs_are_set_aside_unloaded_and_the_rest_of_the_page_lands() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "one");
    let page = send(&mut a);
    let mut b = joined(dir.path(), "bo");
    b.apply_exchange(None, &page, 2, T0).unwrap();
    // A page of whole documents: one honest, one claiming 2^23 operations in 142 bytes (before,
    // 5 s and 600 MB to find its heads do not match), one a compressed chunk of 260 KB that
    // inflates to 256 MiB (before, 800 MB).
    let started = Instant::now();
    let docs = vec![
        doc(&journal("ana"), Vec::new()),
        doc("j/bomb/2026-11", op_bomb(23)),
        doc("j/zip/2026-11", compressed_bomb(256 << 20)),
    ];
    let got = b.apply_docs(None, &docs, None, 9, T0).unwrap();
    quick(started);
    assert_eq!(got.set_aside, 2, "{got:?}");
    assert_eq!(b.cursor().unwrap(), 9);
    let aside = b.set_aside(10).unwrap();
    assert!(
        aside.iter().any(|a| a.reason.contains("operations")),
        "{aside:?}"
    );
    assert!(
        aside.iter().any(|a| a.reason.contains("compressed")),
        "{aside:?}"
    );
    assert_eq!(texts(&b), ["one"]);
    assert!(b.verify_index().unwrap().is_empty());
}

#[test]
fn a_snapshot_merged_into_a_document_held_here_is_inspected_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "one");
    // Before, a run of 2^21 operations merged into the member's own journal took seconds and
    // hundreds of megabytes, and was kept: every later command paid it again.
    let started = Instant::now();
    let docs = vec![doc(&journal("ana"), op_bomb(21))];
    let got = a.apply_docs(None, &docs, None, 3, T0).unwrap();
    quick(started);
    assert_eq!(got.set_aside, 1);
    log(&mut a, "ana", 2, "two");
    assert_eq!(texts(&a), ["one", "two"]);
    assert!(a.verify_index().unwrap().is_empty());
}

#[test]
fn a_page_of_more_than_a_replica_can_use_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "one");
    let page = send(&mut a);
    let mut b = joined(dir.path(), "bo");
    b.apply_exchange(None, &page, 2, T0).unwrap();
    let junk = |n: usize| -> Vec<Incoming> {
        (0..n)
            .map(|i| Incoming {
                doc: TEAM_DOC.into(),
                change: format!("a junk change, number {i}").into_bytes(),
            })
            .collect()
    };
    // Before, a million junk changes grew the replica by 188 MB in one page.
    let err = b.apply_exchange(None, &junk(MAX_UNUSABLE + 1), 9, T0);
    assert!(
        matches!(err, Err(Error::Unusable { changes, .. }) if changes == MAX_UNUSABLE + 1),
        "{err:?}"
    );
    assert_eq!(b.cursor().unwrap(), 2, "nothing of the page was kept");
    assert_eq!(b.set_aside_count().unwrap().0, 0);
    // Up to the cap, a page's junk is set aside and the rest goes on.
    let got = b.apply_exchange(None, &junk(10), 9, T0).unwrap();
    assert_eq!(got.set_aside, 10);
    assert_eq!(b.set_aside_count().unwrap().0, 10);
    // Listed a few at a time, or one by one, never all at once.
    assert_eq!(b.set_aside(3).unwrap().len(), 3);
    let mut n = 0;
    b.each_set_aside(|_| {
        n += 1;
        Ok::<_, Error>(())
    })
    .unwrap();
    assert_eq!(n, 10);
}

#[test]
fn a_notice_never_takes_a_change_the_server_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    send(&mut a);
    log(&mut a, "ana", 1, "not sent yet");
    let mine = pending(&a).pop().unwrap();
    // Before, a forged notice deleted it from the document and the outbox: lost work.
    let w = a
        .withdraw(&mine.doc, &[hash(&mine.change)], None, T0)
        .unwrap();
    assert_eq!((w.refused, w.dropped), (1, 0), "{w:?}");
    assert_eq!(texts(&a), ["not sent yet"]);
    assert_eq!(pending(&a), std::slice::from_ref(&mine));
    // A notice in the exchange that acknowledged it may take it: the server held it.
    let seq = a.outbox(1, usize::MAX).unwrap()[0].seq;
    let w = a
        .withdraw(&mine.doc, &[hash(&mine.change)], Some(seq), T0)
        .unwrap();
    assert_eq!((w.refused, w.dropped), (0, 1), "{w:?}");
    assert!(texts(&a).is_empty());
}

#[test]
fn unsent_work_made_on_a_withdrawn_change_is_written_again_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "Buy cheap watches");
    let spam = send(&mut a).pop().unwrap();
    // Offline, on top of it: two events, then a third the server acknowledged (and, made on a
    // withdrawn change, dropped at once) in the very exchange that brings the notice.
    log(&mut a, "ana", 2, "One");
    log(&mut a, "ana", 3, "Two");
    log(&mut a, "ana", 4, "Three");
    let out = a.outbox(10, usize::MAX).unwrap();
    let old_actor = Change::from_bytes(out[0].change.clone())
        .unwrap()
        .actor_id()
        .clone();
    let w = a
        .withdraw(&spam.doc, &[hash(&spam.change)], Some(out[2].seq), T0)
        .unwrap();
    assert_eq!((w.dropped, w.redone, w.refused), (4, 3, 0), "{w:?}");
    // Before, all three went with the spam, "acknowledged" or not.
    assert_eq!(texts(&a), ["One", "Three", "Two"]);
    assert_eq!(w.what.len(), 1, "{:?}", w.what);
    assert!(w.what[0].contains("Buy cheap watches"), "{:?}", w.what);
    // One new change carries them, by a fresh actor, made on the document without the spam.
    let now = pending(&a);
    assert_eq!(now.len(), 1);
    let redone = Change::from_bytes(now[0].change.clone()).unwrap();
    assert_ne!(redone.actor_id(), &old_actor);
    assert!(
        !redone
            .deps()
            .contains(&Change::from_bytes(spam.change.clone()).unwrap().hash())
    );
    // A teammate who never had the spam takes it.
    let mut b = joined(dir.path(), "bo");
    b.apply_exchange(None, &log_of(&a), 9, T0).unwrap();
    assert_eq!(texts(&b), ["One", "Three", "Two"]);
    assert_eq!(b.waiting_changes().unwrap(), 0);
    assert!(a.verify_index().unwrap().is_empty());
}

/// Every change of every document `r` holds, as the server's log would hold them.
fn log_of(r: &Replica) -> Vec<Incoming> {
    let conn = rusqlite::Connection::open(r.path()).unwrap();
    let ids: Vec<String> = {
        let mut st = conn.prepare("SELECT id FROM docs ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut out = Vec::new();
    for id in ids {
        let mut doc = automerge::Automerge::new();
        let snapshot: Vec<u8> = conn
            .query_row("SELECT snapshot FROM docs WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .unwrap();
        doc.load_incremental(&snapshot).unwrap();
        let mut st = conn
            .prepare("SELECT data FROM chunks WHERE doc = ?1 ORDER BY seq")
            .unwrap();
        for chunk in st.query_map([&id], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
            doc.load_incremental(&chunk.unwrap()).unwrap();
        }
        for c in doc.get_changes(&[]) {
            out.push(Incoming {
                doc: id.clone(),
                change: c.raw_bytes().to_vec(),
            });
        }
    }
    out
}

#[test]
fn a_notice_never_takes_the_teams_founding_or_a_membership() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    let founding = send(&mut a);
    a.change_team("ana", |doc, state| {
        team::add_member(doc, state, "bo", "Bo", Some("bo"), T0)
    })
    .unwrap();
    let bo = send(&mut a);
    let want = a.team().unwrap();
    // Before, a notice naming the team document's first change emptied the team ("unknown
    // member" from then on, and the hashes refused for ever).
    let first = founding.iter().find(|c| c.doc == TEAM_DOC).unwrap();
    let w = a
        .withdraw(TEAM_DOC, &[hash(&first.change)], None, T0)
        .unwrap();
    let held = w.held.clone().expect("held back");
    assert!(held.contains("the team's founding"), "{held}");
    assert_eq!(w.dropped, 0);
    assert_eq!(a.team().unwrap(), want);
    let w = a
        .withdraw(TEAM_DOC, &[hash(&bo[0].change)], None, T0)
        .unwrap();
    assert_eq!(w.held.as_deref(), Some("@bo's membership"));
    assert_eq!(a.team().unwrap(), want);
    log(&mut a, "ana", 5, "still here");
    // Both kept for review, newest first; nothing is refused when an honest server sends it.
    let (list, n) = a.withdrawals(10).unwrap();
    assert_eq!(n, 2);
    assert_eq!(list[0].held.as_deref(), Some("@bo's membership"));
    let mut c = joined(dir.path(), "cy");
    let mut all = founding.clone();
    all.extend(bo);
    c.apply_exchange(None, &all, 3, T0).unwrap();
    assert_eq!(c.team().unwrap(), want);
}

#[test]
fn what_a_notice_removed_is_kept_for_review_and_refused_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "Buy cheap watches");
    log(&mut a, "ana", 2, "Paired on the flaky test");
    let page = send(&mut a);
    let mut b = joined(dir.path(), "bo");
    b.apply_exchange(None, &page, 9, T0).unwrap();
    let spam = page
        .iter()
        .find(|c| c.doc == journal("ana"))
        .unwrap()
        .clone();
    let w = b
        .withdraw(&spam.doc, &[hash(&spam.change)], None, T0)
        .unwrap();
    // The second event was made on the first: both go, and say so.
    assert_eq!(w.dropped, 2, "{w:?}");
    assert!(
        w.what
            .iter()
            .any(|l| l.contains("by @ana") && l.contains("Buy cheap watches")),
        "{:?}",
        w.what
    );
    assert!(texts(&b).is_empty());
    let (list, _) = b.withdrawals(1).unwrap();
    assert_eq!(list[0].what, w.what);
    // The bytes are kept beside the hashes.
    let conn = rusqlite::Connection::open(b.path()).unwrap();
    let kept: Vec<u8> = conn
        .query_row(
            "SELECT change FROM withdrawn WHERE hash = ?1",
            [hash(&spam.change)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, spam.change);
    // Sent again, it is refused.
    let got = b.apply_exchange(None, &page, 12, T0).unwrap();
    assert_eq!(got.changes, 0);
    assert!(texts(&b).is_empty());
}

#[test]
fn a_replica_that_took_a_bomb_before_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    a.change_team("ana", |doc, state| {
        team::add_member(doc, state, "bo", "Bo", Some("bo"), T0)
    })
    .unwrap();
    log(&mut a, "ana", 1, "one");
    send(&mut a);
    let mut b = joined(dir.path(), "bo");
    b.apply_exchange(None, &log_of(&a), 4, T0).unwrap();
    log(&mut b, "bo", 2, "bo's own, unsent");
    // As an older cairn kept it: a snapshot claiming 2^23 operations merged into Bo's journal.
    let conn = rusqlite::Connection::open(b.path()).unwrap();
    conn.execute(
        "INSERT INTO chunks (doc, seq, data) VALUES (?1, 99, ?2)",
        rusqlite::params![journal("bo"), op_bomb(23)],
    )
    .unwrap();
    conn.execute(
        "UPDATE docs SET chunks = chunks + 1 WHERE id = ?1",
        [journal("bo")],
    )
    .unwrap();
    drop(conn);
    // Every command touching it is refused at once, never loading it; the check says so.
    let started = Instant::now();
    let problems = b.verify_index().unwrap();
    quick(started);
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&journal("bo")) && p.contains("cannot be loaded")),
        "{problems:?}"
    );
    let r = b.repair(T0).unwrap();
    assert_eq!(r.docs.len(), 1, "{r:?}");
    assert_eq!(r.set_aside, 1);
    assert!(r.refetch);
    assert_eq!(b.cursor().unwrap(), 0, "the next sync brings it all again");
    assert!(b.verify_index().unwrap().is_empty());
    assert_eq!(texts(&b), ["bo's own, unsent", "one"]);
    assert_eq!(pending(&b).len(), 1, "Bo's event still goes");
    // A second repair finds nothing.
    assert!(b.repair(T0).unwrap().docs.is_empty());
}

#[test]
fn a_team_an_older_cairn_let_a_notice_empty_is_brought_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "one");
    let page = send(&mut a);
    let mut b = joined(dir.path(), "bo");
    b.apply_exchange(None, &page, 3, T0).unwrap();
    let want = b.team().unwrap();
    // As an older cairn left it after a notice naming the team document's first change: the
    // team document empty, the hash refused for ever.
    let founding = page.iter().find(|c| c.doc == TEAM_DOC).unwrap();
    {
        let conn = rusqlite::Connection::open(b.path()).unwrap();
        conn.execute(
            "INSERT INTO withdrawn (hash, doc, at_ms) VALUES (?1, 'team', 0)",
            [hash(&founding.change)],
        )
        .unwrap();
        conn.execute(
            "UPDATE docs SET snapshot = ?1, chunks = 0 WHERE id = 'team'",
            [automerge::Automerge::new().save()],
        )
        .unwrap();
        conn.execute("DELETE FROM chunks WHERE doc = 'team'", [])
            .unwrap();
    }
    b.rebuild_index().unwrap();
    assert!(b.team().unwrap().name.is_empty());
    // Said, where before doctor found all well; and mended.
    let problems = b.verify_index().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("names no team")),
        "{problems:?}"
    );
    let r = b.repair(T0).unwrap();
    assert_eq!(r.forgotten, 1, "{r:?}");
    assert!(r.refetch);
    assert_eq!(b.cursor().unwrap(), 0);
    // The honest server's log, from the start, brings the team back.
    b.apply_exchange(None, &page, 3, T0).unwrap();
    assert_eq!(b.team().unwrap(), want);
    assert!(b.verify_index().unwrap().is_empty());
}
