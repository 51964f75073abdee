//! Kudos across the teams of an organisation, end to end: a real `cairn-server` and real `cairn`
//! members of two teams of one organisation and of a team outside it. A member of one team
//! thanks a member of the other (`cairn kudos @ana@platform ...`); both teams' feeds show it,
//! and nothing is written into the other team's log. The organisation's doors hold against a
//! device speaking raw HTTP: another member's journal across teams, a recognition naming
//! someone outside the organisation, another team's shared figures, an organisation's document
//! pushed into a team's log. A client from before these documents still reads the
//! organisation's own document and nothing it cannot hold.

use automerge::{ActorId, Automerge};
use cairn_core::across::{self, Person};
use cairn_core::ids::{EventId, across_doc};
use cairn_e2e::{Home, Server, feed, http};
use cairn_protocol::{Bytes, DocChanges, ErrorBody, SyncRequest, SyncResponse};

fn org_sync(server: &Server, org: &str, token: &str, req: &SyncRequest) -> (u16, String) {
    http::post(
        &server.url,
        &format!("/v1/sync?org={org}"),
        Some(token),
        &serde_json::to_vec(req).unwrap(),
    )
}

fn push(
    server: &Server,
    org: Option<&str>,
    token: &str,
    doc: &str,
    changes: Vec<Vec<u8>>,
) -> (u16, String) {
    let req = SyncRequest {
        push: vec![DocChanges {
            doc: doc.into(),
            changes: changes.into_iter().map(Bytes).collect(),
        }],
        max_pull: Some(0),
        org_docs: true,
        ..SyncRequest::default()
    };
    match org {
        Some(org) => org_sync(server, org, token, &req),
        None => http::post(
            &server.url,
            "/v1/sync",
            Some(token),
            &serde_json::to_vec(&req).unwrap(),
        ),
    }
}

#[track_caller]
fn refused(got: (u16, String), want: u16, says: &str) {
    let (status, body) = got;
    assert_eq!(status, want, "{body}");
    let err: ErrorBody = serde_json::from_str(&body).expect("an error body");
    assert!(err.message.contains(says), "{}", err.message);
}

/// One change of a fresh actor: `from` thanks `to` in journal `doc`.
fn a_crossing(doc_id: &str, from: &Person, to: &[Person]) -> Vec<u8> {
    let mut doc = Automerge::new().with_actor(ActorId::random());
    let stamp = cairn_core::Stamp {
        at_ms: 1_796_000_000_000,
        tz: "UTC".into(),
        date: "2026-12-01".into(),
        late: false,
    };
    let id = EventId::new(stamp.at_ms, rand_bytes());
    across::add(&mut doc, doc_id, from, to, &id, &stamp, "thanks", None).unwrap();
    doc.get_changes(&[])[0].raw_bytes().to_vec()
}

fn rand_bytes() -> [u8; 5] {
    let a = ActorId::random();
    let b = a.to_bytes();
    [b[0], b[1], b[2], b[3], b[4]]
}

#[test]
fn a_member_thanks_someone_of_another_team_and_both_feeds_show_it() {
    let server = Server::start();
    let org = server.create_org("Acme");
    let (platform, ana) = server.found_team("Platform", Some("Acme"), "Ana");
    let ben = Home::joined(&server, &server.invite(&platform, 3), &["--name", "Ben"]);
    let (mobile, cy) = server.found_team("Mobile", Some("Acme"), "Cy");
    let (outsiders, dan) = server.found_team("Outsiders", None, "Dan");
    for h in [&ana, &ben, &cy, &dan] {
        h.run(&["sync"]).ok();
    }

    // The shell offers the organisation's people, as Cy's last sync heard them.
    let script = format!(
        "source <('{}' completions bash)\nCOMP_WORDS=(cairn kudos '@a')\nCOMP_CWORD=2\n\
         COMP_TYPE=9\n_clap_complete_cairn cairn '@a' x\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        cairn_e2e::cairn_bin().display()
    );
    let offered = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("CAIRN_HOME", cy.path())
        .output()
        .expect("bash runs");
    let offered = String::from_utf8_lossy(&offered.stdout).into_owned();
    assert!(offered.lines().any(|l| l == "@ana@platform"), "{offered}");

    // Cy thanks Ana of Platform; the organisation's people came with his sync.
    let given = cy
        .run(&[
            "kudos",
            "@ana@platform",
            "Thanks for reviewing our release notes",
            "--json",
        ])
        .json();
    assert_eq!(given["to"][0], "@ana@platform", "{given}");
    let mine = feed(&cy, &[]);
    assert_eq!(mine[0]["kind"], "kudos", "{mine:?}");
    assert!(
        mine[0]["text"].as_str().unwrap().contains("release notes"),
        "{mine:?}"
    );
    let text = cy.run(&["feed"]).ok();
    assert!(text.contains("@ana@platform"), "{text}");
    cy.run(&["sync"]).ok();

    // Ana and Ben, of Platform, see it in their team's feed once synced.
    for home in [&ana, &ben] {
        home.run(&["sync"]).ok();
        let items = feed(home, &[]);
        let k = items
            .iter()
            .find(|i| i["kind"] == "kudos")
            .unwrap_or_else(|| panic!("no kudos in {items:?}"));
        assert!(k["text"].as_str().unwrap().contains("release notes"), "{k}");
        let text = home.run(&["feed"]).ok();
        assert!(text.contains("@cy@mobile"), "{text}");
        assert!(text.contains("@ana"), "{text}");
    }
    // The organisation's feed shows it too, to anyone of its teams.
    let org_feed = ana.run(&["org", "feed", "--json"]).json();
    assert_eq!(org_feed["items"][0]["kind"], "kudos", "{org_feed}");
    assert_eq!(org_feed["items"][0]["from"], "@cy@mobile", "{org_feed}");
    assert_eq!(org_feed["items"][0]["to"][0], "@ana@platform", "{org_feed}");
    let text = ana.run(&["org", "feed"]).ok();
    assert!(text.contains("@cy@mobile 👏 @ana@platform"), "{text}");
    // Nothing of it went into either team's log: the team logs hold their own members' only.
    let team_log = |token: &str| -> SyncResponse {
        let (status, body) = http::post(
            &server.url,
            "/v1/sync",
            Some(token),
            &serde_json::to_vec(&SyncRequest::default()).unwrap(),
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    for home in [&ana, &cy] {
        let log = team_log(&home.meta("token"));
        assert!(
            log.pulled.iter().all(|p| !p.doc.starts_with("x/")),
            "{:?}",
            log.pulled.iter().map(|p| &p.doc).collect::<Vec<_>>()
        );
    }

    // A team outside the organisation is nobody to thank across teams.
    let err = cy.run(&["kudos", "@dan@outsiders", "hello"]).fails();
    assert!(
        err.contains("no team of the organisation is called"),
        "{err}"
    );
    assert!(err.contains("platform"), "{err}");
    let err = dan.run(&["kudos", "@ana@platform", "hello"]).fails();
    assert!(err.contains("belongs to no organisation"), "{err}");

    // The doors, spoken to in raw HTTP with Cy's device.
    let token = cy.meta("token");
    let (ana_id, cy_id, dan_id) = (ana.meta("me"), cy.meta("me"), dan.meta("me"));
    let cy_p = Person::new(&mobile, &cy_id, "cy", "Mobile");
    let ana_p = Person::new(&platform, &ana_id, "ana", "Platform");
    let dan_p = Person::new(&outsiders, &dan_id, "dan", "Outsiders");
    let ana_doc = across_doc(&platform, &ana_id, "2026-12");
    let cy_doc = across_doc(&mobile, &cy_id, "2026-12");
    // Ana's journal, forged by Cy.
    refused(
        push(
            &server,
            Some(&org),
            &token,
            &ana_doc,
            vec![a_crossing(&ana_doc, &ana_p, std::slice::from_ref(&cy_p))],
        ),
        403,
        "only its own member's kudos across teams",
    );
    // Someone outside the organisation named.
    refused(
        push(
            &server,
            Some(&org),
            &token,
            &cy_doc,
            vec![a_crossing(&cy_doc, &cy_p, std::slice::from_ref(&dan_p))],
        ),
        403,
        "breaks the journal of kudos across teams",
    );
    // Another team's shared figures.
    refused(
        push(
            &server,
            Some(&org),
            &token,
            &format!("s/{platform}"),
            vec![a_crossing(&cy_doc, &cy_p, std::slice::from_ref(&ana_p))],
        ),
        403,
        "only what its own team shares",
    );
    // An organisation's document in a team's log.
    refused(
        push(
            &server,
            None,
            &token,
            &cy_doc,
            vec![a_crossing(&cy_doc, &cy_p, std::slice::from_ref(&ana_p))],
        ),
        403,
        "belongs in an organisation's log",
    );
    // Cy's own, naming Ana: taken.
    let (status, body) = push(
        &server,
        Some(&org),
        &token,
        &cy_doc,
        vec![a_crossing(&cy_doc, &cy_p, std::slice::from_ref(&ana_p))],
    );
    assert_eq!(status, 200, "{body}");

    // A client from before these documents reads the organisation's own document only.
    let (status, body) = org_sync(&server, &org, &ana.meta("token"), &SyncRequest::default());
    assert_eq!(status, 200, "{body}");
    let old: SyncResponse = serde_json::from_str(&body).unwrap();
    assert!(old.pulled.iter().all(|p| p.doc == "team"), "{body}");
    let (status, body) = org_sync(
        &server,
        &org,
        &ana.meta("token"),
        &SyncRequest {
            org_docs: true,
            ..SyncRequest::default()
        },
    );
    assert_eq!(status, 200, "{body}");
    let new: SyncResponse = serde_json::from_str(&body).unwrap();
    assert!(new.pulled.iter().any(|p| p.doc.starts_with("x/")), "{body}");
    assert_eq!(old.cursor, new.cursor);
}

/// A team begun offline and published keeps its first id in its founder's replica; the
/// organisation's documents name it by the server's id, so the founder's kudos across teams and
/// the team's figures are taken like anyone's.
#[test]
fn a_published_teams_founder_gives_across_teams_too() {
    let server = Server::start();
    server.create_org("Acme");
    let ana = Home::team("Ana", &[]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let platform = server.team("Platform");
    server
        .admin(&["team", "attach", &platform, "--org", "Acme"])
        .ok();
    ana.run(&[
        "publish",
        &server.url,
        "--invite",
        &server.founder(&platform),
    ])
    .ok();
    let (_, cy) = server.found_team("Mobile", Some("Acme"), "Cy");
    ana.run(&["sync"]).ok();
    cy.run(&["sync"]).ok();
    assert_ne!(
        ana.meta("team_id"),
        platform,
        "the founder's replica keeps its first id"
    );
    ana.run(&["kudos", "@cy@mobile", "Thanks for the design review"])
        .ok();
    let run = ana.run(&["sync"]);
    assert!(!run.stderr.contains("refused"), "{}", run.stderr);
    run.ok();
    cy.run(&["sync"]).ok();
    let text = cy.run(&["feed"]).ok();
    assert!(text.contains("Thanks for the design review"), "{text}");
    assert!(text.contains("@ana@"), "{text}");
}
