//! Authorship holds end to end: a member cannot make an event that shows as another's.

use automerge::{ActorId, Automerge};
use cairn_core::ids::{EventId, journal_doc};
use cairn_core::{NewEvent, Stamp, journal, team};
use cairn_e2e::{Home, Server, feed};
use cairn_protocol::{Bytes, DocChanges, SyncRequest};

fn meta(home: &Home, key: &str) -> String {
    let conn = rusqlite::Connection::open(home.replica()).unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .unwrap()
}

/// A change that adds an event "by `author`" to a journal, made with a fresh actor.
fn forged_event(author: &str, text: &str) -> Vec<u8> {
    let mut scratch = Automerge::new();
    team::init(&mut scratch, "Otters", "UTC", "Ana", "ana", author, 0).unwrap();
    let state = team::read(&scratch).unwrap();
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::random());
    let at = 1_795_400_000_000;
    let id = EventId::new(at, [1, 2, 3, 4, 5]);
    let stamp = Stamp {
        at_ms: at,
        tz: "UTC".into(),
        date: "2026-11-23".into(),
        late: false,
    };
    journal::add(
        &mut doc,
        &state,
        author,
        &id,
        &stamp,
        &NewEvent::action(text, None, None),
    )
    .unwrap();
    let changes = doc.get_changes(&[]);
    assert_eq!(changes.len(), 1);
    changes[0].raw_bytes().to_vec()
}

fn push(server: &Server, token: &str, doc: &str, change: Vec<u8>) -> u16 {
    let req = SyncRequest {
        cursor: 0,
        push: vec![DocChanges {
            doc: doc.into(),
            changes: vec![Bytes(change)],
        }],
        max_pull: Some(0),
        import_done: false,
        withdrawals: false,
        ..SyncRequest::default()
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(format!("{}/v1/sync", server.url))
        .content_type("application/json")
        .header("Authorization", format!("Bearer {token}"))
        .send(&serde_json::to_vec(&req).unwrap()[..])
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn a_member_cannot_forge_another_members_event() {
    let server = Server::start();
    let ana = Home::team("Ana", &[]);
    let team_id = server.team("Otters");
    let invite = server.invite(&team_id, 5);
    ana.run(&[
        "publish",
        &server.url,
        "--invite",
        &server.founder(&team_id),
    ])
    .ok();
    let bo = Home::new();
    bo.run(&["join", &server.url, "--invite", &invite, "--name", "Bo"])
        .ok();
    ana.run(&["sync"]).ok();

    // The CLI does not let Bo act as Ana once the team is on a server.
    let err = bo.run(&["--as", "@ana", "log", "posing as Ana"]).fails();
    assert!(err.contains("--as"), "{err}");

    let ana_id = meta(&ana, "me");
    let bo_id = meta(&bo, "me");
    let token = meta(&bo, "token");
    let month = "2026-11";
    // Into Ana's journal: the server refuses it.
    let before = server.changes(&team_id);
    let status = push(
        &server,
        &token,
        &journal_doc(&ana_id, month),
        forged_event(&ana_id, "forged in her journal"),
    );
    assert_eq!(status, 403);
    assert_eq!(server.changes(&team_id), before);
    // Into Bo's own journal, but signed "Ana": stored, yet no replica shows it as hers.
    let status = push(
        &server,
        &token,
        &journal_doc(&bo_id, month),
        forged_event(&ana_id, "forged in his journal"),
    );
    assert_eq!(status, 200);
    for h in [&ana, &bo] {
        h.run(&["sync"]).ok();
        let items = feed(h, &[]);
        assert!(
            items
                .iter()
                .all(|i| !i["text"].as_str().unwrap().starts_with("forged")),
            "{items:#?}"
        );
        h.run(&["doctor"]).ok();
    }
}

#[test]
fn a_token_of_one_team_neither_reads_nor_writes_another() {
    let server = Server::start();
    let ana = Home::team("Ana", &[]);
    let otters = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&otters)])
        .ok();
    ana.run(&["log", "An Otters secret"]).ok();
    ana.run(&["sync"]).ok();

    let zed = Home::new();
    zed.run(&["init", "--team", "Badgers", "--name", "Zed", "--tz", "UTC"])
        .ok();
    let badgers = server.team("Badgers");
    zed.run(&[
        "publish",
        &server.url,
        "--invite",
        &server.founder(&badgers),
    ])
    .ok();
    zed.run(&["sync"]).ok();
    // Reading: nothing of the Otters reaches a Badger.
    let texts: Vec<String> = feed(&zed, &[])
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(texts.iter().all(|t| !t.contains("Otters")), "{texts:?}");
    assert_eq!(zed.run(&["team", "--json"]).json()["name"], "Badgers");
    // Writing: the Otters' changes, replayed with a Badger's token, are refused.
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let otter_changes: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT doc, data FROM changes WHERE team = ?1 ORDER BY seq")
        .unwrap()
        .query_map([&otters], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!otter_changes.is_empty());
    let token = meta(&zed, "token");
    let before = server.changes(&badgers);
    for (doc, data) in otter_changes {
        assert_eq!(push(&server, &token, &doc, data), 403);
    }
    assert_eq!(server.changes(&badgers), before);
}
