//! Organisations on the server, end to end: a real `cairn-server` process administered with its
//! own commands, spoken to with raw HTTP as a client of an organisation would (the client side
//! is not built yet), beside real `cairn` members of real teams. The organisation's log is read
//! by every device of its attached teams, written by its stewards' devices only and only in its
//! document, refused to a device of a detached or another team; it goes through a copy to
//! PostgreSQL, and a database from before organisations migrates. On SQLite and PostgreSQL.

use automerge::{ActorId, Automerge, transaction::Transactable};
use cairn_e2e::pg::Postgres;
use cairn_e2e::{Home, Server, feed, http};
use cairn_protocol::{
    Bytes, DeviceKind, DocChanges, ErrorBody, JoinRequest, JoinResponse, OrgResponse, SyncRequest,
    SyncResponse, WaitResponse,
};

/// One change by a fresh actor to a document of its own (it applies anywhere): a steward adds
/// the non-negotiable `what`, with its note, as cairn-core writes it.
fn a_change(what: &str) -> Vec<u8> {
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::random());
    let state = cairn_core::org::read(&doc).unwrap();
    cairn_core::org::add_commitment(&mut doc, &state, what, "it matters", "@ana@platform", 1)
        .unwrap();
    let changes = doc.get_changes(&[]);
    assert_eq!(changes.len(), 1);
    changes[0].raw_bytes().to_vec()
}

/// One change by a fresh actor that writes a key the organisation's document does not know.
fn a_foreign_change() -> Vec<u8> {
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::random());
    let mut tx = doc.transaction();
    tx.put(automerge::ROOT, "non_negotiable", "anything")
        .unwrap();
    tx.commit();
    doc.get_changes(&[])[0].raw_bytes().to_vec()
}

fn org_sync(server: &Server, org: &str, token: &str, req: &SyncRequest) -> (u16, String) {
    http::post(
        &server.url,
        &format!("/v1/sync?org={org}"),
        Some(token),
        &serde_json::to_vec(req).unwrap(),
    )
}

/// Pushes `changes` to `doc` of the organisation's log.
fn org_push(
    server: &Server,
    org: &str,
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
        ..SyncRequest::default()
    };
    org_sync(server, org, token, &req)
}

/// Pulls the organisation's log from the start; the response, or the refusal's status and body.
fn org_pull(server: &Server, org: &str, token: &str) -> Result<SyncResponse, (u16, String)> {
    let (status, body) = org_sync(server, org, token, &SyncRequest::default());
    if status == 200 {
        Ok(serde_json::from_str(&body).expect("a sync response"))
    } else {
        Err((status, body))
    }
}

fn get_org(server: &Server, token: &str) -> OrgResponse {
    let mut resp = http::agent()
        .get(format!("{}/v1/org", server.url))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("the server answers");
    assert_eq!(resp.status().as_u16(), 200);
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).expect("an org response")
}

/// A wait for news of the organisation's log; its status and body.
fn org_wait(server: &Server, org: &str, token: &str, after: u64, timeout_s: u64) -> (u16, String) {
    let mut resp = http::agent()
        .get(format!(
            "{}/v1/wait?org={org}&after={after}&timeout_s={timeout_s}",
            server.url
        ))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("the server answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[track_caller]
fn refused(got: (u16, String), want: u16, says: &str) {
    let (status, body) = got;
    assert_eq!(status, want, "{body}");
    let err: ErrorBody = serde_json::from_str(&body).expect("an error body");
    assert!(err.message.contains(says), "{}", err.message);
}

/// A team named `name` on `server` (attached to `org` if given), founded on the server by a
/// member called `founder`, who logs one event and syncs.
fn founded(server: &Server, name: &str, org: Option<&str>, founder: &str) -> (String, Home) {
    let (team, home) = server.found_team(name, org, founder);
    home.run(&["log", &format!("{founder} wrote the runbook")])
        .ok();
    home.run(&["sync"]).ok();
    (team, home)
}

/// The whole flow on one server: the admin's commands, then who reads and writes the log.
fn an_organisation_is_read_by_its_teams_and_written_by_its_stewards(server: &Server) {
    // The admin: an organisation, a team created in it, one attached later, one outside.
    let org = server.create_org("Acme");
    let err = server.admin(&["org", "create", "acme"]).fails();
    assert!(err.contains("named `Acme` already"), "{err}");
    let (platform, ana) = founded(server, "Platform", Some("Acme"), "Ana");
    let ben = Home::joined(server, &server.invite(&platform, 3), &["--name", "Ben"]);
    let (_, cy) = founded(server, "Mobile", None, "Cy");
    let err = server
        .admin(&["team", "attach", "Mobile", "--org", "Acmee"])
        .fails();
    assert!(err.contains("did you mean `Acme`"), "{err}");
    server
        .admin(&["team", "attach", "Mobile", "--org", &org])
        .ok();
    let (_, dan) = founded(server, "Outsiders", None, "Dan");
    // A steward is a member of one of its teams.
    let err = server
        .admin(&[
            "org",
            "steward",
            "add",
            "Acme",
            "--member",
            "Outsiders:@dan",
        ])
        .fails();
    assert!(err.contains("team attach"), "{err}");
    let err = server
        .admin(&["org", "steward", "add", "Acme", "--member", "@ana"])
        .fails();
    assert!(err.contains("TEAM:@handle"), "{err}");
    server
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();
    let orgs = server.admin(&["org", "list", "--json"]).json();
    let acme = &orgs[0];
    assert_eq!(acme["id"], org.as_str());
    assert_eq!(acme["name"], "Acme");
    let teams: Vec<&str> = acme["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(teams, ["Mobile", "Platform"]);
    assert_eq!(acme["stewards"].as_array().unwrap().len(), 1, "{acme}");
    assert_eq!(acme["stewards"][0]["handle"], "ana");
    assert_eq!(acme["stewards"][0]["team"], platform.as_str());
    // A team belongs to one organisation at most.
    server.admin(&["org", "create", "Beta"]).ok();
    let err = server
        .admin(&["team", "attach", "Platform", "--org", "Beta"])
        .fails();
    assert!(
        err.contains("belongs to organisation `Acme` already"),
        "{err}"
    );
    assert!(err.contains("team detach"), "{err}");
    let text = server.admin(&["org", "list"]).ok();
    assert!(text.contains("teams:    Mobile, Platform"), "{text}");
    assert!(text.contains("stewards: Platform:@ana"), "{text}");
    // The organisation's log is no team.
    let listed = server.admin(&["team", "list", "--json"]).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Platform", "Mobile", "Outsiders"]);
    assert_eq!(listed[0]["org"]["name"], "Acme");
    assert_eq!(listed[1]["org"]["id"], org.as_str());
    assert!(listed[2].get("org").is_none(), "{listed}");

    // Each device learns its team's organisation.
    let token = |h: &Home| h.meta("token");
    let seen = get_org(server, &token(&ana))
        .org
        .expect("Ana's team is in Acme");
    assert_eq!(
        (seen.id.as_str(), seen.name.as_str(), seen.steward),
        (org.as_str(), "Acme", true)
    );
    let seen = get_org(server, &token(&cy))
        .org
        .expect("Cy's team is in Acme");
    assert!(!seen.steward);
    assert_eq!(get_org(server, &token(&dan)).org, None);

    // The steward writes the organisation's document; nobody else writes anything there.
    let (status, body) = org_push(
        server,
        &org,
        &token(&ana),
        "team",
        vec![a_change("Be kind")],
    );
    assert_eq!(status, 200, "{body}");
    let resp: SyncResponse = serde_json::from_str(&body).unwrap();
    assert_eq!((resp.acked, resp.head), (1, 1));
    // A steward writes by the document's rules: a key it does not know is refused, whole.
    refused(
        org_push(server, &org, &token(&ana), "team", vec![a_foreign_change()]),
        403,
        "breaks the organisation's document",
    );
    refused(
        org_push(
            server,
            &org,
            &token(&ben),
            "team",
            vec![a_change("Ship daily")],
        ),
        403,
        "only the organisation's stewards",
    );
    let journal = format!("j/{}/2026-12", ana.meta("me"));
    refused(
        org_push(server, &org, &token(&ana), &journal, vec![a_change("x")]),
        403,
        "holds no document `j/",
    );
    // Every device of its teams reads it, Ana's change and nothing else.
    for (who, home) in [("Ben", &ben), ("Cy", &cy)] {
        let resp = org_pull(server, &org, &token(home)).unwrap_or_else(|e| panic!("{who}: {e:?}"));
        assert_eq!(resp.head, 1, "{who}");
        assert_eq!(resp.pulled.len(), 1, "{who}");
        assert_eq!(resp.pulled[0].doc, "team");
    }
    // Another team's device is refused, and so is a log of an organisation that is not its own.
    refused(
        org_pull(server, &org, &token(&dan)).unwrap_err(),
        403,
        "belongs to no organisation",
    );
    refused(
        org_pull(server, "zzzzzzzzzzzz", &token(&ben)).unwrap_err(),
        403,
        "belongs to organisation `Acme`",
    );
    // The teams' own logs go on as before: Ben's team feed holds Ana's event, not the org's.
    ben.run(&["sync"]).ok();
    assert_eq!(feed(&ben, &[]).len(), 1);

    // Waiting for the organisation's news: its own head (1), not the team's (several).
    let (status, body) = org_wait(server, &org, &token(&cy), 1, 1);
    assert_eq!(status, 204, "no news after 1 within a second: {body}");
    let waiter = {
        let (url, org, cy_token) = (server.url.clone(), org.clone(), token(&cy));
        std::thread::spawn(move || {
            let mut resp = http::agent()
                .get(format!("{url}/v1/wait?org={org}&after=1&timeout_s=30"))
                .header("Authorization", format!("Bearer {cy_token}"))
                .call()
                .expect("the server answers");
            let status = resp.status().as_u16();
            (status, resp.body_mut().read_to_string().unwrap_or_default())
        })
    };
    let (status, body) = org_push(server, &org, &token(&ana), "team", vec![a_change("Rest")]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = waiter.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let news: WaitResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(news.head, 2);

    // Detached, Mobile reads it no more; a steward removed writes no more.
    server.admin(&["team", "detach", "Mobile"]).ok();
    assert_eq!(get_org(server, &token(&cy)).org, None);
    refused(
        org_pull(server, &org, &token(&cy)).unwrap_err(),
        403,
        "belongs to no organisation",
    );
    refused(
        org_wait(server, &org, &token(&cy), 0, 1),
        403,
        "belongs to no organisation",
    );
    server
        .admin(&[
            "org",
            "steward",
            "remove",
            "Acme",
            "--member",
            "Platform:@ana",
        ])
        .ok();
    assert!(!get_org(server, &token(&ana)).org.unwrap().steward);
    refused(
        org_push(server, &org, &token(&ana), "team", vec![a_change("Again")]),
        403,
        "only the organisation's stewards",
    );
    assert_eq!(org_pull(server, &org, &token(&ben)).unwrap().head, 2);
    let orgs = server.admin(&["org", "list", "--json"]).json();
    assert_eq!(orgs[0]["teams"].as_array().unwrap().len(), 1, "{orgs}");
    assert_eq!(orgs[0]["stewards"].as_array().unwrap().len(), 0, "{orgs}");

    // The admin withdraws a change from the organisation's log as from a team's: a device
    // catching up from the start never gets it, and is told it went.
    let rest = a_change("Withdrawn");
    server
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();
    let (status, body) = org_push(server, &org, &token(&ana), "team", vec![rest.clone()]);
    assert_eq!(status, 200, "{body}");
    let hash = hex(&automerge::Change::from_bytes(rest.clone())
        .unwrap()
        .hash()
        .0);
    server
        .admin(&["change", "withdraw", "--org", "Acme", &hash])
        .ok();
    let all = org_sync(
        server,
        &org,
        &token(&ben),
        &SyncRequest {
            withdrawals: true,
            ..SyncRequest::default()
        },
    );
    assert_eq!(all.0, 200, "{}", all.1);
    let all: SyncResponse = serde_json::from_str(&all.1).unwrap();
    assert!(all.pulled.iter().all(|p| p.change.0 != rest), "{all:?}");
    assert!(
        all.pulled.iter().any(|p| p.withdrawn.contains(&hash)),
        "{all:?}"
    );
    assert_eq!(
        all.pulled.iter().filter(|p| !p.change.0.is_empty()).count(),
        2
    );
    let pruned = server
        .admin(&["org", "prune", "Acme", "--older-than", "0", "--json"])
        .json();
    assert!(pruned["changes"].is_i64(), "{pruned}");

    // A team detached takes its stewards with it: attached again, they are stewards no more.
    server.admin(&["team", "detach", "Platform"]).ok();
    server
        .admin(&["team", "attach", "Platform", "--org", "Acme"])
        .ok();
    let seen = get_org(server, &token(&ana))
        .org
        .expect("Platform is in Acme again");
    assert!(!seen.steward);
    refused(
        org_push(server, &org, &token(&ana), "team", vec![a_change("After")]),
        403,
        "only the organisation's stewards",
    );
}

#[test]
fn an_organisation_on_sqlite() {
    an_organisation_is_read_by_its_teams_and_written_by_its_stewards(&Server::start());
}

#[test]
fn an_organisation_on_postgres() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("orgs");
    an_organisation_is_read_by_its_teams_and_written_by_its_stewards(&Server::start_shared(
        &url,
        &[],
    ));
}

/// Joins `invite` with raw HTTP as a device of `kind` (a new member says their `name`); the
/// join's answer.
fn join(server: &Server, invite: &str, kind: DeviceKind, name: Option<&str>) -> JoinResponse {
    let req = JoinRequest {
        invite: invite.into(),
        device_name: "a device".into(),
        name: name.map(Into::into),
        device_kind: kind,
        ..JoinRequest::default()
    };
    let (status, body) = http::post(
        &server.url,
        "/v1/join",
        None,
        &serde_json::to_vec(&req).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("a join response")
}

/// A joining device hears of its team's organisation in the join's answer, a steward's as a
/// steward's; a relay of one of its teams reads the organisation and never writes it.
#[test]
fn a_join_names_the_organisation_and_a_relay_only_reads_it() {
    let server = Server::start();
    let org = server.create_org("Acme");
    let (platform, ana) = founded(&server, "Platform", Some(&org), "Ana");
    let ben = join(
        &server,
        &server.invite(&platform, 1),
        DeviceKind::Member,
        Some("Ben"),
    );
    let named = ben.org.expect("the organisation");
    assert_eq!(
        (named.id.as_str(), named.name.as_str(), named.steward),
        (org.as_str(), "Acme", false)
    );
    server
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();
    let linked = ana.run(&["device", "link", "--json"]).json();
    let code = linked["invite"].as_str().expect("a link code");
    let second = join(&server, code, DeviceKind::Member, None);
    assert!(
        second.org.expect("the organisation").steward,
        "Ana's second device writes too"
    );
    let relay_invite = server
        .admin(&["invite", "create", "--team", "Platform", "--relay"])
        .ok();
    let relay = join(&server, relay_invite.trim(), DeviceKind::Relay, None);
    assert!(!relay.org.expect("the organisation").steward);
    let (status, body) = org_push(
        &server,
        &org,
        &second.token.0,
        "team",
        vec![a_change("Be kind")],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        org_pull(&server, &org, &relay.token.0)
            .unwrap()
            .pulled
            .len(),
        1
    );
    refused(
        org_push(
            &server,
            &org,
            &relay.token.0,
            "team",
            vec![a_change("Posted")],
        ),
        403,
        "only the organisation's stewards",
    );
}

/// Organisations, their teams, stewards and log go through a copy to PostgreSQL.
#[test]
fn an_organisation_goes_through_a_copy_to_postgres() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let mut sqlite = Server::start();
    let org = sqlite.create_org("Acme");
    let (_, ana) = founded(&sqlite, "Platform", Some("Acme"), "Ana");
    sqlite
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();
    let (status, body) = org_push(
        &sqlite,
        &org,
        &ana.meta("token"),
        "team",
        vec![a_change("Be kind")],
    );
    assert_eq!(status, 200, "{body}");
    let before = sqlite.admin(&["org", "list", "--json"]).json();
    sqlite.kill();
    let url = pg.create_db("orgcopy");
    let said = sqlite.admin(&["copy", "--to", &url]).ok();
    assert!(said.contains("1 team(s), 1 organisation(s)"), "{said}");
    let server = Server::start_shared(&url, &[]);
    assert_eq!(server.admin(&["org", "list", "--json"]).json(), before);
    let resp = org_pull(&server, &org, &ana.meta("token")).unwrap();
    assert_eq!((resp.head, resp.pulled.len()), (1, 1));
    let (status, body) = org_push(
        &server,
        &org,
        &ana.meta("token"),
        "team",
        vec![a_change("Rest")],
    );
    assert_eq!(status, 200, "{body}");
}

/// What takes a database back to the schema before organisations.
const ORGS_UNDONE: &str =
    "DROP TABLE server_log; DROP TABLE org_stewards; DROP TABLE org_teams; DROP TABLE orgs;";

/// A database from before organisations migrates: its members go on syncing, their team
/// belongs to no organisation, and one can be made and attached.
fn an_older_database_migrates(mut server: Server, pg: Option<&Postgres>) {
    let (team, ana) = founded(&server, "Platform", None, "Ana");
    let ben = Home::joined(&server, &server.invite(&team, 3), &["--name", "Ben"]);
    server.kill();
    // Organisations came with SQLite's schema 8 and PostgreSQL's 6 (the logs' identity after
    // them).
    server.back_to_schema(pg, ORGS_UNDONE, (9, 7), (7, 5));
    server.restart();
    ana.run(&["log", "Reviewed the runbook"]).ok();
    ana.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();
    assert_eq!(feed(&ben, &[]).len(), 2, "both of Ana's events");
    assert_eq!(get_org(&server, &ben.meta("token")).org, None);
    let org = server.create_org("Acme");
    server
        .admin(&["team", "attach", "Platform", "--org", "Acme"])
        .ok();
    assert_eq!(org_pull(&server, &org, &ben.meta("token")).unwrap().head, 0);
}

#[test]
fn a_database_from_before_organisations_migrates_on_sqlite() {
    an_older_database_migrates(Server::start(), None);
}

#[test]
fn a_database_from_before_organisations_migrates_on_postgres() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("older");
    an_older_database_migrates(Server::start_shared(&url, &[]), Some(&pg));
}
