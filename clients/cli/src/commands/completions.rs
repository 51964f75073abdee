//! `cairn completions`: shell completions, dynamic: handles, pillars and event ids come from
//! the replica as you type.

use std::io::Write;

use clap_complete::env::EnvCompleter;

use crate::context::Ctx;
use crate::error::{CliError, Result};

/// Print the shell code that completes cairn's commands, options, handles (`@<TAB>`), pillars
/// (`--pillar <TAB>`) and event ids (`cairn react <TAB>`).
///
/// Load it as the shell starts, so it always matches this cairn:
///   bash:  echo 'source <(cairn completions bash)' >> ~/.bashrc
///   zsh:   echo 'source <(cairn completions zsh)' >> ~/.zshrc
///   fish:  echo 'cairn completions fish | source' >> ~/.config/fish/config.fish
/// (The same code comes from `COMPLETE=bash cairn`.)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell.
    shell: clap_complete::Shell,
    /// The program the shell calls back [default: this cairn]; for a file a package installs,
    /// `/usr/bin/cairn`.
    #[arg(long, hide = true, value_name = "PATH")]
    completer: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    use clap_complete::Shell;
    let shell: &dyn EnvCompleter = match args.shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
        Shell::Elvish => &clap_complete::env::Elvish,
        Shell::PowerShell => &clap_complete::env::Powershell,
        other => {
            return Err(CliError::new(format!("no completions for {other}"))
                .hint("bash, zsh, fish, elvish and powershell have them"));
        }
    };
    // The shell calls this very program back to complete.
    let completer = args.completer.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .unwrap_or_else(|| "cairn".to_owned())
    });
    let mut buf = Vec::new();
    shell.write_registration("COMPLETE", "cairn", "cairn", &completer, &mut buf)?;
    if args.shell == Shell::Zsh {
        // Installed as `_cairn` in zsh's fpath, this file is the body of a function zsh loads on
        // the first TAB: that call only registers the completer, so it completes too.
        buf.extend_from_slice(
            b"\nif [[ \"${funcstack[1]}\" == _cairn ]]; then\n    \
              _clap_dynamic_completer_cairn \"$@\"\nfi\n",
        );
    }
    ctx.out.raw().write_all(&buf)?;
    Ok(())
}
