//! `cairn join`: join a team on a server from this device.

use cairn_client::sync;
use cairn_protocol::JoinRequest;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{BOLD, HANDLE, paint};
use crate::remote;

/// Join a team on its server with an invite code, and bring its feed to this device.
///
/// A new member gives --name. A member a teammate already added by name (`cairn team member add`)
/// joins with an invite the server's admin made for them (`cairn-server invite create --member
/// @handle`), which takes that place; a general invite never does. To add a second device of your
/// own, run `cairn device link` on the first one and join with the code it prints.
///
/// The team's founder, with the founder's invite that `cairn-server team create` printed, starts
/// the team here: it takes the server's name for it and this machine's time zone, with you as
/// its first member. (A team begun offline with `cairn init` goes up with `cairn publish`.)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's address, like https://cairn.example.org or http://127.0.0.1:7878.
    url: String,
    /// The invite code from the server's admin (or from `cairn device link`).
    #[arg(long)]
    invite: String,
    /// Your name as teammates will see it (for a new member).
    #[arg(long, value_name = "YOUR_NAME", conflicts_with = "claim")]
    name: Option<String>,
    /// Your handle, as in `@ana` [default: from your name].
    #[arg(long, requires = "name")]
    handle: Option<String>,
    /// The member an invite made for one member should name (a check: the invite decides).
    #[arg(long, value_name = "@HANDLE")]
    claim: Option<String>,
    /// A name for this device in the server's device list [default: the host name].
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// This device was a member of the team on this server, which was restored from a backup
    /// made before it joined (its token is refused): it takes its place back, and its next sync
    /// sends again everything it wrote. `--team` picks the team when this home holds several.
    #[arg(long, conflicts_with_all = ["name", "handle", "claim"])]
    again: bool,
}

/// This machine's name, for the server's device list.
pub fn device_name(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "a device".to_owned())
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let url = remote::normalise_url(&args.url)?;
    if args.again {
        return again(args, ctx, &url);
    }
    let client = remote::client(&url, None, ctx.patience());
    let resp = sync::register(
        &client,
        &JoinRequest {
            invite: args.invite.clone(),
            device_name: device_name(args.device),
            name: args.name.clone(),
            claim: args.claim.clone(),
            publish: None,
            found: true,
            ..JoinRequest::default()
        },
    )
    .map_err(|e| refused(e.into(), &url))?;
    // A team this home holds already is refused before this home is written to; the server
    // registered a device meanwhile, which its admin can take back.
    let path = crate::home::new_team_path(&ctx.home, &resp.team_id).map_err(|e| {
        e.hint(format!(
            "nothing was written here; the server registered a device for this join ({}), which \
             its admin can revoke (`cairn-server device revoke {}`); `cairn team list` shows the \
             teams here",
            resp.device_id, resp.device_id
        ))
    })?;
    let (mut replica, founded) = sync::begin(
        &path,
        &url,
        &resp,
        args.name.as_deref(),
        args.handle.as_deref(),
        &ctx.zone_name("UTC"),
        ctx.now_ms(),
    )?;
    // The team's organisation, if any, is synced by the first sync without asking again.
    cairn_client::sync::org::learned(&mut replica, resp.org.as_ref(), ctx.now_ms())?;
    let report = super::sync::exchange(ctx, &mut replica, ctx.patience(), true)?;
    let team = replica.team()?;
    let handle = team.handle_of(&resp.member_id).to_owned();
    let cut = match (&args.name, &args.handle) {
        (Some(name), None) => super::team::cut_note(name),
        _ => "",
    };
    let (text, mut value) = match &founded {
        Some(tz) => (
            format!(
                "Started {} ({tz}) on {url} as {}{cut}.\nTeammates join with an invite from the \
                 server's admin: cairn join {url} --invite CODE --name \"THEIR NAME\"",
                paint(BOLD, &team.name),
                paint(HANDLE, format!("@{handle}")),
                url = url,
            ),
            json!({
                "team": team.name,
                "tz": tz,
                "founded": true,
                "handle": handle,
                "member_id": resp.member_id,
                "device_id": resp.device_id,
                "sent": report.sent,
                "requests": report.requests,
                "bytes_up": report.bytes_up,
                "bytes_down": report.bytes_down,
            }),
        ),
        None => (
            format!(
                "Joined {} as {}{cut} ({}).\nSee the feed: cairn feed",
                paint(BOLD, &team.name),
                paint(HANDLE, format!("@{handle}")),
                super::sync::received(&report),
            ),
            json!({
                "team": team.name,
                "handle": handle,
                "member_id": resp.member_id,
                "device_id": resp.device_id,
                "received": report.received,
                "docs": report.docs,
                "requests": report.requests,
                "bytes_up": report.bytes_up,
                "bytes_down": report.bytes_down,
            }),
        ),
    };
    // The team's organisation, held beside it from now on (`cairn status` shows its sync).
    let text = match &resp.org {
        Some(org) => {
            value["org"] = json!({"id": org.id, "name": org.name, "steward": org.steward});
            format!(
                "{text}\nIts organisation {} is kept here too{}.",
                paint(BOLD, remote::printable(&org.name)),
                if org.steward {
                    ", and you are one of its stewards"
                } else {
                    ""
                }
            )
        }
        None => text,
    };
    ctx.out.say(text, value)?;
    if let Some(note) = super::team::twins_note(&replica, &team, &resp.member_id)? {
        crate::output::note!("{note}");
    }
    drop(replica);
    super::init::beside_others(ctx, &resp.team_id, &team.name)
}

/// A refused join, with a hint whose command works for who meets it.
fn refused(e: CliError, url: &str) -> CliError {
    let code = e
        .refusal()
        .and_then(|r| r.body.as_ref())
        .map(|b| b.error.clone());
    match code.as_deref() {
        Some(cairn_protocol::NO_HISTORY) => e.hint(format!(
            "once the team's founder has started it, run this `cairn join` again; the founder \
             joins first, with the founder's invite that `cairn-server team create` printed \
             (`cairn join {url} --invite CODE --name \"NAME\"`)"
        )),
        // Refused before the invite was spent: the same one does with a name.
        Some("bad_request") if e.message.contains("needs a name") => e.hint(format!(
            "give the name teammates will see: `cairn join {url} --invite CODE --name \"YOUR NAME\"`"
        )),
        _ => e,
    }
}

/// `cairn join URL --invite CODE --again`: this home's replica of a team on `url` takes its
/// member's place back on a server restored from a backup made before it joined, then syncs,
/// sending again everything it wrote.
fn again(args: Args, ctx: &mut Ctx, url: &str) -> Result<()> {
    let mut replica = ctx.open()?;
    let here = replica
        .remote()?
        .is_some_and(|r| remote::normalise_url(&r.url).ok().as_deref() == Some(url));
    if !here {
        return Err(CliError::new(format!(
            "this team is not on {url}: `--again` takes back a place this device had there"
        ))
        .hint("`cairn team list` shows this home's teams; `--team` picks one"));
    }
    let me = replica.me()?;
    let client = remote::client(url, None, ctx.patience());
    let resp = sync::register(
        &client,
        &JoinRequest {
            invite: args.invite.clone(),
            device_name: device_name(args.device),
            rejoin: Some(me.clone()),
            ..JoinRequest::default()
        },
    )
    .map_err(|e| refused(e.into(), url))?;
    if resp.team_id != replica.team_id()? {
        return Err(CliError::new(
            "that invite is for another team than this one: nothing was changed here",
        )
        .hint(format!(
            "the server registered a device for it ({}), which its admin can revoke",
            resp.device_id
        )));
    }
    replica.set_remote(&cairn_store::Remote {
        url: url.to_owned(),
        device_id: resp.device_id.clone(),
        token: resp.token.0.clone(),
    })?;
    sync::problem::forget(&mut replica)?;
    let resent = replica.resend_all(None)?;
    let report = super::sync::exchange(ctx, &mut replica, ctx.patience(), true)?;
    let team = replica.team()?;
    ctx.out.say(
        format!(
            "Back in {} as {} on {url}: sent again the {} this device wrote ({}).",
            paint(BOLD, &team.name),
            paint(HANDLE, format!("@{}", team.handle_of(&me))),
            crate::output::count(resent as u64, "change", "changes"),
            super::sync::received(&report),
        ),
        json!({
            "team": team.name,
            "member_id": me,
            "device_id": resp.device_id,
            "resent": resent,
            "received": report.received,
        }),
    )
}
