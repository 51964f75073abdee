//! The pages, as maud templates: typed, and every text a member typed escaped by construction.

use cairn_core::feed::{FeedItem, FeedPage, FeedQuery, ago};
use cairn_core::rules::{Cadence, Heatmap};
use cairn_core::{Kind, TeamState, goals};
use jiff::ToSpan;
use jiff::civil::Date;
use maud::{DOCTYPE, Markup, html};

use super::{Params, Sent, View, Web};
use crate::commands::digest as digest_cmd;
use crate::commands::feed::parse_day;
use crate::context::Ctx;
use crate::error::{CliError, Input, Result};
use crate::output::count;
use crate::render::{Origin, person};
use cairn_client::views::{self, DigestView, Period};

/// The emoji offered for a reaction.
const EMOJI: [&str; 5] = ["👏", "🎉", "💡", "❤️", "🙌"];

/// What every page's frame shows.
struct Frame<'a> {
    web: &'a Web,
    team: &'a TeamState,
    version: String,
    /// The page's own address, to come back to after a form.
    here: String,
    /// Whether the team belongs to an organisation, whose page the navigation then links.
    org: bool,
}

/// A page with nothing but a title and a sentence: refusals and errors.
pub fn bare(title: &str, what: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cairn" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                main.bare {
                    h1 { (title) }
                    p { (what) }
                }
            }
        }
    }
}

/// A page that goes on to `to` (a path of this site) at once.
pub fn onward(to: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0; url={to}"));
                title { "cairn web" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                main.bare {
                    p { a href=(to) { "Go on to cairn web" } }
                }
            }
        }
    }
}

fn layout(f: &Frame, title: &str, current: &str, body: Markup) -> Markup {
    let screen = f.web.screen;
    let mut nav = vec![
        ("/feed", "Feed"),
        ("/streaks", "Streaks"),
        ("/team", "Team"),
        ("/digest", "Digest"),
    ];
    if !screen && f.org {
        nav.push(("/org", "Organisation"));
    }
    if !screen {
        nav.push(("/me", "Me"));
    }
    let sync = f.web.sync_status();
    let shown = f.web.shown_team();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                @if screen {
                    // Refreshes by itself, even without JavaScript.
                    meta http-equiv="refresh" content="60";
                }
                title { (title) " · " (f.team.name) " · cairn" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/app.js" defer {}
            }
            body.screen[screen] data-version=(f.version) {
                a.skip href="#main" { "Skip to the page" }
                header.top {
                    p.team { (f.team.name) }
                    @let teams = f.web.teams();
                    @if teams.len() > 1 && !screen {
                        form.switch method="post" action="/switch" {
                            input type="hidden" name="csrf" value=(f.web.form_token());
                            label for="switch-team" { "Team" }
                            select #switch-team name="team" {
                                @for (id, name) in &teams {
                                    option value=(id) selected[Some(id) == shown.as_ref()] { (name) }
                                }
                            }
                            button type="submit" { "Switch" }
                        }
                    }
                    nav aria-label="Pages" {
                        ul {
                            @for (href, name) in &nav {
                                li {
                                    a href=(href) aria-current=[(*href == current).then_some("page")] { (name) }
                                }
                            }
                        }
                    }
                }
                p #news .news hidden role="status" {
                    "New events arrived. "
                    a href=(f.here) { "Show them" }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
                footer.bottom {
                    @if sync.offline {
                        "This team lives on this device alone."
                    } @else if let Some(e) = &sync.last_error {
                        span.warn { "Last sync failed: " (e) }
                    } @else if let Some(ms) = sync.last_ok_ms {
                        "Synced " (ago(jiff::Timestamp::now().as_millisecond(), ms)) "."
                    } @else {
                        "Syncing…"
                    }
                    @if screen { " Team screen: team views only." }
                }
            }
        }
    }
}

/// The name of a member for people: their name, their handle on hover.
fn who(team: &TeamState, id: &str) -> Markup {
    let handle = team.handle_of(id);
    let name = team.member(id).map_or(handle, |m| m.name.as_str());
    // Someone of another team (`@cy@mobile`) is named by that label.
    let title = if handle.starts_with('@') {
        handle.to_owned()
    } else {
        format!("@{handle}")
    };
    html! { span.who title=(title) { (name) } }
}

fn hidden(web: &Web, back: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(web.form_token());
        input type="hidden" name="back" value=(back);
    }
}

/// An error shown beside a field, tied to it for screen readers.
fn field_error(id: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error id=(id) role="alert" { (m) }
        }
    }
}

fn pillar_options(team: &TeamState, chosen: Option<&str>, none: &str) -> Markup {
    html! {
        option value="" { (none) }
        @for p in &team.pillars {
            option value=(p.name) selected[chosen.is_some_and(|c| c.eq_ignore_ascii_case(&p.name) || c == p.id)] {
                (p.name)
            }
        }
    }
}

struct Reader<'a> {
    ctx: Ctx,
    replica: std::sync::MutexGuard<'a, cairn_store::Replica>,
    team: TeamState,
    me: String,
}

fn open(web: &Web) -> Result<Reader<'_>> {
    let ctx = web.ctx()?;
    let replica = web.replica();
    let team = replica.team()?;
    let me = ctx.actor(&replica, &team)?;
    Ok(Reader {
        ctx,
        replica,
        team,
        me,
    })
}

impl Reader<'_> {
    fn frame<'a>(&'a self, web: &'a Web, here: String) -> Result<Frame<'a>> {
        Ok(Frame {
            web,
            team: &self.team,
            version: web.version_of(&self.replica)?,
            here,
            org: cairn_client::sync::org::org(&self.replica, &self.ctx.home)?.is_some(),
        })
    }
}

/// The address of `path` with `q`'s values and `set` replacing theirs (an empty value in `set`
/// takes its key out).
fn address(path: &str, q: &Params, set: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        q.0.iter()
            .filter(|(k, v)| {
                k != "done" && k != "key" && !v.trim().is_empty() && set.iter().all(|(s, _)| s != k)
            })
            .cloned()
            .collect();
    pairs.extend(
        set.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), v.clone())),
    );
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

pub fn feed(web: &Web, q: &Params, sent: &Sent) -> Result<Markup> {
    let r = open(web)?;
    let team = &r.team;
    let today = r.ctx.today(&team.tz);
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let mut filter_error: Option<String> = None;
    let mut keep = |e: CliError| {
        filter_error.get_or_insert(e.message);
    };
    let pillar = q.get("pillar").and_then(|p| {
        team.pillar(p)
            .map(|p| p.id.clone())
            .map_err(|e| keep(e.into()))
            .ok()
    });
    let member = q.get("member").and_then(|h| {
        team.member_by_handle(h)
            .map(|m| m.id.clone())
            .map_err(|e| keep(e.into()))
            .ok()
    });
    let since = q.get("since").and_then(|s| {
        parse_day(s, today)
            .map(|d| d.to_string())
            .map_err(&mut keep)
            .ok()
    });
    let before = q
        .get("before")
        .and_then(|b| r.replica.resolve_id(b).map_err(|e| keep(e.into())).ok());
    let filtered = pillar.is_some() || member.is_some() || since.is_some();
    let paged = before.is_some();
    let page = if filter_error.is_some() {
        FeedPage {
            items: Vec::new(),
            more: false,
        }
    } else {
        r.replica.feed_page(&FeedQuery {
            limit: Some(limit),
            pillar,
            member,
            since,
            before,
            ..FeedQuery::default()
        })?
    };
    let next = page.next_before().map(|id| id.as_str().to_owned());
    let items = page.items;
    let origins = Origin::of_items(&r.replica, &items)?;
    let here = address("/feed", q, &[]);
    let frame = r.frame(web, here.clone())?;
    let now = r.ctx.now_ms();
    let screen = web.screen;
    let body = html! {
        @if let Some(done) = q.get("done") {
            p.flash role="status" { "Done: " (done) "." }
        }
        @if !screen {
            (write_forms(web, &r, q, sent, &here))
        }
        (filters(team, q, filter_error.as_deref()))
        @if let Some(m) = sent.general_error("react", &[]).or(sent.general_error("retract", &[])) {
            p.error role="alert" { (m) }
        }
        @if items.is_empty() {
            p.empty {
                @if filtered || filter_error.is_some() {
                    "Nothing matches these filters. "
                    a href="/feed" { "Show everything" }
                } @else if paged {
                    "Nothing older: this is where the feed begins. "
                    a href=(address("/feed", q, &[("before", String::new())])) { "Newest" }
                } @else {
                    "Nothing here yet. Add the first stone: log something you did for the team."
                }
            }
        } @else {
            ol.feed {
                @for (item, origin) in items.iter().zip(&origins) {
                    (feed_item(web, &r, item, *origin, now, &here))
                }
            }
            // A page at a time, by the id of the last one shown: older pages cost what the
            // first does, and none is ever cut short.
            @if next.is_some() || paged {
                p.more {
                    @if paged {
                        a href=(address("/feed", q, &[("before", String::new())])) { "Newest" }
                    }
                    @if let Some(next) = &next {
                        @if paged { " · " }
                        a href=(address("/feed", q, &[("before", next.clone())])) rel="next" {
                            "Older"
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&frame, "Feed", "/feed", body))
}

fn write_forms(web: &Web, r: &Reader, q: &Params, sent: &Sent, here: &str) -> Markup {
    let team = &r.team;
    let log_text = sent.error_for("log", Input::Text);
    let log_pillar = sent.error_for("log", Input::Pillar);
    let log_other = sent.general_error("log", &[Input::Text, Input::Pillar]);
    let k_members = sent.error_for("kudos", Input::Members);
    let k_text = sent.error_for("kudos", Input::Text);
    let k_pillar = sent.error_for("kudos", Input::Pillar);
    let k_other = sent.general_error("kudos", &[Input::Text, Input::Pillar, Input::Members]);
    let chosen: Vec<&str> = if sent.form == "kudos" {
        sent.values.all("to")
    } else {
        q.all("to")
    };
    let chosen: Vec<String> = chosen
        .iter()
        .map(|h| h.trim().trim_start_matches('@').to_lowercase())
        .collect();
    html! {
        div.write {
            form #log .card method="post" action="/log" {
                h2 { "Log a micro-action" }
                (hidden(web, here))
                (text_field(sent, "log", "What you did", log_text,
                    "Paired with a new teammate on their first review"))
                div.row {
                    (pillar_field(team, sent, "log", log_pillar))
                    div.grow {
                        label for="log-why" { "Why it mattered " span.opt { "(optional)" } }
                        input #log-why type="text" name="why" value=[sent.value("log", "why")];
                    }
                }
                div.row {
                    label.check {
                        input type="checkbox" name="yesterday" value="1"
                            checked[sent.value("log", "yesterday").is_some()];
                        " It happened yesterday"
                    }
                    button type="submit" { "Log it" }
                }
                (field_error("log-error", log_other))
            }
            form #kudos .card method="post" action="/kudos" {
                h2 { "Give kudos" }
                (hidden(web, here))
                fieldset aria-invalid=[k_members.map(|_| "true")]
                    aria-describedby=[k_members.map(|_| "kudos-to-error")] {
                    legend { "To" }
                    div.people {
                        @for m in team.members.iter().filter(|m| m.id != r.me) {
                            label.check {
                                input type="checkbox" name="to" value=(m.handle)
                                    checked[chosen.contains(&m.handle)];
                                " " (m.name) " " span.handle { "@" (m.handle) }
                            }
                        }
                        @if team.members.len() < 2 {
                            p.empty { "Nobody else is on the team yet." }
                        }
                    }
                }
                (field_error("kudos-to-error", k_members))
                (text_field(sent, "kudos", "What they did", k_text,
                    "Thanks for the calm incident write-up"))
                div.row {
                    (pillar_field(team, sent, "kudos", k_pillar))
                    button type="submit" { "Give kudos" }
                }
                (field_error("kudos-error", k_other))
            }
        }
    }
}

/// The required text field of `form` (`FORM-text`), with its error beside it.
fn text_field(
    sent: &Sent,
    form: &str,
    label: &str,
    error: Option<&str>,
    placeholder: &str,
) -> Markup {
    let id = format!("{form}-text");
    let error_id = format!("{id}-error");
    html! {
        label for=(id) { (label) }
        input #(id) type="text" name="text" required
            value=[sent.value(form, "text")]
            aria-invalid=[error.map(|_| "true")]
            aria-describedby=[error.map(|_| error_id.as_str())]
            placeholder=(placeholder);
        (field_error(&error_id, error))
    }
}

/// The pillar choice of `form` (`FORM-pillar`), with its error beside it.
fn pillar_field(team: &TeamState, sent: &Sent, form: &str, error: Option<&str>) -> Markup {
    let id = format!("{form}-pillar");
    let error_id = format!("{id}-error");
    html! {
        div {
            label for=(id) { "Pillar" }
            select #(id) name="pillar"
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| error_id.as_str())] {
                (pillar_options(team, sent.value(form, "pillar"), "no pillar"))
            }
            (field_error(&error_id, error))
        }
    }
}

fn filters(team: &TeamState, q: &Params, error: Option<&str>) -> Markup {
    let periods = [
        ("", "any time"),
        ("today", "today"),
        ("7d", "the last 7 days"),
        ("30d", "the last 30 days"),
        ("90d", "the last 90 days"),
    ];
    let since = q.get("since").unwrap_or("");
    let member = q
        .get("member")
        .map(|m| m.trim_start_matches('@').to_lowercase());
    html! {
        form.filters method="get" action="/feed" aria-label="Filters" {
            label for="f-pillar" { "Pillar" }
            select #f-pillar name="pillar" {
                (pillar_options(team, q.get("pillar"), "any"))
            }
            label for="f-member" { "Member" }
            select #f-member name="member" {
                option value="" { "anyone" }
                @for m in &team.members {
                    option value=(m.handle) selected[member.as_deref() == Some(m.handle.as_str())] { (m.name) }
                }
            }
            label for="f-since" { "Since" }
            select #f-since name="since" {
                @for (v, name) in periods {
                    option value=(v) selected[since == v] { (name) }
                }
                @if !since.is_empty() && periods.iter().all(|(v, _)| *v != since) {
                    option value=(since) selected { (since) }
                }
            }
            button type="submit" { "Filter" }
            (field_error("filter-error", error))
        }
    }
}

fn feed_item(
    web: &Web,
    r: &Reader,
    item: &FeedItem,
    origin: Origin,
    now: i64,
    here: &str,
) -> Markup {
    let team = &r.team;
    let e = &item.event;
    let mine = e.author == r.me && origin == Origin::Team;
    // Someone outside the team (a steward of the organisation) goes by the label given.
    let who = |team: &TeamState, id: &str| match origin {
        Origin::Team => who(team, id),
        Origin::Org | Origin::Outside => html! { span.who { (person(team, id)) } },
    };
    let at = jiff::Timestamp::from_millisecond(e.at_ms).ok();
    let exact = at.map(|t| {
        t.to_zoned(jiff::tz::TimeZone::get(&team.tz).unwrap_or(jiff::tz::TimeZone::UTC))
            .strftime("%a %-d %b %Y, %H:%M")
            .to_string()
    });
    let pillar = e
        .pillar
        .as_ref()
        .map(|p| team.pillar(p).map_or(p.clone(), |p| p.name.clone()));
    let present: Vec<&str> = item.reactions.iter().map(|r| r.emoji.as_str()).collect();
    html! {
        li.item.kudos[e.kind == Kind::Kudos].team[e.kind == Kind::Team] data-id=(e.id.as_str()) {
            article {
                p.head {
                    (who(team, &e.author))
                    @if e.kind == Kind::Team && origin == Origin::Org {
                        span.note { " changed the organisation" }
                    } @else if e.kind == Kind::Team {
                        span.note { " changed the team" }
                    }
                    @if e.kind == Kind::Kudos {
                        span.to {
                            " recognised "
                            @for (i, m) in e.to.iter().enumerate() {
                                @if i > 0 { ", " }
                                (who(team, m))
                            }
                        }
                    }
                    @if let Some(p) = &pillar {
                        " " span.pillar { "#" (p) }
                    }
                    " "
                    time datetime=[at.map(|t| t.to_string())] title=[exact] { (ago(now, e.at_ms)) }
                    @if e.late { " " span.note { "for " (e.date) } }
                    @if e.edited_ms.is_some() { " " span.note { "edited" } }
                }
                p.text { (e.text) }
                @if let Some(why) = &e.why {
                    p.why { "Why: " (why) }
                }
                // (By its id: the organisation's page, `/org`, names each with its title.)
                @if let Some(h) = &e.honours {
                    p.why { "Honours the organisation's non-negotiable " code { (h) } }
                }
                div.actions {
                    // What came from outside the team is read-only here.
                    @if web.screen || origin != Origin::Team {
                        @for rx in &item.reactions {
                            span.reaction { (rx.emoji) " " (rx.by.len()) }
                        }
                    } @else {
                        form.react method="post" action="/react" {
                            (hidden(web, here))
                            input type="hidden" name="id" value=(e.id.as_str());
                            @for rx in &item.reactions {
                                @let by: Vec<String> = rx.by.iter().map(|m| format!("@{}", team.handle_of(m))).collect();
                                button.reaction type="submit" name="emoji" value=(rx.emoji)
                                    aria-pressed=(if rx.by.contains(&r.me) { "true" } else { "false" })
                                    title=(by.join(", ")) {
                                    (rx.emoji) " " (rx.by.len())
                                }
                            }
                            @for em in EMOJI.iter().filter(|em| !present.contains(em)) {
                                button.add type="submit" name="emoji" value=(em)
                                    aria-label=(format!("React with {em}")) { (em) }
                            }
                        }
                        @if mine && e.kind != Kind::Team {
                            a.edit href=(format!("/event/{}/edit", e.id.as_str())) { "Edit" }
                            form.retract method="post" action="/retract" {
                                (hidden(web, here))
                                input type="hidden" name="id" value=(e.id.as_str());
                                button type="submit" data-confirm="Retract this? It leaves the feed on every device." {
                                    "Retract"
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn streaks(web: &Web, q: &Params) -> Result<Markup> {
    let r = open(web)?;
    let team = &r.team;
    let today = r.ctx.today(&team.tz);
    let weeks = q
        .get("weeks")
        .and_then(|w| w.parse::<u32>().ok())
        .unwrap_or(12)
        .clamp(1, 53);
    let model = streaks_model(web, &r, today, weeks)?;
    let (ts, personal, map) = (&model.team, &model.personal, &model.heatmap);
    let (one, many) = match ts.cadence {
        Cadence::Weekly => ("week", "weeks"),
        Cadence::Daily => ("day", "days"),
    };
    let unit = |n: u32| if n == 1 { one } else { many };
    let frame = r.frame(web, address("/streaks", q, &[]))?;
    let body = html! {
        div.cards {
            section.card.big aria-labelledby="team-streak" {
                h2 #team-streak { "Team streak" }
                p.figure { (ts.current) " " span { (unit(ts.current)) } }
                p { "Best " (ts.best) " " (unit(ts.best)) "." }
                p {
                    @match ts.consistency {
                        Some(c) => { "Consistency " (format!("{:.0}%", c * 100.0)) ": " (ts.counted) " of " (ts.periods) " " (unit(ts.periods)) " counted." }
                        None => { "Its first " (one) " is not over yet." }
                    }
                }
                p.dim {
                    @if ts.needed_now == 0 {
                        "No " (one) " to count today."
                    } @else if ts.active_now >= ts.needed_now {
                        "This " (one) " already counts."
                    } @else {
                        "This " (one) ": " (ts.active_now) " of the " (count(ts.needed_now, "member", "members")) " it needs so far."
                    }
                }
            }
            @if !web.screen {
                section.card aria-labelledby="your-streak" {
                    h2 #your-streak { "Your streak" }
                    p.figure { (personal.current) " " span { (if personal.current == 1 { "day" } else { "days" }) } }
                    p { "Best " (personal.best) "; "
                        (personal.freezes_left) (if personal.freezes_left == 1 { " freeze" } else { " freezes" }) " left." }
                    @if !personal.active_today { p.dim { "Nothing logged today yet." } }
                    p.dim { "Yours alone: nobody else sees it." }
                }
            }
        }
        section aria-labelledby="activity" {
            h2 #activity { "Team activity" }
            p.dim { "Members active per day, " (count(map.weeks, "week", "weeks")) " from " (map.start) "." }
            (heatmap(map, today))
        }
    };
    Ok(layout(&frame, "Streaks", "/streaks", body))
}

/// What the streaks page shows.
fn streaks_model(
    web: &Web,
    r: &Reader,
    today: Date,
    weeks: u32,
) -> Result<std::sync::Arc<views::Streaks>> {
    web.derive_from_queries(
        &r.replica,
        View::Streaks {
            today,
            me: r.me.clone(),
            weeks,
        },
        || Ok(views::streaks(&r.replica, &r.team, &r.me, today, weeks)?),
    )
}

/// The heatmap as SVG: a column per week, a row per weekday, months above, weeks below, today
/// outlined.
fn heatmap(map: &Heatmap, today: Date) -> Markup {
    const CELL: i32 = 22;
    const GAP: i32 = 4;
    const LEFT: i32 = 36;
    const TOP: i32 = 20;
    let weeks = map.weeks as i32;
    let width = LEFT + weeks * (CELL + GAP) + 4;
    let height = TOP + 7 * (CELL + GAP) + 22;
    let level = |n: u32| -> u32 {
        if n == 0 || map.max == 0 {
            0
        } else {
            (n * 4).div_ceil(map.max).clamp(1, 4)
        }
    };
    let monday = |w: i32| map.start.checked_add((7 * w as i64).days()).ok();
    let names = ["Mon", "", "Wed", "", "Fri", "", "Sun"];
    let every = if weeks > 26 {
        4
    } else if weeks > 13 {
        2
    } else {
        1
    };
    html! {
        figure.heatmap {
            svg viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height)
                role="img" aria-labelledby="heatmap-title" {
                title #heatmap-title { "Members active per day, " (count(map.weeks, "week", "weeks")) " from " (map.start) }
                text.label x="0" y=(TOP + 7 * (CELL + GAP) + 14) { "week" }
                @for (i, n) in names.iter().enumerate() {
                    @if !n.is_empty() {
                        text.label x="0" y=(TOP + i as i32 * (CELL + GAP) + CELL - 4) { (n) }
                    }
                }
                @for w in 0..weeks {
                    @let x = LEFT + w * (CELL + GAP);
                    @if let Some(m) = monday(w) {
                        // The month's name above its first week.
                        @if w == 0 || monday(w - 1).is_some_and(|p| p.month() != m.month()) {
                            text.label x=(x) y="12" { (m.strftime("%b")) }
                        }
                        @if w % every == 0 {
                            text.label.week x=(x) y=(TOP + 7 * (CELL + GAP) + 14) {
                                (m.iso_week_date().week())
                            }
                        }
                    }
                    @for d in 0..7 {
                        @let i = (w * 7 + d) as usize;
                        @if let Some(n) = map.cells.get(i).copied().flatten() {
                            @let date = map.start.checked_add((i as i64).days()).ok();
                            @let is_today = date == Some(today);
                            rect class=(format!("l{}{}", level(n), if is_today { " today" } else { "" }))
                                x=(x) y=(TOP + d * (CELL + GAP)) width=(CELL) height=(CELL) rx="3" {
                                title {
                                    @if let Some(date) = date { (date.strftime("%a %-d %b %Y")) ": " }
                                    (n) (if n == 1 { " member" } else { " members" })
                                    @if is_today { " (today)" }
                                }
                            }
                        }
                    }
                }
            }
            figcaption {
                "Less "
                @for l in 0..5 { span class=(format!("swatch l{l}")) aria-hidden="true" {} " " }
                "more (at most " (map.max) (if map.max == 1 { " member" } else { " members" }) " a day). "
                span.today-key aria-hidden="true" {} " today"
            }
        }
    }
}

pub fn team(web: &Web) -> Result<Markup> {
    let mut r = open(web)?;
    let org = views::org(&mut r.replica, &r.ctx.home)?;
    let team = &r.team;
    let today = r.ctx.today(&team.tz);
    let model = team_model(web, &r, today)?;
    let TeamModel {
        team_badges,
        reach,
        mine,
        progress,
    } = &*model;
    // Ended challenges leave the team view (`cairn challenges --all` keeps them).
    let challenges: Vec<_> = team
        .challenges
        .iter()
        .zip(progress)
        .filter(|(c, _)| c.until >= today)
        .collect();
    let frame = r.frame(web, "/team".into())?;
    let body = html! {
        div.cards {
            section.card aria-labelledby="members" {
                h2 #members { "Members " span.dim { "(" (team.members.len()) ")" } }
                ul.plain {
                    @for m in &team.members {
                        li {
                            (m.name) " " span.handle { "@" (m.handle) }
                            @if !web.screen && m.id == r.me { " " span.dim { "(you)" } }
                        }
                    }
                }
            }
            section.card aria-labelledby="pillars" {
                h2 #pillars { "Pillars" }
                dl {
                    @for p in &team.pillars {
                        dt { span.pillar { "#" (p.name) } }
                        dd { (p.about.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        section aria-labelledby="commitments" {
            h2 #commitments { "Commitments" }
            @if team.commitments.is_empty() {
                p.empty { "None yet. A commitment is one of the team's non-negotiables, with its why." }
            }
            ul.commitments {
                @for c in &team.commitments {
                    li { strong { (c.text) } br; span.why { "Why: " (c.why) } }
                }
            }
        }
        @if let Some(org) = &org {
            (non_negotiables(org))
        }
        section aria-labelledby="challenges" {
            h2 #challenges { "Challenges" }
            @if challenges.is_empty() {
                p.empty { "No challenges yet." }
            }
            ul.challenges {
                @for (c, p) in &challenges {
                    li {
                        p { strong { (c.title) } " " span.dim { (p.value) " of " (p.target) " " (c.metric.as_str()) } }
                        progress value=(p.value.min(p.target)) max=(p.target) aria-label=(c.title) {
                            (p.value) " of " (p.target)
                        }
                        p.dim {
                            @if p.done { "Done!" }
                            @else if p.ended { "Ended " (c.until) "." }
                            @else if today < c.start { "Starts " (c.start) "." }
                            @else {
                                @let days = (c.until - today).get_days() + 1;
                                (days) (if days == 1 { " day left" } else { " days left" })
                            }
                        }
                    }
                }
            }
        }
        div.cards {
            section.card aria-labelledby="team-badges" {
                h2 #team-badges { "Team badges" }
                (badges(team_badges, "The first stone earns one."))
                p { "Reach: " (reach.recognised) " of " (count(reach.members, "member", "members")) " recognised in the last 30 days." }
            }
            @if let Some(mine) = &mine {
                section.card aria-labelledby="your-badges" {
                    h2 #your-badges { "Your badges " span.dim { "(yours alone)" } }
                    (badges(mine, "A first kudos earns one."))
                }
            }
        }
    };
    Ok(layout(&frame, "Team", "/team", body))
}

/// The organisation's non-negotiables in force, read-only, each with the team's own how.
fn non_negotiables(org: &views::OrgView) -> Markup {
    html! {
        section aria-labelledby="non-negotiables" {
            h2 #non-negotiables { "Non-negotiables of " (org.name) }
            p.dim { "Set by the organisation's stewards; each team writes its own how." }
            @if org.non_negotiables.is_empty() {
                p.empty { "None yet." }
            }
            ul.commitments {
                @for n in &org.non_negotiables {
                    li {
                        strong { (n.title) } br;
                        span.why { "Why: " (n.why) } br;
                        @match &n.how {
                            Some(how) => { span.how { "Our how: " (how) } }
                            None => {
                                span.dim {
                                    "Our how is not written yet: "
                                    code { "cairn org practice " (n.id) " \"…\"" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the team page counts.
struct TeamModel {
    team_badges: Vec<goals::Badge>,
    reach: goals::Reach,
    /// Yours, shown to you alone (none on the team screen).
    mine: Option<Vec<goals::Badge>>,
    /// Each challenge's, in the team's order.
    progress: Vec<goals::Progress>,
}

fn team_model(web: &Web, r: &Reader, today: Date) -> Result<std::sync::Arc<TeamModel>> {
    let team = &r.team;
    let key = View::Team {
        today,
        me: r.me.clone(),
        screen: web.screen,
    };
    web.derive(&r.replica, key, |acts| {
        let mine = (!web.screen).then_some(r.me.as_str());
        let views::Badges {
            team: team_badges,
            mine,
            reach,
        } = views::badges(team, mine, acts, today);
        Ok(TeamModel {
            team_badges,
            reach,
            mine,
            progress: team
                .challenges
                .iter()
                .map(|c| goals::progress(acts, c, today))
                .collect(),
        })
    })
}

fn badges(list: &[goals::Badge], first: &str) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "None yet. " (first) }
        }
        ul.badges {
            @for b in list {
                li { strong { (b.name) } " " (b.about) " " span.dim { "(" (b.earned) ")" } }
            }
        }
    }
}

pub fn digest(web: &Web, q: &Params) -> Result<Markup> {
    let mut r = open(web)?;
    let org = views::org(&mut r.replica, &r.ctx.home)?;
    let team = &r.team;
    let today = r.ctx.today(&team.tz);
    let month = q.get("period") == Some("month");
    let last = q.get("last").is_some();
    let v = digest_model(web, &r, today, Period { month, last })?;
    // (Read apart from the model kept: it is the organisation's replica's, not the team's.)
    let v = (*v).clone().with_org(org.as_ref());
    let md = digest_cmd::render(&v, true).join("\n");
    let frame = r.frame(web, address("/digest", q, &[]))?;
    let choices = [
        ("This week", false, false),
        ("Last week", false, true),
        ("This month", true, false),
        ("Last month", true, true),
    ];
    let body = html! {
        nav.periods aria-label="Periods" {
            ul {
                @for (name, m, l) in choices {
                    @let href = match (m, l) {
                        (false, false) => "/digest".to_owned(),
                        (false, true) => "/digest?last=1".to_owned(),
                        (true, false) => "/digest?period=month".to_owned(),
                        (true, true) => "/digest?period=month&last=1".to_owned(),
                    };
                    li { a href=(href) aria-current=[(m == month && l == last).then_some("page")] { (name) } }
                }
            }
        }
        article.digest {
            (digest_html(&v))
        }
        @if !web.screen {
            section aria-labelledby="paste" {
                h2 #paste { "Ready to paste into a retro" }
                textarea #digest-md readonly rows="12" aria-labelledby="paste" { (md) }
                button type="button" .copy data-copy="digest-md" hidden { "Copy" }
            }
        }
    };
    Ok(layout(&frame, "Digest", "/digest", body))
}

fn digest_model(
    web: &Web,
    r: &Reader,
    today: Date,
    period: Period,
) -> Result<std::sync::Arc<DigestView>> {
    web.derive(&r.replica, View::Digest { today, period }, |acts| {
        let d = views::digest(&r.replica, &r.team, today, period, acts)?;
        Ok(DigestView::new(&d, &r.team))
    })
}

/// The digest from its model: the title, the summary, and each section's items.
fn digest_html(v: &DigestView) -> Markup {
    html! {
        h2 { (v.title) }
        p { (v.summary) }
        @for s in &v.sections {
            h3 { (s.title) }
            @if !s.items.is_empty() {
                ul { @for i in &s.items { li { (i) } } }
            }
        }
    }
}

/// How many items of the organisation's feed a page shows.
const ORG_FEED_PAGE: usize = 30;

/// What a steward sees of the teams' shared figures: the week's, the weeks to choose from,
/// and the week's digest lines.
struct StewardFigures {
    view: cairn_core::OrgFigures,
    weeks: Vec<String>,
    extras: cairn_client::orgview::Extras,
}

/// The organisation's page: its name, its non-negotiables with this team's how, its feed, and
/// for a steward the figures its teams share of a week (`?week=2026-W49`) with that week's
/// digest. `None` for a team of no organisation.
pub fn org(web: &Web, q: &Params) -> Result<Option<Markup>> {
    use cairn_client::{orgview, shared, write};
    let week = q.get("week");
    if let Some(w) = week
        && cairn_core::figures::parse_week(w).is_none()
    {
        return Err(CliError::new(format!(
            "`{w}` is not an ISO week: write it like 2026-W49"
        )));
    }
    let mut r = open(web)?;
    let Some(held) = cairn_client::sync::org::org(&r.replica, &r.ctx.home)? else {
        return Ok(None);
    };
    let Some(view) = views::org(&mut r.replica, &r.ctx.home)? else {
        return Ok(None);
    };
    // Before the organisation's first sync, this device holds nothing of it.
    let mut replica = if held.path.exists() {
        Some(held.open()?)
    } else {
        None
    };
    let state = match &mut replica {
        Some(o) => write::org_state(o)?,
        None => cairn_core::OrgState::default(),
    };
    let before = q.get("before");
    let feed = orgview::feed(&state, replica.as_ref(), before, ORG_FEED_PAGE)?;
    let steward = held.org.steward;
    let figures = match (&replica, steward) {
        (Some(o), true) => {
            let teams = orgview::teams(o)?;
            let view = shared::view(o, &teams, week)?;
            let extras = match &view.week {
                Some(w) => orgview::digest_extras(&state, o, w)?,
                None => orgview::Extras::default(),
            };
            Some(StewardFigures {
                weeks: orgview::weeks(o, &teams)?,
                view,
                extras,
            })
        }
        _ => None,
    };
    let share = if steward {
        None
    } else {
        Some(shared::share(&mut r.replica)?)
    };
    let now = r.ctx.now_ms();
    let name = &held.org.name;
    let frame = r.frame(web, address("/org", q, &[]))?;
    let body = html! {
        p.dim {
            "The organisation " (r.team.name) " belongs to"
            @if steward { "; you are one of its stewards" }
            "."
        }
        (non_negotiables(&view))
        section aria-labelledby="figures" {
            h2 #figures { "What the teams share" }
            @if let Some(f) = &figures {
                (org_figures(name, f, &state))
            } @else if steward {
                p.empty { "This device has not synced " (name) " yet: run " code { "cairn sync" } "." }
            } @else {
                p { "The figures the teams of " (name) " share are for its stewards." }
                p {
                    @if share == Some(cairn_core::Share::Weekly) {
                        "Your team shares its weekly figures with " (name) ": counts of each week once it is over, never a number about one person. "
                        span.dim { "(" code { "cairn team share nothing" } " takes them back.)" }
                    } @else {
                        "Your team shares nothing with " (name) ". "
                        span.dim { "(" code { "cairn team share weekly" } " shares its weekly figures, never a number about one person.)" }
                    }
                }
            }
        }
        section aria-labelledby="org-feed" {
            h2 #org-feed { "The organisation's feed" }
            p.dim { "The stewards' changes to the non-negotiables and the recognitions across its teams, newest first." }
            @if feed.items.is_empty() {
                p.empty {
                    @if before.is_some() {
                        "Nothing older: this is where the feed begins. "
                        a href="/org#org-feed" { "Newest" }
                    } @else {
                        "Nothing yet: thank someone of another team with "
                        code { "cairn kudos @handle@team \"…\"" } "."
                    }
                }
            } @else {
                ol.feed {
                    @for item in &feed.items {
                        (org_item(&state, item, now))
                    }
                }
                @if feed.more || before.is_some() {
                    p.more {
                        @if before.is_some() {
                            a href=(address("/org", q, &[("before", String::new())])) { "Newest" }
                        }
                        @if let Some(last) = feed.items.last().filter(|_| feed.more) {
                            @if before.is_some() { " · " }
                            a href=(address("/org", q, &[("before", last.id().as_str().to_owned())])) rel="next" { "Older" }
                        }
                    }
                }
            }
        }
    };
    Ok(Some(layout(&frame, name, "/org", body)))
}

/// The teams' figures of the week shown, for a steward: a week to choose, a table of the teams
/// by name (never ranked), the organisation's sums, and the week's digest.
fn org_figures(name: &str, f: &StewardFigures, state: &cairn_core::OrgState) -> Markup {
    let v = &f.view;
    let mut weeks = f.weeks.clone();
    if let Some(w) = &v.week
        && !weeks.contains(w)
    {
        weeks.insert(0, w.clone());
    }
    let row = |w: &cairn_core::WeekFigures| {
        html! {
            td { (w.members) }
            td { (w.active) }
            td { (w.consistency) }
            td { (w.acts) }
            td { (w.actions) }
            td { (w.kudos) }
            td { (w.reach_within) }
            td { (w.reach_across) }
        }
    };
    html! {
        p.dim {
            "Only what each team chose to share (" code { "cairn team share weekly" } "): counts of a week once it is over, never a number about one person. Teams are listed by name, never ranked."
        }
        @if !weeks.is_empty() {
            form.filters method="get" action="/org" aria-label="Week" {
                label for="org-week" { "Week" }
                select #org-week name="week" {
                    @for w in &weeks {
                        option value=(w) selected[v.week.as_ref() == Some(w)] { (w) }
                    }
                }
                button type="submit" { "Show" }
            }
        }
        @match &v.week {
            None => {
                p.empty { "No team of " (name) " shares its figures yet." }
                ul.plain {
                    @for t in &v.teams {
                        li { strong { (t.name) } " " span.dim { "shares nothing" } }
                    }
                }
            }
            Some(week) => {
                div.scroll {
                    table.figures {
                        caption { "The teams of " (name) ", week " (week) }
                        thead {
                            tr {
                                th scope="col" { "Team" }
                                th scope="col" { "Members" }
                                th scope="col" { "Active" }
                                th scope="col" { "Active days" }
                                th scope="col" { "Acts" }
                                th scope="col" { "Micro-actions" }
                                th scope="col" { "Kudos" }
                                th scope="col" { "Recognised within the team" }
                                th scope="col" { "Recognitions across teams" }
                            }
                        }
                        tbody {
                            @for t in &v.teams {
                                tr {
                                    th scope="row" { (t.name) }
                                    @match &t.shared {
                                        Some(w) => { (row(w)) }
                                        None if t.share == cairn_core::Share::Nothing => {
                                            td.dim colspan="8" { "shares nothing" }
                                        }
                                        None => { td.dim colspan="8" { "shared nothing for that week" } }
                                    }
                                }
                            }
                        }
                        @if let Some(total) = &v.total {
                            tfoot {
                                tr {
                                    th scope="row" {
                                        (name) " "
                                        span.dim { "(" (count(total.teams, "team", "teams")) " sharing)" }
                                    }
                                    (row(&total.figures))
                                }
                            }
                        }
                    }
                }
                @if let Some(total) = &v.total {
                    @if !total.figures.pillars.is_empty() {
                        p {
                            "Per pillar: "
                            @for (i, (pillar, n)) in total.figures.pillars.iter().enumerate() {
                                @if i > 0 { ", " }
                                span.pillar { "#" (pillar) } " " (n)
                            }
                        }
                    }
                    @if !total.figures.non_negotiables.is_empty() {
                        ul.plain {
                            @for (id, n) in &total.figures.non_negotiables {
                                li {
                                    "“" (state.commitment(id).map_or(id.as_str(), |c| c.title.as_str())) "”: "
                                    (count(*n, "act", "acts"))
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="org-digest" {
                    h3 #org-digest { "Digest of week " (week) }
                    p { "Recognitions across teams: " (f.extras.across) }
                    @if f.extras.notes.is_empty() {
                        p.empty { "No change to the non-negotiables that week." }
                    } @else {
                        p { "Changes to the non-negotiables:" }
                        ul { @for n in &f.extras.notes { li { (n) } } }
                    }
                }
            }
        }
    }
}

/// One item of the organisation's feed, read-only.
fn org_item(state: &cairn_core::OrgState, item: &cairn_client::orgview::Item, now: i64) -> Markup {
    use cairn_client::orgview::Item;
    let at_ms = item.at_ms();
    let at = jiff::Timestamp::from_millisecond(at_ms).ok();
    html! {
        li.item.kudos[matches!(item, Item::Kudos(_))].team[matches!(item, Item::Note(_))] data-id=(item.id().as_str()) {
            article {
                @match item {
                    Item::Note(n) => {
                        p.head {
                            span.who { (n.by) } span.note { " changed the organisation" } " "
                            time datetime=[at.map(|t| t.to_string())] { (ago(now, at_ms)) }
                        }
                        p.text { (n.text()) }
                    }
                    Item::Kudos(c) => {
                        p.head {
                            span.who { (c.from.label()) }
                            span.to {
                                " recognised "
                                @for (i, p) in c.to.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    span.who { (p.label()) }
                                }
                            }
                            " "
                            time datetime=[at.map(|t| t.to_string())] { (ago(now, at_ms)) }
                        }
                        p.text { (c.text) }
                        @if let Some(h) = &c.honours {
                            p.why { "Honours “" (state.commitment(h).map_or(h.as_str(), |c| c.title.as_str())) "”" }
                        }
                    }
                }
            }
        }
    }
}

pub fn me(web: &Web) -> Result<Markup> {
    let r = open(web)?;
    let today = r.ctx.today(&r.team.tz);
    let model = me_model(web, &r, today)?;
    let (n, nudges) = (&model.0, &model.1);
    let team = &r.team;
    let frame = r.frame(web, "/me".into())?;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let body = html! {
        p.dim { "@" (n.handle) ": only you see this page." }
        div.cards {
            section.card aria-labelledby="me-streak" {
                h2 #me-streak { "Streak" }
                p.figure { (n.streak.current) " " span { (if n.streak.current == 1 { "day" } else { "days" }) } }
                p { "Best " (n.streak.best) "; " (plural(n.streak.freezes_left as usize, "freeze", "freezes")) " left." }
            }
            section.card aria-labelledby="me-week" {
                h2 #me-week { "This week" }
                p { (plural(n.week.actions, "micro-action", "micro-actions")) ", " (plural(n.week.kudos_given, "recognition", "recognitions")) " given." }
                h2 { "This month" }
                p { (plural(n.month.actions, "micro-action", "micro-actions")) ", " (n.month.kudos_given) " given, " (n.month.kudos_received.unwrap_or(0)) " received." }
            }
        }
        section aria-labelledby="me-pillars" {
            h2 #me-pillars { "Your pillar mix" }
            @if n.pillars.is_empty() { p.empty { "None yet." } }
            ul.plain {
                @for (p, c) in &n.pillars {
                    li { span.pillar { "#" (team.pillar(p).map_or(p.as_str(), |p| p.name.as_str())) } " " (c) }
                }
            }
        }
        section aria-labelledby="me-badges" {
            h2 #me-badges { "Your badges" }
            (badges(&n.badges, "A first kudos earns one."))
        }
        // A setting, not a number: it is in the team document, so teammates' replicas hold it.
        section aria-labelledby="me-chat" {
            h2 #me-chat { "In chat" }
            @if team.named_in_chat(&r.me) {
                p { "You may be named in chat: kudos from or to you are posted one by one. " span.dim { "(" code { "cairn me chat off" } " keeps you out; your teammates see this setting.)" } }
            } @else {
                p { "You are out of chat: kudos from or to you only count in the digest. " span.dim { "(" code { "cairn me chat on" } " names you again; your teammates see this setting.)" } }
            }
        }
        section aria-labelledby="nudge" {
            h2 #nudge { "Teammates you have not thanked lately" }
            @if nudges.is_empty() { p.empty { "Nobody else is on the team yet." } }
            ul.plain {
                @for (m, d) in nudges {
                    li {
                        (who(team, m)) " "
                        span.dim { @match d { Some(d) => { "last on " (d) }, None => "never" } }
                        " " a href=(format!("/feed?to={}#kudos", team.handle_of(m))) { "Give kudos" }
                    }
                }
            }
        }
    };
    Ok(layout(&frame, "Me", "/me", body))
}

/// Your numbers and the teammates to suggest.
type MeModel = (views::Numbers, Vec<(String, Option<Date>)>);

fn me_model(web: &Web, r: &Reader, today: Date) -> Result<std::sync::Arc<MeModel>> {
    let key = View::Me {
        today,
        me: r.me.clone(),
    };
    web.derive(&r.replica, key, |acts| {
        let members = r.team.counted(acts);
        let nudges = goals::nudge(acts, &r.me, &members, today)
            .into_iter()
            .take(3)
            .collect();
        let skipped = r.replica.travel_skips(&r.me)?;
        Ok((
            views::numbers(&r.team, &r.me, today, acts, &skipped),
            nudges,
        ))
    })
}

/// Computes what the pages show by default, so the first look after a change is quick.
pub fn warm(web: &Web) -> Result<()> {
    let r = open(web)?;
    let today = r.ctx.today(&r.team.tz);
    streaks_model(web, &r, today, 12)?;
    team_model(web, &r, today)?;
    digest_model(web, &r, today, Period::default())?;
    if !web.screen {
        me_model(web, &r, today)?;
    }
    Ok(())
}

pub fn edit(web: &Web, id: &str, sent: &Sent) -> Result<Markup> {
    let r = open(web)?;
    let e = r.replica.resolve(id, &r.me)?;
    if e.author != r.me {
        return Err(cairn_core::Error::NotYours(e.id.short().to_owned()).into());
    }
    if e.kind == Kind::Reaction {
        return Err(cairn_core::Error::EditReaction.into());
    }
    let team = &r.team;
    let here = format!("/event/{}/edit", e.id.as_str());
    let frame = r.frame(web, here.clone())?;
    let text_error = sent.error_for("edit", Input::Text);
    let pillar_error = sent.error_for("edit", Input::Pillar);
    let other = sent.general_error("edit", &[Input::Text, Input::Pillar]);
    let pillar_now = e
        .pillar
        .as_ref()
        .and_then(|p| team.pillar(p).ok())
        .map(|p| p.name.clone());
    let body = html! {
        form.card method="post" action=(here) {
            input type="hidden" name="csrf" value=(web.form_token());
            input type="hidden" name="back" value="/feed";
            label for="edit-text" { "Text" }
            input #edit-text type="text" name="text" required
                value=(sent.value("edit", "text").unwrap_or(&e.text))
                aria-invalid=[text_error.map(|_| "true")]
                aria-describedby=[text_error.map(|_| "edit-text-error")];
            (field_error("edit-text-error", text_error))
            label for="edit-pillar" { "Pillar" }
            select #edit-pillar name="pillar" {
                (pillar_options(team, sent.value("edit", "pillar").or(pillar_now.as_deref()), "keep as it is"))
            }
            (field_error("edit-pillar-error", pillar_error))
            @if e.kind == Kind::Action {
                label for="edit-why" { "Why" }
                input #edit-why type="text" name="why"
                    value=(sent.value("edit", "why").or(e.why.as_deref()).unwrap_or(""));
            }
            (field_error("edit-error", other))
            div.row {
                button type="submit" { "Save" }
                a href="/feed" { "Cancel" }
            }
        }
    };
    Ok(layout(&frame, "Edit", "", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_escapes_what_members_typed() {
        let v = DigestView {
            title: "Otters".into(),
            summary: "1 recognition".into(),
            sections: vec![cairn_client::views::Section {
                title: "Recognitions".into(),
                items: vec!["@ana → @ben: “<script>x</script>”".into()],
            }],
            honoured: Default::default(),
        };
        let html = digest_html(&v).into_string();
        assert!(html.contains("<h2>Otters</h2>"), "{html}");
        assert!(html.contains("<h3>Recognitions</h3>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn addresses_keep_filters_and_drop_the_key() {
        let q = Params::parse(b"pillar=trust&key=s3cret&done=x&member=");
        assert_eq!(
            address("/feed", &q, &[("limit", "40".into())]),
            "/feed?pillar=trust&limit=40"
        );
        assert_eq!(address("/feed", &Params::default(), &[]), "/feed");
        let q = Params::parse(b"pillar=trust&before=0abc");
        assert_eq!(
            address("/feed", &q, &[("before", String::new())]),
            "/feed?pillar=trust"
        );
    }
}
