//! The replica's side of sync, between real SQLite files: what one replica's outbox carries,
//! another applies, in any order.

use cairn_core::feed::FeedQuery;
use cairn_core::ids::EventId;
use cairn_core::{NewEvent, Stamp};
use cairn_store::{Error, Incoming, NewTeam, Remote, Replica};

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
    r.feed(&FeedQuery::default())
        .unwrap()
        .into_iter()
        .map(|i| i.event.text)
        .collect()
}

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

#[test]
fn a_joined_replica_catches_up_in_any_order_and_waits_for_missing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    for n in 1..=6 {
        log(&mut a, "ana", n * 10, &format!("step {n}"));
    }
    let all = pending(&a);
    assert!(all.len() >= 7, "team doc plus six events: {}", all.len());

    let mut b =
        Replica::create_joined(&dir.path().join("b.sqlite3"), "team1", "ben", &remote()).unwrap();
    assert_eq!(b.remote().unwrap(), Some(remote()));
    assert_eq!(b.cursor().unwrap(), 0);
    assert!(texts(&b).is_empty());

    // The newest changes first: they wait beside their documents for what they depend on.
    let (old, new) = all.split_at(all.len() / 2);
    let got = b.apply_exchange(None, new, 5, T0).unwrap();
    assert_eq!((got.changes, got.waiting), (0, new.len()));
    assert_eq!(b.waiting_changes().unwrap(), new.len());
    // Reopening keeps the waiting changes.
    drop(b);
    let mut b = Replica::open(&dir.path().join("b.sqlite3")).unwrap();
    let got = b.apply_exchange(None, old, 9, T0).unwrap();
    assert_eq!((got.changes, got.waiting), (all.len(), 0));
    assert_eq!(b.waiting_changes().unwrap(), 0);
    assert_eq!(texts(&b), texts(&a));
    assert_eq!(b.team().unwrap(), a.team().unwrap());
    assert_eq!(b.cursor().unwrap(), 9);
    assert!(b.verify_index().unwrap().is_empty());

    // The same changes again change nothing.
    let got = b.apply_exchange(None, &all, 12, T0).unwrap();
    assert_eq!((got.changes, got.known), (0, all.len()));
    assert_eq!(texts(&b), texts(&a));
}

#[test]
fn a_founder_who_joined_writes_the_first_team_document_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut a =
        Replica::create_joined(&dir.path().join("a.sqlite3"), "team1", "ana", &remote()).unwrap();
    assert!(a.team().unwrap().name.is_empty());
    assert!(a.found("Guild", "Europe/Paris", "Ana", "ana", T0).unwrap());
    let team = a.team().unwrap();
    assert_eq!(
        (team.name.as_str(), team.tz.as_str()),
        ("Guild", "Europe/Paris")
    );
    assert_eq!(team.member("ana").map(|m| m.handle.as_str()), Some("ana"));
    // It waits in the outbox to go up, and a teammate's replica reads the same team from it.
    let first = pending(&a);
    assert!(!first.is_empty() && first.iter().all(|c| c.doc == "team"));
    let mut b =
        Replica::create_joined(&dir.path().join("b.sqlite3"), "team1", "bo", &remote()).unwrap();
    b.apply_exchange(None, &first, first.len() as u64, T0)
        .unwrap();
    assert_eq!(b.team().unwrap(), a.team().unwrap());
    // A second time writes nothing: the team is there.
    assert!(!a.found("Other", "UTC", "Ana", "ana", T0).unwrap());
    assert_eq!(pending(&a), first);
    assert!(a.verify_index().unwrap().is_empty());
}

#[test]
fn acknowledged_changes_leave_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "one");
    log(&mut a, "ana", 2, "two");
    let out = a.outbox(10, usize::MAX).unwrap();
    assert_eq!(out.len(), 3);
    // A byte budget still sends at least one change.
    assert_eq!(a.outbox(10, 1).unwrap().len(), 1);
    let got = a.apply_exchange(Some(out[1].seq), &[], 2, T0).unwrap();
    assert_eq!(got.acked, 2);
    let left = a.outbox(10, usize::MAX).unwrap();
    assert_eq!(left, out[2..].to_vec());
    assert_eq!(a.outbox_size().unwrap().0, 1);
}

#[test]
fn a_bad_change_is_set_aside_and_the_rest_applies() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "one");
    let good = pending(&a);
    let mut b =
        Replica::create_joined(&dir.path().join("b.sqlite3"), "team1", "ben", &remote()).unwrap();
    let garbage = Incoming {
        doc: "team".into(),
        change: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
    };
    let mut batch = vec![garbage];
    batch.extend(good.iter().cloned());
    let got = b.apply_exchange(None, &batch, 3, T0).unwrap();
    assert_eq!((got.changes, got.set_aside), (good.len(), 1));
    assert_eq!(b.cursor().unwrap(), 3);
    assert_eq!(texts(&b), ["one"]);
    let aside = b.set_aside(usize::MAX).unwrap();
    assert_eq!(aside.len(), 1);
    assert!(aside[0].reason.contains("cut short"), "{aside:?}");
    assert!(b.verify_index().unwrap().is_empty());
}

#[test]
fn a_change_for_no_document_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "one");
    let good = pending(&a);
    let mut b =
        Replica::create_joined(&dir.path().join("b.sqlite3"), "team1", "ben", &remote()).unwrap();
    let bad_doc = Incoming {
        doc: "../etc".into(),
        change: good[0].change.clone(),
    };
    let mut batch = good.clone();
    batch.push(bad_doc);
    let err = b.apply_exchange(None, &batch, 3, T0).unwrap_err();
    assert!(matches!(err, Error::BadChange(_)), "{err:?}");
    assert_eq!(b.cursor().unwrap(), 0);
    assert!(texts(&b).is_empty());
    assert_eq!(b.stats().unwrap().docs, 0);
}

#[test]
fn document_ids_are_checked() {
    use cairn_core::ids::is_doc_id;
    assert!(is_doc_id("team"));
    assert!(is_doc_id("j/0a1b2c3d/2026-11"));
    for bad in [
        "",
        "j/",
        "j//2026-11",
        "j/a/b/2026-11",
        "j/a/2026-1x",
        "teams",
        "j/a/2026_11",
    ] {
        assert!(!is_doc_id(bad), "{bad}");
    }
}

#[test]
fn a_document_waiting_for_changes_is_not_compacted_until_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    for n in 1..=70 {
        log(&mut a, "ana", n, &format!("stone {n}"));
    }
    let all = pending(&a);
    let mut b =
        Replica::create_joined(&dir.path().join("b.sqlite3"), "team1", "ben", &remote()).unwrap();
    // One change per exchange, newest first: each is a chunk, and all but the last wait.
    for (i, change) in all.iter().rev().enumerate() {
        b.apply_exchange(None, std::slice::from_ref(change), i as u64 + 1, T0)
            .unwrap();
    }
    assert_eq!(b.waiting_changes().unwrap(), 0);
    drop(b);
    let b = Replica::open(&dir.path().join("b.sqlite3")).unwrap();
    assert_eq!(texts(&b), texts(&a));
    assert_eq!(texts(&b).len(), 70);
    assert!(b.verify_index().unwrap().is_empty());
    // The journal was compacted once everything had arrived.
    assert!(b.stats().unwrap().chunks < 64, "{:?}", b.stats().unwrap());
}

#[test]
fn one_event_id_in_two_members_journals_is_kept_apart_the_same_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    a.change_team("ana", |doc, state| {
        cairn_core::team::add_member(doc, state, "ben", "Ben", None, T0)
    })
    .unwrap();
    // A faulty peer reuses an id in another journal.
    log(&mut a, "ana", 5, "ana's");
    log(&mut a, "ben", 5, "ben's copy");
    let all = pending(&a);
    let mut orders = vec![all.clone()];
    let mut team_first: Vec<Incoming> = all.iter().filter(|c| c.doc == "team").cloned().collect();
    team_first.extend(all.iter().filter(|c| c.doc != "team").rev().cloned());
    orders.push(team_first);
    let mut feeds = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let path = dir.path().join(format!("r{i}.sqlite3"));
        let mut r = Replica::create_joined(&path, "team1", "cy", &remote()).unwrap();
        for c in order {
            r.apply_exchange(None, std::slice::from_ref(c), 1, T0)
                .unwrap();
        }
        assert!(
            r.verify_index().unwrap().is_empty(),
            "{:?}",
            r.verify_index()
        );
        feeds.push(texts(&r));
    }
    assert_eq!(feeds[0], feeds[1]);
    // Each member's event is theirs: neither replaces the other.
    let mut sorted = feeds[0].clone();
    sorted.sort();
    assert_eq!(sorted, ["ana's", "ben's copy"]);
}

#[test]
fn the_days_members_acted_are_counted_when_many_documents_arrive_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    for (id, name) in [("ben", "Ben"), ("chloe", "Chloé"), ("dan", "Dan")] {
        a.change_team("ana", |doc, state| {
            cairn_core::team::add_member(doc, state, id, name, None, T0)
        })
        .unwrap();
    }
    let day = |r: &Replica| {
        let mut d: Vec<String> = r
            .activity()
            .unwrap()
            .into_iter()
            .map(|(m, d)| format!("{m} {d}"))
            .collect();
        d.sort();
        d
    };
    let mut b =
        Replica::create_joined(&dir.path().join("b.sqlite3"), "team1", "ben", &remote()).unwrap();
    // Two rounds: the second reaches a replica that already holds every journal.
    for round in 0..2 {
        for (i, who) in ["ana", "ben", "chloe", "dan"].iter().enumerate() {
            log(
                &mut a,
                who,
                round * 10 + i as i64 + 1,
                &format!("{who} {round}"),
            );
        }
        let all = pending(&a);
        b.apply_exchange(None, &all, 1 + round as u64, T0).unwrap();
        assert_eq!(day(&b), day(&a), "round {round}");
        assert_eq!(day(&b).len(), 4);
        assert!(b.verify_index().unwrap().is_empty(), "round {round}");
    }
}

#[test]
fn a_change_that_takes_an_event_out_or_gives_it_another_author_takes_its_row_out() {
    use automerge::transaction::Transactable;
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    a.change_team("ana", |doc, state| {
        cairn_core::team::add_member(doc, state, "ben", "Ben", None, T0)
    })
    .unwrap();
    log(&mut a, "ana", 1, "first");
    log(&mut a, "ana", 2, "second");
    log(&mut a, "ana", 3, "third");
    let all = pending(&a);
    let mut r =
        Replica::create_joined(&dir.path().join("r.sqlite3"), "team1", "cy", &remote()).unwrap();
    r.apply_exchange(None, &all, 1, T0).unwrap();
    assert_eq!(texts(&r), ["third", "second", "first"]);
    // A faulty peer deletes Ana's first event from her journal and puts Ben's name on her second.
    let journal = all.iter().find(|c| c.doc.starts_with("j/ana/")).unwrap();
    let mut doc = automerge::Automerge::new();
    for c in all.iter().filter(|c| c.doc == journal.doc) {
        doc.load_incremental(&c.change).unwrap();
    }
    let id = |n: i64| {
        let b = n.to_be_bytes();
        EventId::new(T0 + n * 60_000, [b[3], b[4], b[5], b[6], b[7]])
    };
    let mut tx = doc.transaction();
    tx.delete(automerge::ROOT, id(1).as_str()).unwrap();
    let (_, second) = automerge::ReadDoc::get(&tx, automerge::ROOT, id(2).as_str())
        .unwrap()
        .unwrap();
    tx.put(&second, "author", "ben").unwrap();
    tx.commit();
    let hostile = Incoming {
        doc: journal.doc.clone(),
        change: doc.get_last_local_change().unwrap().raw_bytes().to_vec(),
    };
    let got = r.apply_exchange(None, &[hostile], 2, T0).unwrap();
    assert_eq!(got.changes, 1);
    // Only the rows the change touched changed, and as a rebuild of the index has them.
    assert_eq!(texts(&r), ["third"]);
    assert!(
        r.verify_index().unwrap().is_empty(),
        "{:?}",
        r.verify_index()
    );
    r.rebuild_index().unwrap();
    assert_eq!(texts(&r), ["third"]);
}

/// A copy of replica file `from` at `to`, as a home copied by hand leaves it.
fn copy_replica(r: Replica, to: &std::path::Path) -> (Replica, Replica) {
    let from = r.path().to_owned();
    drop(r);
    std::fs::copy(&from, to).unwrap();
    (Replica::open(&from).unwrap(), Replica::open(to).unwrap())
}

#[test]
fn a_copied_replica_writes_its_unsent_changes_again_under_a_fresh_actor() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    log(&mut a, "ana", 1, "before the copy");
    // The server took everything so far.
    let head = a.outbox_head().unwrap();
    a.apply_exchange(Some(head), &[], 1, T0).unwrap();
    let (mut a, mut copy) = copy_replica(a, &dir.path().join("copy.sqlite3"));

    // Each copy logs into the same journal with the same actor and numbers.
    log(&mut a, "ana", 2, "on the original");
    log(&mut copy, "ana", 3, "on the copy");
    copy.edit_event(
        "ana",
        &EventId::new(T0 + 60_000, [0, 0, 0, 0, 1]),
        &cairn_core::Edit {
            text: Some("before the copy, edited on the copy".into()),
            ..Default::default()
        },
        T0 + 4 * 60_000,
    )
    .unwrap();
    let theirs = pending(&a);
    let ours = copy.outbox(100, usize::MAX).unwrap();
    assert_eq!(ours.len(), 2);
    let refused = automerge::Change::from_bytes(ours[0].change.clone()).unwrap();
    let same_number = automerge::Change::from_bytes(theirs[0].change.clone()).unwrap();
    assert_eq!(
        (refused.actor_id(), refused.seq()),
        (same_number.actor_id(), same_number.seq()),
        "the copies number their changes alike"
    );

    // The server refused the copy's first change: it is written again, with what followed.
    let done = copy
        .rebase(&ours[0].doc, refused.hash().0.as_slice(), T0)
        .unwrap();
    assert_eq!(done.dropped, 2);
    assert!(done.redone);
    let again = copy.outbox(100, usize::MAX).unwrap();
    assert_eq!(again.len(), 1, "one change holds what the two did");
    let fresh = automerge::Change::from_bytes(again[0].change.clone()).unwrap();
    assert_ne!(fresh.actor_id(), refused.actor_id());
    assert_eq!(
        texts(&copy),
        ["on the copy", "before the copy, edited on the copy"]
    );
    // The original's change now applies to the copy, and the copy's new change to the original.
    let applied = copy.apply_exchange(None, &theirs, 2, T0).unwrap();
    assert_eq!((applied.changes, applied.set_aside), (1, 0));
    let ours = pending(&copy);
    let applied = a.apply_exchange(None, &ours, 3, T0).unwrap();
    assert_eq!((applied.changes, applied.set_aside), (1, 0));
    for r in [&a, &copy] {
        assert_eq!(
            texts(r),
            [
                "on the copy",
                "on the original",
                "before the copy, edited on the copy"
            ]
        );
        assert!(r.verify_index().unwrap().is_empty());
    }
    // Later writes use the fresh actor; a change the copy does not hold is never rebased.
    log(&mut copy, "ana", 5, "later on the copy");
    let later = copy.outbox(100, usize::MAX).unwrap();
    let later = automerge::Change::from_bytes(later.last().unwrap().change.clone()).unwrap();
    assert_eq!(later.actor_id(), fresh.actor_id());
    assert!(matches!(
        copy.rebase(&ours[0].doc, &[7u8; 32], T0),
        Err(Error::NotUnsent(_))
    ));
}

#[test]
fn a_replica_that_receives_its_own_actors_changes_writes_under_a_fresh_actor() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = founder(dir.path());
    let head = a.outbox_head().unwrap();
    a.apply_exchange(Some(head), &[], 1, T0).unwrap();
    let (mut a, mut copy) = copy_replica(a, &dir.path().join("copy.sqlite3"));
    log(&mut a, "ana", 1, "on the original");
    let theirs = pending(&a);
    let actor = automerge::Change::from_bytes(theirs[0].change.clone())
        .unwrap()
        .actor_id()
        .clone();
    assert_eq!(copy.copied_ms().unwrap(), None);
    // The copy has written nothing yet: the original's change applies, and gives it away.
    let applied = copy.apply_exchange(None, &theirs, 2, T0 + 5).unwrap();
    assert_eq!(applied.changes, 1);
    assert_eq!(copy.copied_ms().unwrap(), Some(T0 + 5));
    log(&mut copy, "ana", 2, "on the copy");
    let mine = copy.outbox(100, usize::MAX).unwrap();
    let mine = automerge::Change::from_bytes(mine[0].change.clone()).unwrap();
    assert_ne!(
        mine.actor_id(),
        &actor,
        "two copies never number a change alike again"
    );
    assert_eq!(texts(&copy), ["on the copy", "on the original"]);
}
