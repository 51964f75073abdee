//! Rules that stay fair in edge cases: late logging within the team's window, travel that skips a
//! date, nudges that never suggest someone thanked this week.

use cairn_e2e::{Home, Run, feed};

/// Runs `cairn ARGS...` in `home` at `instant` (RFC 3339) in time zone `tz`.
fn run_at(home: &Home, tz: &str, instant: &str, args: &[&str]) -> Run {
    home.command(args)
        .env("TZ", tz)
        .env("CAIRN_NOW", instant)
        .output()
        .expect("cairn runs")
        .into()
}

#[test]
fn friday_remembered_on_monday_counts_for_friday_within_the_window() {
    // The pinned clock is Monday 2026-11-23 in Paris.
    let ana = Home::team("Ana", &["Ben"]);
    let out = ana
        .run(&["log", "Fixed the deploy script", "--on", "2026-11-20"])
        .ok();
    assert!(out.contains("for 2026-11-20"), "{out}");
    let item = feed(&ana, &[]).into_iter().next().unwrap();
    assert_eq!(
        (item["date"].as_str(), item["late"].as_bool()),
        (Some("2026-11-20"), Some(true))
    );

    // Thursday is beyond the last workday; the error says how to widen the window.
    let err = ana.run(&["log", "Older", "--on", "2026-11-19"]).fails();
    assert!(
        err.contains("further back than the team logs late (from 2026-11-20)")
            && err.contains("--late-days"),
        "{err}"
    );
    let err = ana.run(&["log", "Soon", "--on", "2026-11-24"]).fails();
    assert!(err.contains("has not happened yet"), "{err}");
    let rules = ana.run(&["team", "rules", "--late-days", "2"]).ok();
    assert!(rules.contains("the last 2 workdays"), "{rules}");
    ana.run(&["log", "Reviewed the runbook", "--on", "2026-11-19"])
        .ok();
    // Thursday and Friday count, logged on Monday; the streak runs through them.
    ana.run(&["log", "Paired with Ben"]).ok();
    let s = ana.run(&["streaks", "--json"]).json();
    assert_eq!(s["you"]["current"], 3, "{s}");
}

#[test]
fn a_flight_east_across_the_date_line_never_breaks_a_streak() {
    let mut ana = Home::team("Ana", &[]);
    ana.day = None;
    // Los Angeles, Monday evening; Tokyo, Wednesday morning (Tuesday never happened); Thursday.
    run_at(
        &ana,
        "America/Los_Angeles",
        "2026-11-17T04:00:00Z",
        &["log", "Handed over on-call before the flight"],
    )
    .ok();
    run_at(
        &ana,
        "Asia/Tokyo",
        "2026-11-17T23:00:00Z",
        &["log", "Met the Tokyo team"],
    )
    .ok();
    run_at(
        &ana,
        "Asia/Tokyo",
        "2026-11-19T01:00:00Z",
        &["log", "Explained the release freeze"],
    )
    .ok();
    let s = run_at(
        &ana,
        "Asia/Tokyo",
        "2026-11-19T10:00:00Z",
        &["streaks", "--json"],
    )
    .json();
    assert_eq!(s["today"], "2026-11-19");
    assert_eq!(s["you"]["current"], 3, "Mon, Wed, Thu: {s}");
    assert_eq!(s["you"]["freezes_used"], 0, "{s}");
    let me = run_at(
        &ana,
        "Asia/Tokyo",
        "2026-11-19T10:00:00Z",
        &["me", "--json"],
    )
    .json();
    assert_eq!(me["streak"]["current"], 3, "{me}");
}

#[test]
fn the_nudge_skips_someone_thanked_this_week() {
    let ana = Home::team("Ana", &["Ben", "Cy"]);
    // Ben and Cy log on this shared device: they count from then (before, nobody is suggested).
    let nobody = ana.run(&["nudge", "--json"]).json();
    assert_eq!(
        nobody,
        serde_json::json!([]),
        "placeholders are nobody to thank yet"
    );
    for who in ["@ben", "@cy"] {
        ana.run(&["--as", who, "log", "A first stone"]).ok();
    }
    let suggested = |home: &Home| -> Vec<String> {
        home.run(&["nudge", "--json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["handle"].as_str().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    assert_eq!(suggested(&ana), ["ben", "cy"]);
    ana.run(&["kudos", "@ben", "Calm incident call"]).ok();
    assert_eq!(suggested(&ana), ["cy"]);
    ana.run(&["kudos", "@cy", "Great pairing"]).ok();
    let out = ana.run(&["nudge"]).ok();
    assert!(out.contains("thanked everyone"), "{out}");
}
