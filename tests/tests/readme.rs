//! The README's tour and the pages of `docs/` that show a server and an organisation, followed
//! word for word. The sync page: each command of its first `sh` block runs
//! as written, with only its placeholders filled in (a temp database for
//! `/var/lib/cairn/server.sqlite3`, the port the system picks for `7878`, and the ids and codes
//! that earlier commands printed).

use std::collections::HashMap;
use std::process::{Command, Stdio};

use cairn_e2e::{Background, Home, Run, bin, serve_in_background, shell_words};

/// The first `sh` block after `heading` in `page` (the README, or a page of `docs/`).
fn block(page: &str, heading: &str) -> Vec<String> {
    cairn_e2e::sh_block(page, heading)
}

/// A line without its comment (`#` after whitespace, outside quotes).
fn code(line: &str) -> &str {
    let mut quoted = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && prev.is_whitespace() => return line[..i].trim(),
            _ => {}
        }
        prev = c;
    }
    line.trim()
}

/// `cairn-server ARGS`, with the settings the section exported.
fn cairn_server(args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(bin("cairn-server"));
    c.args(args).env_remove("CAIRN_SERVER_DB");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn output(mut c: Command) -> Run {
    c.stdin(Stdio::null()).output().expect("it runs").into()
}

#[test]
fn the_sync_section_works_word_for_word() {
    let lines = block("docs/server.md", "# Sync: a server the team runs itself");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.sqlite3");
    // The tour before it: a team started offline, with Ben added by name.
    let mut home = Home::new();
    home.run(&[
        "init",
        "--team",
        "Otters",
        "--name",
        "Ana",
        "--tz",
        "Europe/Paris",
    ])
    .ok();
    home.run(&["team", "member", "add", "Ben Okafor", "--handle", "ben"])
        .ok();
    let mut homes = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut known: HashMap<&str, String> = HashMap::new();
    let mut server: Option<Background> = None;
    let mut ran = 0;
    for line in &lines {
        let code = code(line);
        if code.is_empty() || code.starts_with("cargo install") {
            continue;
        }
        let fill = |w: &str, known: &HashMap<&str, String>| -> String {
            let mut w = w
                .replace("/var/lib/cairn/server.sqlite3", &db.to_string_lossy())
                .replace("127.0.0.1:7878", "127.0.0.1:0");
            if let Some(url) = known.get("URL") {
                w = w.replace("https://cairn.example.org", url);
            }
            // Longest names first: CODE_FOR_BEN and FOUNDER_CODE before CODE.
            for key in [
                "CODE_FOR_BEN",
                "FOUNDER_CODE",
                "TEAM_ID",
                "INVITE_ID",
                "DEVICE_ID",
                "CODE",
                "HASH",
            ] {
                if let Some(v) = known.get(key) {
                    w = w.replace(key, v);
                }
            }
            w
        };
        if let Some(rest) = code.strip_prefix("export ") {
            let (k, v) = rest.split_once('=').expect("export NAME=VALUE");
            env.push((k.to_owned(), fill(v, &known)));
            continue;
        }
        if code.contains("HASH") && !known.contains_key("HASH") {
            let team = &known["TEAM_ID"];
            let conn = rusqlite::Connection::open(&db).unwrap();
            let hash: String = conn
                .query_row(
                    "SELECT lower(hex(hash)) FROM changes WHERE team = ?1 ORDER BY seq DESC LIMIT 1",
                    [team],
                    |r| r.get(0),
                )
                .unwrap();
            known.insert("HASH", hash);
        }
        let background = code.ends_with('&');
        let argv: Vec<String> = shell_words(code.trim_end_matches('&'))
            .iter()
            .map(|w| fill(w, &known))
            .collect();
        assert!(
            argv.iter()
                .all(|w| !w.contains("HOST") && !w.ends_with("_ID") && !w.ends_with("_CODE")),
            "a placeholder is left in `{line}`: {argv:?}"
        );
        ran += 1;
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        match argv[0].as_str() {
            "cairn-server" => {
                let c = cairn_server(&args, &env);
                if background {
                    let (child, url) = serve_in_background(c);
                    known.insert("URL", url);
                    server = Some(child);
                    continue;
                }
                let run = output(c);
                assert_eq!(run.code, 0, "`{line}` failed: {}", run.stderr);
                match (args.first().copied(), args.get(1).copied()) {
                    (Some("team"), Some("create")) => {
                        known.insert("TEAM_ID", run.stdout.trim().to_owned());
                        // The founder's invite and both of the founder's next commands, whole.
                        let publish = format!("cairn publish {} --invite ", known["URL"]);
                        let code = run
                            .stderr
                            .split_once(&publish)
                            .and_then(|(_, rest)| rest.split_whitespace().next())
                            .unwrap_or_else(|| panic!("the founder's line: {}", run.stderr))
                            .to_owned();
                        assert!(
                            run.stderr.contains(&format!(
                                "cairn join {} --invite {code} --name \"YOUR NAME\"",
                                known["URL"]
                            )),
                            "{}",
                            run.stderr
                        );
                        known.insert("FOUNDER_CODE", code);
                    }
                    (Some("invite"), Some("create")) => {
                        let code = run.stdout.trim().to_owned();
                        // With the public address set, the line to paste is whole.
                        assert!(
                            run.stderr
                                .contains(&format!("cairn join {} --invite {code}", known["URL"])),
                            "{}",
                            run.stderr
                        );
                        let key = if args.contains(&"--member") {
                            "CODE_FOR_BEN"
                        } else {
                            "CODE"
                        };
                        known.insert(key, code);
                    }
                    (Some("invite"), Some("list")) => {
                        let row = run.stdout.lines().nth(1).expect("an invite is listed");
                        known.insert("INVITE_ID", row.split_whitespace().next().unwrap().into());
                    }
                    (Some("device"), Some("list")) => {
                        let row = run
                            .stdout
                            .lines()
                            .find(|l| l.contains("@ana"))
                            .unwrap_or_else(|| {
                                panic!("the founder's device, by handle: {}", run.stdout)
                            });
                        assert!(row.contains("Ana"), "{row}");
                        known.insert("DEVICE_ID", row.split_whitespace().next().unwrap().into());
                    }
                    _ => {}
                }
            }
            "cairn" => {
                if args.first() == Some(&"join") {
                    let mut joined = Home::new();
                    joined.day = home.day.clone();
                    homes.push(std::mem::replace(&mut home, joined));
                }
                let run = home.run(&args);
                assert_eq!(run.code, 0, "`{line}` failed: {}", run.stderr);
            }
            other => panic!("the sync section runs `{other}`, which this test does not know"),
        }
    }
    assert!(server.is_some(), "the section starts a server");
    assert!(ran >= 15, "only {ran} commands ran");
    // The invite revoked by its id no longer lets anyone in.
    let url = known["URL"].clone();
    let stranger = Home::new();
    let err = stranger
        .run(&[
            "join",
            &url,
            "--invite",
            &known["CODE"],
            "--name",
            "Mallory",
        ])
        .fails();
    assert!(err.contains("invite"), "{err}");
    // The first home joined is the device that joined with the invite made for @ben.
    assert_eq!(homes.len(), 2, "two joins before the last");
    let me = homes[1].run(&["me", "--json"]).json();
    assert_eq!(
        me["handle"], "ben",
        "the invite made for @ben joined as Ben"
    );
    assert_eq!(home.run(&["me", "--json"]).json()["handle"], "dee-lin");
}

#[test]
fn the_tour_works_word_for_word_on_any_day() {
    let lines = block("README.md", "## A short tour");
    // Every day of a week, Monday to Sunday: the tour holds whatever day it is read on.
    for n in 7..=13 {
        // (2026-12-07 is a Monday; the last Friday on or before it is the 4th.)
        let day = format!("2026-12-{n:02}");
        let friday = if n >= 11 { "2026-12-11" } else { "2026-12-04" };
        let dir = tempfile::tempdir().unwrap();
        let mut home = Home::new();
        home.day = Some(day.clone());
        // The tour's example id stands for the first event it logs.
        let mut first: Option<String> = None;
        let mut ran = 0;
        for line in &lines {
            let code = code(line);
            if code.is_empty() || code.starts_with("cargo install") || code.starts_with("echo ") {
                continue;
            }
            let (command, into) = match code.split_once(" > ") {
                Some((c, file)) => (c, Some(file.trim())),
                None => (code, None),
            };
            let mut w = shell_words(command);
            assert_eq!(w[0], "cairn", "{code}");
            if let Some(id) = &first {
                for word in &mut w {
                    if word == "7k2m9q" {
                        *word = id.clone();
                    }
                }
            }
            let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
            let run = home.run(&args);
            assert_eq!(
                run.code, 0,
                "on {day}, `{code}` failed: {}{}",
                run.stderr, run.stdout
            );
            if first.is_none() && args[0] == "log" {
                let short = run
                    .stdout
                    .split_whitespace()
                    .nth(1)
                    .expect("`logged ID`")
                    .to_owned();
                first = Some(short);
            }
            if let Some(file) = into {
                std::fs::write(dir.path().join(file), &run.stdout).unwrap();
                assert!(run.stdout.lines().count() > 3, "{}", run.stdout);
            }
            ran += 1;
        }
        assert_eq!(ran, 30, "the tour runs every command");
        // What it logged is there, each stone on the day it says.
        let all = cairn_e2e::feed(&home, &[]);
        let late = all
            .iter()
            .find(|i| i["text"] == "Fixed the flaky deploy test")
            .expect("the late stone");
        assert_eq!(late["date"], friday, "on {day}");
    }
}

#[test]
fn the_organisation_section_works_word_for_word() {
    let lines = block("docs/organisations.md", "# An organisation of teams");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.sqlite3");
    let mut env: Vec<(String, String)> = Vec::new();
    let mut known: HashMap<&str, String> = HashMap::new();
    let mut homes: HashMap<String, Home> = HashMap::new();
    let mut who: Option<String> = None;
    // The section's first week, then "a week later".
    let mut day = "2026-11-24";
    let mut server: Option<Background> = None;
    let mut ran = 0;
    for line in &lines {
        // "# on Ana's machine", "# a week later, on Cy's machine": whose home runs what follows.
        if let Some(comment) = line.trim().strip_prefix("# ") {
            if comment.starts_with("a week later") {
                day = "2026-12-02";
                for h in homes.values_mut() {
                    h.day = Some(day.to_owned());
                }
            }
            let name = comment
                .split_once("on ")
                .and_then(|(_, rest)| rest.split_once("'s machine"))
                .map(|(name, _)| name.to_owned())
                .expect("a comment line names whose machine");
            who = Some(name);
            continue;
        }
        let code = code(line);
        if code.is_empty() {
            continue;
        }
        let fill = |w: &str, known: &HashMap<&str, String>| -> String {
            let mut w = w
                .replace("/var/lib/cairn/server.sqlite3", &db.to_string_lossy())
                .replace("127.0.0.1:7878", "127.0.0.1:0");
            if let Some(url) = known.get("URL") {
                w = w.replace("https://cairn.example.org", url);
            }
            for key in ["PLATFORM_FOUNDER_CODE", "MOBILE_FOUNDER_CODE", "NN_ID"] {
                if let Some(v) = known.get(key) {
                    w = w.replace(key, v);
                }
            }
            w
        };
        if let Some(rest) = code.strip_prefix("export ") {
            let (k, v) = rest.split_once('=').expect("export NAME=VALUE");
            env.push((k.to_owned(), fill(v, &known)));
            continue;
        }
        let background = code.ends_with('&');
        let argv: Vec<String> = shell_words(code.trim_end_matches('&'))
            .iter()
            .map(|w| fill(w, &known))
            .collect();
        assert!(
            argv.iter().all(|w| !w.ends_with("_CODE") && w != "NN_ID"),
            "a placeholder is left in `{line}`: {argv:?}"
        );
        ran += 1;
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        match argv[0].as_str() {
            "cairn-server" => {
                let c = cairn_server(&args, &env);
                if background {
                    let (child, url) = serve_in_background(c);
                    known.insert("URL", url);
                    server = Some(child);
                    continue;
                }
                let run = output(c);
                assert_eq!(run.code, 0, "`{line}` failed: {}", run.stderr);
                if let (Some("team"), Some("create"), Some(name)) =
                    (args.first().copied(), args.get(1).copied(), args.get(2))
                {
                    // The founder's line, whole, with the public address.
                    let join = format!("cairn join {} --invite ", known["URL"]);
                    let code = run
                        .stderr
                        .split_once(&join)
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .unwrap_or_else(|| panic!("the founder's line: {}", run.stderr))
                        .to_owned();
                    let key = if *name == "Platform" {
                        "PLATFORM_FOUNDER_CODE"
                    } else {
                        "MOBILE_FOUNDER_CODE"
                    };
                    known.insert(key, code);
                }
            }
            "cairn" => {
                let name = who.clone().expect("a machine is named before `cairn` runs");
                let home = homes.entry(name.clone()).or_insert_with(|| {
                    let mut h = Home::new();
                    h.day = Some(day.to_owned());
                    h
                });
                let run = home.run(&args);
                assert_eq!(
                    run.code, 0,
                    "`{line}` failed for {name}: {}{}",
                    run.stderr, run.stdout
                );
                match args[..] {
                    ["org", "add", ..] => {
                        let id = run.stdout.split_whitespace().last().expect("its id");
                        known.insert("NN_ID", id.to_owned());
                    }
                    ["org", "figures", ..] => {
                        assert!(run.stdout.contains("Mobile"), "{}", run.stdout);
                        assert!(
                            run.stdout.contains("1 of 1 member active"),
                            "{}",
                            run.stdout
                        );
                        assert!(
                            run.stdout.contains("Platform  shares nothing"),
                            "{}",
                            run.stdout
                        );
                    }
                    ["feed"] => {
                        assert!(run.stdout.contains("@cy@mobile"), "{}", run.stdout);
                        assert!(
                            run.stdout.contains("We greet every newcomer"),
                            "{}",
                            run.stdout
                        );
                    }
                    _ => {}
                }
            }
            other => {
                panic!("the organisation section runs `{other}`, which this test does not know")
            }
        }
    }
    assert!(server.is_some(), "the section starts a server");
    assert!(ran >= 18, "only {ran} commands ran");
    // Mobile's how is Mobile's: Ana's team shows none; Cy's shows it.
    let cy = &homes["Cy"];
    let team = cy.run(&["team", "--json"]).json();
    assert_eq!(
        team["org"]["non_negotiables"][0]["practice"], "a buddy for the first week",
        "{team}"
    );
    let ana = &homes["Ana"];
    let team = ana.run(&["team", "--json"]).json();
    assert!(
        team["org"]["non_negotiables"][0]["practice"].is_null(),
        "{team}"
    );
}
