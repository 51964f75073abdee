//! Whether a member may be named in chat: their own setting in the team document, synced to
//! every replica, that no teammate can change for them (the CLI refuses before anything is
//! written, and the server refuses a change that would).

use cairn_core::team;
use cairn_e2e::{Home, Server};
use cairn_store::Replica;

/// Whether each of `ids` may be named in chat, as `home`'s replica reads its team.
fn named(home: &Home, ids: &[&str]) -> Vec<bool> {
    let team = Replica::open(&home.replica()).unwrap().team().unwrap();
    ids.iter().map(|id| team.named_in_chat(id)).collect()
}

/// Ana's team (Ben added by name) published to `server`, and Ben joined as himself: the team's
/// id and Ben's home.
fn published(server: &Server, ana: &Home) -> (String, Home) {
    let team_id = server.team("Otters");
    ana.run(&[
        "publish",
        &server.url,
        "--invite",
        &server.founder(&team_id),
    ])
    .ok();
    let ben = Home::joined(
        server,
        &server.invite_for(&team_id, "@ben"),
        &["--claim", "@ben"],
    );
    (team_id, ben)
}

#[test]
fn ana_keeps_out_of_chat_and_ben_can_neither_say_nor_push_otherwise() {
    let server = Server::start();
    let ana = Home::team("Ana", &["Ben"]);
    let (team_id, ben) = published(&server, &ana);
    let (ana_id, ben_id) = (ana.meta("me"), ben.meta("me"));
    assert_eq!(named(&ben, &[&ana_id, &ben_id]), [true, true]);

    // Ana turns it off and syncs; Ben's replica reads her setting after his next sync.
    let said = ana.run(&["me", "chat", "off"]).ok();
    assert!(said.contains("out of chat"), "{said}");
    assert_eq!(
        ana.run(&["me", "chat", "--json"]).json()["named_in_chat"],
        false
    );
    ana.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();
    assert_eq!(named(&ben, &[&ana_id, &ben_id]), [false, true]);
    // `cairn me` shows Ana her own setting.
    let me = ana.run(&["me"]).ok();
    assert!(me.contains("not named in chat posts"), "{me}");
    assert_eq!(ana.run(&["me", "--json"]).json()["named_in_chat"], false);

    // Ben asking the CLI to turn it back on for her is refused before anything is written.
    let outbox = ben.outbox();
    let err = ben.run(&["--as", "@ana", "me", "chat", "on"]).fails();
    assert!(
        err.contains("only @ana says whether they are named in chat")
            && err.contains("from a device of theirs"),
        "{err}"
    );
    assert_eq!(ben.outbox(), outbox, "nothing was written");

    // Written into his replica past the CLI, the change reaches the server, which refuses it.
    let mut replica = Replica::open(&ben.replica()).unwrap();
    replica
        .change_team(&ben_id, |doc, state| {
            team::set_named_in_chat(doc, state, &ana_id, true)
        })
        .unwrap();
    drop(replica);
    assert_eq!(ben.outbox().len(), outbox.len() + 1);
    let err = ben.run(&["sync"]).fails();
    assert!(
        err.contains("changes whether @ana is named in chat") && err.contains("only @ana says"),
        "{err}"
    );
    ana.run(&["sync"]).ok();
    assert_eq!(named(&ana, &[&ana_id]), [false], "Ana's setting stands");
    let fresh = Home::joined(&server, &server.invite(&team_id, 1), &["--name", "Cy"]);
    assert_eq!(
        named(&fresh, &[&ana_id, &ben_id]),
        [false, true],
        "the server holds nothing of Ben's attempt"
    );

    // His own setting is his to change: the server takes it, and Ana reads it.
    let ben2 = Home::joined(&server, &server.invite_for(&team_id, "@ben"), &[]);
    ben2.run(&["me", "chat", "off"]).ok();
    ben2.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    assert_eq!(named(&ana, &[&ana_id, &ben_id]), [false, false]);
}

/// The answer to `GET path` from a `cairn web` with the session `cookie`.
fn page(web: &cairn_e2e::browser::Web, cookie: &str, path: &str) -> String {
    let addr = web.base.trim_start_matches("http://");
    let mut s = cairn_e2e::http::connect(addr, std::time::Duration::from_secs(30));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let (answer, _) = cairn_e2e::http::exchange(&mut s, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

#[test]
fn a_member_sees_their_setting_on_their_own_page_in_the_browser() {
    let mut ana = Home::team("Ana", &["Ben"]);
    ana.day = None;
    let web = cairn_e2e::browser::Web::start(&ana, &[]);
    let cookie = web.session();
    let on = page(&web, &cookie, "/me");
    assert!(on.contains("You may be named in chat"), "{on}");
    ana.run(&["me", "chat", "off"]).ok();
    let off = page(&web, &cookie, "/me");
    assert!(
        off.contains("You are out of chat") && !off.contains("You may be named in chat"),
        "{off}"
    );
}

#[test]
fn a_team_started_offline_brings_its_members_settings_to_the_server() {
    // On a team that lives on this device alone, its one person writes for everyone.
    let ana = Home::team("Ana", &["Ben"]);
    ana.run(&["--as", "@ben", "me", "chat", "off"]).ok();
    let server = Server::start();
    let (_, ben) = published(&server, &ana);
    let (ana_id, ben_id) = (ana.meta("me"), ben.meta("me"));
    assert_eq!(named(&ben, &[&ana_id, &ben_id]), [true, false]);
    let me = ben.run(&["me", "chat"]).ok();
    assert!(me.contains("you are out of chat"), "{me}");
    // Now on the server, the setting is Ben's alone: Ana's `--as` is refused.
    let err = ana.run(&["--as", "@ben", "me", "chat", "on"]).fails();
    assert!(err.contains("only @ben says"), "{err}");
    ben.run(&["me", "chat", "on"]).ok();
    ben.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    assert_eq!(named(&ana, &[&ana_id, &ben_id]), [true, true]);
}
