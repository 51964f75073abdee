//! `cairn publish`: bring a team started offline onto a server.

use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{BOLD, count, paint};
use crate::remote;

/// Bring the team this home holds (started with `cairn init`) onto a server, with all its history.
///
/// The server's admin creates an empty team (`cairn-server team create NAME`) and gives you the
/// founder's invite it prints: only that invite brings a team its first history. Your whole
/// history goes up, and the server calls the team what this replica does; teammates then join
/// with `cairn join URL --invite CODE`, and members you added by name with an invite made for
/// them. If it is interrupted, `cairn sync` finishes it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's address, like https://cairn.example.org or http://127.0.0.1:7878.
    url: String,
    /// The founder's invite to the empty team on the server.
    #[arg(long)]
    invite: String,
    /// A name for this device in the server's device list [default: the host name].
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    // (Said before the address is looked at.)
    if let Some(r) = replica.remote()? {
        return Err(cairn_client::sync::Error::AlreadyOnServer(r.url).into());
    }
    let url = remote::normalise_url(&args.url)?;
    let client = remote::client(&url, None, ctx.patience());
    // The server calls the team what its founder's replica does from now on: said once, here.
    let knew = cairn_client::sync::publish(
        &mut replica,
        &client,
        &args.invite,
        &super::join::device_name(args.device),
    )
    .map_err(|e| refused(e.into(), &url))?;
    let report = super::sync::exchange(ctx, &mut replica, ctx.patience(), true)?;
    let team = replica.team()?;
    let renamed = knew.as_ref().map_or(String::new(), |old| {
        format!(
            "\nthe server knew this team as `{old}`; it is `{}` there now",
            team.name
        )
    });
    ctx.out.say(
        format!(
            "Published {} to {url}: {} sent ({}).{renamed}\nTeammates join with: cairn join {url} --invite CODE --name NAME",
            paint(BOLD, &team.name),
            count(report.sent as u64, "change", "changes"),
            super::sync::size(report.bytes_up),
        ),
        json!({
            "team": team.name,
            "server": url,
            "sent": report.sent,
            "bytes_up": report.bytes_up,
            "server_knew_it_as": knew,
        }),
    )
}

/// A refused publication, with a hint whose command works.
fn refused(e: CliError, url: &str) -> CliError {
    let code = e
        .refusal()
        .and_then(|r| r.body.as_ref())
        .map(|b| b.error.clone());
    match code.as_deref() {
        Some(cairn_protocol::NOT_FOUNDER) => e.hint(format!(
            "only the founder's invite publishes: ask the server's admin for it (the command \
             above makes one), then run `cairn publish {url} --invite CODE` with it"
        )),
        Some("conflict") => e.hint(format!(
            "this team stays on this device; to join the one on the server, ask its admin for \
             an invite and run `cairn join {url} --invite CODE --name \"YOUR NAME\"`"
        )),
        _ => e,
    }
}
