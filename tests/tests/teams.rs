//! One person in several teams: one home holds each team in a replica of its own, a default
//! team and `--team` pick one, `cairn sync` syncs them all; and the home's settings file.

use cairn_e2e::{Home, Server, feed};

/// A team started offline by its founder `who` and published to `server`: the founder's home
/// and the team's id on the server.
fn started(server: &Server, who: &str, team: &str) -> (Home, String) {
    let home = Home::new();
    home.run(&["init", "--team", team, "--name", who]).ok();
    let id = server.team(team);
    let invite = server.founder(&id);
    home.run(&["publish", &server.url, "--invite", &invite])
        .ok();
    (home, id)
}

fn texts(home: &Home, extra: &[&str]) -> Vec<String> {
    feed(home, extra)
        .iter()
        .map(|i| i["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_member_of_two_teams_logs_syncs_and_reads_both_from_one_home() {
    let server = Server::start();
    let (ana, _otters) = started(&server, "Ana", "Otters");
    let (zoe, guild) = started(&server, "Zoe", "Guild of Rustaceans");

    // Ana joins the Guild from the home that holds the Otters.
    let joined = ana.run(&[
        "join",
        &server.url,
        "--invite",
        &server.invite(&guild, 5),
        "--name",
        "Ana",
    ]);
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    assert!(
        joined.stdout.contains("Joined Guild of Rustaceans"),
        "{}",
        joined.stdout
    );
    assert!(
        joined.stderr.contains("this home holds 2 teams now")
            && joined.stderr.contains("commands act on Otters"),
        "{}",
        joined.stderr
    );
    let list = ana.run(&["team", "list", "--json"]).json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(rows[0]["name"], "Otters");
    assert_eq!(rows[0]["current"], true);
    assert_eq!(rows[1]["name"], "Guild of Rustaceans");
    // The first team stays where it always was; the second has a folder of its own.
    assert!(ana.replica().exists());

    // Logging goes to the default team, or to the one named.
    ana.run(&["log", "An Otters stone"]).ok();
    ana.run(&["--team", "guild", "log", "A Guild stone"]).ok();
    // One sync syncs both, a line each.
    let synced = ana.run(&["sync"]).ok();
    assert!(
        synced.contains("Otters: sent") && synced.contains("Guild of Rustaceans: sent"),
        "{synced}"
    );
    zoe.run(&["sync"]).ok();
    assert_eq!(texts(&zoe, &[]), ["A Guild stone"], "nothing crosses teams");
    assert_eq!(texts(&ana, &[]), ["An Otters stone"]);
    assert_eq!(
        texts(&ana, &["--team", "Guild of Rustaceans"]),
        ["A Guild stone"]
    );

    // The default moves with `team switch`; CAIRN_TEAM and --team still win over it.
    let out = ana.run(&["team", "switch", "Guild"]).ok();
    assert!(out.contains("Guild of Rustaceans"), "{out}");
    assert_eq!(texts(&ana, &[]), ["A Guild stone"]);
    let env = ana
        .command(&["feed", "--json"])
        .env("CAIRN_TEAM", "otters")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&env.stdout).contains("An Otters stone"));
    assert_eq!(texts(&ana, &["--team", "Otters"]), ["An Otters stone"]);
    // `--team` with one team named syncs that team alone.
    let one = ana.run(&["--team", "Otters", "sync"]).ok();
    assert!(!one.contains("Guild"), "{one}");

    // A name this home does not hold says which it does.
    let err = ana.run(&["--team", "Gild", "feed"]).fails();
    assert!(
        err.contains("no team `Gild`") && err.contains("Otters") && err.contains("Guild"),
        "{err}"
    );
    // The same team twice in one home is refused before anything is written.
    let again = ana
        .run(&[
            "join",
            &server.url,
            "--invite",
            &server.invite(&guild, 1),
            "--name",
            "Ana",
        ])
        .fails();
    assert!(again.contains("already holds that team"), "{again}");
}

#[test]
fn a_home_of_one_team_works_as_it_always_did() {
    let ana = Home::team("Ana", &[]);
    ana.run(&["log", "A stone"]).ok();
    assert!(ana.replica().exists());
    let list = ana.run(&["team", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["current"], true);
    assert!(
        !ana.path().join("config.toml").exists() && !ana.path().join("teams").exists(),
        "nothing new is written into a home of one team"
    );
    let err = ana.run(&["init", "--name", "Bo"]).fails();
    assert!(err.contains("--team"), "{err}");
    let err = ana
        .run(&["init", "--team", "otters", "--name", "Bo"])
        .fails();
    assert!(err.contains("already holds a team named Otters"), "{err}");
    // A second team started offline beside it, and found by id as well as by name.
    ana.run(&["init", "--team", "Kestrels", "--name", "Ana"])
        .ok();
    let list = ana.run(&["team", "list", "--json"]).json();
    let id = list[1]["id"].as_str().unwrap().to_owned();
    ana.run(&["--team", &id, "log", "A Kestrels stone"]).ok();
    assert_eq!(texts(&ana, &["--team", "kestrels"]), ["A Kestrels stone"]);
    assert_eq!(texts(&ana, &[]), ["A stone"]);
}

#[test]
fn settings_live_in_the_home_and_give_way_to_the_environment() {
    let ana = Home::team("Ana", &[]);
    ana.run(&["config", "set", "sync-timeout", "30"]).ok();
    assert_eq!(
        ana.run(&["config", "get", "sync-timeout"]).ok().trim(),
        "30"
    );
    let env = ana
        .command(&["config", "list", "--json"])
        .env("CAIRN_SYNC_TIMEOUT", "5")
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&env.stdout).unwrap();
    let timeout = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "sync-timeout")
        .unwrap();
    assert_eq!(
        (&timeout["value"], &timeout["from"]),
        (&"5".into(), &"CAIRN_SYNC_TIMEOUT".into())
    );
    // A value the environment gives that the setting cannot take gives way to the file's.
    let bad_env = ana
        .command(&["config", "get", "sync-timeout"])
        .env("CAIRN_SYNC_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bad_env.stdout).trim(), "30");
    // What `set` writes always reads back, however it was typed.
    ana.run(&["config", "set", "auto-sync", "FALSE"]).ok();
    ana.run(&["config", "set", "sync-timeout", "045"]).ok();
    ana.run(&["feed"]).ok();
    assert_eq!(
        ana.run(&["config", "get", "sync-timeout"]).ok().trim(),
        "45"
    );
    ana.run(&["config", "set", "sync-timeout", "30"]).ok();
    let err = ana.run(&["config", "set", "color", "sometimes"]).fails();
    assert!(err.contains("auto, always or never"), "{err}");
    assert!(
        ana.run(&["config", "get", "team"])
            .fails()
            .contains("not set")
    );

    // A file with a mistake stops commands, says where, and the command it names mends it.
    let file = ana.path().join("config.toml");
    std::fs::write(&file, "colour = \"never\"\nsync-timeout = 30\n").unwrap();
    let err = ana.run(&["feed"]).fails();
    assert!(
        err.contains("config.toml")
            && err.contains("`colour` is no setting")
            && err.contains("cairn config unset"),
        "{err}"
    );
    ana.run(&["config", "unset", "colour"]).ok();
    ana.run(&["feed"]).ok();
    assert_eq!(
        ana.run(&["config", "get", "sync-timeout"]).ok().trim(),
        "30"
    );
}
