//! One team on one machine, fully offline: several members acting through `--as`.

use cairn_e2e::{Home, feed, feed_all};

fn short_of(items: &[serde_json::Value], text: &str) -> String {
    items
        .iter()
        .find(|i| i["text"] == text)
        .unwrap_or_else(|| panic!("no `{text}` in the feed"))["short"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn logs_kudos_reactions_and_retractions_show_in_the_feed() {
    let home = Home::team("Ana", &["Ben", "Cy"]);
    home.run(&[
        "log",
        "Explained the why of the freeze",
        "--pillar",
        "trust",
        "--why",
        "no guessing",
    ])
    .ok();
    home.run(&[
        "kudos",
        "@ben,@cy",
        "Calm incident write-up",
        "-p",
        "professionalism",
    ])
    .ok();
    home.run(&[
        "--as",
        "@ben",
        "log",
        "Paired on a first review",
        "--yesterday",
    ])
    .ok();

    let items = feed(&home, &[]);
    let texts: Vec<_> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "Paired on a first review",
            "Calm incident write-up",
            "Explained the why of the freeze"
        ],
        "newest first"
    );
    let kudos = &items[1];
    assert_eq!(kudos["kind"], "kudos");
    assert_eq!(kudos["author"], "ana");
    assert_eq!(kudos["to"], serde_json::json!(["ben", "cy"]));
    assert_eq!(kudos["pillar"], "professionalism");
    let late = &items[0];
    assert_eq!(late["author"], "ben");
    assert_eq!(late["late"], true);
    assert_eq!(late["date"], "2026-11-22");
    assert_eq!(items[2]["tz"], "Europe/Paris");
    assert_eq!(items[2]["why"], "no guessing");

    let first = short_of(&items, "Explained the why of the freeze");
    home.run(&["--as", "@ben", "react", &first, "🎉"]).ok();
    home.run(&["--as", "@cy", "react", &first, "🎉"]).ok();
    home.run(&["--as", "@cy", "react", &first]).ok();
    let items = feed(&home, &[]);
    let reactions = &items[2]["reactions"];
    assert_eq!(reactions[0]["emoji"], "🎉");
    assert_eq!(reactions[0]["count"], 2);
    assert_eq!(reactions[0]["by"], serde_json::json!(["ben", "cy"]));
    assert_eq!(reactions[1]["emoji"], "👏");

    // The same reaction again takes it back.
    home.run(&["--as", "@cy", "react", &first]).ok();
    assert_eq!(
        feed(&home, &[])[2]["reactions"].as_array().unwrap().len(),
        1
    );

    // The text view shows the same feed at a glance.
    let text = home.run(&["feed"]).ok();
    assert!(
        text.contains("@ana 👏 @ben, @cy  #professionalism"),
        "{text}"
    );
    assert!(text.contains("for 2026-11-22"), "{text}");
    assert!(text.contains("🎉 2"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour in a pipe");

    let late = short_of(&items, "Paired on a first review");
    home.run(&["--as", "@ben", "retract", &late]).ok();
    let items = feed(&home, &[]);
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|i| i["text"] != "Paired on a first review")
    );
}

#[test]
fn edits_change_the_text_and_filters_narrow_the_feed() {
    let home = Home::team("Ana", &["Ben"]);
    home.run(&["log", "Tidied the board", "-p", "professionalism"])
        .ok();
    home.run(&[
        "--as",
        "@ben",
        "kudos",
        "@ana",
        "Thanks for the handover",
        "-p",
        "trust",
    ])
    .ok();
    let items = feed(&home, &[]);
    let tidy = short_of(&items, "Tidied the board");
    home.run(&[
        "edit",
        &tidy,
        "Tidied the sprint board",
        "--pillar",
        "trust",
    ])
    .ok();
    let items = feed(&home, &["--pillar", "trust"]);
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["text"], "Tidied the sprint board");
    assert!(items[1]["edited"].is_string());

    assert_eq!(feed(&home, &["--member", "@ben"]).len(), 1);
    assert_eq!(
        feed(&home, &["--member", "@ana"]).len(),
        2,
        "authored or recognised"
    );
    let one = home.run(&["feed", "--json", "--limit", "1"]).json();
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    assert_eq!(one["more"], true);
    assert_eq!(feed(&home, &["--since", "2026-11-24"]).len(), 0);
    assert_eq!(feed(&home, &["--since", "today"]).len(), 2);
}

#[test]
fn the_team_view_and_its_changes() {
    let home = Home::team("Ana", &[]);
    home.run(&["team", "member", "add", "Ben Okafor", "--handle", "ben"])
        .ok();
    home.run(&[
        "team",
        "pillar",
        "add",
        "Curiosity",
        "--about",
        "we ask why",
    ])
    .ok();
    home.run(&[
        "team",
        "commit",
        "Reviews within a day",
        "--why",
        "nobody waits",
    ])
    .ok();
    let team = home.run(&["team", "--json"]).json();
    assert_eq!(team["name"], "Otters");
    assert_eq!(team["tz"], "Europe/Paris");
    assert_eq!(team["you"], "ana");
    let handles: Vec<_> = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["handle"].clone())
        .collect();
    assert_eq!(
        handles,
        [serde_json::json!("ana"), serde_json::json!("ben")]
    );
    let pillars: Vec<_> = team["pillars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        pillars,
        ["trust", "empowerment", "professionalism", "curiosity"]
    );
    assert_eq!(team["commitments"][0]["why"], "nobody waits");
    let text = home.run(&["team"]).ok();
    assert!(
        text.contains("@ben")
            && text.contains("Reviews within a day")
            && text.contains("#Curiosity")
    );
    home.run(&["log", "Asked why twice", "--pillar", "curiosity"])
        .ok();
}

#[test]
fn export_holds_every_event_in_json_and_csv() {
    let home = Home::team("Ana", &["Ben"]);
    home.run(&["log", "One, with a comma"]).ok();
    home.run(&["kudos", "@ben", "Two"]).ok();
    let first = short_of(&feed(&home, &[]), "One, with a comma");
    home.run(&["--as", "@ben", "react", &first]).ok();
    home.run(&["retract", &first]).ok();

    let all = home.run(&["export", "--format", "json"]).json();
    let all = all.as_array().unwrap();
    assert_eq!(
        all.len(),
        4,
        "the note of adding Ben, the retracted event and the reaction are exported too"
    );
    assert_eq!(all[0]["kind"], "team");
    assert_eq!(all[1]["retracted"], true);
    assert_eq!(
        all[1]["edited"],
        serde_json::Value::Null,
        "retracted, never edited"
    );
    assert_eq!(all[3]["kind"], "reaction");

    let csv = home.run(&["export", "--format", "csv"]).ok();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[0].starts_with("id,kind,author,at,"));
    assert!(lines[1].contains(",team,"), "{}", lines[1]);
    assert!(lines[2].contains("\"One, with a comma\""), "{}", lines[2]);
    assert!(lines[3].contains(",ben,"), "{}", lines[3]);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let home = Home::team("Ana", &[]);
    for i in 0..60 {
        home.run(&["log", &format!("event {i} {}", "x".repeat(400))])
            .ok();
    }
    let mut child = home
        .command(&["feed", "--limit", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closing our end at once means cairn writes into a pipe nobody reads.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn colour_only_when_asked_for_and_never_with_no_color() {
    let home = Home::team("Ana", &[]);
    home.run(&["log", "Coloured"]).ok();
    let forced = home
        .command(&["feed"])
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&forced.stdout).contains('\u{1b}'));
    let plain = home
        .command(&["feed"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains('\u{1b}'),
        "NO_COLOR wins"
    );
}

#[test]
fn names_in_any_script_get_handles_that_match_regardless_of_case_and_accents() {
    let home = Home::team("Ana", &["Chloé Martin", "Łukasz", "Søren", "信頼"]);
    let team = home.run(&["team", "--json"]).json();
    let handles: Vec<String> = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["handle"].as_str().unwrap().to_owned())
        .collect();
    for h in ["chloe-martin", "lukasz", "soren", "xin-lai"] {
        assert!(handles.contains(&h.to_owned()), "{handles:?}");
    }
    // Typed with its accents and capitals, a handle still finds its member.
    home.run(&["kudos", "@Chloé-Martin,@SØREN", "Great pairing"])
        .ok();
    let item = feed(&home, &[]).into_iter().next().unwrap();
    assert_eq!(item["to"].as_array().map(Vec::len), Some(2), "{item}");
    // Several handles as separate words, and a text unquoted.
    home.run(&["kudos", "@lukasz", "@xin-lai", "Great", "demo"])
        .ok();
    let item = feed(&home, &["--since", "1w"]).into_iter().next().unwrap();
    assert_eq!(item["text"], "Great demo", "{item}");
    assert_eq!(item["to"].as_array().map(Vec::len), Some(2), "{item}");
    // A near miss is named.
    let err = home.run(&["kudos", "@chloe", "Thanks"]).fails();
    assert!(err.contains("did you mean @chloe-martin?"), "{err}");
    assert!(err.contains("cairn sync"), "{err}");
}

#[test]
fn words_fit_their_numbers_and_the_feed_says_when_there_is_more() {
    let home = Home::team("Ana", &["Ben"]);
    home.run(&["log", "Tidied the shared board", "--pillar", "trust"])
        .ok();
    let digest = home.run(&["digest"]).ok();
    assert!(
        digest.contains("1 micro-action and 0 recognitions"),
        "{digest}"
    );
    assert!(!digest.contains("(s)"), "{digest}");
    // The spotlight quotes, it does not count.
    assert!(!digest.contains("thanked"), "{digest}");
    let status = home.run(&["status"]).ok();
    // The team's start, adding Ben (and its note in the feed), the micro-action.
    assert!(status.contains("waiting   4 changes"), "{status}");

    // A reaction is not edited: it is taken back (input error, not "a bug").
    let target = feed(&home, &[])[0]["id"].as_str().unwrap().to_owned();
    home.run(&["react", &target, "🎉"]).ok();
    let all = home.run(&["export", "--format", "json"]).json();
    let id = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reaction")
        .expect("the reaction is exported")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = home.run(&["edit", &id, "new words"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("a reaction cannot be edited"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("bug"), "{}", run.stderr);

    let none = home.run(&["feed", "--pillar", "empowerment"]).ok();
    assert!(none.contains("Nothing matches these filters"), "{none}");
    for i in 0..3 {
        home.run(&["log", &format!("Step {i}")]).ok();
    }
    let page = home.run(&["feed", "--limit", "2"]).ok();
    let next = feed_all(&home, &[])[1]["id"].as_str().unwrap().to_owned();
    assert!(
        page.contains(&format!(
            "The latest 2 shown; older ones with `--before {next}`."
        )),
        "{page}"
    );
    let all = home.run(&["feed", "--limit", "50"]).ok();
    assert!(!all.contains("older ones"), "{all}");
}

#[test]
fn scripts_and_people_page_through_the_whole_feed() {
    let home = Home::team("Ana", &["Ben"]);
    home.run(&["log", "Remembered late", "--yesterday"]).ok();
    for i in 0..7 {
        home.run(&["log", &format!("Step {i}")]).ok();
    }
    let json = |extra: &[&str]| {
        let mut args = vec!["feed", "--json", "--limit", "3"];
        args.extend_from_slice(extra);
        home.run(&args).json()
    };
    let texts = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["text"].as_str().unwrap().to_owned())
            .collect()
    };
    // A page, whether older items match, and the id to ask for them with.
    let first = json(&[]);
    assert_eq!(texts(&first), ["Step 6", "Step 5", "Step 4"]);
    assert_eq!(first["more"], true);
    assert_eq!(first["next_before"], first["items"][2]["id"]);
    // Page after page to the first event: every one once, as in one long read.
    let mut seen = texts(&first);
    let mut page = first.clone();
    while page["more"] == true {
        page = json(&["--before", page["next_before"].as_str().unwrap()]);
        seen.extend(texts(&page));
    }
    assert_eq!(page["next_before"], serde_json::Value::Null);
    let everything: Vec<String> = feed_all(&home, &[])
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, everything);
    assert_eq!(everything.len(), 9, "eight logs and the note of adding Ben");
    // The line under a page names the id to go on from; the short id the feed shows works too.
    let next = first["next_before"].as_str().unwrap();
    let text = home.run(&["feed", "--limit", "3"]).ok();
    assert!(
        text.ends_with(&format!(
            "The latest 3 shown; older ones with `--before {next}`.\n"
        )),
        "{text}"
    );
    let short = first["items"][2]["short"].as_str().unwrap();
    assert_eq!(
        texts(&json(&["--before", short])),
        ["Step 3", "Step 2", "Step 1"]
    );
    let text = home.run(&["feed", "--limit", "3", "--before", short]).ok();
    assert!(
        text.contains("3 shown; older ones with `--before "),
        "{text}"
    );
    // Until a day: what counts for that day or before, logged late or not.
    let until = json(&["--until", "yesterday"]);
    assert_eq!(texts(&until), ["Remembered late"]);
    assert_eq!(until["more"], false);
    let nothing = home.run(&["feed", "--until", "2026-01-01"]).ok();
    assert!(nothing.contains("Nothing before that"), "{nothing}");
    // An id that names nothing is said, not taken for the start.
    let err = home.run(&["feed", "--before", "zzzzzz"]).fails();
    assert!(err.contains("zzzzzz"), "{err}");
}

#[test]
fn pillars_go_by_their_names_wherever_people_read_them() {
    let home = Home::team("Ana", &[]);
    // Added without a word of what it means, then renamed.
    home.run(&["team", "pillar", "add", "curiosity"]).ok();
    home.run(&["team", "pillar", "add", "Team Spirit"]).ok();
    home.run(&["team", "pillar", "edit", "curiosity", "--name", "Curiosity"])
        .ok();
    home.run(&["log", "Asked why twice", "--pillar", "curiosity"])
        .ok();
    home.run(&["log", "Cheered the release", "--pillar", "team-spirit"])
        .ok();
    // In a pipe, `cairn team` lists every pillar, those without words too.
    let team = home.run(&["team"]).ok();
    for name in ["#Curiosity", "#Team Spirit"] {
        assert!(team.lines().any(|l| l.trim() == name), "{name}:\n{team}");
    }
    for args in [&["digest"][..], &["digest", "--format", "md"], &["me"]] {
        let text = home.run(args).ok();
        assert!(
            text.contains("#Curiosity") && text.contains("#Team Spirit"),
            "{args:?}:\n{text}"
        );
        assert!(
            !text.contains("#curiosity") && !text.contains("#team-spirit"),
            "{args:?}:\n{text}"
        );
    }
    let notes: Vec<String> = feed_all(&home, &[])
        .iter()
        .filter(|i| i["kind"] == "team")
        .map(|i| i["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        notes.contains(&"added the pillar #Team Spirit".to_owned()),
        "{notes:?}"
    );
    let said = home.run(&["team", "pillar", "add", "Care"]).ok();
    assert_eq!(said.trim(), "added pillar #Care");
    // A slip of the keyboard gets the name it missed.
    let err = home.run(&["log", "x", "--pillar", "curiosty"]).fails();
    assert!(err.contains("did you mean #Curiosity?"), "{err}");
}

#[test]
fn a_team_of_one_reads_in_the_singular() {
    let home = Home::team("Ana", &[]);
    let streaks = home.run(&["streaks", "--weeks", "1"]).ok();
    assert!(
        streaks.contains("members per day, 1 week from"),
        "{streaks}"
    );
    assert!(
        streaks.contains("0 of the 1 member it needs so far"),
        "{streaks}"
    );
    let badges = home.run(&["badges"]).ok();
    assert!(badges.contains("0 of 1 member recognised"), "{badges}");
}
