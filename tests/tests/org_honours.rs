//! Acts that honour the organisation's non-negotiables, end to end: a real `cairn-server` and
//! real `cairn` members of two teams of one organisation, on a pinned clock. A member names the
//! non-negotiable a micro-action or a kudos honours (`--honours`, by the start of its id, as
//! `cairn org` shows it), a kudos across teams too; the feed says so, the team's digest counts
//! the team's acts per non-negotiable, an id the organisation does not have, a retired one or a
//! team of no organisation is refused with a hint, and once the week is over the figures the
//! team shares count them per non-negotiable for the steward.

use cairn_e2e::{Acme, Home, Server};
use serde_json::Value;

fn on(home: &mut Home, day: &str) {
    home.day = Some(day.to_owned());
}

/// The feed's items (as `cairn feed --json` gives them) that honour something.
fn honouring(home: &Home) -> Vec<Value> {
    let feed = home.run(&["feed", "--json"]).json();
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| !i["honours"].is_null())
        .cloned()
        .collect()
}

/// The team's acts of this week that honoured non-negotiable `id`, as `cairn digest --json`
/// counts them.
fn acts_honouring(home: &Home, id: &str) -> Value {
    let digest = home.run(&["digest", "--json"]).json();
    digest["org"]["non_negotiables"]
        .as_array()
        .expect("non-negotiables")
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["acts"].clone())
        .unwrap_or_else(|| panic!("no {id} in {digest}"))
}

#[test]
fn acts_name_the_non_negotiable_they_honour_and_the_digest_and_figures_count_them() {
    let server = Server::start();
    let Acme {
        mut ana,
        mut ben,
        mut cy,
        ..
    } = Acme::found(&server);
    ana.run(&["sync"]).ok();
    let add = |title: &str| -> String {
        let added = ana
            .run(&["org", "add", title, "--why", "it holds", "--json"])
            .json();
        added["commitment"].as_str().expect("an id").to_owned()
    };
    let greet = add("We greet every newcomer");
    let old = add("We fax the minutes");
    ana.run(&["org", "retire", &old]).ok();
    for h in [&ana, &ben, &cy] {
        h.run(&["sync"]).ok();
    }

    // A Tuesday of week 2026-W48: Ben logs and thanks, naming what it honours by the start of
    // its id.
    for h in [&mut ana, &mut ben, &mut cy] {
        on(h, "2026-11-24");
    }
    let prefix = &greet[..6];
    let logged = ben
        .run(&[
            "log",
            "Showed the new intern around",
            "--honours",
            prefix,
            "--json",
        ])
        .json();
    assert_eq!(logged["honours"], greet.as_str(), "{logged}");
    let said = ben
        .run(&["kudos", "@ana", "Welcomed Dee", "--honours", prefix])
        .ok();
    assert!(
        said.contains("honouring “We greet every newcomer”"),
        "{said}"
    );
    ben.run(&["log", "Fixed the flaky test"]).ok();

    // The feed says which, by its title; with --json, by its id.
    let items = honouring(&ben);
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().all(|i| i["honours"] == greet.as_str()));
    let feed = ben.run(&["feed"]).ok();
    assert_eq!(
        feed.matches("honours: “We greet every newcomer”").count(),
        2,
        "{feed}"
    );

    // The digest counts the team's acts of the week per non-negotiable, in every format.
    assert_eq!(acts_honouring(&ben, &greet), 2);
    let text = ben.run(&["digest"]).ok();
    assert!(
        text.contains("We greet every newcomer — our how is not written yet; honoured by 2 acts"),
        "{text}"
    );
    let md = ben.run(&["digest", "--format", "md"]).ok();
    assert!(md.contains("- We greet every newcomer — our how"), "{md}");
    assert!(md.contains("honoured by 2 acts"), "{md}");
    // Never per person: no handle on the line that counts.
    let line = text
        .lines()
        .find(|l| l.contains("honoured by"))
        .expect("a line");
    assert!(!line.contains('@'), "{line}");

    // What the organisation does not have, or no longer holds, is refused with a hint.
    let err = ben.run(&["log", "x", "--honours", "zzzzzz"]).fails();
    assert!(
        err.contains("the organisation has no non-negotiable `zzzzzz`"),
        "{err}"
    );
    assert!(err.contains("hint: `cairn org` lists"), "{err}");
    let err = ben.run(&["kudos", "@ana", "x", "--honours", &old]).fails();
    assert!(err.contains("“We fax the minutes” is retired"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    let err = Home::team("Solo", &[])
        .run(&["log", "x", "--honours", prefix])
        .fails();
    assert!(err.contains("belongs to no organisation"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(honouring(&ben).len(), 2, "nothing refused was written");

    // A kudos across teams names it too: it counts for the giver's team, not the recipient's.
    ben.run(&["sync"]).ok();
    let given = ben
        .run(&[
            "kudos",
            "@cy@mobile",
            "Answered the newcomer's questions",
            "--honours",
            prefix,
            "--json",
        ])
        .json();
    assert_eq!(given["honours"], greet.as_str(), "{given}");
    assert_eq!(acts_honouring(&ben, &greet), 3);
    ben.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();
    let items = honouring(&cy);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["author"], "@ben@platform", "{items:?}");
    assert_eq!(acts_honouring(&cy, &greet), 0);

    // Platform shares its weeks; the next week, each sync writes W48's figures.
    ana.run(&["sync"]).ok();
    ana.run(&["team", "share", "weekly"]).ok();
    for h in [&mut ana, &mut ben, &mut cy] {
        on(h, "2026-12-02");
        h.run(&["sync"]).ok();
    }
    ana.run(&["sync"]).ok();
    let view = ana.run(&["org", "figures", "--json"]).json();
    let f = &view["figures"];
    assert_eq!(f["week"], "2026-W48", "{view}");
    let platform = f["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Platform")
        .expect("Platform");
    let shared = &platform["shared"];
    assert_eq!(shared["non_negotiables"][greet.as_str()], 3, "{view}");
    assert_eq!(shared["acts"], 4, "{view}");
}
