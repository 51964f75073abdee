//! `cairn web`: the team's culture in a browser, served from this replica.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::web::{Options, serve};

/// Open the team in a browser: the feed, streaks, team, digest and your own numbers, with forms
/// to log, thank, react, edit and retract.
///
/// Serves this replica on 127.0.0.1 (a free port unless --listen picks one) and prints a link
/// whose key works once: the browser that opens it gets a session cookie instead, and other
/// local users and web pages cannot read or drive the page without it. While it runs, it syncs
/// with the team's server (when one is known) every --sync-every seconds and after each write;
/// open pages show what arrives without a reload. Stop it with Ctrl-C.
///
/// For an office display or a phone on the same network, `--team-screen` shows team views only
/// (no personal numbers, no forms), large and refreshing by itself; it is the only mode that may
/// listen beyond loopback: cairn web --team-screen --listen 0.0.0.0:8080
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address and port to listen on, like `127.0.0.1:8080`, `[::1]:8080` or `localhost:0`
    /// (port 0: a free one) [default: 127.0.0.1 and a free port].
    #[arg(long, value_name = "ADDR", value_parser = Listen::parse)]
    listen: Option<Listen>,
    /// Open the link in your browser (BROWSER, else the system's), through a page in the home
    /// that only you can read: no secret on a command line.
    #[arg(long)]
    open: bool,
    /// Team views only (feed, streaks, team, digest), read-only, for a shared screen.
    #[arg(long)]
    team_screen: bool,
    /// Sync with the server every N seconds while running (0: only after a write).
    #[arg(long, default_value_t = 30, value_name = "N",
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    sync_every: u64,
}

/// Where to listen: every address a name given to `--listen` resolves to, tried in turn.
#[derive(Clone, Debug)]
struct Listen(Vec<SocketAddr>);

impl Listen {
    /// Reads `ADDR:PORT`, an address or a host name (`localhost:0`); a name is looked up now, so
    /// that whether it is loopback is known before anything listens.
    fn parse(text: &str) -> std::result::Result<Listen, String> {
        let bad = |why: String| {
            format!(
                "`{text}` is not an address and port, like 127.0.0.1:8080 or localhost:0: {why}"
            )
        };
        let addrs: Vec<SocketAddr> = text
            .to_socket_addrs()
            .map_err(|e| bad(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(bad("it names no address".to_owned()));
        }
        Ok(Listen(addrs))
    }
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let listen = args.listen.map_or_else(
        || vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
        |l| l.0,
    );
    // A name that resolves beyond loopback as well is beyond it.
    if let Some(beyond) = listen.iter().find(|a| !a.ip().is_loopback())
        && !args.team_screen
    {
        return Err(CliError::new(format!(
            "cairn web listens on loopback only; {} is beyond it",
            beyond.ip()
        ))
        .hint("a shared screen takes --team-screen, which shows team views only and no forms"));
    }
    // The replica must open before anything listens: a missing team is said at once.
    let replica = ctx.open()?;
    ctx.actor(&replica, &replica.team()?)?;
    drop(replica);
    serve(
        ctx,
        Options {
            listen,
            open: args.open,
            screen: args.team_screen,
            sync_every: (args.sync_every > 0).then(|| Duration::from_secs(args.sync_every)),
        },
    )
}
