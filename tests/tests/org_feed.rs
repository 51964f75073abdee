//! The organisation in every team's pages, end to end: a real `cairn-server` and real `cairn`
//! members of two teams of one organisation. A steward's change to the non-negotiables shows
//! in both teams' feeds (text, `--json`, the web's feed) as a note of the organisation's, by
//! the steward, counting for nothing; nobody reacts to it, edits or retracts it; a rebuild of
//! the index keeps it. The digest (text and `--json`) and the web's team page list the
//! non-negotiables with the team's own how; a team detached keeps the notes it was shown; a
//! team of no organisation shows none.

use cairn_e2e::browser::Web;
use cairn_e2e::http::{connect, exchange};
use cairn_e2e::{Home, Server};
use serde_json::Value;

/// A team named `name` on `server` in organisation `org` (or none), founded by `founder`, who
/// syncs.
fn founded(server: &Server, name: &str, org: Option<&str>, founder: &str) -> Home {
    let (_, home) = server.found_team(name, org, founder);
    home.run(&["sync"]).ok();
    home
}

/// The organisation's items of `home`'s feed, as `cairn feed --json` gives them.
fn org_items(home: &Home) -> Vec<Value> {
    let feed = home.run(&["feed", "--json"]).json();
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["org"] == true)
        .cloned()
        .collect()
}

/// The page at `path` of `web`, with the session `cookie`: its status and whole answer.
fn get(web: &Web, path: &str, cookie: &str) -> (u16, String) {
    let addr = web.base.trim_start_matches("http://");
    let mut s = connect(addr, std::time::Duration::from_secs(30));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let (answer, _) = exchange(&mut s, request.as_bytes());
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

#[test]
fn a_stewards_change_shows_in_every_teams_feed_and_the_non_negotiables_in_its_digest_and_team_page()
{
    let server = Server::start();
    server.create_org("Acme");
    let ana = founded(&server, "Platform", Some("Acme"), "Ana");
    let cy = founded(&server, "Mobile", Some("Acme"), "Cy");
    let bo = founded(&server, "Solo", None, "Bo");
    server
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();
    assert!(org_items(&cy).is_empty(), "no note before any change");

    let added = ana
        .run(&[
            "org",
            "add",
            "We greet every newcomer",
            "--why",
            "nobody is a stranger",
            "--json",
        ])
        .json();
    let id = added["commitment"].as_str().expect("an id").to_owned();
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();

    // Both teams see the note, by the steward, among their own events.
    for home in [&ana, &cy] {
        let feed = home.run(&["feed"]).ok();
        assert!(
            feed.contains("@ana@Platform changed the organisation"),
            "{feed}"
        );
        assert!(feed.contains("added a non-negotiable"), "{feed}");
        assert!(feed.contains("We greet every newcomer"), "{feed}");
        assert!(!feed.contains("@@"), "{feed}");
        let items = org_items(home);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["kind"], "team");
        assert_eq!(items[0]["author"], "@ana@Platform");
        let text = items[0]["text"].as_str().unwrap();
        assert!(text.contains("added a non-negotiable"), "{text}");
        assert!(text.contains("We greet every newcomer"), "{text}");
    }
    // The team's own events say they are not the organisation's.
    cy.run(&["log", "tidied the backlog"]).ok();
    let feed = cy.run(&["feed", "--json"]).json();
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{feed}");
    assert_eq!(items[0]["text"], "tidied the backlog", "newest first");
    assert_eq!(items[0]["org"], false);
    assert_eq!(items[1]["org"], true);
    // A page of one, then the next page, finds it by its id.
    let first = cy.run(&["feed", "--json", "--limit", "1"]).json();
    let next = first["next_before"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let older = cy
        .run(&["feed", "--json", "--limit", "1", "--before", &next])
        .json();
    assert_eq!(older["items"][0]["org"], true, "{older}");
    // Only the team's own acts count.
    let digest = cy.run(&["digest", "--json"]).json();
    assert_eq!(digest["actions"], 1, "{digest}");
    assert_eq!(digest["kudos"], 0, "{digest}");
    assert_eq!(digest["active_members"], 1, "{digest}");
    let digest = ana.run(&["digest", "--json"]).json();
    assert_eq!(digest["actions"], 0, "{digest}");
    assert_eq!(digest["active_members"], 0, "{digest}");

    // Nobody reacts to it, edits or retracts it.
    let note = org_items(&cy)[0]["short"].as_str().unwrap().to_owned();
    let refused = cy.run(&["react", &note]).fails();
    assert!(
        refused.contains("a note of the organisation's: it can't be reacted to"),
        "{refused}"
    );
    let refused = cy.run(&["retract", &note]).fails();
    assert!(refused.contains("it can't be retracted"), "{refused}");
    let refused = cy.run(&["edit", &note, "mine now"]).fails();
    assert!(refused.contains("it can't be edited"), "{refused}");

    // A rebuild of the index keeps it, and the check finds nothing amiss.
    cy.run(&["doctor", "--reindex"]).ok();
    assert_eq!(org_items(&cy).len(), 1);
    let doctor = cy.run(&["doctor", "--json"]).json();
    assert_eq!(doctor["index_ok"], true, "{doctor}");

    // The digest lists the non-negotiable with the team's own how once written.
    let digest = cy.run(&["digest", "--json"]).json();
    let listed = &digest["org"]["non_negotiables"][0];
    assert_eq!(digest["org"]["name"], "Acme", "{digest}");
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["title"], "We greet every newcomer");
    assert_eq!(listed["why"], "nobody is a stranger");
    assert_eq!(listed["how"], Value::Null);
    let text = cy.run(&["digest"]).ok();
    assert!(text.contains("Non-negotiables of Acme"), "{text}");
    assert!(
        text.contains("We greet every newcomer — our how is not written yet"),
        "{text}"
    );
    cy.run(&["org", "practice", &id[..6], "we say hello at standup"])
        .ok();
    let digest = cy.run(&["digest", "--json"]).json();
    assert_eq!(
        digest["org"]["non_negotiables"][0]["how"], "we say hello at standup",
        "{digest}"
    );
    let text = cy.run(&["digest", "--format", "md"]).ok();
    assert!(
        text.contains("- We greet every newcomer — our how: we say hello at standup"),
        "{text}"
    );

    // The web's team page lists it, with the team's how; its feed shows the note.
    let web = Web::start(&cy, &["--sync-every", "0"]);
    let cookie = web.session();
    let (status, page) = get(&web, "/team", &cookie);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Non-negotiables of Acme"), "{page}");
    assert!(page.contains("We greet every newcomer"), "{page}");
    assert!(page.contains("Why: nobody is a stranger"), "{page}");
    assert!(page.contains("Our how: we say hello at standup"), "{page}");
    let (status, page) = get(&web, "/feed", &cookie);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("@ana@Platform"), "{page}");
    assert!(page.contains("changed the organisation"), "{page}");
    let (status, page) = get(&web, "/digest", &cookie);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Non-negotiables of Acme"), "{page}");
    drop(web);

    // Retired, it leaves the digest; the notes stay, one per change.
    ana.run(&["org", "retire", &id]).ok();
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();
    let notes = org_items(&cy);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0]["text"].as_str().unwrap().contains("retired"),
        "{notes:?}"
    );
    let digest = cy.run(&["digest", "--json"]).json();
    assert_eq!(digest["org"]["non_negotiables"], serde_json::json!([]));

    // Detached, the team keeps the notes it was shown; the digest lists nothing more.
    server.admin(&["team", "detach", "Mobile"]).ok();
    cy.run(&["sync"]).ok();
    assert_eq!(org_items(&cy).len(), 2, "what was given stays");
    let digest = cy.run(&["digest", "--json"]).json();
    assert!(digest.get("org").is_none(), "{digest}");

    // A team of no organisation shows none of it.
    let digest = bo.run(&["digest", "--json"]).json();
    assert!(digest.get("org").is_none(), "{digest}");
    let text = bo.run(&["digest"]).ok();
    assert!(!text.contains("Non-negotiables"), "{text}");
    assert!(org_items(&bo).is_empty());
}
