//! The one writer every command prints through: it knows `--json`, colour and `NO_COLOR`.
//!
//! Colour goes through `anstream`, which drops it when stdout is not a terminal, when `NO_COLOR`
//! is set, or when `CLICOLOR=0`.

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::error::Result;

pub const ID: Style = AnsiColor::Yellow.on_default();
pub const HANDLE: Style = AnsiColor::Cyan.on_default().bold();
pub const PILLAR: Style = AnsiColor::Magenta.on_default();
pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();
pub const GOOD: Style = AnsiColor::Green.on_default();

/// `n` and the noun that goes with it: `count(1, "change", "changes")` is "1 change".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` in `style`; plain wherever colour is off.
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

/// `text` wrapped to `width` columns (`None`: not wrapped), each line after `first` starting
/// with `rest`: a hanging indent. Words longer than a line are broken; colour codes take no
/// room.
pub fn wrap(text: &str, first: &str, rest: &str, width: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let indent = if i == 0 { first } else { rest };
        let Some(width) = width else {
            out.push(format!("{indent}{line}"));
            continue;
        };
        let options = textwrap::Options::new(width)
            .initial_indent(indent)
            .subsequent_indent(rest);
        out.extend(
            textwrap::wrap(line, options)
                .into_iter()
                .map(|l| l.into_owned()),
        );
    }
    // No text is still a line: the first indent may be all there is (a name beside nothing).
    if out.is_empty() {
        out.push(first.trim_end().to_owned());
    }
    out
}

/// `text` and the spaces that make it `width` columns wide (by display width: `é` and `👏` count
/// as they show).
pub fn pad(text: &str, width: usize) -> String {
    let shown = textwrap::core::display_width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(shown)))
}

/// The display width of the widest of `texts`.
pub fn widest<'a>(texts: impl IntoIterator<Item = &'a str>) -> usize {
    texts
        .into_iter()
        .map(textwrap::core::display_width)
        .max()
        .unwrap_or(0)
}

/// The width to wrap standard output to: `COLUMNS` when set, else the terminal's; `None` in a
/// pipe (a program reads whole lines).
pub fn width() -> Option<usize> {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    let width = match columns {
        Some(c) => c,
        None => {
            let stdout = std::io::stdout();
            if !std::io::IsTerminal::is_terminal(&stdout) {
                return None;
            }
            terminal_size::terminal_size_of(&stdout)?.0.0 as usize
        }
    };
    // Narrower than this and the indents leave no room for words.
    Some(width.max(30))
}

/// Standard output for one command.
#[derive(Debug)]
pub struct Out {
    pub json: bool,
    /// The columns to wrap text to; `None` in a pipe.
    pub width: Option<usize>,
    /// `--no-pager`: never start one.
    pub no_pager: bool,
    /// The pager the config file names (`PAGER` comes first).
    pub pager_command: Option<String>,
    stream: anstream::AutoStream<std::io::Stdout>,
    pager: Option<Pager>,
}

/// A pager the output goes through, as git and jj do on a terminal.
#[derive(Debug)]
struct Pager {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    /// Colour codes pass to it (`less -R` shows them) unless colour is off.
    colour: bool,
    /// While it runs, Ctrl-C and Ctrl-\ are the pager's (as with git): cairn waits for the pager
    /// instead of dying under it and giving the shell back while it still draws.
    #[cfg(unix)]
    ignored: Vec<signal_hook::SigId>,
}

impl Pager {
    /// `$PAGER` (run by the shell, like git), else `less`; `LESS=FRX` unless `LESS` is set, so a
    /// page that fits the screen prints and returns. `None` when no pager is wanted or none
    /// starts.
    fn start(configured: Option<&str>) -> Option<Pager> {
        let wanted = std::env::var("PAGER")
            .ok()
            .or_else(|| configured.map(str::to_owned));
        let mut child = match wanted {
            Some(p) if p.trim().is_empty() || p.trim() == "cat" => return None,
            Some(p) => {
                let mut c = std::process::Command::new("sh");
                c.arg("-c").arg(p);
                c
            }
            // Started directly, so a machine without `less` prints as if there were no pager.
            None => std::process::Command::new("less"),
        };
        child.stdin(std::process::Stdio::piped());
        if std::env::var_os("LESS").is_none() {
            child.env("LESS", "FRX");
        }
        if std::env::var_os("LV").is_none() {
            child.env("LV", "-c");
        }
        let mut child = child.spawn().ok()?;
        let stdin = child.stdin.take();
        Some(Pager {
            child,
            stdin,
            colour: anstream::AutoStream::choice(&std::io::stdout())
                != anstream::ColorChoice::Never,
            // A handler that only sets a flag nobody reads: the signal no longer ends cairn.
            #[cfg(unix)]
            ignored: [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT]
                .into_iter()
                .filter_map(|signal| {
                    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    signal_hook::flag::register(signal, flag).ok()
                })
                .collect(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(stdin) = &mut self.stdin else {
            return Ok(());
        };
        if self.colour {
            stdin.write_all(bytes)
        } else {
            stdin.write_all(&anstream::adapter::strip_bytes(bytes).into_vec())
        }
    }

    /// Lets the pager read to the end and waits for the person to leave it; false when the
    /// shell could not run `$PAGER` (126, 127), so what went to it was never shown.
    fn finish(&mut self) -> bool {
        drop(self.stdin.take());
        let shown = !matches!(self.child.wait().map(|s| s.code()), Ok(Some(126 | 127)));
        #[cfg(unix)]
        for id in self.ignored.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        shown
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        if let Some(pager) = &mut self.pager {
            pager.finish();
        }
    }
}

impl Out {
    pub fn new(json: bool) -> Self {
        Out {
            json,
            width: width(),
            no_pager: false,
            pager_command: None,
            stream: anstream::stdout(),
            pager: None,
        }
    }

    /// Makes the stream again, to take a colour choice made after it was.
    pub fn renew(&mut self) {
        let _ = self.stream.flush();
        self.stream = anstream::stdout();
    }

    /// Sends the rest of the output through a pager when it goes to a terminal (never in a
    /// pipe, never for `--json` or `--no-pager`): for commands whose output can run long.
    pub fn page(&mut self) {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        if self.pager.is_none() && terminal && !self.json && !self.no_pager {
            let _ = self.stream.flush();
            self.pager = Pager::start(self.pager_command.as_deref());
        }
    }

    fn write(&mut self, text: &str) -> Result<()> {
        match &mut self.pager {
            Some(pager) => pager.write(text.as_bytes())?,
            None => self.stream.write_all(text.as_bytes())?,
        }
        Ok(())
    }

    /// Writes `text` wrapped to the width, with a hanging indent.
    pub fn wrapped(&mut self, text: &str, first: &str, rest: &str) -> Result<()> {
        for line in wrap(text, first, rest, self.width) {
            self.line(line)?;
        }
        Ok(())
    }

    /// Writes one line.
    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<()> {
        self.write(&format!("{text}\n"))
    }

    /// Writes `value` as pretty JSON.
    pub fn json(&mut self, value: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
        self.write(&format!("{text}\n"))
    }

    /// Writes a line for people, or `value` when `--json` is on.
    pub fn say(&mut self, text: impl std::fmt::Display, value: serde_json::Value) -> Result<()> {
        if self.json {
            self.json(&value)
        } else {
            self.line(text)
        }
    }

    /// Raw access for writers such as CSV.
    pub fn raw(&mut self) -> &mut dyn Write {
        &mut self.stream
    }

    pub fn flush(&mut self) -> Result<()> {
        self.stream.flush()?;
        if let Some(pager) = &mut self.pager
            && !pager.finish()
        {
            return Err(
                crate::error::CliError::new("the pager in PAGER could not run")
                    .hint("fix PAGER, or see the output with --no-pager (or PAGER=cat)")
                    .kind(crate::error::Kind::Failure),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_wraps_at_words_with_a_hanging_indent() {
        let text = "Paired with a new teammate on their first review\nand again";
        assert_eq!(
            wrap(text, "  - ", "    ", Some(24)),
            [
                "  - Paired with a new",
                "    teammate on their",
                "    first review",
                "    and again"
            ]
        );
        // No width: one line per line of the text, indents kept.
        assert_eq!(
            wrap(text, "> ", "  ", None),
            [
                "> Paired with a new teammate on their first review",
                "  and again"
            ]
        );
        // No text: the first indent alone, wrapped or not.
        for width in [None, Some(24)] {
            assert_eq!(wrap("", "  #Curiosity  ", "    ", width), ["  #Curiosity"]);
        }
        // Colour codes take no room.
        let red = paint(AnsiColor::Red.on_default(), "word");
        assert_eq!(wrap(&format!("{red} {red}"), "", "", Some(9)).len(), 1);
    }

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(0u64, "change", "changes"), "0 changes");
        assert_eq!(count(1u64, "change", "changes"), "1 change");
        assert_eq!(
            count(2u32, "micro-action", "micro-actions"),
            "2 micro-actions"
        );
    }
}
