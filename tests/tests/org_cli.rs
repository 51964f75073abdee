//! `cairn org` end to end: a real `cairn-server` and real `cairn` members of two teams of one
//! organisation. A steward adds a non-negotiable with `cairn org add` (the quiet sync after the
//! write sends it); a member of the other team sees it in `cairn org` and `cairn team` after a
//! sync, writes its team's own how (which the steward's team never sees); a member who is no
//! steward is refused before anything is written; a retired one leaves both lists (`--all`
//! shows it); a team of no organisation shows what it showed before.

use cairn_e2e::{Home, Server};

/// A team named `name` on `server` in organisation `org`, founded by `founder`, who syncs.
fn founded(server: &Server, name: &str, org: &str, founder: &str) -> Home {
    let (_, home) = server.found_team(name, Some(org), founder);
    home.run(&["sync"]).ok();
    home
}

/// Whether `cond` holds within `secs` seconds (for what a background process does).
fn until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

#[test]
fn a_steward_sets_a_non_negotiable_and_each_team_writes_its_own_how() {
    let server = Server::start();
    let org = server.create_org("Acme");
    let mut ana = founded(&server, "Platform", "Acme", "Ana");
    let cy = founded(&server, "Mobile", "Acme", "Cy");
    server
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();

    // A member who is no steward is refused before anything is written.
    let refused = cy
        .run(&["org", "add", "Ship daily", "--why", "speed"])
        .fails();
    assert!(
        refused.contains("only a steward of Acme changes its non-negotiables"),
        "{refused}"
    );
    assert_eq!(cy.org_outbox(&org), 0, "nothing of Cy's was written");
    let shown = cy.run(&["org"]).ok();
    assert!(shown.contains("Acme"), "{shown}");
    assert!(shown.contains("none yet"), "{shown}");

    // The steward adds one; the quiet sync after her write sends it.
    ana.auto_sync = true;
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
    assert!(
        until(20, || ana.org_outbox(&org) == 0),
        "the background sync sent nothing of the organisation"
    );
    ana.auto_sync = false;
    let shown = ana.run(&["org", "--json"]).json();
    assert_eq!(shown["org"]["steward"], true, "{shown}");
    assert_eq!(
        shown["non_negotiables"][0]["by"], "@ana@Platform",
        "{shown}"
    );

    // A member of the other team syncs and sees it, with nothing of his team's how yet.
    cy.run(&["sync"]).ok();
    let shown = cy.run(&["org"]).ok();
    assert!(shown.contains("We greet every newcomer"), "{shown}");
    assert!(shown.contains("why: nobody is a stranger"), "{shown}");
    assert!(
        shown.contains(&format!(
            "(this team has not written its how yet: `cairn org practice {id} \"...\"`)"
        )),
        "{shown}"
    );
    assert!(!shown.contains("steward"), "{shown}");
    let team = cy.run(&["team"]).ok();
    assert!(team.contains("Non-negotiables of Acme"), "{team}");
    assert!(team.contains("We greet every newcomer"), "{team}");

    // His team writes its own how; the steward's team sees nothing of it.
    cy.run(&["org", "practice", &id[..6], "we say hello at standup"])
        .ok();
    let team = cy.run(&["team"]).ok();
    assert!(team.contains("our how: we say hello at standup"), "{team}");
    let json = cy.run(&["team", "--json"]).json();
    assert_eq!(
        json["org"]["non_negotiables"][0]["practice"], "we say hello at standup",
        "{json}"
    );
    cy.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    let shown = ana.run(&["org"]).ok();
    assert!(!shown.contains("hello at standup"), "{shown}");
    let json = ana.run(&["team", "--json"]).json();
    assert_eq!(
        json["org"]["non_negotiables"][0]["practice"],
        serde_json::Value::Null
    );

    // The steward gives it a new why; the other team reads it after a sync.
    ana.run(&["org", "edit", &id, "--why", "every newcomer is ours"])
        .ok();
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();
    let shown = cy.run(&["org"]).ok();
    assert!(shown.contains("why: every newcomer is ours"), "{shown}");
    cy.run(&["org", "edit", &id, "--why", "x"]).fails();

    // Retired, it leaves both lists; `--all` still shows it.
    ana.run(&["org", "retire", &id]).ok();
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();
    let team = cy.run(&["team"]).ok();
    assert!(!team.contains("We greet every newcomer"), "{team}");
    let shown = cy.run(&["org"]).ok();
    assert!(!shown.contains("We greet every newcomer"), "{shown}");
    let all = cy.run(&["org", "--all"]).ok();
    assert!(all.contains("We greet every newcomer"), "{all}");
    assert!(all.contains("(retired)"), "{all}");
}

#[test]
fn a_team_of_no_organisation_says_so_in_one_line() {
    let home = Home::team("Dee", &[]);
    let said = home.run(&["org"]).ok();
    assert_eq!(
        said,
        "this team belongs to no organisation: ask the server's admin to attach it to one \
         (`cairn-server team attach TEAM --org ORG`)\n"
    );
    let json = home.run(&["team", "--json"]).json();
    assert!(json.get("org").is_none(), "{json}");
    home.run(&["org", "add", "x", "--why", "y"]).fails();
}
