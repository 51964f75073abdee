//! `cairn generate-man DIR` (hidden): the manual pages, for packages.

use std::path::PathBuf;

use crate::context::Ctx;
use crate::error::{CliError, Result};

/// Write cairn's manual pages, `cairn.1` and one per subcommand (`cairn-log.1`, ...), into DIR,
/// from the same definitions as `--help`.
///
/// For packagers: the Debian package runs this at build time rather than every build.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to write them into (created when missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let fail = |e: std::io::Error| {
        CliError::new(format!(
            "cannot write manual pages into {}: {e}",
            args.dir.display()
        ))
    };
    std::fs::create_dir_all(&args.dir).map_err(fail)?;
    clap_mangen::generate_to(crate::command(), &args.dir).map_err(fail)?;
    ctx.out
        .line(format_args!("wrote {}", args.dir.join("cairn.1").display()))
}
