//! The binary's face without a replica: help, version, completions and usage errors.

use std::process::Command;

fn cairn(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_HOME", home.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn help_teaches_the_first_commands() {
    let out = cairn(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "init",
        "log",
        "kudos",
        "react",
        "feed",
        "team",
        "export",
        "cairn init --team",
    ] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let log = String::from_utf8(cairn(&["log", "--help"]).stdout).unwrap();
    assert!(log.contains("--yesterday") && log.contains("--pillar"));
}

#[test]
fn completions_for_every_shell_call_this_cairn_back() {
    // The code registers this very binary as the completer (what it completes is tested in
    // real bash in tests/tests/output.rs).
    let bin = env!("CARGO_BIN_EXE_cairn");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = cairn(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let code = String::from_utf8_lossy(&out.stdout);
        assert!(
            code.contains(bin) && code.contains("COMPLETE"),
            "{shell}: {code}"
        );
    }
}

#[test]
fn packaged_completions_call_the_installed_cairn_back() {
    // What the Debian package installs: the completer is /usr/bin/cairn, and zsh's file, loaded
    // from its fpath on the first TAB as the function `_cairn`, completes on that TAB too.
    for shell in ["bash", "zsh", "fish"] {
        let out = cairn(&["completions", shell, "--completer", "/usr/bin/cairn"]);
        assert!(out.status.success(), "{shell}");
        let code = String::from_utf8_lossy(&out.stdout);
        assert!(code.contains("/usr/bin/cairn"), "{shell}: {code}");
        assert!(
            !code.contains(env!("CARGO_BIN_EXE_cairn")),
            "{shell}: {code}"
        );
    }
    let zsh = String::from_utf8(cairn(&["completions", "zsh"]).stdout).unwrap();
    assert!(zsh.starts_with("#compdef cairn"), "{zsh}");
    assert!(zsh.contains("== _cairn ]]; then"), "{zsh}");
}

#[test]
fn the_hidden_generate_man_writes_a_page_per_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man");
    let out = cairn(&["generate-man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(dir.join("cairn.1")).unwrap();
    assert!(page.starts_with(".ie"), "{page}");
    assert!(page.contains("cairn\\-log(1)"), "{page}");
    assert!(dir.join("cairn-log.1").is_file() && dir.join("cairn-team-pillar-add.1").is_file());
    assert!(!dir.join("cairn-generate-man.1").exists());
    // Hidden: not offered in --help.
    let help = String::from_utf8(cairn(&["--help"]).stdout).unwrap();
    assert!(!help.contains("generate-man"), "{help}");
}

#[test]
fn usage_errors_exit_2_and_missing_replicas_exit_3() {
    let out = cairn(&["log"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cairn(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cairn(&["feed"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("error: no team here yet"), "{err}");
    assert!(
        lines[1].starts_with("hint: ") && lines[1].contains("cairn init"),
        "{err}"
    );
}

#[test]
fn the_demo_runs_the_real_commands_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the demo's home is gone"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("$ cairn feed"), "{text}");
    assert!(text.contains("Calm, blameless incident write-up"), "{text}");
    assert!(text.contains("🎉 1  👏 1"), "{text}");
}
