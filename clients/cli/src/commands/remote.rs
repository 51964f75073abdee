//! `cairn remote`: the server this replica syncs with, and pointing it at a new address.

use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Kind, Result};
use crate::remote;

/// Show the server this team syncs with, or point it at the server's new address.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Show the server's address and this device's id there (the default).
    Show,
    /// Point this replica at the same server under a new address (moved, renamed, behind a new
    /// proxy), keeping this device's token and everything synced so far.
    ///
    /// The new address is asked first: it must be a cairn-server that knows this device's
    /// token. A server that is down for now can be pointed at anyway with --no-check.
    SetUrl {
        /// The server's new address, like https://cairn.example.org.
        url: String,
        /// Do not ask the new address first.
        #[arg(long)]
        no_check: bool,
        /// Allow plain http:// to a server this replica reached over https:// (its token would
        /// travel unencrypted).
        #[arg(long)]
        allow_http: bool,
    },
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    let Some(mut r) = replica.remote()? else {
        return Err(cairn_client::sync::Error::NotOnServer.into());
    };
    match args.command.unwrap_or(Command::Show) {
        Command::Show => ctx.out.say(
            format!("server    {}\ndevice    {}", r.url, r.device_id),
            json!({ "server": r.url, "device_id": r.device_id }),
        ),
        Command::SetUrl {
            url,
            no_check,
            allow_http,
        } => {
            let url = remote::normalise_url(&url)?;
            // The device's token goes with every request: never to plain http by a slip.
            let loopback = ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            if r.url.starts_with("https://")
                && url.starts_with("http://")
                && !loopback
                && !allow_http
            {
                return Err(CliError::new(format!(
                    "{url} is plain http, and this replica reaches its server over https"
                ))
                .hint(format!(
                    "its token would travel unencrypted; use https://{}, or --allow-http if you \
                     mean it",
                    url.trim_start_matches("http://")
                )));
            }
            if !no_check {
                let client = remote::client(&url, Some(r.token.clone()), ctx.patience());
                client.info().map_err(|e| {
                    let e = CliError::from(e);
                    e.hint(format!(
                        "{url} was not changed to; check the address, or use --no-check to point \
                         this replica at it anyway"
                    ))
                })?;
                // The token must be known there: the same server, not a new one.
                client.check_token(replica.cursor()?).map_err(|e| {
                    let e = CliError::from(e);
                    let refused = e.refusal().is_some_and(|r| r.status == 401);
                    let e = e.hint(format!(
                        "nothing was changed: {url} answers, but not as this device's server \
                         (another server, or this device was revoked there)"
                    ));
                    if refused { e.kind(Kind::Input) } else { e }
                })?;
            }
            let was = std::mem::replace(&mut r.url, url);
            replica.set_remote(&r)?;
            ctx.out.say(
                format!("server    {} (was {was})", r.url),
                json!({ "server": r.url, "was": was }),
            )
        }
    }
}
