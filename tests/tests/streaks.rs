//! Streaks end to end: days counted where the member is, rest days, late logging, the team's
//! weeks, and the heatmap on a terminal and in a pipe.

use cairn_e2e::Home;

fn on(home: &mut Home, day: &str, args: &[&str]) {
    home.day = Some(day.to_owned());
    home.run(args).ok();
}

#[test]
fn streaks_count_workdays_skip_weekends_and_take_yesterday_late() {
    let mut ana = Home::team("Ana", &["Bo"]);
    // Thursday, Friday, (weekend), Monday, and Tuesday's stone logged on Wednesday, late.
    on(&mut ana, "2026-11-12", &["log", "Thursday"]);
    on(&mut ana, "2026-11-13", &["log", "Friday"]);
    on(&mut ana, "2026-11-16", &["log", "Monday"]);
    on(
        &mut ana,
        "2026-11-18",
        &["log", "Tuesday, late", "--yesterday"],
    );
    ana.day = Some("2026-11-18".into());
    let s = ana.run(&["streaks", "--json"]).json();
    assert_eq!(s["you"]["current"], 4, "{s:#}");
    assert_eq!(s["you"]["active_today"], false);
    // Half of a team of two is one: last week and this week both count.
    assert_eq!(s["team"]["current"], 2, "{s:#}");
    assert_eq!(s["today"], "2026-11-18");
    // Thursday: Wednesday can still be logged late, nothing broken yet.
    ana.day = Some("2026-11-19".into());
    let s = ana.run(&["streaks", "--json"]).json();
    assert_eq!(s["you"]["current"], 4, "{s:#}");
    // Friday with nothing on Wednesday: broken, the best stays.
    ana.day = Some("2026-11-20".into());
    let s = ana.run(&["streaks", "--json"]).json();
    assert_eq!(
        (s["you"]["current"].as_u64(), s["you"]["best"].as_u64()),
        (Some(0), Some(4))
    );

    // With Wednesday as a rest day, nothing broke.
    ana.run(&["team", "rules", "--rest-days", "wed,sat,sun"])
        .ok();
    let s = ana.run(&["streaks", "--json"]).json();
    assert_eq!(s["you"]["current"], 4, "{s:#}");
    assert_eq!(
        s["rules"]["rest_days"],
        serde_json::json!(["wed", "sat", "sun"])
    );
    // Bad rules: one line, nothing changed.
    let err = ana.run(&["team", "rules", "--quorum", "none"]).fails();
    assert!(err.contains("quorum"), "{err}");
}

#[test]
fn the_heatmap_is_plain_in_a_pipe_and_coloured_on_request() {
    let ana = Home::team("Ana", &[]);
    ana.run(&["log", "a stone"]).ok();
    let plain = ana.run(&["streaks", "--weeks", "4"]).ok();
    assert!(plain.contains("Mon ") && plain.contains("Sun "), "{plain}");
    assert!(!plain.contains('\x1b') && !plain.contains('■'), "{plain}");
    assert!(
        plain.contains('#'),
        "today's activity is the busiest cell: {plain}"
    );
    let coloured = ana
        .command(&["streaks", "--weeks", "4"])
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    let coloured = String::from_utf8(coloured.stdout).unwrap();
    assert!(
        coloured.contains('■') && coloured.contains('\x1b'),
        "{coloured}"
    );
}

#[test]
fn challenges_badges_reach_and_nudges() {
    let ana = Home::team("Ana", &["Bo", "Cy"]);
    // Bo and Cy log on this shared device: they count in reach and nudges from then.
    for who in ["@bo", "@cy"] {
        ana.run(&["--as", who, "log", "A first stone"]).ok();
    }
    ana.run(&[
        "challenge",
        "add",
        "Three thanks this week",
        "--metric",
        "kudos",
        "--target",
        "3",
        "--until",
        "2026-11-29",
    ])
    .ok();
    ana.run(&["kudos", "@bo", "Thanks for the review"]).ok();
    let c = ana.run(&["challenges", "--json"]).json();
    assert_eq!(c[0]["progress"]["value"], 1);
    assert_eq!(c[0]["progress"]["done"], false);
    ana.run(&["kudos", "@bo", "Thanks again"]).ok();
    ana.run(&["log", "Tidied the board", "--pillar", "professionalism"])
        .ok();
    ana.run(&["kudos", "@bo", "And again"]).ok();
    let c = ana.run(&["challenges", "--json"]).json();
    assert_eq!(c[0]["progress"]["done"], true, "{c:#}");
    let text = ana.run(&["challenges"]).ok();
    assert!(text.contains("[####################] 3/3 kudos"), "{text}");
    assert!(ana.run(&["team"]).ok().contains("Three thanks this week"));

    let b = ana.run(&["badges", "--json"]).json();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&b["team"]), ["first-stone"]);
    assert_eq!(ids(&b["you"]), ["first-kudos"]);
    assert_eq!(
        (
            b["reach"]["recognised"].as_u64(),
            b["reach"]["members"].as_u64()
        ),
        (Some(1), Some(3))
    );
    // Nudge: Cy, never thanked, is suggested; Bo, thanked today, is not (not within a week).
    let n = ana.run(&["nudge", "--json"]).json();
    assert_eq!(n[0]["handle"], "cy");
    assert_eq!(n[0]["last"], serde_json::Value::Null);
    assert_eq!(n.as_array().map(Vec::len), Some(1), "{n}");

    // Your own numbers.
    let me = ana.run(&["me", "--json"]).json();
    assert_eq!(me["month"]["kudos_given"], 3, "{me:#}");
    assert_eq!(me["week"]["actions"], 1);
    assert_eq!(me["badges"][0]["id"], "first-kudos");

    // Bad challenges: one line each, nothing written.
    let before = ana.dump();
    for args in [
        &[
            "challenge",
            "add",
            "x",
            "--metric",
            "hugs",
            "--target",
            "3",
            "--until",
            "2026-12-01",
        ][..],
        &[
            "challenge",
            "add",
            "x",
            "--metric",
            "kudos",
            "--target",
            "3",
            "--until",
            "2026-11-01",
        ],
        &[
            "challenge",
            "add",
            "x",
            "--metric",
            "kudos",
            "--target",
            "3",
            "--until",
            "soon",
        ],
        &[
            "challenge",
            "add",
            " ",
            "--metric",
            "kudos",
            "--target",
            "3",
            "--until",
            "2026-12-01",
        ],
    ] {
        ana.run(args).fails();
    }
    assert_eq!(ana.dump(), before);
}
