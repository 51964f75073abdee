//! `--version` names the version, the commit and the day each binary was built, as jj's does,
//! so a bug report says which build it is about.

use std::process::Command;

#[test]
fn each_binary_names_its_version_commit_and_build_day() {
    for name in ["cairn", "cairn-server", "cairn-relay"] {
        let out = Command::new(cairn_e2e::bin(name))
            .arg("--version")
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("{name} runs: {e}"));
        assert!(out.status.success(), "{name} --version failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.trim_end();
        let rest = line
            .strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|| panic!("{name}: {line:?}"));
        let (commit, rest) = rest.split_once(", built ").expect("a build day");
        assert!(
            commit == "unknown"
                || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{name}: commit {commit:?}"
        );
        let day = rest.strip_suffix(')').expect("closed");
        let shape: Vec<bool> = day.chars().map(|c| c.is_ascii_digit()).collect();
        assert!(
            shape.len() == 10
                && day.as_bytes()[4] == b'-'
                && day.as_bytes()[7] == b'-'
                && shape
                    .iter()
                    .enumerate()
                    .all(|(i, d)| *d || i == 4 || i == 7),
            "{name}: day {day:?}"
        );
    }
}
