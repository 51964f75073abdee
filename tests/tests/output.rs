//! Every human-read output, as a person sees it, checked whole against a reviewed snapshot
//! (`tests/tests/snapshots/`): a change to wording, alignment, wrapping or plurals shows up as a
//! diff to look at, not as a test that still passes because a word is still somewhere.
//!
//! The team and its clock are pinned (Monday 2026-11-23 in Paris, a minute per command), so every
//! line is the same on every run; event ids, random by design, are replaced by `#ID01#`,
//! `#ID02#`, ... in feed order (the same width, so wrapping is what a person sees). After a
//! deliberate change, `cargo insta review` (or `INSTA_UPDATE=always`) takes the new snapshots.

use cairn_e2e::{Home, Run, feed_all};

/// A team of three with a week of history: actions with pillars and whys, a late log, kudos
/// (more than the digest quotes), a reaction, a commitment, two challenges and a long name.
fn otters() -> Home {
    let ana = Home::team("Ana Lopez", &["Ben Ng", "Chloé Martin"]);
    ana.run(&[
        "team",
        "commit",
        "We review every change within a day, even the small ones nobody is waiting on",
        "--why",
        "a change that waits loses its author's context, and the reviewer's patience with it",
    ])
    .ok();
    ana.run(&[
        "challenge",
        "add",
        "30 kudos in December",
        "--metric",
        "kudos",
        "--target",
        "30",
        "--until",
        "2026-12-31",
    ])
    .ok();
    ana.run(&[
        "challenge",
        "add",
        "Log every workday",
        "--metric",
        "actions",
        "--target",
        "100",
        "--until",
        "2027-01-31",
    ])
    .ok();
    ana.run(&[
        "log",
        "Explained the why of the deploy freeze to the two newest teammates, with the incident \
         that led to it, instead of pointing at the wiki",
        "--pillar",
        "trust",
        "--why",
        "people follow the rules they understand, and change the ones that no longer fit",
    ])
    .ok();
    ana.run(&[
        "log",
        "Picked up the flaky test nobody owned",
        "--pillar",
        "professionalism",
        "--yesterday",
    ])
    .ok();
    for n in 1..=6 {
        ana.run(&[
            "kudos",
            "@ben-ng",
            "@chloe-martin",
            &format!("Thanks for the calm incident write-up, part {n} of the series"),
        ])
        .ok();
    }
    ana.run(&[
        "--as",
        "@ben-ng",
        "log",
        "Delegated the release to Chloé and stayed on hand",
        "--pillar",
        "empowerment",
    ])
    .ok();
    ana.run(&[
        "team",
        "member",
        "add",
        "Maximiliano Alejandro Fernández de la Vega Rodríguez",
    ])
    .ok();
    let first = cairn_e2e::feed(&ana, &[])
        .into_iter()
        .find(|i| i["kind"] == "action")
        .expect("an action")["short"]
        .as_str()
        .unwrap()
        .to_owned();
    ana.run(&["react", &first, "🎉"]).ok();
    ana
}

/// `cairn ARGS` in `home` with the terminal width `columns` (`None`: a pipe), its stdout and
/// stderr with event ids made stable.
fn shown(home: &Home, columns: Option<u32>, args: &[&str]) -> String {
    let mut command = home.command(args);
    if let Some(c) = columns {
        command.env("COLUMNS", c.to_string());
    }
    let run: Run = command.output().expect("cairn runs").into();
    let mut text = run.stdout;
    if !run.stderr.is_empty() {
        text.push_str(&format!("[stderr]\n{}", run.stderr));
    }
    if run.code != 0 {
        text.push_str(&format!("[exit {}]\n", run.code));
    }
    stable_ids(home, &text)
}

/// `text` with each event id of `home` (long or short) replaced by a token of the short id's
/// width, numbered in feed order.
fn stable_ids(home: &Home, text: &str) -> String {
    let mut text = text.to_owned();
    let mut all = feed_all(home, &[]);
    all.reverse();
    for (n, item) in all.iter().enumerate() {
        let token = format!("#ID{:02}#", n + 1);
        text = text
            .replace(item["id"].as_str().unwrap(), &token)
            .replace(item["short"].as_str().unwrap(), &token);
    }
    text
}

/// `program` with the member's environment (home, clock, zone, no colour), to run cairn inside.
fn in_home(home: &Home, program: &str) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for (key, value) in home.command(&[]).get_envs() {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    command
}

#[test]
fn what_people_read_is_checked_whole() {
    let ana = otters();
    let at80 = Some(80);
    insta::assert_snapshot!("feed", shown(&ana, at80, &["feed"]));
    insta::assert_snapshot!(
        "feed_narrow",
        shown(&ana, Some(50), &["feed", "--limit", "3"])
    );
    insta::assert_snapshot!(
        "feed_in_a_pipe",
        shown(&ana, None, &["feed", "--limit", "2"])
    );
    insta::assert_snapshot!(
        "feed_filtered_empty",
        shown(
            &ana,
            at80,
            &["feed", "--pillar", "trust", "--member", "@chloe-martin"]
        )
    );
    insta::assert_snapshot!("team", shown(&ana, at80, &["team"]));
    insta::assert_snapshot!("challenges", shown(&ana, at80, &["challenges"]));
    insta::assert_snapshot!("streaks", shown(&ana, at80, &["streaks"]));
    insta::assert_snapshot!("badges", shown(&ana, at80, &["badges"]));
    insta::assert_snapshot!("digest", shown(&ana, at80, &["digest"]));
    insta::assert_snapshot!(
        "digest_md",
        shown(&ana, at80, &["digest", "--format", "md"])
    );
    insta::assert_snapshot!("me", shown(&ana, at80, &["me"]));
    // Ben's nudge: Ana, never thanked; Chloé and Maximiliano have not joined, so are nobody
    // to thank yet (Ana has thanked everyone who has).
    insta::assert_snapshot!("nudge", shown(&ana, at80, &["--as", "@ben-ng", "nudge"]));
    insta::assert_snapshot!("status", shown(&ana, at80, &["status"]));
}

#[test]
fn error_lines_are_checked_whole() {
    let ana = otters();
    let errors = [
        vec!["kudos", "@ben", "thanks"],
        vec!["kudos", "@nobody-here", "thanks"],
        vec!["log", "Something", "--pillar", "curiosity"],
        vec!["log", "   "],
        vec!["retract", "zzzzzz"],
        vec!["react", "0"],
        vec!["edit", "zzzz", "new text"],
        vec!["log", "Later", "--on", "2026-11-30"],
        vec!["sync"],
        vec!["device", "link"],
    ];
    let mut all = String::new();
    for args in errors {
        all.push_str(&format!("$ cairn {}\n", args.join(" ")));
        all.push_str(&shown(&ana, None, &args));
    }
    insta::assert_snapshot!("errors", all);
}

#[test]
fn a_pager_takes_long_output_on_a_terminal_and_never_in_a_pipe() {
    // util-linux `script` gives the command a terminal; the pager is a `sed` that marks its lines.
    let ana = otters();
    let cairn = cairn_e2e::cairn_bin();
    let run_on_terminal = |pager: &str, extra: &str| -> (String, std::process::ExitStatus) {
        let line = format!("{} feed --limit 1 {extra}", cairn.display());
        let mut script = in_home(&ana, "script");
        script.args(["-qec", &line, "/dev/null"]);
        script
            .env("PAGER", pager)
            .env("COLUMNS", "80")
            .env_remove("LESS");
        let output = script.output().expect("util-linux `script` runs");
        (
            String::from_utf8_lossy(&output.stdout).replace('\r', ""),
            output.status,
        )
    };
    let on_terminal = |pager: &str, extra: &str| run_on_terminal(pager, extra).0;
    let marks = "sed s/^/paged:/";
    let paged = on_terminal(marks, "");
    assert!(
        paged
            .lines()
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with("paged:")),
        "{paged}"
    );
    assert!(paged.contains("paged:"), "{paged}");
    let unpaged = on_terminal(marks, "--no-pager");
    assert!(
        !unpaged.contains("paged:") && unpaged.contains("@ana-lopez"),
        "{unpaged}"
    );
    // Ctrl-C while the pager shows the page is the pager's: cairn waits for it and ends well,
    // never leaving the shell to draw over a pager still running. (This pager sends cairn, its
    // shell's parent, SIGINT first; before, that ended cairn.)
    let (interrupted, status) = run_on_terminal("kill -INT $PPID; sed s/^/paged:/", "");
    assert!(status.success(), "{status:?}: {interrupted}");
    assert!(interrupted.contains("paged:"), "{interrupted}");
    // A pager that cannot run is said, not a silent success with nothing shown.
    let missing = on_terminal("no-such-pager-here", "");
    assert!(
        missing.contains("the pager in PAGER could not run"),
        "{missing}"
    );
    // In a pipe: no pager, whatever PAGER says.
    let piped = ana
        .command(&["feed", "--limit", "1"])
        .env("PAGER", "sed s/^/paged:/")
        .output()
        .unwrap();
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(
        !piped.contains("paged:") && piped.contains("@ana-lopez"),
        "{piped}"
    );
}

#[test]
fn the_shell_completes_handles_pillars_and_event_ids_from_the_replica() {
    let ana = otters();
    // Real bash, with the code `cairn completions bash` prints, asked as on a TAB.
    let complete = |words: &[&str]| -> Vec<String> {
        let cairn = cairn_e2e::cairn_bin();
        let script = format!(
            "source <('{}' completions bash)\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_TYPE=9\n\
             _clap_complete_cairn cairn '{}' x\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
            cairn.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            words.last().unwrap(),
        );
        let out = in_home(&ana, "bash")
            .args(["-c", &script])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        complete(&["cairn", "kudos", "@b"]),
        ["@ben-ng"],
        "handles, by what was typed"
    );
    assert_eq!(
        complete(&["cairn", "kudos", "@ben-ng", "@c"]),
        ["@chloe-martin"],
        "more recipients after the first"
    );
    assert_eq!(
        complete(&["cairn", "feed", "--as", "@m"]),
        ["@maximiliano-alejandro-fernandez"]
    );
    assert_eq!(
        complete(&["cairn", "log", "x", "--pillar", ""]),
        ["trust", "empowerment", "professionalism"]
    );
    let latest = feed_all(&ana, &[])[0]["short"].as_str().unwrap().to_owned();
    let ids = complete(&["cairn", "react", ""]);
    assert_eq!(ids.first(), Some(&latest), "{ids:?}");
    assert_eq!(complete(&["cairn", "retract", &latest[..3]]), [latest]);
}

/// What a member bent on harm writes with changes made by hand, past every check cairn makes
/// when it writes: a window title, a cleared screen, a link, a carriage return over the line,
/// a bell, concealed and blinking text, a right-to-left override, a line break in a handle.
const HOSTILE: &str = "ok\x1b]0;owned\x07\x1b[2J\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\
                       \rforged \x1b[8mhidden\x1b[5m\u{202e}desrever\u{9b}31m\x7f";

/// A replica holding hostile text everywhere a member or a server can put some: the team's,
/// a member's and a pillar's names, a handle with a line break, an event's text and why, a
/// reaction's emoji, and the device id a server gave. Written through the replica's own sync
/// API, as a pulled change, made with automerge directly (as a hostile peer would).
fn hostile_home() -> Home {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};

    let ana = Home::team("Ana", &["Ben"]);
    ana.run(&["log", "Wrote the runbook", "--pillar", "trust"])
        .ok();
    let target = feed_all(&ana, &[])[0]["id"].as_str().unwrap().to_owned();
    let conn = rusqlite::Connection::open(ana.replica()).unwrap();
    let mut team = {
        let snapshot: Vec<u8> = conn
            .query_row("SELECT snapshot FROM docs WHERE id = 'team'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let mut doc = Automerge::load(&snapshot).unwrap();
        let mut st = conn
            .prepare("SELECT data FROM chunks WHERE doc = 'team' ORDER BY seq")
            .unwrap();
        for chunk in st.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
            doc.load_incremental(&chunk.unwrap()).unwrap();
        }
        doc.with_actor(ActorId::random())
    };
    drop(conn);
    let ben = team
        .keys(ROOT)
        .filter_map(|k| k.strip_prefix("member/").map(str::to_owned))
        .find(|id| {
            let (_, obj) = team.get(ROOT, format!("member/{id}")).unwrap().unwrap();
            team.get(&obj, "handle").unwrap().unwrap().0.as_str() == Some("ben")
        })
        .expect("Ben is a member");
    team.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(ROOT, "name", format!("Otters{HOSTILE}"))?;
        tx.put(ROOT, "pillar/trust/name", format!("Trust{HOSTILE}"))?;
        let (_, member) = tx.get(ROOT, format!("member/{ben}"))?.unwrap();
        tx.put(&member, "name", format!("Ben{HOSTILE}"))?;
        tx.put(&member, "handle", "ben\nabcd1234  @ana  forged entry")?;
        Ok(())
    })
    .unwrap();
    let team_change = team.get_last_local_change().unwrap().raw_bytes().to_vec();
    let mut journal = Automerge::new().with_actor(ActorId::random());
    journal
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            let at = 1_795_424_400_000_i64; // 2026-11-23T09:00Z
            let event = |tx: &mut automerge::transaction::Transaction<'_>, id: &str| {
                let o = tx.put_object(ROOT, id, ObjType::Map)?;
                tx.put(&o, "author", ben.as_str())?;
                tx.put(&o, "at", at)?;
                tx.put(&o, "tz", "UTC")?;
                tx.put(&o, "date", "2026-11-23")?;
                Ok::<_, automerge::AutomergeError>(o)
            };
            let id = |n: u8| {
                cairn_core::ids::EventId::new(at, [n; 5])
                    .as_str()
                    .to_owned()
            };
            let o = event(tx, &id(1))?;
            tx.put(&o, "kind", "action")?;
            tx.put(&o, "pillar", "trust")?;
            tx.put(
                &o,
                "text",
                format!("Fixed it{HOSTILE}\nsecond line{HOSTILE}"),
            )?;
            tx.put(&o, "why", format!("because{HOSTILE}"))?;
            let o = event(tx, &id(2))?;
            tx.put(&o, "kind", "reaction")?;
            tx.put(&o, "target", target.as_str())?;
            tx.put(&o, "emoji", format!("🎉\n{HOSTILE}"))?;
            Ok(())
        })
        .unwrap();
    let journal_change = journal
        .get_last_local_change()
        .unwrap()
        .raw_bytes()
        .to_vec();
    let mut replica = cairn_store::Replica::open(&ana.replica()).unwrap();
    let pulled = [
        cairn_store::Incoming {
            doc: "team".into(),
            change: team_change,
        },
        cairn_store::Incoming {
            doc: format!("j/{ben}/2026-11"),
            change: journal_change,
        },
    ];
    let applied = replica.apply_exchange(None, &pulled, 0, 0).unwrap();
    assert_eq!(applied.changes, 2, "{applied:?}");
    replica
        .set_remote(&cairn_store::Remote {
            url: "http://127.0.0.1:9".into(),
            device_id: format!("d1{HOSTILE}"),
            token: "t".into(),
        })
        .unwrap();
    ana
}

/// Whether `text` holds anything that would steer a terminal: an escape sequence other than a
/// plain colour (SGR) code, a bell, a carriage return, a C1 control or a bidirectional
/// override; or concealed or blinking text, which a colour code can ask for.
fn steers_a_terminal(text: &str) -> Option<String> {
    for bad in ["\x1b[8m", "\x1b[5m"] {
        if text.contains(bad) {
            return Some(format!("{bad:?}"));
        }
    }
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            let sgr = rest.strip_prefix("\x1b[").and_then(|r| {
                let end = r.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
                r[end..].starts_with('m').then_some(end + 3)
            });
            match sgr {
                Some(len) => {
                    rest = &rest[len..];
                    continue;
                }
                None => return Some(format!("{:?}", &rest[..rest.len().min(12)])),
            }
        }
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if bad {
            return Some(format!("{c:?}"));
        }
        rest = &rest[c.len_utf8()..];
    }
    None
}

#[test]
fn text_from_a_document_or_a_server_reaches_the_terminal_as_text() {
    let ana = hostile_home();
    let commands: [&[&str]; 8] = [
        &["feed"],
        &["team"],
        &["digest"],
        &["digest", "--format", "md"],
        &["export", "--format", "csv"],
        &["export"],
        &["feed", "--json"],
        &["status"],
    ];
    for args in commands {
        // Colour on, as on a terminal.
        let run: Run = ana
            .command(&[&["--color", "always"], args].concat())
            .env_remove("NO_COLOR")
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap()
            .into();
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        let out = &run.stdout;
        assert!(
            out.contains("owned") || out.contains("\\u001b"),
            "{args:?} shows the hostile text: {out}"
        );
        if let Some(bad) = steers_a_terminal(out) {
            panic!("{args:?} printed {bad}:\n{out}");
        }
        // No line break forged by a handle.
        assert!(
            !out.lines().any(|l| l.trim_start().starts_with("abcd1234")),
            "{args:?}:\n{out}"
        );
    }
    // The feed is coloured (the test covers colour on), and shows what was written, as text.
    let feed = ana
        .command(&["--color", "always", "feed"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let feed = String::from_utf8(feed.stdout).unwrap();
    assert!(feed.contains("\x1b["), "{feed}");
    assert!(feed.contains("Fixed itok␛]0;owned␇␛[2J"), "{feed}");
    assert!(feed.contains("@ben abcd1234  @ana  forged entry"), "{feed}");
}
