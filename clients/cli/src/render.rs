//! How events look: as text for people and as JSON for programs.

use cairn_core::feed::{FeedItem, ago};
use cairn_core::{Event, Kind, TeamState};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::output::{DIM, HANDLE, ID, PILLAR, paint, wrap};

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
    })
}

/// A feed item as JSON: the event and its reactions.
pub fn item_json(item: &FeedItem, team: &TeamState) -> Value {
    let mut v = event_json(&item.event, team);
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

/// A feed item as a few lines of text, its text and why wrapped to `width` under the head.
pub fn item_text(item: &FeedItem, team: &TeamState, now_ms: i64, width: Option<usize>) -> String {
    let e = &item.event;
    let who = |id: &str| paint(HANDLE, format!("@{}", team.handle_of(id)));
    let mut head = format!("{}  {}", paint(ID, e.id.short()), who(&e.author));
    if e.kind == Kind::Team {
        head.push_str(&paint(DIM, " changed the team"));
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
