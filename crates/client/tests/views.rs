//! The views every client shows, from a real replica file written through the writer: the
//! digest in words, a member's own numbers, the streaks, the badges.

use cairn_client::views::{self, DigestView, Period};
use cairn_client::write::{Clock, Writer};
use cairn_store::Replica;
use jiff::tz::TimeZone;

mod common;
use common::{ANA, BEN};

fn clock(at: &str) -> Clock {
    Clock::new(at.parse().unwrap(), TimeZone::UTC)
}

/// Ana and Ben's team, with a week of Ana's acts: two micro-actions on Monday and Tuesday, a
/// kudos to Ben on Tuesday, and one of Ben's own on Wednesday.
fn team(dir: &std::path::Path) -> Replica {
    let mut replica = common::team(dir, "UTC", clock("2026-11-01T09:00:00Z").now_ms());
    let pillar = replica.team().unwrap().pillars[0].id.clone();
    Writer::new(&mut replica, clock("2026-11-23T09:00:00Z"), None)
        .unwrap()
        .log("Explained the why", Some(pillar.clone()), None, None)
        .unwrap();
    let mut w = Writer::new(&mut replica, clock("2026-11-24T09:00:00Z"), None).unwrap();
    w.log("Checked in on a teammate", Some(pillar), None, None)
        .unwrap();
    w.kudos(&["@ben"], "Calm\nincident call", None).unwrap();
    Writer::new(&mut replica, clock("2026-11-25T09:00:00Z"), Some("@ben"))
        .unwrap()
        .log("Picked up litter", None, None, None)
        .unwrap();
    replica
}

#[test]
fn the_digest_in_words_has_its_sections_and_names_handles_not_ids() {
    let dir = tempfile::tempdir().unwrap();
    let replica = team(dir.path());
    let team = replica.team().unwrap();
    let acts = replica.acts().unwrap();
    let today = "2026-11-26".parse().unwrap();

    let d = views::digest(&replica, &team, today, Period::default(), &acts).unwrap();
    let v = DigestView::new(&d, &team);
    assert_eq!(v.title, "Otters — 2026-11-23 to 2026-11-29");
    assert_eq!(
        v.summary,
        "3 micro-actions and 1 recognition from 2 of 2 members."
    );
    let titles: Vec<&str> = v.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        &titles[..4],
        [
            "Team streak",
            "Pillar mix",
            "Our commitments",
            "Recognitions"
        ]
    );
    let pillar = &team.pillars[0].name;
    assert!(
        v.sections[1].items.contains(&format!("#{pillar}: 2")),
        "{:?}",
        v.sections[1]
    );
    // (Ben's micro-action and Ana's recognition, both without a pillar.)
    assert!(v.sections[1].items.contains(&"no pillar: 2".to_owned()));
    // A quote is one line, whatever its text held.
    assert_eq!(v.sections[3].items, ["@ana → @ben: “Calm incident call”"]);
    assert!(
        v.sections
            .iter()
            .flat_map(|s| &s.items)
            .all(|i| !i.contains(ANA) && !i.contains(BEN)),
        "{v:?}"
    );

    // Last week had nothing: its digest says so rather than leaving sections out.
    let last = Period {
        month: false,
        last: true,
    };
    let d = views::digest(&replica, &team, today, last, &acts).unwrap();
    let v = DigestView::new(&d, &team);
    assert_eq!(v.title, "Otters — 2026-11-16 to 2026-11-22");
    assert_eq!(v.sections[3].items, ["none this time"]);
}

#[test]
fn a_members_numbers_streaks_and_badges_count_their_own_acts() {
    let dir = tempfile::tempdir().unwrap();
    let replica = team(dir.path());
    let team = replica.team().unwrap();
    let acts = replica.acts().unwrap();
    let today = "2026-11-25".parse().unwrap();

    let skipped = replica.travel_skips(ANA).unwrap();
    let n = views::numbers(&team, ANA, today, &acts, &skipped);
    assert_eq!(n.handle, "ana");
    assert_eq!((n.week.actions, n.week.kudos_given), (2, 1));
    assert_eq!(n.month.kudos_received, Some(0));
    let n = views::numbers(
        &team,
        BEN,
        today,
        &acts,
        &replica.travel_skips(BEN).unwrap(),
    );
    assert_eq!((n.week.actions, n.month.kudos_received), (1, Some(1)));

    let s = views::streaks(&replica, &team, ANA, today, 4).unwrap();
    // Monday and Tuesday, then nothing yet today.
    assert_eq!(s.personal.current, 2, "{:?}", s.personal);
    assert!(!s.personal.active_today);
    let s = views::streaks(&replica, &team, BEN, today, 4).unwrap();
    assert!(s.personal.active_today);

    let b = views::badges(&team, None, &acts, today);
    assert!(b.mine.is_none());
    let b = views::badges(&team, Some(ANA), &acts, today);
    assert!(b.mine.is_some());
}
