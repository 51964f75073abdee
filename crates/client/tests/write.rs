//! A member's writes through the writer context, on a real replica file: the late-log window,
//! who a kudos names, reactions taken back, edits and retractions of one's own events only,
//! and writing as another member only while the team lives on this device alone.

use cairn_client::write::{Clock, Error, Writer};
use cairn_core::Edit;
use cairn_store::{Reacted, Replica};
use jiff::tz::TimeZone;

mod common;
use common::{ANA, BEN};

/// A Wednesday, 10:00 UTC (11:00 in Paris).
fn clock() -> Clock {
    Clock::new(
        "2026-11-25T10:00:00Z".parse().unwrap(),
        TimeZone::get("Europe/Paris").unwrap(),
    )
}

/// A team started on this device by Ana a month ago, with Ben added by name.
fn team(dir: &std::path::Path) -> Replica {
    common::team(dir, "Europe/Paris", clock().now_ms() - 86_400_000 * 30)
}

#[test]
fn a_late_log_counts_for_its_day_within_the_window_and_never_beyond() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = team(dir.path());
    let mut w = Writer::new(&mut replica, clock(), None).unwrap();
    assert_eq!(w.me, ANA);
    assert!(!w.wrote().unwrap());

    let (_, now) = w.log("Explained the why", None, None, None).unwrap();
    assert_eq!((now.date.as_str(), now.late), ("2026-11-25", false));
    assert!(w.wrote().unwrap());

    let (id, late) = w
        .log("Checked in on a teammate", None, None, Some("yesterday"))
        .unwrap();
    assert_eq!((late.date.as_str(), late.late), ("2026-11-24", true));
    let event = w.replica.resolve(id.as_str(), ANA).unwrap();
    assert_eq!((event.date.as_str(), event.late), ("2026-11-24", true));

    // The window is the last workday by default: Monday is too far back on a Wednesday.
    let err = w.log("Too late", None, None, Some("monday")).unwrap_err();
    assert!(
        matches!(&err, Error::TooLate { day, earliest }
            if day.to_string() == "2026-11-23" && earliest.to_string() == "2026-11-24"),
        "{err:?}"
    );
    let err = w
        .log("Not yet", None, None, Some("2026-11-26"))
        .unwrap_err();
    assert!(matches!(err, Error::NotYet(_)), "{err:?}");
    let err = w.log("Whenever", None, None, Some("soon")).unwrap_err();
    assert!(matches!(&err, Error::BadDay(t) if t == "soon"), "{err:?}");
}

#[test]
fn a_kudos_names_each_teammate_once_and_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = team(dir.path());
    let mut w = Writer::new(&mut replica, clock(), None).unwrap();

    let id = w
        .kudos(&["@ben,@ben", "ben"], "Calm incident call", None)
        .unwrap();
    let event = w.replica.resolve(id.as_str(), ANA).unwrap();
    assert_eq!(event.to, vec![BEN.to_owned()]);
    assert_eq!(event.author, ANA);

    let err = w.kudos(&[" , "], "Nobody", None).unwrap_err();
    assert!(matches!(err, Error::NoRecipients), "{err:?}");
    let err = w.kudos(&["@ana"], "Myself", None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Store(cairn_store::Error::Core(cairn_core::Error::SelfKudos))
        ),
        "{err:?}"
    );
    let err = w.kudos(&["@zed"], "A stranger", None).unwrap_err();
    assert!(matches!(err, Error::Core(_)), "{err:?}");
}

#[test]
fn reactions_edits_and_retractions_touch_only_ones_own_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = team(dir.path());
    // The team lives here alone: Ana's device may write as Ben.
    let bens = {
        let mut w = Writer::new(&mut replica, clock(), Some("@ben")).unwrap();
        assert_eq!(w.me, BEN);
        w.log("Picked up litter", None, None, None).unwrap().0
    };
    let mut w = Writer::new(&mut replica, clock(), None).unwrap();
    let (target, done) = w.react(bens.as_str(), "🎉").unwrap();
    assert_eq!((target.id.clone(), done), (bens.clone(), Reacted::Added));
    let (_, done) = w.react(bens.as_str(), "🎉").unwrap();
    assert_eq!(done, Reacted::Removed);

    let err = w
        .edit(
            bens.as_str(),
            &Edit {
                text: Some("Not mine to change".into()),
                ..Edit::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Core(_) | Error::Store(_)), "{err:?}");
    let err = w.retract(bens.as_str()).unwrap_err();
    assert!(matches!(err, Error::Core(_) | Error::Store(_)), "{err:?}");

    let mine = w.log("Wrote the runbook", None, None, None).unwrap().0;
    w.edit(
        mine.as_str(),
        &Edit {
            text: Some("Wrote the on-call runbook".into()),
            ..Edit::default()
        },
    )
    .unwrap();
    assert_eq!(
        w.replica.resolve(mine.as_str(), ANA).unwrap().text,
        "Wrote the on-call runbook"
    );
    w.retract(mine.as_str()).unwrap();
    assert!(w.replica.resolve(mine.as_str(), ANA).unwrap().retracted);
    assert!(!w.replica.resolve(bens.as_str(), ANA).unwrap().retracted);
}

#[test]
fn a_member_says_whether_they_are_named_in_chat_and_only_for_themselves_on_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = team(dir.path());
    assert!(replica.team().unwrap().named_in_chat(ANA));
    let mut w = Writer::new(&mut replica, clock(), None).unwrap();
    assert!(w.set_named_in_chat(false).unwrap());
    assert!(
        w.wrote().unwrap(),
        "the setting waits in the outbox for the server"
    );
    assert!(!w.team.named_in_chat(ANA));
    assert!(
        !w.set_named_in_chat(false).unwrap(),
        "no news the second time"
    );
    // Read back from the file, as any later command reads it.
    drop(w);
    let read = Replica::open(&dir.path().join("replica.sqlite3")).unwrap();
    let team = read.team().unwrap();
    assert!(!team.named_in_chat(ANA));
    assert!(team.named_in_chat(BEN), "Ben's setting is his own");
    drop(read);

    // While the team lives on this device alone, its one person sets Ben's too.
    cairn_client::write::own_setting(&replica, &team, Some("@ben")).unwrap();
    let mut w = Writer::new(&mut replica, clock(), Some("@ben")).unwrap();
    assert!(w.set_named_in_chat(false).unwrap());
    assert!(!w.team.named_in_chat(BEN));
    drop(w);

    // On a server, Ana's device is refused Ben's setting before anything is written.
    replica
        .set_remote(&cairn_store::Remote {
            url: "http://127.0.0.1:9".into(),
            device_id: "dev".into(),
            token: "cairn_x".into(),
        })
        .unwrap();
    let team = replica.team().unwrap();
    let err = cairn_client::write::own_setting(&replica, &team, Some("@ben")).unwrap_err();
    assert!(
        matches!(&err, Error::NotYourSetting(h) if h == "ben"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "only @ben says whether they are named in chat: it is their own setting"
    );
    cairn_client::write::own_setting(&replica, &team, Some("@ana")).unwrap();
    cairn_client::write::own_setting(&replica, &team, None).unwrap();
}
