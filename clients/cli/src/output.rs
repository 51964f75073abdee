//! The one writer every command prints through: it knows `--json`, colour and `NO_COLOR`.
//!
//! Colour goes through `anstream`, which drops it when stdout is not a terminal, when `NO_COLOR`
//! is set, or when `CLICOLOR=0`.
//!
//! Text is only text. A member can write anything into the team's documents with a change made
//! by hand, and a server can send anything, so every string that reaches a terminal goes
//! through [`neutral`] here, where text leaves the process (standard output, the pager, CSV,
//! standard error): a control character shows as its picture (`␛`, `␍`, `␇`), a C1 control or
//! a bidirectional override as `�`, and only the colour codes [`paint`] made itself, marked
//! with a key of this process that no document can know, become colour. This is the one place
//! a future command cannot forget, where a filter at each reader would have to be added to each
//! new field, server answer and error message. New lines and tabs pass (event text keeps its
//! lines; the renderer indents them): a field that must stay on one line, a name or a handle,
//! is made one line where the document is read (`cairn_core::event::one_line`).

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
    if style == Style::new() {
        return text.to_string();
    }
    let (start, end) = marks(style);
    format!("{start}{text}{end}")
}

/// `style`'s codes and the reset after it, marked as this process's own (`ESC [ KEY ; ... m`):
/// still control sequences, so wrapping and widths take them for no room. Made once per style
/// (a handful in all), not once per word painted.
fn marks(style: Style) -> (&'static str, &'static str) {
    type Marks = Vec<(Style, &'static str, &'static str)>;
    static MARKS: std::sync::Mutex<Marks> = std::sync::Mutex::new(Vec::new());
    let mut marks = MARKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, start, end)) = marks.iter().find(|(s, _, _)| *s == style) {
        return (start, end);
    }
    let marked = |sgr: String| -> &'static str { sgr.replace("\x1b[", mark()).leak() };
    let start = marked(style.render().to_string());
    let end = marked(style.render_reset().to_string());
    marks.push((style, start, end));
    (start, end)
}

/// `ESC [ KEY ;`, where KEY is this process's key for its own colour codes: random, never
/// written out, so no text read from a document or a server can carry a code the writer takes
/// for one of [`paint`]'s.
fn mark() -> &'static str {
    static MARK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARK.get_or_init(|| {
        use std::hash::BuildHasher;
        // (std seeds each process's hasher keys from the system's randomness.)
        let n = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        format!("\x1b[{};", n | 1 << 63)
    })
}

/// `text` made safe for a terminal: new lines and tabs kept (a carriage return too, right
/// before a new line), every other control character shown as its picture (`␛`, `␇`, `␍`), C1
/// controls, bidirectional overrides and isolates and the line and paragraph separators as
/// `�`. [`paint`]'s own colour codes become plain SGR codes when `colour`, else go.
pub fn neutral(text: &str, colour: bool) -> std::borrow::Cow<'_, str> {
    let special = |c: char| unsafe_char(c) && c != '\n' && c != '\t';
    let Some(first) = text.find(special) else {
        return std::borrow::Cow::Borrowed(text);
    };
    let mark = mark();
    let mut out = String::with_capacity(text.len() + 32);
    out.push_str(&text[..first]);
    // Each turn, `rest` starts with a special character.
    let mut rest = &text[first..];
    loop {
        let c = rest.chars().next().unwrap_or('\n');
        if c == '\x1b'
            && let Some(after) = rest.strip_prefix(mark)
            && let Some(end) = after.find(|c: char| !(c.is_ascii_digit() || c == ';' || c == ':'))
            && after[end..].starts_with('m')
        {
            if colour {
                out.push_str("\x1b[");
                out.push_str(&after[..=end]);
            }
            rest = &after[end + 1..];
        } else {
            match c {
                '\r' if rest[1..].starts_with('\n') => out.push(c),
                '\0'..='\x1f' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
                '\x7f' => out.push('\u{2421}'),
                _ => out.push('\u{fffd}'),
            }
            rest = &rest[c.len_utf8()..];
        }
        match rest.find(special) {
            Some(i) => {
                out.push_str(&rest[..i]);
                rest = &rest[i..];
            }
            None => {
                out.push_str(rest);
                return std::borrow::Cow::Owned(out);
            }
        }
    }
}

/// Whether `c` can move, hide or reorder what a terminal shows: a control character (C0, DEL,
/// C1), a bidirectional embedding, override or isolate, a line or paragraph separator.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Pretty JSON that is as safe to print: what serde escapes already (C0) and, escaped the same
/// way, DEL, C1 controls, bidirectional overrides and separators. They only ever sit inside
/// strings, so the value read back is the same.
fn json_text(value: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    if !text.chars().any(unsafe_char) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c != '\n' && unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `text` as one line to standard error, made safe for a terminal like standard
/// output (without colour): for notes and warnings beside a command's output.
pub fn write_note(text: impl std::fmt::Display) {
    let text = format!("{text}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), neutral(&text, false).as_bytes());
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
        // A handler that only sets a flag nobody reads: the signal no longer ends cairn. Set
        // before the pager starts, which may signal at once.
        #[cfg(unix)]
        let ignored: Vec<signal_hook::SigId> =
            [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT]
                .into_iter()
                .filter_map(|signal| {
                    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    signal_hook::flag::register(signal, flag).ok()
                })
                .collect();
        let mut child = match child.spawn() {
            Ok(child) => child,
            Err(_) => {
                #[cfg(unix)]
                for id in ignored {
                    signal_hook::low_level::unregister(id);
                }
                return None;
            }
        };
        let stdin = child.stdin.take();
        Some(Pager {
            child,
            stdin,
            colour: anstream::AutoStream::choice(&std::io::stdout())
                != anstream::ColorChoice::Never,
            #[cfg(unix)]
            ignored,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(stdin) = &mut self.stdin else {
            return Ok(());
        };
        let written = if self.colour {
            stdin.write_all(bytes)
        } else {
            stdin.write_all(&anstream::adapter::strip_bytes(bytes).into_vec())
        };
        match written {
            // The pager is gone: the person left it (quietly done), or it never ran (said).
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && !self.finish() => {
                Err(pager_failed())
            }
            other => Ok(other?),
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

    /// Every byte of output goes through here, made safe for a terminal (see [`neutral`]).
    fn write(&mut self, text: &str) -> Result<()> {
        let text = neutral(text, true);
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
        let text = json_text(value);
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

    /// A byte writer for writers such as CSV, made safe like every other output.
    pub fn raw(&mut self) -> Bytes<'_> {
        Bytes {
            out: self,
            pending: Vec::new(),
        }
    }

    pub fn flush(&mut self) -> Result<()> {
        self.stream.flush()?;
        if let Some(pager) = &mut self.pager
            && !pager.finish()
        {
            return Err(pager_failed());
        }
        Ok(())
    }
}

fn pager_failed() -> crate::error::CliError {
    crate::error::CliError::new("the pager in PAGER could not run")
        .hint("fix PAGER, or see the output with --no-pager (or PAGER=cat)")
        .kind(crate::error::Kind::Failure)
}

/// `eprintln!` for cairn: the line goes through [`write_note`], made safe for a terminal.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::write_note(format!($($arg)*))
    };
}
pub(crate) use note;

/// Bytes written to [`Out`]: each whole character made safe as text is; bytes that are no
/// UTF-8 show as `�`. What is left of a character cut between two writes waits for the next.
#[derive(Debug)]
pub struct Bytes<'a> {
    out: &'a mut Out,
    pending: Vec<u8>,
}

impl Bytes<'_> {
    fn send(&mut self, all: bool) -> std::io::Result<()> {
        // (A write's failure keeps its kind: a closed pipe ends the command quietly.)
        let io = |e: crate::error::CliError| {
            let kind = if e.is_broken_pipe() {
                std::io::ErrorKind::BrokenPipe
            } else {
                std::io::ErrorKind::Other
            };
            std::io::Error::new(kind, e.message)
        };
        let mut text = String::new();
        let mut rest = &self.pending[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            text.push('\u{fffd}');
                            rest = &bad[n..];
                        }
                        // A character not whole yet.
                        None if !all => {
                            rest = bad;
                            break;
                        }
                        None => {
                            text.push('\u{fffd}');
                            rest = &[];
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        self.out.write(&text).map_err(io)
    }
}

impl Write for Bytes<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.send(false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send(true)
    }
}

impl Drop for Bytes<'_> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.send(true);
        }
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
    fn text_from_anywhere_reaches_the_terminal_as_text() {
        let hostile = "a\x1b]0;title\x07b\x1b[2J\rc\x1b]8;;http://x\x1b\\d\u{202e}e\u{9b}f\x7f";
        let shown = neutral(hostile, true);
        assert_eq!(
            shown,
            "a␛]0;title␇b␛[2J␍c␛]8;;http://x␛\\d\u{fffd}e\u{fffd}f␡"
        );
        // What people type stays: accents, emoji (joined ones too), new lines, tabs, CRLF.
        let typed = "Chloé 👩‍💻 merci\n\tfin\r\n";
        assert_eq!(neutral(typed, true), typed);
        // paint's codes are colour when colour is on, and nothing when it is off; the same
        // codes typed into a document are not.
        let red = paint(AnsiColor::Red.on_default(), "word");
        assert_eq!(neutral(&red, true), "\x1b[31mword\x1b[0m");
        assert_eq!(neutral(&red, false), "word");
        assert_eq!(neutral("\x1b[31mword", true), "␛[31mword");
        let forged = format!("\x1b[{}1;31mword", &mark()[3..]);
        assert!(!neutral(&forged, true).contains('\x1b'));
        // A hostile code cut just before one of paint's does not swallow it, nor the reverse.
        let mixed = format!("\x1b[{red}\x1b");
        assert_eq!(neutral(&mixed, true), "␛[\x1b[31mword\x1b[0m␛");
    }

    #[test]
    fn json_escapes_what_a_terminal_would_obey() {
        let value = serde_json::json!({ "text": "a\u{202e}b\x1bc\u{85}d\x7f" });
        let text = json_text(&value);
        assert!(text.chars().all(|c| c == '\n' || !unsafe_char(c)), "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
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
