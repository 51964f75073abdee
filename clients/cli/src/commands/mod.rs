//! One module per subcommand.

mod badges;
mod challenge;
mod completions;
mod demo;
mod device;
pub mod digest;
mod doctor;
pub mod edit;
mod export;
pub mod feed;
mod init;
mod join;
pub mod kudos;
pub mod log;
pub mod me;
mod nudge;
mod publish;
pub mod react;
pub mod retract;
mod status;
mod streaks;
pub mod sync;
pub mod team;
mod web;

use clap::Subcommand;

use crate::context::Ctx;
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
            me: ctx.actor(&replica)?,
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
    Streaks(streaks::Args),
    Badges(badges::Args),
    Challenge(challenge::Args),
    Challenges(challenge::ListArgs),
    Nudge(nudge::Args),
    Digest(digest::Args),
    Me(me::Args),
    Device(device::Args),
    Export(export::Args),
    Doctor(doctor::Args),
    Completions(completions::Args),
    Demo(demo::Args),
    Web(web::Args),
}

pub fn run(command: Command, ctx: &mut Ctx) -> Result<()> {
    let writes = matches!(
        command,
        Command::Log(_)
            | Command::Kudos(_)
            | Command::React(_)
            | Command::Edit(_)
            | Command::Retract(_)
            | Command::Team(_)
            | Command::Challenge(_)
    );
    dispatch(command, ctx)?;
    if writes {
        sync::after_write(ctx);
    }
    Ok(())
}

fn dispatch(command: Command, ctx: &mut Ctx) -> Result<()> {
    match command {
        Command::Init(a) => init::run(a, ctx),
        Command::Log(a) => log::run(a, ctx),
        Command::Kudos(a) => kudos::run(a, ctx),
        Command::React(a) => react::run(a, ctx),
        Command::Edit(a) => edit::run(a, ctx),
        Command::Retract(a) => retract::run(a, ctx),
        Command::Feed(a) => feed::run(a, ctx),
        Command::Team(a) => team::run(a, ctx),
        Command::Join(a) => join::run(a, ctx),
        Command::Publish(a) => publish::run(a, ctx),
        Command::Sync(a) => sync::run(a, ctx),
        Command::Status(a) => status::run(a, ctx),
        Command::Streaks(a) => streaks::run(a, ctx),
        Command::Badges(a) => badges::run(a, ctx),
        Command::Challenge(a) => challenge::run(a, ctx),
        Command::Challenges(a) => challenge::list(a, ctx),
        Command::Nudge(a) => nudge::run(a, ctx),
        Command::Digest(a) => digest::run(a, ctx),
        Command::Me(a) => me::run(a, ctx),
        Command::Device(a) => device::run(a, ctx),
        Command::Export(a) => export::run(a, ctx),
        Command::Doctor(a) => doctor::run(a, ctx),
        Command::Completions(a) => completions::run(a, ctx),
        Command::Demo(a) => demo::run(a, ctx),
        Command::Web(a) => web::run(a, ctx),
    }
}
