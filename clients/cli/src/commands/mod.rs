//! One module per subcommand.

mod badges;
mod challenge;
mod completions;
mod config;
mod demo;
mod device;
pub mod digest;
mod doctor;
pub mod edit;
mod export;
pub mod feed;
mod generate_man;
mod import;
mod init;
mod join;
pub mod kudos;
pub mod log;
pub mod me;
mod nudge;
mod org;
mod publish;
pub mod react;
mod remote;
pub mod retract;
mod status;
mod streaks;
pub mod sync;
pub mod team;
mod teams;
mod web;

use clap::Subcommand;

use crate::context::{Ctx, Outcome};
use crate::error::Result;

/// What the gamification commands read: the team, who is asking, their today, and every act.
pub struct Acts {
    pub team: cairn_core::TeamState,
    pub me: String,
    pub today: jiff::civil::Date,
    pub acts: Vec<cairn_core::goals::Act>,
}

impl Acts {
    pub fn load(ctx: &Ctx) -> Result<Acts> {
        let replica = ctx.open()?;
        let team = replica.team()?;
        Ok(Acts {
            me: ctx.actor(&replica, &team)?,
            today: ctx.today(&team.tz),
            acts: replica.acts()?,
            team,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
    Log(log::Args),
    Kudos(kudos::Args),
    React(react::Args),
    Edit(edit::Args),
    Retract(retract::Args),
    Feed(feed::Args),
    Team(team::Args),
    Join(join::Args),
    Publish(publish::Args),
    Sync(sync::Args),
    Status(status::Args),
    Remote(remote::Args),
    Streaks(streaks::Args),
    Badges(badges::Args),
    Challenge(challenge::Args),
    Challenges(challenge::ListArgs),
    Nudge(nudge::Args),
    Org(org::Args),
    Digest(digest::Args),
    Me(me::Args),
    Device(device::Args),
    Export(export::Args),
    Import(import::Args),
    Doctor(doctor::Args),
    Config(config::Args),
    Completions(completions::Args),
    Demo(demo::Args),
    Web(web::Args),
    #[command(hide = true)]
    GenerateMan(generate_man::Args),
}

/// Runs `command`; when it left changes for the server, a sync starts in the background (each
/// writing command says so itself: see [`Outcome`]).
pub fn run(command: Command, ctx: &mut Ctx) -> Result<()> {
    if dispatch(command, ctx)? == Outcome::Wrote {
        sync::after_write(ctx);
    }
    Ok(())
}

fn dispatch(command: Command, ctx: &mut Ctx) -> Result<Outcome> {
    // Commands that only read, or that reach the server themselves (init, join, publish, sync,
    // device), return nothing to sync.
    let read = |()| Outcome::Read;
    // A config file with something wrong in it stops every command but the one that fixes it.
    if !matches!(command, Command::Config(_))
        && let Some(e) = ctx.config.trouble()
    {
        return Err(e);
    }
    // These say themselves why the device can no longer sync, if it cannot.
    if matches!(
        command,
        Command::Sync(_) | Command::Status(_) | Command::Doctor(_) | Command::Remote(_)
    ) {
        ctx.told.set(true);
    }
    match command {
        Command::Init(a) => init::run(a, ctx).map(read),
        Command::Log(a) => log::run(a, ctx),
        Command::Kudos(a) => kudos::run(a, ctx),
        Command::React(a) => react::run(a, ctx),
        Command::Edit(a) => edit::run(a, ctx),
        Command::Retract(a) => retract::run(a, ctx),
        Command::Feed(a) => feed::run(a, ctx).map(read),
        Command::Team(a) => team::run(a, ctx),
        Command::Join(a) => join::run(a, ctx).map(read),
        Command::Publish(a) => publish::run(a, ctx).map(read),
        Command::Sync(a) => sync::run(a, ctx).map(read),
        Command::Status(a) => status::run(a, ctx).map(read),
        Command::Remote(a) => remote::run(a, ctx).map(read),
        Command::Streaks(a) => streaks::run(a, ctx).map(read),
        Command::Badges(a) => badges::run(a, ctx).map(read),
        Command::Challenge(a) => challenge::run(a, ctx),
        Command::Challenges(a) => challenge::list(a, ctx).map(read),
        Command::Nudge(a) => nudge::run(a, ctx).map(read),
        Command::Org(a) => org::run(a, ctx),
        Command::Digest(a) => digest::run(a, ctx).map(read),
        Command::Me(a) => me::run(a, ctx),
        Command::Device(a) => device::run(a, ctx).map(read),
        Command::Export(a) => export::run(a, ctx).map(read),
        Command::Import(a) => import::run(a, ctx),
        Command::Doctor(a) => doctor::run(a, ctx).map(read),
        Command::Config(a) => config::run(a, ctx).map(read),
        Command::Completions(a) => completions::run(a, ctx).map(read),
        Command::GenerateMan(a) => generate_man::run(a, ctx).map(read),
        Command::Demo(a) => demo::run(a, ctx).map(read),
        Command::Web(a) => web::run(a, ctx).map(read),
    }
}
