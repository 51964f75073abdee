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

/// Standard output for one command.
#[derive(Debug)]
pub struct Out {
    pub json: bool,
    stream: anstream::AutoStream<std::io::Stdout>,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Out {
            json,
            stream: anstream::stdout(),
        }
    }

    /// Writes one line.
    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<()> {
        writeln!(self.stream, "{text}")?;
        Ok(())
    }

    /// Writes `value` as pretty JSON.
    pub fn json(&mut self, value: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
        writeln!(self.stream, "{text}")?;
        Ok(())
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
