//! The culture feed: a pure function from events to what people read.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{Event, Kind};
use crate::ids::EventId;

/// Which events a feed shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedQuery {
    /// This many items (a page), newest first; `None` for all. A page is longer only to keep
    /// together events that share an id (see [`page`]).
    pub limit: Option<usize>,
    /// Only events of this pillar (its id).
    pub pillar: Option<String>,
    /// Only events written by or recognising this member (their id).
    pub member: Option<String>,
    /// Only events whose local date is on or after this one (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// Only events whose local date is on or before this one (`YYYY-MM-DD`).
    pub until: Option<String>,
    /// Only events older than this id: the page after the one that ended with it.
    pub before: Option<EventId>,
}

impl FeedQuery {
    /// True when the feed shows `e` (reactions are never items of their own).
    pub fn matches(&self, e: &Event) -> bool {
        e.kind != Kind::Reaction
            && !e.retracted
            && self
                .pillar
                .as_ref()
                .is_none_or(|p| e.pillar.as_ref() == Some(p))
            && self
                .member
                .as_ref()
                .is_none_or(|m| &e.author == m || e.to.contains(m))
            && self
                .since
                .as_ref()
                .is_none_or(|d| e.date.as_str() >= d.as_str())
            && self
                .until
                .as_ref()
                .is_none_or(|d| e.date.as_str() <= d.as_str())
            && self.before.as_ref().is_none_or(|b| &e.id < b)
    }
}

/// The reactions of one emoji on an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reactions {
    pub emoji: String,
    /// Who reacted, by member id, in the order they did.
    pub by: Vec<String>,
}

/// One entry of the feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedItem {
    #[serde(flatten)]
    pub event: Event,
    pub reactions: Vec<Reactions>,
}

/// A page of the feed: its items, and whether older items match the query too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    /// Older items match: the next page starts [`FeedPage::next_before`].
    pub more: bool,
}

impl FeedPage {
    /// What the next page's [`FeedQuery::before`] is, when there is a next page: the id of this
    /// page's last item.
    pub fn next_before(&self) -> Option<&EventId> {
        self.items.last().filter(|_| self.more).map(|i| &i.event.id)
    }
}

/// Builds the feed from `events` (items and reactions, in any order): the matching events, newest
/// first, each with its live reactions grouped by emoji. A member's repeated reaction with the
/// same emoji counts once.
pub fn feed<'a>(events: impl IntoIterator<Item = &'a Event>, query: &FeedQuery) -> Vec<FeedItem> {
    page(events, query).items
}

/// [`feed`] as a page: the first `query.limit` items and whether more match. A page never ends
/// between two events that share an id (two members' ids may collide, the random part being
/// each author's to choose): the next page starts before an id, so it would skip the other one.
pub fn page<'a>(events: impl IntoIterator<Item = &'a Event>, query: &FeedQuery) -> FeedPage {
    let mut items: Vec<&Event> = Vec::new();
    let mut reactions: BTreeMap<&EventId, Vec<&Event>> = BTreeMap::new();
    for e in events {
        if e.kind == Kind::Reaction {
            if let (false, Some(t)) = (e.retracted, &e.target) {
                reactions.entry(t).or_default().push(e);
            }
        } else if query.matches(e) {
            items.push(e);
        }
    }
    // Two members' events may share an id (its random part is the author's to choose): each is
    // an item of its own, and a reaction, which names only the id, shows on both.
    items.sort_by(|a, b| b.id.cmp(&a.id).then_with(|| a.author.cmp(&b.author)));
    items.dedup_by(|a, b| a.id == b.id && a.author == b.author);
    let mut more = false;
    if let Some(limit) = query.limit
        && items.len() > limit
    {
        let mut end = limit;
        while end > 0 && end < items.len() && items[end].id == items[end - 1].id {
            end += 1;
        }
        more = end < items.len();
        items.truncate(end);
    }
    let items = items
        .into_iter()
        .map(|e| FeedItem {
            event: e.clone(),
            reactions: group(reactions.get(&e.id).cloned().unwrap_or_default()),
        })
        .collect();
    FeedPage { items, more }
}

fn group(mut rs: Vec<&Event>) -> Vec<Reactions> {
    rs.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out: Vec<Reactions> = Vec::new();
    for r in rs {
        let emoji = r.emoji.clone().unwrap_or_default();
        match out.iter_mut().find(|g| g.emoji == emoji) {
            Some(g) if g.by.contains(&r.author) => {}
            Some(g) => g.by.push(r.author.clone()),
            None => out.push(Reactions {
                emoji,
                by: vec![r.author.clone()],
            }),
        }
    }
    out
}

/// Says how long ago `at_ms` was, seen from `now_ms`: "just now", "5m ago", "3h ago", "2d ago".
pub fn ago(now_ms: i64, at_ms: i64) -> String {
    let secs = (now_ms - at_ms) / 1000;
    match secs {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s if s < 86_400 * 14 => format!("{}d ago", s / 86_400),
        s if s < 86_400 * 60 => format!("{}w ago", s / (86_400 * 7)),
        s if s < 86_400 * 730 => format!("{}mo ago", s / (86_400 * 30)),
        s => format!("{}y ago", s / (86_400 * 365)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ms: i64, kind: Kind, author: &str) -> Event {
        Event {
            id: EventId::new(ms, [ms as u8; 5]),
            kind,
            author: author.into(),
            at_ms: ms,
            tz: "UTC".into(),
            date: "2026-11-23".into(),
            late: false,
            pillar: None,
            text: format!("e{ms}"),
            why: None,
            to: vec![],
            target: None,
            emoji: None,
            retracted: false,
            edited_ms: None,
            honours: None,
        }
    }

    fn react(ms: i64, author: &str, target: &Event, emoji: &str) -> Event {
        Event {
            target: Some(target.id.clone()),
            emoji: Some(emoji.into()),
            ..ev(ms, Kind::Reaction, author)
        }
    }

    #[test]
    fn newest_first_without_retracted_or_reactions() {
        let a = ev(1, Kind::Action, "ana");
        let mut b = ev(2, Kind::Action, "ana");
        b.retracted = true;
        let c = ev(3, Kind::Kudos, "ben");
        let r = react(4, "ben", &a, "🎉");
        let items = feed([&a, &b, &c, &r], &FeedQuery::default());
        let ids: Vec<_> = items.iter().map(|i| i.event.text.as_str()).collect();
        assert_eq!(ids, ["e3", "e1"]);
        assert_eq!(
            items[1].reactions,
            vec![Reactions {
                emoji: "🎉".into(),
                by: vec!["ben".into()]
            }]
        );
    }

    #[test]
    fn reactions_group_by_emoji_and_count_a_member_once() {
        let a = ev(1, Kind::Action, "ana");
        let rs = [
            react(2, "ben", &a, "🎉"),
            react(3, "cy", &a, "🎉"),
            react(4, "ben", &a, "🎉"),
            react(5, "ben", &a, "👏"),
        ];
        let mut gone = react(6, "dee", &a, "👏");
        gone.retracted = true;
        let all: Vec<&Event> = std::iter::once(&a)
            .chain(rs.iter())
            .chain([&gone])
            .collect();
        let items = feed(all, &FeedQuery::default());
        assert_eq!(items[0].reactions.len(), 2);
        assert_eq!(items[0].reactions[0].by, ["ben", "cy"]);
        assert_eq!(items[0].reactions[1].by, ["ben"]);
    }

    #[test]
    fn filters_and_limit() {
        let mut a = ev(1, Kind::Action, "ana");
        a.pillar = Some("trust".into());
        a.date = "2026-11-01".into();
        let mut b = ev(2, Kind::Kudos, "ben");
        b.to = vec!["ana".into()];
        let c = ev(3, Kind::Action, "cy");
        let q = |f: fn(&mut FeedQuery)| {
            let mut q = FeedQuery::default();
            f(&mut q);
            feed([&a, &b, &c], &q)
                .into_iter()
                .map(|i| i.event.author)
                .collect::<Vec<_>>()
        };
        assert_eq!(q(|q| q.pillar = Some("trust".into())), ["ana"]);
        assert_eq!(q(|q| q.member = Some("ana".into())), ["ben", "ana"]);
        assert_eq!(q(|q| q.since = Some("2026-11-02".into())), ["cy", "ben"]);
        assert_eq!(q(|q| q.limit = Some(1)), ["cy"]);
    }

    #[test]
    fn pages_walk_the_whole_feed_without_gaps_or_repeats() {
        let mut all: Vec<Event> = (1..=7).map(|n| ev(n, Kind::Action, "ana")).collect();
        // Two members' events with one id: a page must not end between them.
        let mut twin = ev(4, Kind::Action, "ben");
        twin.text = "twin".into();
        all.push(twin);
        all[0].date = "2026-11-20".into();
        let mut seen = Vec::new();
        let mut query = FeedQuery {
            limit: Some(4),
            ..FeedQuery::default()
        };
        let mut pages = 0;
        loop {
            let p = page(&all, &query);
            pages += 1;
            seen.extend(p.items.iter().map(|i| i.event.text.clone()));
            match p.next_before() {
                Some(id) => query.before = Some(id.clone()),
                None => {
                    assert!(!p.more);
                    break;
                }
            }
        }
        assert_eq!(seen, ["e7", "e6", "e5", "e4", "twin", "e3", "e2", "e1"]);
        assert_eq!(pages, 2, "the first page holds both events of id 4");
        // A page that holds the rest says there is nothing more.
        let last = page(
            &all,
            &FeedQuery {
                limit: Some(3),
                before: Some(all[3].id.clone()),
                ..FeedQuery::default()
            },
        );
        assert!(!last.more && last.next_before().is_none());
        // Until a date: only events of that day or before.
        let until = feed(
            &all,
            &FeedQuery {
                until: Some("2026-11-20".into()),
                ..FeedQuery::default()
            },
        );
        assert_eq!(until.len(), 1);
        assert_eq!(until[0].event.text, "e1");
    }

    #[test]
    fn relative_times() {
        assert_eq!(ago(10_000, 0), "just now");
        assert_eq!(ago(5 * 60_000, 0), "5m ago");
        assert_eq!(ago(3 * 3_600_000, 0), "3h ago");
        assert_eq!(ago(2 * 86_400_000, 0), "2d ago");
    }
}
