//! `cairn device`: add another device of yours.

use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;

/// Your devices on the team's server.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Print a one-time code (valid 15 minutes) that joins another device as you.
    ///
    /// The code alone goes to standard output, what to do with it to standard error; on the
    /// other device: `cairn join URL --invite CODE`.
    Link,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let Sub::Link = args.command;
    let replica = ctx.open()?;
    let client = super::sync::client(&replica, ctx.patience())?;
    let url = replica.remote()?.map(|r| r.url).unwrap_or_default();
    let link = client.link()?;
    // The code alone on standard output (`$(cairn device link)`), what to do with it beside.
    if !ctx.out.json {
        crate::output::note!(
            "On your other device, within 15 minutes: cairn join {url} --invite {}",
            link.invite
        );
    }
    ctx.out.say(
        link.invite.clone(),
        json!({ "invite": link.invite, "expires_at_ms": link.expires_at_ms, "server": url }),
    )
}
