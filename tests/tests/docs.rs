//! Every command the README and the pages of `docs/` show is one the binaries take: each line of
//! their `sh` blocks that runs `cairn`, `cairn-server` or `cairn-relay` is given to that binary
//! as written (placeholders and all) with `--help` after it, which clap answers only once every
//! subcommand, flag and value before it parsed. The blocks themselves are also run word for word,
//! each by the test of its page (`readme.rs`: the tour, the server, organisations; `backup.rs`;
//! `docs_run.rs`: the web, pruning, PostgreSQL; the relay's `live.rs`: chat); this keeps every
//! line of them honest, the install block's too (`.ci/packages` runs the packages).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cairn_e2e::{bin, shell_words};

/// The README and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = vec![root.join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        out.extend(docs);
    }
    out
}

/// The lines of a page's `sh` blocks.
fn sh_lines(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside && line.trim() == "```sh";
            continue;
        }
        if inside {
            out.push(line.to_owned());
        }
    }
    out
}

/// A line without its comment (`#` after whitespace or at the start, outside quotes).
fn code(line: &str) -> &str {
    let mut quoted = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '#' if !quoted && prev.is_whitespace() => return line[..i].trim(),
            _ => {}
        }
        prev = c;
    }
    line.trim()
}

#[test]
fn every_documented_command_is_one_the_binaries_take() {
    let home = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for page in pages() {
        for line in sh_lines(&page) {
            let code = code(&line);
            for part in code.split("&&") {
                let part = part.trim().trim_end_matches('&').trim();
                // What is not ours (cargo, createdb, echo, $EDITOR) is not checked here.
                let Some(program) = ["cairn-server", "cairn-relay", "cairn"]
                    .into_iter()
                    .find(|p| part.split_whitespace().next() == Some(*p))
                else {
                    continue;
                };
                // A redirection is the shell's, not the command's.
                let command = part.split(" > ").next().unwrap();
                let words: Vec<String> = shell_words(&command.replace("$(date +%F)", "2026-12-07"));
                let out = Command::new(bin(program))
                    .args(&words[1..])
                    .arg("--help")
                    .env("CAIRN_HOME", home.path())
                    .env_remove("CAIRN_SERVER_DB")
                    .env_remove("CAIRN_SERVER_CONFIG")
                    .stdin(Stdio::null())
                    .output()
                    .expect("the binary runs");
                assert!(
                    out.status.success(),
                    "{}: `{command}` is not a command {program} takes: {}",
                    page.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 80, "only {checked} documented commands found");
}
