//! One module per subcommand.

mod completions;
mod demo;
mod doctor;
mod edit;
mod export;
mod feed;
mod init;
mod kudos;
mod log;
mod react;
mod retract;
mod team;

use clap::Subcommand;

use crate::context::Ctx;
use crate::error::Result;

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
    Export(export::Args),
    Doctor(doctor::Args),
    Completions(completions::Args),
    Demo(demo::Args),
}

pub fn run(command: Command, ctx: &mut Ctx) -> Result<()> {
    match command {
        Command::Init(a) => init::run(a, ctx),
        Command::Log(a) => log::run(a, ctx),
        Command::Kudos(a) => kudos::run(a, ctx),
        Command::React(a) => react::run(a, ctx),
        Command::Edit(a) => edit::run(a, ctx),
        Command::Retract(a) => retract::run(a, ctx),
        Command::Feed(a) => feed::run(a, ctx),
        Command::Team(a) => team::run(a, ctx),
        Command::Export(a) => export::run(a, ctx),
        Command::Doctor(a) => doctor::run(a, ctx),
        Command::Completions(a) => completions::run(a, ctx),
        Command::Demo(a) => demo::run(a, ctx),
    }
}
