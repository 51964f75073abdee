//! What teams share upward, end to end: a real `cairn-server` and real `cairn` members of two
//! teams of one organisation, on a pinned clock. One team shares its weekly figures (`cairn team
//! share weekly`), the other shares nothing; once the week is over and both synced, the
//! steward's `cairn org figures` shows exactly that: the one team's counts of the week, never a
//! number about one member, and the other as sharing nothing, sorted by name. A member who is
//! no steward is told the figures are the stewards'; a team that stops sharing takes its
//! figures back.

use cairn_e2e::{Acme, Home, Server};

fn on(home: &mut Home, day: &str) {
    home.day = Some(day.to_owned());
}

#[test]
fn one_team_shares_its_week_the_other_nothing_and_the_steward_sees_exactly_that() {
    let server = Server::start();
    let Acme {
        mut ana,
        mut ben,
        mut cy,
        ..
    } = Acme::found(&server);
    for h in [&ana, &ben, &cy] {
        h.run(&["sync"]).ok();
    }

    // A Tuesday of week 2026-W48: both teams act.
    for h in [&mut ana, &mut ben, &mut cy] {
        on(h, "2026-11-24");
    }
    ana.run(&[
        "log",
        "Paired with Ben on the flaky test",
        "--pillar",
        "trust",
    ])
    .ok();
    ben.run(&["kudos", "@ana", "Calm incident call"]).ok();
    cy.run(&["log", "Wrote the onboarding page"]).ok();
    // Platform chooses to share; Mobile says nothing, so shares nothing.
    let said = ana.run(&["team", "share", "weekly", "--json"]).json();
    assert_eq!(said["share"], "weekly", "{said}");
    let said = cy.run(&["team", "share"]).ok();
    assert!(said.contains("shares nothing with Acme"), "{said}");
    let err = Home::team("Solo", &[])
        .run(&["team", "share", "weekly"])
        .fails();
    assert!(err.contains("belongs to no organisation"), "{err}");

    // The next week, everyone syncs: Platform's members write its figures of W48.
    for h in [&mut ana, &mut ben, &mut cy] {
        on(h, "2026-12-02");
        h.run(&["sync"]).ok();
    }
    ana.run(&["sync"]).ok();
    let view = ana.run(&["org", "figures", "--json"]).json();
    let f = &view["figures"];
    assert_eq!(f["week"], "2026-W48", "{view}");
    let teams = f["teams"].as_array().unwrap();
    let names: Vec<&str> = teams.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Mobile", "Platform"],
        "sorted by name, never ranked"
    );
    assert_eq!(teams[0]["share"], "nothing", "{view}");
    assert!(teams[0]["shared"].is_null(), "{view}");
    let w = &teams[1]["shared"];
    assert_eq!(
        (&w["members"], &w["active"], &w["acts"], &w["kudos"]),
        (&2.into(), &2.into(), &2.into(), &1.into()),
        "{view}"
    );
    assert_eq!(w["pillars"]["trust"], 1, "{view}");
    assert_eq!(f["total"]["teams"], 1, "{view}");
    // Nothing about one member: no member id or handle anywhere in what was shared.
    let text = view.to_string();
    for who in [ana.meta("me"), ben.meta("me"), "@ana".into(), "@ben".into()] {
        assert!(!text.contains(&who), "{who} in {text}");
    }
    let shown = ana.run(&["org", "figures"]).ok();
    assert!(shown.contains("Mobile  shares nothing"), "{shown}");
    assert!(shown.contains("2 of 2 members active"), "{shown}");
    let digest = ana.run(&["org", "digest"]).ok();
    assert!(digest.contains("Recognitions across teams: 0"), "{digest}");

    // A member who is no steward reads no figures of the teams.
    let err = cy.run(&["org", "figures"]).fails();
    assert!(err.contains("are for its stewards"), "{err}");

    // Platform takes its figures back.
    ben.run(&["sync"]).ok();
    ben.run(&["team", "share", "nothing"]).ok();
    ben.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    let view = ana.run(&["org", "figures", "--json"]).json();
    let teams = view["figures"]["teams"].as_array().unwrap();
    assert!(
        teams
            .iter()
            .all(|t| t["shared"].is_null() && t["share"] == "nothing"),
        "{view}"
    );
    let shown = ana.run(&["org", "figures"]).ok();
    assert!(shown.contains("no team shares its figures yet"), "{shown}");
}
