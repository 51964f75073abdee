//! `cairn team`: the team's members, pillars and commitments, and changes to them.

use cairn_core::team;
use clap::Subcommand;
use serde_json::json;

use crate::context::{Ctx, Outcome, Writer, random_id};
use crate::error::{CliError, Input, Result};
use crate::output::{BOLD, DIM, HANDLE, PILLAR, pad, paint, widest, wrap};

/// Show the team: members, pillars and commitments. Subcommands change them; every change shows
/// in the feed, saying who changed what.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Add, rename or retire a pillar the team wants to grow.
    #[command(subcommand)]
    Pillar(PillarAction),
    /// Add a commitment: one of the team's non-negotiables, with its why.
    Commit {
        /// The commitment, in a sentence.
        text: String,
        /// Why it matters to the team.
        #[arg(long, short)]
        why: String,
    },
    /// Reword or retire a commitment.
    #[command(subcommand)]
    Commitment(CommitmentAction),
    /// Add, rename, remove or merge members.
    #[command(subcommand)]
    Member(MemberAction),
    /// Show or change the streak rules.
    ///
    /// Rest days neither count nor break a personal streak. The team streak counts weeks (or
    /// days) in which enough members were active: half the team by default, at least one.
    /// Example: cairn team rules --rest-days fri,sat --cadence weekly --quorum 3
    Rules {
        /// Rest days, like `sat,sun` (the default), `fri,sat` or `none`.
        #[arg(long, value_name = "DAYS")]
        rest_days: Option<String>,
        /// How often the team streak counts: `weekly` (the default) or `daily`.
        #[arg(long)]
        cadence: Option<String>,
        /// Members who make a period count: `half` (the default) or a number.
        #[arg(long)]
        quorum: Option<String>,
        /// Workdays back that `cairn log --on DATE` can still log: 1 (the last workday, the
        /// default) to 5, never more than a week.
        #[arg(long, value_name = "N")]
        late_days: Option<String>,
    },
    /// Show or choose what the team shares with its organisation: `nothing` (the default)
    /// or `weekly` figures.
    ///
    /// Weekly figures are the team's counts of each week once it is over (members, how many
    /// were active, active days, acts per pillar and per non-negotiable, recognitions within
    /// and across teams), never a number about one member. The organisation's stewards see
    /// them in `cairn org figures`; `nothing` takes back what was shared.
    /// Example: cairn team share weekly
    Share {
        /// `weekly` or `nothing`; without it, what the team shares now.
        choice: Option<String>,
    },
    /// List the teams this home holds, the default one marked.
    List,
    /// Make another team of this home the one every command acts on (the config's `team`).
    Switch {
        /// The team's name or id (`cairn team list` shows them).
        #[arg(value_name = "TEAM", add = crate::complete::teams())]
        team: String,
    },
}

#[derive(Debug, Subcommand)]
enum PillarAction {
    /// Add a pillar.
    Add {
        /// Its name, like `curiosity`.
        name: String,
        /// What it means for the team.
        #[arg(long)]
        about: Option<String>,
    },
    /// Rename a pillar or say anew what it means; events keep it.
    Edit {
        /// The pillar, by name.
        pillar: String,
        /// Its new name.
        #[arg(long)]
        name: Option<String>,
        /// What it means for the team.
        #[arg(long)]
        about: Option<String>,
    },
    /// Retire a pillar: it leaves the list, the events that named it keep it.
    Retire {
        /// The pillar, by name.
        pillar: String,
    },
}

#[derive(Debug, Subcommand)]
enum CommitmentAction {
    /// Reword a commitment or its why.
    Edit {
        /// Its number in `cairn team`, or the start of its text.
        commitment: String,
        /// The new wording.
        #[arg(long)]
        text: Option<String>,
        /// The new why.
        #[arg(long, short)]
        why: Option<String>,
    },
    /// Retire a commitment: it leaves the list; the feed keeps the note of it.
    Retire {
        /// Its number in `cairn team`, or the start of its text.
        commitment: String,
    },
}

#[derive(Debug, Subcommand)]
enum MemberAction {
    /// Add a member by name; they take the place when they join with an invite made for them.
    Add {
        /// Their name.
        name: String,
        /// Their handle [default: from the name].
        #[arg(long)]
        handle: Option<String>,
    },
    /// Give a member another name or handle (a typo, a new name).
    Rename {
        /// Who: their handle, or their id when two share a handle.
        #[arg(value_name = "@HANDLE", add = crate::complete::handles())]
        who: String,
        /// Their new name.
        #[arg(long)]
        name: Option<String>,
        /// Their new handle.
        #[arg(long)]
        handle: Option<String>,
    },
    /// Take a member off the team (yourself, to leave): what they did stays, attributed to
    /// them; they stop counting in the team streak's quorum from the next period, in reach,
    /// nudges and new badges.
    Remove {
        /// Who: their handle, or their id when two share a handle.
        #[arg(value_name = "@HANDLE", add = crate::complete::handles())]
        who: String,
    },
    /// Merge a placeholder into the member who joined: kudos and mentions of the placeholder
    /// count for that member, on every device.
    ///
    /// With one handle that names two members (a placeholder added before someone joined with
    /// the same name), the one added by hand is merged into the one who joined.
    /// Example: cairn team member merge @eve   or   cairn team member merge @eve-placeholder @eve
    Merge {
        /// The placeholder: a handle, or an id.
        #[arg(value_name = "@PLACEHOLDER")]
        from: String,
        /// The member it stands for [default: the other member with the same handle].
        #[arg(value_name = "@MEMBER")]
        into: Option<String>,
    },
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    // The home's teams, not the one team a command acts on.
    match &args.action {
        Some(Action::List) => return super::teams::list(ctx).map(|()| Outcome::Read),
        Some(Action::Switch { team }) => {
            return super::teams::switch(ctx, team).map(|()| Outcome::Read);
        }
        _ => {}
    }
    let mut replica = ctx.open()?;
    let Some(action) = args.action else {
        show(ctx, &mut replica)?;
        return Ok(Outcome::Read);
    };
    let mut w = ctx.writer(&mut replica)?;
    change(ctx, &mut w, action)?;
    Outcome::of(&w)
}

/// Changes the team as `action` says, and tells what it did.
fn change(ctx: &mut Ctx, w: &mut Writer<'_>, action: Action) -> Result<()> {
    let at = ctx.now_ms();
    // As it was before the change (`w.team` is the writer's, and the change needs the writer).
    let team = w.team.clone();
    let me = w.me.clone();
    let who = |id: &str| format!("@{}", team.handle_of(id));
    match action {
        Action::Pillar(PillarAction::Add { name, about }) => {
            // Named as the team named it (`#Team Spirit`), as everywhere people read it; the id
            // (`team-spirit`) is for typing.
            let shown = format!("#{}", name.trim());
            let id = noted(ctx, w, |doc, state| {
                let id = team::add_pillar(doc, state, &name, about.as_deref(), at)?;
                Ok((id, format!("added the pillar {shown}")))
            })?;
            ctx.out.say(
                format!("added pillar {}", paint(PILLAR, &shown)),
                json!({ "pillar": id }),
            )
        }
        Action::Pillar(PillarAction::Edit {
            pillar,
            name,
            about,
        }) => {
            let p = team.pillar(&pillar)?.clone();
            noted(ctx, w, |doc, state| {
                team::edit_pillar(doc, state, &p.id, name.as_deref(), about.as_deref())?;
                let what = match &name {
                    Some(n) => format!("renamed the pillar #{} to #{n}", p.name),
                    None => format!("said anew what #{} means", p.name),
                };
                Ok(((), what))
            })?;
            ctx.out
                .say(format!("changed #{}", p.name), json!({ "pillar": p.id }))
        }
        Action::Pillar(PillarAction::Retire { pillar }) => {
            let p = team.pillar(&pillar)?.clone();
            noted(ctx, w, |doc, state| {
                team::retire_pillar(doc, state, &p.id)?;
                Ok(((), format!("retired the pillar #{}", p.name)))
            })?;
            ctx.out.say(
                format!("retired #{}; events that named it keep it", p.name),
                json!({ "pillar": p.id, "retired": true }),
            )
        }
        Action::Commit { text, why } => {
            let id = random_id(10)?;
            noted(ctx, w, |doc, _| {
                team::add_commitment(doc, &id, &text, &why, &me, at)?;
                Ok(((), format!("added the commitment “{}”", text.trim())))
            })?;
            ctx.out
                .say("added the commitment", json!({ "commitment": id }))
        }
        Action::Commitment(CommitmentAction::Edit {
            commitment,
            text,
            why,
        }) => {
            let c = commitment_named(&team, &commitment)?;
            noted(ctx, w, |doc, _| {
                team::edit_commitment(doc, &c.id, text.as_deref(), why.as_deref())?;
                Ok(((), format!("reworded the commitment “{}”", c.text)))
            })?;
            ctx.out
                .say("changed the commitment", json!({ "commitment": c.id }))
        }
        Action::Commitment(CommitmentAction::Retire { commitment }) => {
            let c = commitment_named(&team, &commitment)?;
            noted(ctx, w, |doc, _| {
                team::retire_commitment(doc, &c.id)?;
                Ok(((), format!("retired the commitment “{}”", c.text)))
            })?;
            ctx.out.say(
                format!("retired “{}”", c.text),
                json!({ "commitment": c.id, "retired": true }),
            )
        }
        Action::Rules {
            rest_days,
            cadence,
            quorum,
            late_days,
        } => {
            use cairn_core::rules::{
                parse_cadence, parse_late_days, parse_quorum, parse_rest_days,
            };
            let rest = rest_days.as_deref().map(parse_rest_days).transpose()?;
            let cadence = cadence.as_deref().map(parse_cadence).transpose()?;
            let quorum = quorum.as_deref().map(parse_quorum).transpose()?;
            let late = late_days.as_deref().map(parse_late_days).transpose()?;
            if rest.is_some() || cadence.is_some() || quorum.is_some() || late.is_some() {
                noted(ctx, w, |doc, _| {
                    team::set_rules(doc, rest.as_deref(), cadence, quorum, late)?;
                    let after = team::read(doc)?.rules;
                    Ok((
                        (),
                        format!(
                            "changed the streak rules: {}",
                            rules_text(&after).replace('\n', "; ")
                        ),
                    ))
                })?;
            }
            let rules = w.replica.team()?.rules;
            ctx.out.say(rules_text(&rules), json!(rules))
        }
        Action::Share { choice } => {
            let org = cairn_client::sync::org::org(w.replica, &ctx.home)?;
            let org_name = org.as_ref().map(|o| o.org.name.clone());
            let now = cairn_client::shared::share(w.replica)?;
            let Some(choice) = choice else {
                let text = match (&org_name, now) {
                    (None, _) => "this team belongs to no organisation: it shares nothing".into(),
                    (Some(o), cairn_core::Share::Nothing) => format!(
                        "this team shares nothing with {o}; `cairn team share weekly` shares \
                         its weekly figures"
                    ),
                    (Some(o), cairn_core::Share::Weekly) => format!(
                        "this team shares its weekly figures with {o}; `cairn team share \
                         nothing` takes them back"
                    ),
                };
                return ctx
                    .out
                    .say(text, json!({ "share": now.as_str(), "org": org_name }));
            };
            let share = cairn_core::Share::parse(&choice)?;
            if share == cairn_core::Share::Weekly && org_name.is_none() {
                return Err(crate::error::CliError::new(
                    "this team belongs to no organisation: there is nobody to share with",
                )
                .hint("the server's admin attaches it to one: `cairn-server team attach TEAM --org ORG`"));
            }
            let to = org_name.as_deref().unwrap_or("the organisation");
            if share != now {
                noted(ctx, w, |doc, _| {
                    team::set_share(doc, share)?;
                    Ok((
                        (),
                        match share {
                            cairn_core::Share::Weekly => {
                                format!("shared the team's weekly figures with {to}")
                            }
                            cairn_core::Share::Nothing => {
                                format!("stopped sharing the team's figures with {to}")
                            }
                        },
                    ))
                })?;
            }
            ctx.out.say(
                match share {
                    cairn_core::Share::Weekly => format!(
                        "this team shares its weekly figures with {to} (each week once it is \
                         over, from the next sync)"
                    ),
                    cairn_core::Share::Nothing => {
                        format!("this team shares nothing with {to}")
                    }
                },
                json!({ "share": share.as_str(), "org": org_name }),
            )
        }
        // (Answered by `run` before any replica is opened.)
        Action::List | Action::Switch { .. } => Ok(()),
        Action::Member(MemberAction::Rename {
            who: named,
            name,
            handle,
        }) => {
            let id = team.member_by_handle_or_id(&named)?.id.clone();
            let before = who(&id);
            noted(ctx, w, |doc, state| {
                team::rename_member(doc, state, &id, name.as_deref(), handle.as_deref())?;
                let m = team::read(doc)?.member(&id).cloned().unwrap_or_default();
                Ok((
                    (),
                    format!("renamed {before} to @{} ({})", m.handle, m.name),
                ))
            })?;
            let now = w.replica.team()?;
            let m = now.member(&id).cloned().unwrap_or_default();
            ctx.out.say(
                format!(
                    "{} is now {}",
                    named.trim(),
                    paint(HANDLE, format!("@{} ({})", m.handle, m.name))
                ),
                json!({ "member": m.handle, "name": m.name }),
            )
        }
        Action::Member(MemberAction::Remove { who: named }) => {
            let m = team.member_by_handle_or_id(&named)?.clone();
            let leaving = m.id == me;
            noted(ctx, w, |doc, state| {
                team::remove_member(doc, state, &m.id, at)?;
                let what = if leaving {
                    "left the team".to_owned()
                } else {
                    format!("took @{} ({}) off the team", m.handle, m.name)
                };
                Ok(((), what))
            })?;
            let what = if leaving {
                "you left the team"
            } else {
                "removed"
            };
            ctx.out.say(
                format!(
                    "{what}: {}; what they did stays in the feed",
                    paint(HANDLE, format!("@{}", m.handle))
                ),
                json!({ "member": m.handle, "removed": true }),
            )
        }
        Action::Member(MemberAction::Merge { from, into }) => {
            let (from, into) = merge_pair(w.replica, &team, &from, into.as_deref())?;
            // The member who joined numbered from the placeholder's handle (`eve-2`) takes the
            // handle they chose (`eve`) once the placeholder no longer holds it.
            let numbered = into
                .handle
                .strip_prefix(&from.handle)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            let handle = noted(ctx, w, |doc, state| {
                team::merge_member(doc, state, &from.id, &into.id)?;
                let mut handle = into.handle.clone();
                if numbered {
                    let after = team::read(doc)?;
                    if !after.members.iter().any(|m| m.handle == from.handle) {
                        team::rename_member(doc, &after, &into.id, None, Some(&from.handle))?;
                        handle = from.handle.clone();
                    }
                }
                let renamed = if handle == into.handle {
                    String::new()
                } else {
                    format!(", who is @{handle} now")
                };
                Ok((
                    handle,
                    format!(
                        "merged the placeholder @{} into @{} ({}){renamed}",
                        from.handle, into.handle, into.name
                    ),
                ))
            })?;
            ctx.out.say(
                format!(
                    "merged {} ({}) into {}{}: their kudos and mentions now count for {}",
                    paint(HANDLE, format!("@{}", from.handle)),
                    from.id,
                    paint(HANDLE, format!("@{}", into.handle)),
                    if handle == into.handle {
                        String::new()
                    } else {
                        format!(", who is {} now", paint(HANDLE, format!("@{handle}")))
                    },
                    into.name
                ),
                json!({ "from": from.id, "into": into.id, "member": handle }),
            )
        }
        Action::Member(MemberAction::Add { name, handle }) => {
            // The same person twice is said before anything is written.
            let wanted = handle
                .as_deref()
                .map(|h| h.trim().trim_start_matches('@').to_lowercase())
                .or_else(|| cairn_core::ids::handle_from_name(&name));
            if let Some(twin) = team.members.iter().find(|m| {
                Some(&m.handle) == wanted.as_ref()
                    && cairn_core::ids::handle_key(&m.name) == cairn_core::ids::handle_key(&name)
            }) {
                return Err(CliError::new(format!(
                    "{} is on the team already (@{})",
                    twin.name, twin.handle
                ))
                .hint(format!(
                    "to add another person of that name, give them a handle of their own: cairn \
                     team member add \"{}\" --handle HANDLE",
                    name.trim()
                ))
                .about(Input::Members));
            }
            let id = random_id(12)?;
            let handle_given = handle.is_some();
            let handle = noted(ctx, w, |doc, state| {
                let h = team::add_placeholder(doc, state, &id, &name, handle.as_deref(), at)?;
                Ok((
                    h.clone(),
                    format!("added {} (@{h}), who has not joined yet", name.trim()),
                ))
            })?;
            let cut = if handle_given { "" } else { cut_note(&name) };
            let after = w.replica.team()?;
            if let Some(note) = twins_note(w.replica, &after, &id)? {
                crate::output::note!("{note}");
            }
            ctx.out.say(
                format!("added {}{cut}", paint(HANDLE, format!("@{handle}"))),
                json!({ "member": handle }),
            )
        }
    }
}

/// Changes the team as the acting member, and notes the change in the feed with the words
/// `op` returns beside its result.
pub fn noted<T>(
    ctx: &Ctx,
    w: &mut Writer<'_>,
    op: impl FnOnce(
        &mut cairn_core::Automerge,
        &cairn_core::TeamState,
    ) -> cairn_core::Result<(T, String)>,
) -> Result<T> {
    let stamp = ctx.stamp(&w.team.tz, false);
    let id = ctx.new_event_id()?;
    Ok(w.replica.change_team_noted(&w.me, &id, &stamp, op)?)
}

/// The commitment named by its number in `cairn team` (from 1) or the start of its text.
fn commitment_named(team: &cairn_core::TeamState, text: &str) -> Result<cairn_core::Commitment> {
    let t = text.trim();
    let found = match t.parse::<usize>() {
        Ok(n) if n >= 1 => team.commitments.get(n - 1).into_iter().collect::<Vec<_>>(),
        _ => team
            .commitments
            .iter()
            .filter(|c| c.text.to_lowercase().starts_with(&t.to_lowercase()) || c.id == t)
            .collect(),
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(cairn_core::Error::NoSuchSetting(t.to_owned()).into()),
        _ => Err(
            CliError::new(format!("`{t}` starts more than one commitment"))
                .hint("give its number in `cairn team`"),
        ),
    }
}

fn show(ctx: &mut Ctx, replica: &mut cairn_store::Replica) -> Result<()> {
    let team = replica.team()?;
    // The organisation's non-negotiables, read-only here, with this team's how of each.
    let org = match super::org::held(ctx, replica)? {
        Some(held) => Some((held, cairn_client::write::practices(replica)?)),
        None => None,
    };
    let me = ctx.actor(replica, &team)?;
    // Placeholders who have neither joined nor written anything yet: they count in none of the
    // team's figures.
    let mut waiting = Vec::new();
    for m in team.members.iter().filter(|m| m.arrived().is_none()) {
        if !replica.has_written(&m.id)? {
            waiting.push(m.id.as_str());
        }
    }
    if ctx.out.json {
        let mut value = json!({
            "name": team.name,
            "tz": team.tz,
            "you": team.handle_of(&me),
            "members": team.members.iter().map(|m| {
                let mut v = json!({"handle": m.handle, "name": m.name, "id": m.id});
                if waiting.contains(&m.id.as_str()) {
                    v["joined"] = json!(false);
                }
                v
            }).collect::<Vec<_>>(),
            "former": team.former.iter().map(|m| json!({
                "handle": m.handle, "name": m.name, "id": m.id,
                "merged_into": m.merged_into.as_deref().map(|t| team.handle_of(t)),
            })).collect::<Vec<_>>(),
            "pillars": team.pillars,
            "rules": team.rules,
            "challenges": team.challenges,
            "commitments": team.commitments.iter().map(|c| json!({
                "text": c.text, "why": c.why, "by": team.handle_of(&c.by),
            })).collect::<Vec<_>>(),
        });
        if let Some((held, practices)) = &org {
            value["org"] = json!({
                "id": held.org.org.id,
                "name": held.org.org.name,
                "non_negotiables": held.state.live().map(|c| json!({
                    "id": c.id,
                    "title": c.title,
                    "why": c.why,
                    "practice": practices.get(&c.id).map(|p| &p.text),
                })).collect::<Vec<_>>(),
            });
        }
        return ctx.out.json(&value);
    }
    let today = ctx.today(&team.tz);
    let running: Vec<_> = team
        .challenges
        .iter()
        .filter(|c| c.until >= today)
        .collect();
    let acts = if running.is_empty() {
        Vec::new()
    } else {
        replica.acts()?
    };
    let out = &mut ctx.out;
    out.page();
    out.line(format!(
        "{}  {}",
        paint(BOLD, &team.name),
        paint(DIM, &team.tz)
    ))?;
    out.line("")?;
    out.line(paint(BOLD, format!("Members ({})", team.members.len())))?;
    let handles_width = 1 + widest(team.members.iter().map(|m| m.handle.as_str()));
    for m in &team.members {
        let you = if m.id == me {
            paint(DIM, "  (you)")
        } else {
            String::new()
        };
        let handle = pad(&format!("@{}", m.handle), handles_width);
        // Two members with one handle are told apart by id (`cairn team member merge` joins a
        // placeholder to the member who joined).
        let shared = team
            .members
            .iter()
            .any(|o| o.handle == m.handle && o.id != m.id);
        let id = if shared {
            paint(DIM, format!("  id {} (handle shared)", m.id))
        } else {
            String::new()
        };
        let not_yet = if waiting.contains(&m.id.as_str()) {
            paint(DIM, "  (not joined yet)")
        } else {
            String::new()
        };
        out.line(format!(
            "  {} {}{you}{not_yet}{id}",
            paint(HANDLE, handle),
            m.name
        ))?;
    }
    let left: Vec<_> = team
        .former
        .iter()
        .filter(|m| m.merged_into.is_none())
        .collect();
    if !left.is_empty() {
        out.line(paint(
            DIM,
            format!(
                "  left: {}",
                left.iter()
                    .map(|m| format!("@{} ({})", m.handle, m.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))?;
    }
    out.line("")?;
    out.line(paint(BOLD, "Pillars"))?;
    let names_width = 1 + widest(team.pillars.iter().map(|p| p.name.as_str()));
    let hang = " ".repeat(names_width + 4);
    for p in &team.pillars {
        let about = p.about.as_deref().unwrap_or("");
        let name = format!("  {}  ", pad(&format!("#{}", p.name), names_width));
        for (i, line) in wrap(about, &name, &hang, out.width).into_iter().enumerate() {
            // The name in its colour, the words beside it dim.
            let head_len = if i == 0 { name.len() } else { hang.len() };
            let (head, words) = line.split_at(head_len.min(line.len()));
            let head = if i == 0 {
                paint(PILLAR, head)
            } else {
                head.to_owned()
            };
            out.line(format!("{head}{}", paint(DIM, words)).trim_end())?;
        }
    }
    out.line("")?;
    out.line(paint(BOLD, "Commitments"))?;
    if team.commitments.is_empty() {
        out.line(paint(
            DIM,
            "  none yet: cairn team commit \"TEXT\" --why \"WHY\"",
        ))?;
    }
    for (i, c) in team.commitments.iter().enumerate() {
        let number = format!("  {}. ", i + 1);
        let hang = " ".repeat(number.len());
        out.wrapped(&c.text, &number, &hang)?;
        for line in wrap(&format!("why: {}", c.why), &hang, &hang, out.width) {
            out.line(paint(DIM, line))?;
        }
    }
    if let Some((held, practices)) = &org {
        out.line("")?;
        out.line(paint(
            BOLD,
            format!("Non-negotiables of {}", held.org.org.name),
        ))?;
        let live: Vec<_> = held.state.live().collect();
        if live.is_empty() {
            out.line(paint(DIM, "  none yet"))?;
        }
        for c in live {
            out.wrapped(&c.title, "  - ", "    ")?;
            for line in wrap(&format!("why: {}", c.why), "    ", "    ", out.width) {
                out.line(paint(DIM, line))?;
            }
            match practices.get(&c.id) {
                Some(p) => out.wrapped(&format!("our how: {}", p.text), "    ", "    ")?,
                None => out.line(paint(
                    DIM,
                    format!("    {}", super::org::no_practice(&c.id)),
                ))?,
            }
        }
    }
    if !running.is_empty() {
        out.line("")?;
        out.line(paint(BOLD, "Challenges"))?;
        let rows: Vec<_> = running
            .iter()
            .map(|c| ((*c).clone(), cairn_core::goals::progress(&acts, c, today)))
            .collect();
        for line in super::challenge::lines(&rows, today) {
            out.line(format!("  {line}"))?;
        }
    }
    out.line("")?;
    out.line(paint(BOLD, "Streak rules"))?;
    for line in rules_text(&team.rules).lines() {
        out.line(format!("  {line}"))?;
    }
    Ok(())
}

/// The rules for people.
pub fn rules_text(r: &cairn_core::rules::Rules) -> String {
    use cairn_core::rules::{Cadence, Quorum, format_rest_days};
    let quorum = match r.quorum {
        Quorum::Half => "half the team".to_owned(),
        Quorum::AtLeast(1) => "at least 1 member".to_owned(),
        Quorum::AtLeast(n) => format!("at least {n} members"),
    };
    let period = match r.cadence {
        Cadence::Weekly => "week",
        Cadence::Daily => "day",
    };
    let late = match r.late_days {
        1 => "the last workday".to_owned(),
        n => format!("the last {n} workdays"),
    };
    format!(
        "rest days {}\nteam streak {}: a {period} counts when {quorum} logged\n\
         late logging (cairn log --on DATE): {late}",
        format_rest_days(&r.rest_days),
        r.cadence
    )
}

/// The placeholder and the member to merge it into. With one handle shared by two members, the
/// one who never wrote anything (added by hand, never joined) goes into the other.
fn merge_pair(
    replica: &cairn_store::Replica,
    team: &cairn_core::TeamState,
    from: &str,
    into: Option<&str>,
) -> Result<(cairn_core::team::Member, cairn_core::team::Member)> {
    if let Some(into) = into {
        return Ok((
            team.member_by_handle_or_id(from)?.clone(),
            team.member_by_handle_or_id(into)?.clone(),
        ));
    }
    let typed = from.trim().trim_start_matches('@').to_lowercase();
    // The member the handle names, and the one it is the same person as: a handle alike, or a
    // handle that the join numbered (`eve` and `eve-2`), or the same name.
    let alike: Vec<&cairn_core::team::Member> =
        team.members.iter().filter(|m| m.handle == typed).collect();
    let same: Vec<&cairn_core::team::Member> = if alike.len() > 1 {
        alike
    } else {
        let named = team.member_by_handle_or_id(&typed)?;
        team.members
            .iter()
            .filter(|m| m.id == named.id || same_person(m, named))
            .collect()
    };
    let [a, b] = same.as_slice() else {
        return Err(CliError::new(format!(
            "`@{typed}` names {} member{}; merging needs two",
            same.len(),
            if same.len() == 1 { "" } else { "s" }
        ))
        .hint(if same.len() == 1 {
            format!(
                "no other member has @{}'s name or handle; name both: cairn team member merge \
                 @PLACEHOLDER @MEMBER",
                same[0].handle
            )
        } else {
            "name both: cairn team member merge @PLACEHOLDER @MEMBER".to_owned()
        })
        .about(Input::Members));
    };
    // The placeholder is the one added by hand who has neither arrived nor written anything.
    let waits = |m: &cairn_core::team::Member| -> Result<bool> {
        Ok(m.arrived().is_none() && !replica.has_written(&m.id)?)
    };
    match (waits(a)?, waits(b)?) {
        (true, false) => Ok(((*a).clone(), (*b).clone())),
        (false, true) => Ok(((*b).clone(), (*a).clone())),
        _ => Err(CliError::new(format!(
            "cannot tell which is the placeholder: @{} ({}) or @{} ({})",
            a.handle, a.id, b.handle, b.id
        ))
        .hint("name them in order: cairn team member merge @PLACEHOLDER @MEMBER")
        .about(Input::Members)),
    }
}

/// A word about members who look like `id` (the same name, or a handle the join numbered from
/// theirs), with the way to make them one when the other is a placeholder: joining or adding
/// someone never makes a silent duplicate.
pub fn twins_note(
    replica: &cairn_store::Replica,
    team: &cairn_core::TeamState,
    id: &str,
) -> Result<Option<String>> {
    let Some(me) = team.members.iter().find(|m| m.id == id) else {
        return Ok(None);
    };
    let Some(twin) = team.members.iter().find(|m| same_person(m, me)) else {
        return Ok(None);
    };
    let waits = |m: &cairn_core::team::Member| -> Result<bool> {
        Ok(m.arrived().is_none() && !replica.has_written(&m.id)?)
    };
    let said = format!("{} (@{})", twin.name, twin.handle);
    Ok(Some(match (waits(twin)?, waits(me)?) {
        (true, false) => format!(
            "note: the team already had {said}, added by a teammate before @{} joined; if that \
             is the same person, `cairn team member merge @{}` makes them one member (the \
             placeholder's kudos and mentions follow)",
            me.handle, twin.handle
        ),
        (_, true) => format!(
            "note: {said} is on the team already; if that is the same person, `cairn team member \
             merge @{} @{}` makes the one just added one with them",
            me.handle, twin.handle
        ),
        (false, false) => format!(
            "note: {said} is on the team too; if that is someone else, a rename tells them apart \
             (`cairn team member rename @{} --name \"...\"`)",
            me.handle
        ),
    }))
}

/// Whether two members look like one person: the same name, or handles one of which the join
/// numbered from the other (`eve`, `eve-2`).
pub fn same_person(a: &cairn_core::team::Member, b: &cairn_core::team::Member) -> bool {
    if a.id == b.id {
        return false;
    }
    let name = |m: &cairn_core::team::Member| cairn_core::ids::handle_key(&m.name);
    let numbered = |h: &str, base: &str| {
        h.strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    (!name(a).is_empty() && name(a) == name(b))
        || a.handle == b.handle
        || numbered(&a.handle, &b.handle)
        || numbered(&b.handle, &a.handle)
}

/// What to add when a handle made from `name` had to be cut: nothing is cut silently.
pub fn cut_note(name: &str) -> &'static str {
    if cairn_core::ids::handle_is_cut(name) {
        " (a handle holds 32 characters at most, so this one is cut; `cairn team member rename` \
         changes it)"
    } else {
        ""
    }
}
