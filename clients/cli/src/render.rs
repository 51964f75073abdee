//! How events look: as text for people and as JSON for programs.

use cairn_core::feed::{FeedItem, ago};
use cairn_core::{Event, Kind, TeamState};
use cairn_store::Replica;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::error::{CliError, Input, Result};
use crate::output::{DIM, HANDLE, ID, PILLAR, paint, wrap};

/// Where an event of the feed came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// The team's own documents: its members' events.
    #[default]
    Team,
    /// The team's organisation: a steward's note of a change to its non-negotiables.
    Org,
    /// Given from elsewhere outside the team (its author is no member of it).
    Outside,
}

impl Origin {
    /// Where `author`'s event `e` in `replica`'s feed came from.
    pub fn of(replica: &Replica, e: &Event) -> Result<Origin> {
        Ok(match replica.outside_source(&e.id, &e.author)? {
            None => Origin::Team,
            Some(s) if cairn_client::sync::org::is_notes_source(&s) => Origin::Org,
            Some(_) => Origin::Outside,
        })
    }

    /// Where each item of a page came from, in its order.
    pub fn of_items(replica: &Replica, items: &[FeedItem]) -> Result<Vec<Origin>> {
        items
            .iter()
            .map(|i| Origin::of(replica, &i.event))
            .collect()
    }
}

/// Refuses the event `text` names (as `cairn feed` shows it) when it came from outside the
/// team, since nobody here can `verb` it (`reacted to`, `edited`, `retracted`): a steward's
/// note belongs to the organisation. An event not found passes, for the write to say so.
pub fn refuse_outside(replica: &Replica, me: &str, text: &str, verb: &str) -> Result<()> {
    let Ok(e) = replica.resolve(text, me) else {
        return Ok(());
    };
    let short = e.id.short();
    match Origin::of(replica, &e)? {
        Origin::Team => Ok(()),
        Origin::Org => Err(CliError::new(format!(
            "{short} is a note of the organisation's: it can't be {verb}"
        ))
        .hint("it tells of a steward's change; `cairn org` shows the non-negotiables")
        .about(Input::Event)),
        Origin::Outside => Err(CliError::new(format!(
            "{short} came from outside the team: it can't be {verb} here"
        ))
        .about(Input::Event)),
    }
}

/// How a person is named in the feed: `@handle` for a member of the team, and as given for
/// anyone else (a steward's label, `@ana@Platform`, or a name).
pub fn person(team: &TeamState, id: &str) -> String {
    match team.member(id) {
        Some(_) => format!("@{}", team.handle_of(id)),
        None => id.to_owned(),
    }
}

fn instant(ms: i64) -> String {
    Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// An event as JSON, with members named by handle.
pub fn event_json(e: &Event, team: &TeamState) -> Value {
    json!({
        "id": e.id.as_str(),
        "short": e.id.short(),
        "kind": e.kind.as_str(),
        "author": team.handle_of(&e.author),
        "author_id": e.author,
        "at": instant(e.at_ms),
        "tz": e.tz,
        "date": e.date,
        "late": e.late,
        "pillar": e.pillar,
        "text": e.text,
        "why": e.why,
        "to": e.to.iter().map(|m| team.handle_of(m)).collect::<Vec<_>>(),
        "to_ids": e.to,
        "target": e.target.as_ref().map(|t| t.as_str()),
        "emoji": e.emoji,
        "retracted": e.retracted,
        "edited": e.edited_ms.map(instant),
        "honours": e.honours,
    })
}

/// A feed item as JSON: the event, whether it is the organisation's (a steward's note: its
/// `author` is the steward as the note names them), and its reactions.
pub fn item_json(item: &FeedItem, origin: Origin, team: &TeamState) -> Value {
    let mut v = event_json(&item.event, team);
    v["org"] = json!(origin == Origin::Org);
    v["reactions"] = item
        .reactions
        .iter()
        .map(|r| {
            json!({
                "emoji": r.emoji,
                "count": r.by.len(),
                "by": r.by.iter().map(|m| team.handle_of(m)).collect::<Vec<_>>(),
            })
        })
        .collect();
    v
}

/// The titles of the organisation's non-negotiables by id, as this home holds them (empty for a
/// team of none, or before the organisation's first sync): what an act's honours line names.
pub fn non_negotiable_titles(
    org: Option<&cairn_core::OrgState>,
) -> std::collections::BTreeMap<String, String> {
    org.map(|o| {
        o.commitments
            .iter()
            .map(|c| (c.id.clone(), c.title.clone()))
            .collect()
    })
    .unwrap_or_default()
}

/// A feed item as a few lines of text, its text and why wrapped to `width` under the head; an
/// act that honours a non-negotiable says which, by its title in `titles` (by id) when known
/// there, else by its id.
pub fn item_text(
    item: &FeedItem,
    origin: Origin,
    team: &TeamState,
    titles: &std::collections::BTreeMap<String, String>,
    now_ms: i64,
    width: Option<usize>,
) -> String {
    let e = &item.event;
    let who = |id: &str| match origin {
        Origin::Team => paint(HANDLE, format!("@{}", team.handle_of(id))),
        Origin::Org | Origin::Outside => paint(HANDLE, person(team, id)),
    };
    let mut head = format!("{}  {}", paint(ID, e.id.short()), who(&e.author));
    if e.kind == Kind::Team {
        head.push_str(&paint(
            DIM,
            if origin == Origin::Org {
                " changed the organisation"
            } else {
                " changed the team"
            },
        ));
    }
    if e.kind == Kind::Kudos {
        let to: Vec<_> = e.to.iter().map(|m| who(m)).collect();
        head.push_str(&format!(" 👏 {}", to.join(", ")));
    }
    if let Some(p) = &e.pillar {
        let name = team.pillar(p).map_or(p.as_str(), |p| p.name.as_str());
        head.push_str(&format!("  {}", paint(PILLAR, format!("#{name}"))));
    }
    let mut when = ago(now_ms, e.at_ms);
    if e.late {
        when.push_str(&format!(", for {}", e.date));
    }
    if e.edited_ms.is_some() {
        when.push_str(", edited");
    }
    head.push_str(&format!("  {}", paint(DIM, when)));
    let mut out = head;
    const INDENT: &str = "        ";
    for line in wrap(&e.text, INDENT, INDENT, width) {
        out.push('\n');
        out.push_str(&line);
    }
    if let Some(why) = &e.why {
        for line in wrap(&format!("why: {why}"), INDENT, "             ", width) {
            out.push('\n');
            out.push_str(&paint(DIM, line));
        }
    }
    if let Some(id) = &e.honours {
        let named = match titles.get(id) {
            // One line, whatever the title holds.
            Some(t) => format!("“{}”", t.split_whitespace().collect::<Vec<_>>().join(" ")),
            None => id.clone(),
        };
        for line in wrap(
            &format!("honours: {named}"),
            INDENT,
            "                 ",
            width,
        ) {
            out.push('\n');
            out.push_str(&paint(DIM, line));
        }
    }
    if !item.reactions.is_empty() {
        let rs: Vec<_> = item
            .reactions
            .iter()
            .map(|r| format!("{} {}", r.emoji, r.by.len()))
            .collect();
        out.push_str(&format!("\n        {}", rs.join("  ")));
    }
    out
}
