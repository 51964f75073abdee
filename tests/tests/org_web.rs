//! The organisation's page of `cairn web`, end to end: a real `cairn-server` and real `cairn`
//! members of two teams of one organisation and one of none, on a pinned clock, the pages
//! fetched over HTTP with the session a link's key gives. The steward's `/org` shows the
//! non-negotiables, the organisation's feed, and the teams' figures of the week by name (one
//! sharing, the other sharing nothing) with the week's digest; a member who is no steward sees
//! none of the figures, only what their own team shares; a team of none has no such page.

use cairn_e2e::browser::{Browser, Web};
use cairn_e2e::{Acme, Server};

/// The page at `path` of `web` with the session `cookie`: its status and body.
fn page(web: &Web, path: &str, cookie: &str) -> (u16, String) {
    let mut res = cairn_e2e::http::agent()
        .get(format!("{}{path}", web.base))
        .header("Cookie", cookie)
        .call()
        .expect("cairn web answers");
    let status = res.status().as_u16();
    (status, res.body_mut().read_to_string().unwrap_or_default())
}

/// Where `needle` starts in `hay`, which must hold it.
fn at(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in {hay}"))
}

#[test]
fn the_stewards_org_page_lists_the_teams_by_name_and_a_member_sees_no_figures() {
    let server = Server::start();
    let Acme {
        mut ana,
        mut ben,
        mut cy,
        ..
    } = Acme::found(&server);
    let (_, bo) = server.found_team("Solo", None, "Bo");
    for h in [&ana, &ben, &cy] {
        h.run(&["sync"]).ok();
    }

    // A Tuesday of week 2026-W48: a non-negotiable, both teams act, a kudos across teams.
    for h in [&mut ana, &mut ben, &mut cy] {
        h.day = Some("2026-11-24".into());
    }
    ana.run(&[
        "org",
        "add",
        "We greet every newcomer",
        "--why",
        "nobody is a <b>stranger</b>",
    ])
    .ok();
    ana.run(&["sync"]).ok();
    ana.run(&["log", "Paired with Ben", "--pillar", "trust"])
        .ok();
    ben.run(&["kudos", "@ana", "Calm incident call"]).ok();
    cy.run(&["sync"]).ok();
    cy.run(&["log", "Wrote the onboarding page"]).ok();
    cy.run(&["kudos", "@ana@platform", "Thanks for the release notes"])
        .ok();
    cy.run(&["sync"]).ok();
    ana.run(&["team", "share", "weekly"]).ok();
    // Platform's devices hold the kudos across teams before they write the week's figures.
    ana.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();

    // The next week, everyone syncs: Platform's members write its figures of W48.
    for h in [&mut ana, &mut ben, &mut cy] {
        h.day = Some("2026-12-02".into());
        h.run(&["sync"]).ok();
    }
    ana.run(&["sync"]).ok();

    let web = Web::start(&ana, &["--sync-every", "0"]);
    let cookie = web.session();
    let (status, feed) = page(&web, "/feed", &cookie);
    assert_eq!(status, 200, "{feed}");
    assert!(
        feed.contains(r#"href="/org""#),
        "the navigation links it: {feed}"
    );
    let (status, org) = page(&web, "/org", &cookie);
    assert_eq!(status, 200, "{org}");
    assert!(org.contains("<h1>Acme</h1>"), "{org}");
    assert!(org.contains("you are one of its stewards"), "{org}");
    // The non-negotiable, its why escaped.
    assert!(org.contains("Non-negotiables of Acme"), "{org}");
    assert!(org.contains("We greet every newcomer"), "{org}");
    assert!(
        org.contains("nobody is a &lt;b&gt;stranger&lt;/b&gt;"),
        "{org}"
    );
    // The table: teams by name, a head per column and per row, Mobile sharing nothing.
    let table = &org[at(&org, "<table")..at(&org, "</table>")];
    assert!(table.contains("week 2026-W48"), "{table}");
    assert!(table.contains(r#"<th scope="col">Members</th>"#), "{table}");
    assert!(
        at(table, r#"<th scope="row">Mobile</th>"#) < at(table, r#"<th scope="row">Platform</th>"#),
        "sorted by name, never ranked: {table}"
    );
    assert!(
        table.contains(
            r#"<th scope="row">Mobile</th><td class="dim" colspan="8">shares nothing</td>"#
        ),
        "{table}"
    );
    // Platform of W48: 2 members, 2 active, 1 active day, 2 acts (1 micro-action, 1 kudos:
    // Ben's; Cy's, which its feed shows too, is Mobile's act), 1 member recognised, 1
    // recognition across teams.
    assert!(
        table.contains(concat!(
            r#"<th scope="row">Platform</th><td>2</td><td>2</td><td>1</td><td>2</td>"#,
            "<td>1</td><td>1</td><td>1</td><td>1</td>"
        )),
        "{table}"
    );
    assert!(table.contains("1 team"), "the organisation's sums: {table}");
    assert!(!table.contains("Ana") && !table.contains("@ana"), "{table}");
    // No column sorts by a figure: nothing in it is a link or a control.
    assert!(
        !table.contains("<a ") && !table.contains("<button"),
        "{table}"
    );
    // The week's choice and digest.
    assert!(
        org.contains(r#"<option value="2026-W48" selected>2026-W48</option>"#),
        "{org}"
    );
    assert!(org.contains("Digest of week 2026-W48"), "{org}");
    assert!(org.contains("Recognitions across teams: 1"), "{org}");
    assert!(
        org.contains("the organisation added a non-negotiable: “We greet every newcomer”"),
        "{org}"
    );
    // The organisation's feed, newest first: the kudos across teams, then the note.
    let feed = &org[at(&org, "The organisation's feed")..];
    assert!(
        at(feed, "Thanks for the release notes") < at(feed, "changed the organisation"),
        "{feed}"
    );
    assert!(feed.contains("@cy@mobile"), "{feed}");
    // Another week, asked: Mobile still shares nothing; a week that is none is refused.
    let (status, other) = page(&web, "/org?week=2026-W40", &cookie);
    assert_eq!(status, 200, "{other}");
    assert!(other.contains("week 2026-W40"), "{other}");
    assert!(other.contains("shares nothing"), "{other}");
    let (status, bad) = page(&web, "/org?week=soon", &cookie);
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("not an ISO week"), "{bad}");
    drop(web);
    // What the steward sees in a browser, left as a picture to look at.
    let web = Web::start(&ana, &["--sync-every", "0"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(b) = Browser::for_test().await else {
            return;
        };
        b.client.goto(&web.link).await.expect("the link opens");
        b.wait_for("form#log").await;
        b.click(r#"nav a[href="/org"]"#).await;
        b.wait_for("table.figures").await;
        let text = b.text().await;
        assert!(text.contains("Mobile shares nothing"), "{text}");
        assert!(text.contains("Recognitions across teams: 1"), "{text}");
        let shot = b.screenshot("org-steward").await;
        eprintln!("screenshot: {}", shot.display());
    });
    drop(web);

    // Cy, of Mobile and no steward: the page, without a figure.
    let web = Web::start(&cy, &["--sync-every", "0"]);
    let cookie = web.session();
    let (status, org) = page(&web, "/org", &cookie);
    assert_eq!(status, 200, "{org}");
    assert!(
        org.contains("The figures the teams of Acme share are for its stewards."),
        "{org}"
    );
    assert!(org.contains("Your team shares nothing with Acme."), "{org}");
    assert!(!org.contains("<table"), "{org}");
    assert!(!org.contains("Digest of week"), "{org}");
    assert!(org.contains("We greet every newcomer"), "{org}");
    assert!(org.contains("Thanks for the release notes"), "{org}");
    drop(web);

    // Bo's team belongs to no organisation: no link, and no page.
    let web = Web::start(&bo, &["--sync-every", "0"]);
    let cookie = web.session();
    let (_, feed) = page(&web, "/feed", &cookie);
    assert!(!feed.contains(r#"href="/org""#), "{feed}");
    let (status, org) = page(&web, "/org", &cookie);
    assert_eq!(status, 404, "{org}");
    assert!(
        org.contains("This team belongs to no organisation"),
        "{org}"
    );
}
