//! A team that changes: members renamed, removed, and a placeholder merged into the member who
//! joined, on every replica, in any sync order.

use cairn_e2e::{Home, Server, feed, feed_all};
use serde_json::{Value, json};

fn members(home: &Home) -> Vec<(String, String)> {
    home.run(&["team", "--json"]).json()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["handle"].as_str().unwrap().to_owned(),
                m["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn handles(home: &Home) -> Vec<String> {
    members(home).into_iter().map(|(h, _)| h).collect()
}

fn streak(home: &Home) -> Value {
    home.run(&["streaks", "--json"]).json()["team"].clone()
}

#[test]
fn the_placeholder_eve_merges_into_the_eve_who_joined_on_every_replica() {
    let server = Server::start();
    let ana = Home::team("Ana", &["Ben"]);
    ana.run(&["team", "rules", "--quorum", "4"]).ok();
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    let ben = Home::joined(
        &server,
        &server.invite_for(&team, "@ben"),
        &["--claim", "@ben"],
    );
    let eve = Home::joined(&server, &server.invite(&team, 1), &["--name", "Eve"]);
    eve.run(&["log", "Read the whole runbook on day one"]).ok();
    eve.run(&["sync"]).ok();

    // Ben has not synced since Eve joined: the error says a sync may bring her.
    let err = ben.run(&["kudos", "@eve", "Thanks for the review"]).fails();
    assert!(
        err.contains("unknown member `@eve`") && err.contains("cairn sync"),
        "{err}"
    );
    // He follows the other half of the hint instead, and thanks the placeholder.
    ben.run(&["team", "member", "add", "Eve"]).ok();
    ben.run(&["kudos", "@eve", "Thanks for the review"]).ok();
    ben.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();

    // Two @eve now: kudos to @eve is ambiguous; the quorum counts three members (the @eve Ben
    // added has not joined).
    assert_eq!(handles(&ana), ["ana", "ben", "eve", "eve"]);
    let err = ana.run(&["kudos", "@eve", "Nice"]).fails();
    assert!(
        err.contains("names more than one member") && err.contains("merge"),
        "{err}"
    );
    assert_eq!(streak(&ana)["needed_now"], 3);
    let shown = ana.run(&["team"]).ok();
    assert!(shown.contains("(handle shared)"), "{shown}");

    // One command: the @eve who never wrote anything goes into the Eve who joined.
    let out = ana.run(&["team", "member", "merge", "@eve"]).ok();
    assert!(out.contains("merged @eve"), "{out}");
    // Eve syncs before Ben hears of the merge; Ben syncs last.
    ana.run(&["sync"]).ok();
    eve.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();
    eve.run(&["sync"]).ok();

    for (who, home) in [("ana", &ana), ("ben", &ben), ("eve", &eve)] {
        assert_eq!(handles(home), ["ana", "ben", "eve"], "{who}'s team");
        let kudos = feed(home, &[])
            .into_iter()
            .find(|i| i["text"] == "Thanks for the review")
            .unwrap_or_else(|| panic!("{who} has Ben's kudos"));
        assert_eq!(kudos["to"], serde_json::json!(["eve"]), "{who}");
        // The quorum counts three members now.
        assert_eq!(streak(home)["needed_now"], 3, "{who}");
        // Kudos and mentions of the placeholder are found under Eve.
        let hers = feed(home, &["--member", "@eve"]);
        assert!(
            hers.iter().any(|i| i["text"] == "Thanks for the review"),
            "{who}: {hers:?}"
        );
    }
    let me = eve.run(&["me", "--json"]).json();
    assert_eq!(me["month"]["kudos_received"], 1, "Eve sees Ben's kudos");
    // @eve names one member again.
    ana.run(&["kudos", "@eve", "Welcome aboard"]).ok();
}

#[test]
fn a_member_renamed_or_removed_keeps_their_history() {
    let ana = Home::team("Ana", &["Ben Okafor", "Cy", "Di"]);
    // Each teammate logs once on this shared device: from then on they count.
    for who in ["@ben-okafor", "@cy", "@di"] {
        ana.run(&["--as", who, "log", "A first stone"]).ok();
    }
    ana.run(&["kudos", "@ben-okafor", "Calm incident call"])
        .ok();
    ana.run(&["kudos", "@cy", "Great pairing"]).ok();

    let out = ana
        .run(&[
            "team",
            "member",
            "rename",
            "@ben-okafor",
            "--name",
            "Ben O.",
            "--handle",
            "ben",
        ])
        .ok();
    assert!(out.contains("@ben (Ben O.)"), "{out}");
    assert_eq!(handles(&ana), ["ana", "ben", "cy", "di"]);
    let items = feed(&ana, &[]);
    let calm = items
        .iter()
        .find(|i| i["text"] == "Calm incident call")
        .unwrap();
    assert_eq!(calm["to"], serde_json::json!(["ben"]));
    let err = ana
        .run(&["team", "member", "rename", "@cy", "--handle", "ben"])
        .fails();
    assert!(err.contains("already taken"), "{err}");

    // Cy leaves: history stays and is still Cy's; Cy no longer counts or can be thanked.
    ana.run(&["team", "rules", "--quorum", "4"]).ok();
    assert_eq!(streak(&ana)["needed_now"], 4);
    ana.run(&["team", "member", "remove", "@cy"]).ok();
    assert_eq!(handles(&ana), ["ana", "ben", "di"]);
    // Cy left this week: Cy still counts in this week's quorum, not in the next.
    assert_eq!(streak(&ana)["needed_now"], 4);
    let next_week = ana
        .command(&["streaks", "--json"])
        .env("CAIRN_NOW", "2026-11-30T10:00:00Z")
        .output()
        .unwrap();
    let next: serde_json::Value = serde_json::from_slice(&next_week.stdout).unwrap();
    assert_eq!(next["team"]["needed_now"], 3, "{next}");
    let items = feed(&ana, &[]);
    let pairing = items.iter().find(|i| i["text"] == "Great pairing").unwrap();
    assert_eq!(pairing["to"], serde_json::json!(["cy"]));
    let err = ana.run(&["kudos", "@cy", "Thanks"]).fails();
    assert!(err.contains("has left the team"), "{err}");
    let shown = ana.run(&["team"]).ok();
    assert!(shown.contains("left: @cy (Cy)"), "{shown}");
    // Nudges and reach count the team as it is now.
    let nudge = ana.run(&["nudge", "--json"]).json();
    let suggested: Vec<&str> = nudge
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["handle"].as_str())
        .collect();
    // Ben was thanked this week and Cy left: only Di is suggested.
    assert_eq!(suggested, ["di"]);
    let badges = ana.run(&["badges", "--json"]).json();
    assert_eq!(badges["reach"]["members"], 3);
}

#[test]
fn team_settings_change_and_end_and_every_change_shows_in_the_feed() {
    let ana = Home::team("Ana", &["Ben"]);
    ana.run(&["team", "pillar", "add", "curiosity"]).ok();
    ana.run(&[
        "team",
        "pillar",
        "edit",
        "curiosity",
        "--name",
        "Curiosity",
        "--about",
        "we ask why",
    ])
    .ok();
    ana.run(&["log", "Asked why the cache exists", "--pillar", "curiosity"])
        .ok();
    ana.run(&["team", "pillar", "retire", "Curiosity"]).ok();
    let team = ana.run(&["team", "--json"]).json();
    let pillars: Vec<&str> = team["pillars"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(pillars, ["trust", "empowerment", "professionalism"]);
    let asked = feed(&ana, &[])
        .into_iter()
        .find(|i| i["text"] == "Asked why the cache exists")
        .unwrap();
    assert_eq!(asked["pillar"], "curiosity", "history keeps the pillar");

    ana.run(&[
        "team",
        "commit",
        "Reviews within a day",
        "--why",
        "nobody waits",
    ])
    .ok();
    ana.run(&[
        "team",
        "commitment",
        "edit",
        "1",
        "--text",
        "Reviews within one working day",
    ])
    .ok();
    let team = ana.run(&["team", "--json"]).json();
    assert_eq!(
        team["commitments"][0]["text"],
        "Reviews within one working day"
    );
    assert_eq!(team["commitments"][0]["why"], "nobody waits");
    ana.run(&["team", "commitment", "retire", "Reviews"]).ok();
    let team = ana.run(&["team", "--json"]).json();
    assert_eq!(team["commitments"], serde_json::json!([]));

    // A challenge that ended leaves the team view; `challenges --all` keeps it.
    ana.run(&[
        "challenge",
        "add",
        "Ten thanks in November",
        "--metric",
        "kudos",
        "--target",
        "10",
        "--from",
        "2026-11-01",
        "--until",
        "2026-11-22",
    ])
    .ok();
    ana.run(&[
        "challenge",
        "add",
        "Twenty stones",
        "--metric",
        "stones",
        "--target",
        "20",
        "--until",
        "2026-12-31",
    ])
    .ok();
    let shown = ana.run(&["team"]).ok();
    assert!(
        shown.contains("Twenty stones") && !shown.contains("Ten thanks"),
        "{shown}"
    );
    let running = ana.run(&["challenges", "--json"]).json();
    assert_eq!(running.as_array().map(Vec::len), Some(1));
    let all = ana.run(&["challenges", "--all", "--json"]).json();
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    ana.run(&["challenge", "edit", "twenty", "--target", "25"])
        .ok();
    let running = ana.run(&["challenges", "--json"]).json();
    assert_eq!(running[0]["challenge"]["target"], 25);
    ana.run(&["challenge", "retire", "Twenty stones"]).ok();
    let all = ana.run(&["challenges", "--all", "--json"]).json();
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    ana.run(&["team", "rules", "--rest-days", "fri,sat"]).ok();
    ana.run(&["team", "member", "rename", "@ben", "--name", "Ben O."])
        .ok();

    // Every change is in the feed, saying who changed what; none of them counts as an act.
    let notes: Vec<String> = feed_all(&ana, &[])
        .into_iter()
        .filter(|i| i["kind"] == "team")
        .map(|i| {
            assert_eq!(i["author"], "ana");
            i["text"].as_str().unwrap().to_owned()
        })
        .collect();
    for wanted in [
        "added Ben (@ben), who has not joined yet",
        "added the pillar #curiosity",
        "renamed the pillar #curiosity to #Curiosity",
        "retired the pillar #Curiosity",
        "added the commitment “Reviews within a day”",
        "reworded the commitment “Reviews within a day”",
        "retired the commitment “Reviews within one working day”",
        "set the challenge “Ten thanks in November”: 10 kudos by 2026-11-22",
        "changed the challenge “Twenty stones”",
        "retired the challenge “Twenty stones”",
        "changed the streak rules: rest days fri,sat",
        "renamed @ben to @ben (Ben O.)",
    ] {
        assert!(
            notes.iter().any(|n| n.starts_with(wanted)),
            "no note `{wanted}` in {notes:#?}"
        );
    }
    let me = ana.run(&["me", "--json"]).json();
    assert_eq!(me["week"]["actions"], 1, "{me}");
    let text = ana.run(&["feed"]).ok();
    assert!(text.contains("@ana changed the team"), "{text}");
    let note = feed_all(&ana, &[])
        .into_iter()
        .find(|i| i["kind"] == "team")
        .unwrap();
    let err = ana
        .run(&["edit", note["id"].as_str().unwrap(), "Something else"])
        .fails();
    assert!(err.contains("cannot be edited"), "{err}");
}

/// Every team figure `home` shows: streaks, this week's and last week's digest, the month's,
/// badges and reach, and nudges.
fn figures(home: &Home) -> Vec<(&'static str, Value)> {
    [
        ("streaks", &["streaks", "--json"][..]),
        ("digest", &["digest", "--json"]),
        ("last digest", &["digest", "--last", "--json"]),
        ("month digest", &["digest", "--month", "--json"]),
        ("badges", &["badges", "--json"]),
        ("nudge", &["nudge", "--json"]),
    ]
    .into_iter()
    .map(|(what, args)| (what, home.run(args).json()))
    .collect()
}

#[test]
fn placeholders_change_no_figure_until_they_join() {
    let server = Server::start();
    let mut ana = Home::team("Ana", &[]);
    ana.day = Some("2026-11-16".into());
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    ana.day = Some("2026-11-23".into());
    let bo = Home::joined(&server, &server.invite(&team, 1), &["--name", "Bo"]);
    bo.run(&["log", "Fixed the flaky test"]).ok();
    bo.run(&["kudos", "@ana", "Thanks for the onboarding notes"])
        .ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    ana.run(&["log", "Paired on a review"]).ok();
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    let before = [figures(&ana), figures(&bo)];
    let streak = &before[0][0].1["team"];
    assert_eq!(
        (&streak["current"], &streak["needed_now"]),
        (&json!(2), &json!(1)),
        "{streak}"
    );

    // Four teammates who have not joined yet, added by Ana: nothing changes, anywhere.
    ana.run(&["team", "member", "add", "Ben Okafor", "--handle", "ben"])
        .ok();
    for name in ["Cy", "Di", "Ed"] {
        ana.run(&["team", "member", "add", name]).ok();
    }
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    for (who, home, before) in [("ana", &ana, &before[0]), ("bo", &bo, &before[1])] {
        assert_eq!(
            handles(home),
            ["ana", "ben", "bo", "cy", "di", "ed"],
            "{who}"
        );
        for ((what, now), (_, was)) in figures(home).iter().zip(before) {
            assert_eq!(now, was, "{who}'s {what}");
        }
        let shown = home.run(&["team", "--json"]).json();
        let waiting: Vec<&str> = shown["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["joined"] == false)
            .filter_map(|m| m["handle"].as_str())
            .collect();
        assert_eq!(waiting, ["ben", "cy", "di", "ed"], "{who}");
    }
    let shown = ana.run(&["team"]).ok();
    assert!(shown.contains("Ben Okafor  (not joined yet)"), "{shown}");
    assert!(!shown.contains("Bo  (not joined yet)"), "{shown}");

    // Ben joins with the invite made for him: he counts from today, on every replica.
    let ben = Home::joined(
        &server,
        &server.invite_for(&team, "@ben"),
        &["--claim", "@ben"],
    );
    ana.run(&["sync"]).ok();
    for (who, home) in [("ana", &ana), ("ben", &ben)] {
        let s = home.run(&["streaks", "--json"]).json();
        assert_eq!(
            (&s["team"]["active_now"], &s["team"]["needed_now"]),
            (&json!(2), &json!(2)),
            "{who}: {s}"
        );
        let b = home.run(&["badges", "--json"]).json();
        assert_eq!(b["reach"]["members"], 3, "{who}: {b}");
        let d = home.run(&["digest", "--json"]).json();
        assert_eq!(d["members"], 3, "{who}: {d}");
        let shown = home.run(&["team", "--json"]).json();
        assert!(
            shown["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["handle"] == "ben" && m.get("joined").is_none()),
            "{who}: {shown}"
        );
    }
    // Last week's figures stay as they were: Ben was not there yet.
    let last = ana.run(&["digest", "--last", "--json"]).json();
    assert_eq!(last, before[0][2].1, "last week's digest");
    let nudge = ana.run(&["nudge", "--json"]).json();
    let mut suggested: Vec<&str> = nudge
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["handle"].as_str())
        .collect();
    suggested.sort_unstable();
    assert_eq!(suggested, ["ben", "bo"], "Ben is someone to thank now");
}

#[test]
fn joining_under_a_placeholders_name_says_so_and_one_merge_makes_one_member() {
    let server = Server::start();
    let ana = Home::team("Ana", &[]);
    ana.run(&["team", "member", "add", "Ben Okafor", "--handle", "ben"])
        .ok();
    ana.run(&["team", "member", "add", "Eve"]).ok();
    ana.run(&["kudos", "@eve", "Thanks for the onboarding notes"])
        .ok();
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    let invite = server.invite(&team, 10);

    // Ben joins with a general invite, under the very name the team gave his placeholder.
    let ben = Home::new();
    let run = ben.run(&[
        "join",
        &server.url,
        "--invite",
        &invite,
        "--name",
        "Ben Okafor",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the team already had Ben Okafor (@ben)")
            && run.stderr.contains("`cairn team member merge @ben`"),
        "the join says so, with the command: {}",
        run.stderr
    );
    // The command it names works, with the one handle it names.
    let out = ben.run(&["team", "member", "merge", "@ben"]).ok();
    assert!(out.contains("into @ben-okafor"), "{out}");

    // Eve's chosen handle is the placeholder's: the join numbers hers, the merge gives it back.
    let eve = Home::joined(&server, &invite, &["--name", "Eve"]);
    assert!(handles(&eve).contains(&"eve-2".to_owned()));
    let out = eve.run(&["team", "member", "merge", "@eve"]).ok();
    assert!(out.contains("who is @eve now"), "{out}");
    for home in [&ben, &eve, &ana, &ben] {
        home.run(&["sync"]).ok();
    }
    for (who, home) in [("ana", &ana), ("ben", &ben), ("eve", &eve)] {
        assert_eq!(
            members(home),
            [
                ("ana".to_owned(), "Ana".to_owned()),
                ("ben-okafor".to_owned(), "Ben Okafor".to_owned()),
                ("eve".to_owned(), "Eve".to_owned()),
            ],
            "{who}"
        );
        let kudos = feed(home, &[])
            .into_iter()
            .find(|i| i["text"] == "Thanks for the onboarding notes")
            .unwrap();
        assert_eq!(kudos["to"], json!(["eve"]), "{who}");
    }

    // A placeholder added under the name of someone on the team says so too: refused when it
    // would take the same handle, told when it has one of its own.
    let err = ana.run(&["team", "member", "add", "Ben Okafor"]).fails();
    assert!(
        err.contains("Ben Okafor is on the team already (@ben-okafor)") && err.contains("--handle"),
        "{err}"
    );
    let run = ana.run(&["team", "member", "add", "Ben Okafor", "--handle", "bo"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("Ben Okafor (@ben-okafor) is on the team already")
            && run
                .stderr
                .contains("cairn team member merge @bo @ben-okafor"),
        "{}",
        run.stderr
    );
    // And merge with a handle that has no twin says what it needs.
    let err = ana.run(&["team", "member", "merge", "@ana"]).fails();
    assert!(
        err.contains("no other member has @ana's name or handle"),
        "{err}"
    );
}
