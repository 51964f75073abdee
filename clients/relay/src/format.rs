//! Each platform's request for a post: its format, its limits, its idempotency key.
//!
//! A post is a few spans: the relay's own words, people's names, the member's words and the
//! pillar's tag. Whatever a member chose (their words, their name, a pillar's name) is shown as
//! text and nothing else on every platform:
//! - a mention is broken by a zero-width space after its `@` (`@channel`, `@here`,
//!   `@everyone`, `@room`, `@all`, `@someone`), and runs of whitespace become one space;
//! - Slack: `&`, `<`, `>` become entities (so `<!channel>`, `<@U123>` and `<url|text>` are
//!   text), and the section is `plain_text`, which carries no markup;
//! - Mattermost and Discord: every Markdown special is escaped with a backslash (no link, no
//!   heading, no bold that was not the relay's); Discord also gets `allowed_mentions` empty;
//! - Teams: an Adaptive Card of `TextRun`s, which render no Markdown at all;
//! - Matrix: a plain `body`, an HTML `formatted_body` with everything escaped, `m.mentions`
//!   empty;
//! - a generic webhook receives the data as JSON, for a program to show as it sees fit.
//!
//! Limits are met by shortening the member's words (ending them with `…`), then the list of
//! names; the relay's own words always fit.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{Destination, Kind};
use crate::digest::{DigestBody, Item};
use crate::post::{Post, PostKind};

/// Slack: the most characters in a section's text.
pub const SLACK_SECTION_MAX: usize = 3_000;
/// Mattermost: the most characters in a post.
pub const MATTERMOST_MAX: usize = 16_383;
/// Discord: the most characters in a message's content.
pub const DISCORD_MAX: usize = 2_000;
/// Teams: the most bytes the relay sends in a card (Teams takes about 28 KB).
pub const TEAMS_MAX_BYTES: usize = 24_000;
/// Matrix: the most bytes of content (an event is at most 65,536 bytes in all).
pub const MATRIX_MAX_BYTES: usize = 48_000;

/// An HTTP request ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST` or `PUT`.
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    // The URL and the headers may carry secrets (a webhook URL is its own credential).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// One piece of a post.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Span {
    /// The relay's own words.
    Own(&'static str),
    /// The relay's own figures (`12 of 10 kudos`).
    Figures(String),
    /// A person's name (shown in bold where the platform can).
    Name(String),
    /// What a member typed or chose.
    Member(String),
    /// A pillar's tag, shown after `#`.
    Tag(String),
    /// A heading of the relay's (a digest's section), bold where the platform can.
    Heading(String),
    /// A new line (Teams: a new block).
    Break,
}

/// Member text as one line with every mention broken.
pub fn neutralise(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(one_line.len() + 8);
    let mut chars = one_line.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '@' && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            out.push('\u{200B}');
        }
    }
    out
}

/// `text` with each character in `table` replaced by its entity.
fn entities(text: &str, table: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match table.iter().find(|(from, _)| *from == c) {
            Some((_, to)) => out.push_str(to),
            None => out.push(c),
        }
    }
    out
}

/// Slack's three control characters as entities.
pub fn slack_escape(text: &str) -> String {
    entities(text, &[('&', "&amp;"), ('<', "&lt;"), ('>', "&gt;")])
}

/// Every Markdown special (CommonMark and Discord's) escaped with a backslash.
pub fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if "\\`*_{}[]()#+-!|<>~&".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// HTML's specials as entities.
pub fn html_escape(text: &str) -> String {
    entities(
        text,
        &[
            ('&', "&amp;"),
            ('<', "&lt;"),
            ('>', "&gt;"),
            ('"', "&quot;"),
            ('\'', "&#39;"),
        ],
    )
}

fn spans(post: &Post) -> Vec<Span> {
    let mut s = Vec::new();
    let tag = |s: &mut Vec<Span>| {
        if let Some(p) = &post.pillar {
            s.push(Span::Own(" "));
            s.push(Span::Tag(p.clone()));
        }
    };
    match post.kind {
        PostKind::Recognition => {
            s.push(Span::Name(post.author.clone()));
            s.push(Span::Own(" thanked "));
            let n = post.to.len();
            for (i, name) in post.to.iter().enumerate() {
                if i > 0 {
                    s.push(Span::Own(if i + 1 == n { " and " } else { ", " }));
                }
                s.push(Span::Name(name.clone()));
            }
            s.push(Span::Own(": “"));
            s.push(Span::Member(post.text.clone()));
            s.push(Span::Own("”"));
            tag(&mut s);
        }
        PostKind::MicroAction => {
            s.push(Span::Name(post.author.clone()));
            s.push(Span::Own(": "));
            s.push(Span::Member(post.text.clone()));
            if let Some(why) = &post.why {
                s.push(Span::Own(" (why: "));
                s.push(Span::Member(why.clone()));
                s.push(Span::Own(")"));
            }
            tag(&mut s);
        }
        PostKind::TeamNote => {
            s.push(Span::Name(post.author.clone()));
            s.push(Span::Own(" changed the team: "));
            s.push(Span::Member(post.text.clone()));
        }
        // A streak: no title, its figures.
        PostKind::Celebration if post.text.is_empty() => {
            s.push(Span::Own("🎉 "));
            s.push(Span::Name(post.team.clone()));
            s.push(Span::Own(" kept its team streak: "));
            s.push(Span::Figures(post.why.clone().unwrap_or_default()));
        }
        PostKind::Celebration => {
            s.push(Span::Own("🎉 "));
            s.push(Span::Name(post.team.clone()));
            s.push(Span::Own(" reached the challenge “"));
            s.push(Span::Member(post.text.clone()));
            s.push(Span::Own("”"));
            if let Some(figures) = &post.why {
                s.push(Span::Own(": "));
                s.push(Span::Figures(figures.clone()));
            }
        }
        PostKind::Digest => match &post.digest {
            Some(body) => return digest_spans(post, body, usize::MAX, usize::MAX),
            None => {
                s.push(Span::Name(post.team.clone()));
                s.push(Span::Own(": the weekly digest"));
            }
        },
        PostKind::Test => {
            s.push(Span::Own("cairn-relay is connected: "));
            s.push(Span::Name(post.team.clone()));
            s.push(Span::Own(" will see its recognitions here."));
        }
    }
    s
}

fn slack_text(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Own(t) => slack_escape(t),
            Span::Figures(t) => slack_escape(t),
            Span::Name(t) | Span::Member(t) => slack_escape(&neutralise(t)),
            Span::Tag(t) => format!("#{}", slack_escape(&neutralise(t))),
            Span::Heading(t) => slack_escape(&neutralise(t)),
            Span::Break => "\n".to_owned(),
        })
        .collect()
}

fn markdown_text(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Own(t) => (*t).to_owned(),
            Span::Figures(t) => markdown_escape(t),
            Span::Name(t) => format!("**{}**", markdown_escape(&neutralise(t))),
            Span::Member(t) => markdown_escape(&neutralise(t)),
            Span::Tag(t) => format!("\\#{}", markdown_escape(&neutralise(t))),
            Span::Heading(t) => format!("**{}**", markdown_escape(&neutralise(t))),
            Span::Break => "\n".to_owned(),
        })
        .collect()
}

fn plain_text(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Own(t) => (*t).to_owned(),
            Span::Figures(t) => t.clone(),
            Span::Name(t) | Span::Member(t) | Span::Heading(t) => neutralise(t),
            Span::Tag(t) => format!("#{}", neutralise(t)),
            Span::Break => "\n".to_owned(),
        })
        .collect()
}

fn html_text(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Own(t) => html_escape(t),
            Span::Figures(t) => html_escape(t),
            Span::Name(t) => format!("<b>{}</b>", html_escape(&neutralise(t))),
            Span::Member(t) => html_escape(&neutralise(t)),
            Span::Tag(t) => format!("#{}", html_escape(&neutralise(t))),
            Span::Heading(t) => format!("<b>{}</b>", html_escape(&neutralise(t))),
            Span::Break => "<br>".to_owned(),
        })
        .collect()
}

fn teams_card(spans: &[Span]) -> Value {
    // A block per line: a `TextRun` holds no line break.
    let blocks: Vec<Value> = spans
        .split(|s| *s == Span::Break)
        .filter(|line| !line.is_empty())
        .map(|line| json!({"type": "RichTextBlock", "inlines": teams_runs(line)}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": blocks,
            },
        }],
    })
}

fn teams_runs(spans: &[Span]) -> Vec<Value> {
    spans
        .iter()
        .filter(|s| **s != Span::Break)
        .map(|s| match s {
            Span::Own(t) => json!({"type": "TextRun", "text": t}),
            Span::Figures(t) => json!({"type": "TextRun", "text": t}),
            Span::Name(t) => json!({"type": "TextRun", "text": neutralise(t), "weight": "Bolder"}),
            Span::Member(t) => json!({"type": "TextRun", "text": neutralise(t)}),
            Span::Tag(t) => {
                json!({"type": "TextRun", "text": format!("#{}", neutralise(t)), "color": "Accent"})
            }
            Span::Heading(t) => {
                json!({"type": "TextRun", "text": neutralise(t), "weight": "Bolder"})
            }
            Span::Break => json!({"type": "TextRun", "text": " "}),
        })
        .collect()
}

/// Shortens `post` until `size` of its spans is at most `max`: the why goes first, then the
/// member's words (as many as fit, ended with `…`), then the list of names becomes a count.
fn fit(post: &Post, max: usize, size: impl Fn(&[Span]) -> usize) -> Vec<Span> {
    if let (PostKind::Digest, Some(body)) = (post.kind, &post.digest) {
        return fit_digest(post, body, max, size);
    }
    let mut p = post.clone();
    let fits = |p: &Post| size(&spans(p)) <= max;
    if fits(&p) {
        return spans(&p);
    }
    if p.why.take().is_some() && fits(&p) {
        return spans(&p);
    }
    let text: Vec<char> = p.text.chars().collect();
    let cut = |p: &Post, keep: usize| Post {
        text: text[..keep].iter().collect::<String>() + "…",
        ..p.clone()
    };
    // The most characters of the member's words that fit, by bisection (escaping makes the
    // size of a character depend on the character).
    if fits(&cut(&p, 0)) {
        let (mut lo, mut hi) = (0, text.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(&cut(&p, mid)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return spans(&cut(&p, lo));
    }
    p.text = "…".into();
    if p.to.len() > 1 {
        p.to = vec![format!("{} teammates", p.to.len())];
    }
    if !fits(&p) {
        p.author = p.author.chars().take(40).collect();
        p.to = p.to.iter().map(|n| n.chars().take(40).collect()).collect();
        p.team = p.team.chars().take(40).collect();
        p.pillar = p.pillar.map(|n| n.chars().take(40).collect());
    }
    spans(&p)
}

/// The spans of a digest: its title and figures, then each section's heading and items, with
/// at most `keep` of each section's quotes and lines (the others counted) and at most `cap`
/// characters of each member's words.
fn digest_spans(post: &Post, body: &DigestBody, keep: usize, cap: usize) -> Vec<Span> {
    let words = |t: &str| -> String {
        if t.chars().count() <= cap {
            t.to_owned()
        } else {
            t.chars().take(cap).collect::<String>() + "…"
        }
    };
    let mut s = vec![
        Span::Name(post.team.clone()),
        Span::Own(": the week of "),
        Span::Figures(format!("{} to {}", body.start, body.end)),
        Span::Break,
        Span::Figures(body.summary.clone()),
    ];
    for section in &body.sections {
        // A blank line before each section.
        s.push(Span::Break);
        s.push(Span::Break);
        s.push(Span::Heading(section.title.clone()));
        let mut shown = 0;
        let mut dropped = 0;
        for item in &section.items {
            if !matches!(item, Item::Note { .. }) {
                if shown >= keep {
                    dropped += 1;
                    continue;
                }
                shown += 1;
            }
            s.push(Span::Break);
            s.push(Span::Own("• "));
            match item {
                Item::Line { text } => s.push(Span::Member(words(text))),
                Item::Note { text } => s.push(Span::Figures(text.clone())),
                Item::Quote {
                    from,
                    to,
                    text,
                    date,
                } => {
                    s.push(Span::Name(from.clone()));
                    s.push(Span::Own(" thanked "));
                    for (i, name) in to.iter().enumerate() {
                        if i > 0 {
                            s.push(Span::Own(if i + 1 == to.len() { " and " } else { ", " }));
                        }
                        s.push(Span::Name(name.clone()));
                    }
                    s.push(Span::Own(": “"));
                    s.push(Span::Member(words(text)));
                    s.push(Span::Own("”"));
                    if let Some(d) = date {
                        s.push(Span::Own(" ("));
                        s.push(Span::Figures(d.clone()));
                        s.push(Span::Own(")"));
                    }
                }
            }
        }
        if dropped > 0 {
            s.push(Span::Break);
            s.push(Span::Own("• "));
            s.push(Span::Figures(format!("and {dropped} more not shown here")));
        }
    }
    s
}

/// The fewest characters of a member's words a digest shortens them to before it leaves
/// out whole lines.
const DIGEST_WORDS_MIN: usize = 60;

/// Shortens a digest until `size` of its spans is at most `max`: each member's words to as
/// many characters as fit (at least [`DIGEST_WORDS_MIN`]), then each section to as many lines
/// as fit (the others counted), then the words to nothing. Cuts are made in the words before
/// any escaping, so an escape is never cut in half.
fn fit_digest(
    post: &Post,
    body: &DigestBody,
    max: usize,
    size: impl Fn(&[Span]) -> usize,
) -> Vec<Span> {
    let longest = body
        .sections
        .iter()
        .flat_map(|s| &s.items)
        .map(|i| match i {
            Item::Line { text } | Item::Quote { text, .. } => text.chars().count(),
            Item::Note { .. } => 0,
        })
        .max()
        .unwrap_or(0);
    let most = body
        .sections
        .iter()
        .map(|s| s.items.len())
        .max()
        .unwrap_or(0);
    let fits = |keep: usize, cap: usize| size(&digest_spans(post, body, keep, cap)) <= max;
    // The largest value in lo..=hi that fits, given that lo does (bigger never fits better).
    let largest = |lo: usize, hi: usize, fits: &dyn Fn(usize) -> bool| {
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    };
    if fits(most, longest) {
        return digest_spans(post, body, most, longest);
    }
    let floor = DIGEST_WORDS_MIN.min(longest);
    if fits(most, floor) {
        let cap = largest(floor, longest, &|cap| fits(most, cap));
        return digest_spans(post, body, most, cap);
    }
    if fits(0, floor) {
        let keep = largest(0, most, &|keep| fits(keep, floor));
        let cap = largest(floor, longest, &|cap| fits(keep, cap));
        return digest_spans(post, body, keep, cap);
    }
    // Only the headings and figures fit, perhaps not even those: the team's name shortened.
    let mut short = post.clone();
    short.team = short.team.chars().take(40).collect();
    let body = DigestBody {
        sections: body
            .sections
            .iter()
            .map(|s| crate::digest::Section {
                title: s.title.clone(),
                items: s
                    .items
                    .iter()
                    .filter(|i| !matches!(i, Item::Note { .. }))
                    .cloned()
                    .collect(),
            })
            .collect(),
        ..body.clone()
    };
    digest_spans(&short, &body, 0, 0)
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The key bytes of a Standard Webhooks secret (`whsec_` and base64).
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_ (a Standard Webhooks secret)")?;
    let key = B64
        .decode(b64.trim())
        .map_err(|_| "the part after whsec_ is not valid base64".to_owned())?;
    if key.len() < 16 {
        return Err("is too short: at least 16 bytes after whsec_ (24 base64 characters)".into());
    }
    Ok(key)
}

/// The `webhook-signature` of `body` sent as message `id` at `timestamp` (seconds).
pub fn webhook_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac takes any key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// A stable key for (destination, event): the same on every attempt and every restart.
pub fn idempotency_key(destination: &str, event_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(destination.as_bytes());
    h.update([0]);
    h.update(event_key.as_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes a path segment (a Matrix room id: `!abc:example.org`).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// `post` as plain text, whole (what a person reads, before any platform's limit).
pub fn plain(post: &Post) -> String {
    plain_text(&spans(post))
}

/// The request that posts `post` (queued under `event_key`) to `dest`, at `now_ms`. Errors
/// say which part of the config is missing or unreadable, never a secret's value.
pub fn request(
    dest: &Destination,
    event_key: &str,
    post: &Post,
    now_ms: i64,
) -> Result<Request, String> {
    let secret = |s: &Option<crate::config::Secret>, field: &str| -> Result<String, String> {
        s.as_ref()
            .ok_or_else(|| format!("{field} is missing"))?
            .reveal()
            .map_err(|e| format!("{field}: {e}"))
    };
    let json_header = ("content-type", "application/json".to_owned());
    let post_to = |body: Value| -> Result<Request, String> {
        Ok(Request {
            method: "POST",
            url: secret(&dest.url, "url")?,
            headers: vec![json_header.clone()],
            body: json_body(&body),
        })
    };
    match dest.kind {
        Kind::Slack => {
            let text = slack_text(&fit(post, SLACK_SECTION_MAX, |s| chars(&slack_text(s))));
            post_to(json!({
                "text": text,
                "blocks": [{
                    "type": "section",
                    "text": {"type": "plain_text", "text": text, "emoji": true},
                }],
            }))
        }
        Kind::Mattermost => {
            let text = markdown_text(&fit(post, MATTERMOST_MAX, |s| chars(&markdown_text(s))));
            post_to(json!({ "text": text }))
        }
        Kind::Discord => {
            let text = markdown_text(&fit(post, DISCORD_MAX, |s| chars(&markdown_text(s))));
            post_to(json!({ "content": text, "allowed_mentions": {"parse": []} }))
        }
        Kind::Teams => {
            let card = teams_card(&fit(post, TEAMS_MAX_BYTES, |s| {
                json_body(&teams_card(s)).len()
            }));
            post_to(card)
        }
        Kind::Matrix => {
            let content = |s: &[Span]| {
                json!({
                    "msgtype": "m.notice",
                    "body": plain_text(s),
                    "format": "org.matrix.custom.html",
                    "formatted_body": html_text(s),
                    "m.mentions": {},
                })
            };
            let body = content(&fit(post, MATRIX_MAX_BYTES, |s| {
                json_body(&content(s)).len()
            }));
            let homeserver = dest.homeserver.as_deref().ok_or("homeserver is missing")?;
            let room = dest.room.as_deref().ok_or("room is missing")?;
            let txn = format!("cairn.{}", idempotency_key(&dest.name, event_key));
            Ok(Request {
                method: "PUT",
                url: format!(
                    "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                    homeserver.trim_end_matches('/'),
                    path_segment(room),
                ),
                headers: vec![
                    json_header,
                    (
                        "authorization",
                        format!("Bearer {}", secret(&dest.access_token, "access_token")?),
                    ),
                ],
                body: json_body(&body),
            })
        }
        Kind::Webhook => {
            let key =
                webhook_key(&secret(&dest.secret, "secret")?).map_err(|e| format!("secret {e}"))?;
            let id = format!("msg_{}", idempotency_key(&dest.name, event_key));
            let timestamp = now_ms.div_euclid(1000);
            let at = |ms: i64| {
                jiff::Timestamp::from_millisecond(ms)
                    .map_or_else(|_| ms.to_string(), |t| t.to_string())
            };
            let data = match &post.digest {
                Some(digest) => json!({
                    "event": post.event,
                    "team": post.team,
                    "digest": digest,
                    "summary": plain_text(&spans(post)),
                }),
                None => json!({
                    "event": post.event,
                    "team": post.team,
                    "author": post.author,
                    "to": post.to,
                    "text": post.text,
                    "why": post.why,
                    "pillar": post.pillar,
                    "at": at(post.at_ms),
                    "summary": plain_text(&spans(post)),
                }),
            };
            let body = json_body(&json!({
                "type": post.kind.webhook_type(),
                "timestamp": at(now_ms),
                "data": data,
            }));
            let signature = webhook_signature(&key, &id, timestamp, &body);
            Ok(Request {
                method: "POST",
                url: secret(&dest.url, "url")?,
                headers: vec![
                    json_header,
                    ("webhook-id", id),
                    ("webhook-timestamp", timestamp.to_string()),
                    ("webhook-signature", signature),
                ],
                body,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kudos(text: &str) -> Post {
        Post {
            kind: PostKind::Recognition,
            event: "e1".into(),
            team: "Otters".into(),
            author: "Ana".into(),
            to: vec!["Ben".into(), "Cy".into()],
            text: text.into(),
            why: None,
            pillar: Some("trust".into()),
            at_ms: 0,
            digest: None,
        }
    }

    /// A digest of a long week: `n` quotes of 500 characters full of escapes.
    fn long_digest(n: usize) -> Post {
        let text = "&<*_@here ".repeat(50);
        let quotes = (0..n)
            .map(|i| Item::Quote {
                from: format!("Ana{i}"),
                to: vec!["Ben".into(), "Cy".into()],
                text: text.clone(),
                date: None,
            })
            .collect();
        Post {
            kind: PostKind::Digest,
            event: "digest:2026-11-23".into(),
            digest: Some(DigestBody {
                start: "2026-11-23".into(),
                end: "2026-11-29".into(),
                summary: "1 micro-action and 40 recognitions from 3 of 3 members.".into(),
                sections: vec![
                    crate::digest::Section {
                        title: "Our commitments".into(),
                        items: vec![Item::Line {
                            text: "we <b>answer</b> & review".into(),
                        }],
                    },
                    crate::digest::Section {
                        title: "Recognitions".into(),
                        items: quotes,
                    },
                ],
            }),
            ..kudos("")
        }
    }

    #[test]
    fn a_long_digest_is_cut_to_fit_and_never_mid_escape() {
        let post = long_digest(40);
        let s = fit(&post, SLACK_SECTION_MAX, |s| chars(&slack_text(s)));
        let text = slack_text(&s);
        assert!(chars(&text) <= SLACK_SECTION_MAX, "{}", chars(&text));
        // Every `&` starts a whole entity.
        for (i, _) in text.match_indices('&') {
            let rest = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "{}",
                &rest[..rest.len().min(12)]
            );
        }
        assert!(text.contains("not shown here"), "{text}");
        assert!(text.contains("we &lt;b&gt;answer&lt;/b&gt; &amp; review"));
        let s = fit(&post, DISCORD_MAX, |s| chars(&markdown_text(s)));
        let text = markdown_text(&s);
        assert!(
            chars(&text) <= DISCORD_MAX && chars(&text) > 1_500,
            "{}",
            chars(&text)
        );
        // A backslash escape is whole: none ends the text or stands before a plain letter.
        assert!(!text.ends_with('\\'));
        assert!(!text.contains("@here"), "mentions are broken");
        // Big limits take the whole week: every quote, every word.
        let s = fit(&post, MATTERMOST_MAX * 10, |s| chars(&markdown_text(s)));
        assert_eq!(markdown_text(&s).matches("Ana").count(), 40);
        let card = teams_card(&fit(&post, TEAMS_MAX_BYTES, |s| {
            json_body(&teams_card(s)).len()
        }));
        assert!(json_body(&card).len() <= TEAMS_MAX_BYTES);
        assert!(
            card["attachments"][0]["content"]["body"]
                .as_array()
                .unwrap()
                .len()
                > 5
        );
    }

    #[test]
    fn a_recognition_reads_as_a_sentence() {
        assert_eq!(
            plain_text(&spans(&kudos("the calm write-up"))),
            "Ana thanked Ben and Cy: “the calm write-up” #trust"
        );
    }

    #[test]
    fn mentions_are_broken_and_whitespace_folded() {
        assert_eq!(
            neutralise("hi @channel\n\n@here x@y @ 1"),
            "hi @\u{200B}channel @\u{200B}here x@\u{200B}y @ 1"
        );
    }

    #[test]
    fn long_words_are_shortened_to_fit() {
        let long = "é&".repeat(2_000);
        let s = fit(&kudos(&long), DISCORD_MAX, |s| chars(&markdown_text(s)));
        let text = markdown_text(&s);
        assert!(chars(&text) <= DISCORD_MAX);
        assert!(text.contains('…'));
        let s = fit(&kudos(&long), SLACK_SECTION_MAX, |s| chars(&slack_text(s)));
        let text = slack_text(&s);
        assert!(
            chars(&text) <= SLACK_SECTION_MAX && chars(&text) > 2_900,
            "{}",
            chars(&text)
        );
        // An entity is never cut in half.
        assert!(!text.contains("&amp…") && !text.contains("&a…"));
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // From the Standard Webhooks specification's reference test.
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            webhook_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
