//! `cairn publish`: bring a team started offline onto a server.

use cairn_protocol::JoinRequest;
use cairn_store::Remote;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{BOLD, count, paint};
use crate::remote::{self, Client};

/// Bring the team this home holds (started with `cairn init`) onto a server, with all its history.
///
/// The server's admin creates an empty team and gives you an invite to it
/// (`cairn-server team create NAME`, then `cairn-server invite create --team ID`). Your whole
/// history goes up; teammates then join with `cairn join URL --invite CODE`, and members you added
/// by name claim their place with `--claim @handle`. If it is interrupted, `cairn sync` finishes it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's address, like https://cairn.example.org or http://127.0.0.1:7878.
    url: String,
    /// The invite code to the empty team on the server.
    #[arg(long)]
    invite: String,
    /// A name for this device in the server's device list [default: the host name].
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    if let Some(r) = replica.remote()? {
        return Err(CliError::new(format!("this team is already on {}", r.url))
            .hint("`cairn sync` sends what is new"));
    }
    let url = remote::normalise_url(&args.url)?;
    let client = Client::new(&url, None, remote::patience());
    client.info()?;
    let me = replica.me()?;
    let resp = client.join(&JoinRequest {
        invite: args.invite,
        device_name: super::join::device_name(args.device),
        name: None,
        claim: None,
        publish: Some(me),
    })?;
    replica.set_setting("importing", Some("1"))?;
    replica.set_remote(&Remote {
        url: url.clone(),
        device_id: resp.device_id.clone(),
        token: resp.token.0.clone(),
    })?;
    let report = super::sync::exchange(ctx, &mut replica, remote::patience(), true)?;
    let team = replica.team()?;
    ctx.out.say(
        format!(
            "Published {} to {url}: {} sent ({}).\nTeammates join with: cairn join {url} --invite CODE --name NAME",
            paint(BOLD, &team.name),
            count(report.sent as u64, "change", "changes"),
            super::sync::size(report.bytes_up),
        ),
        json!({ "team": team.name, "server": url, "sent": report.sent, "bytes_up": report.bytes_up }),
    )
}
