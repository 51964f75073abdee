//! `cairn completions`: shell completions.

use crate::context::Ctx;
use crate::error::Result;

/// Print shell completions, e.g. `cairn completions bash > ~/.local/share/bash-completion/completions/cairn`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut cmd = crate::command();
    // `generate` panics when the write fails (a full disk, a closed pipe); write to memory first.
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cairn", &mut buf);
    ctx.out.raw().write_all(&buf)?;
    Ok(())
}
