//! One founder path that cannot contradict itself: `cairn-server team create` prints the
//! founder's invite and next command, and that command works, whether the founder starts the
//! team on the server (`cairn join`) or brings one begun offline (`cairn publish`); only the
//! founder's invite brings a team its first history; a name the server and the replica disagree
//! on is settled at publication and said once; admin commands take a team by name or id. Every
//! refusal here is followed to the command it names, which is then run.

use cairn_e2e::pg::Postgres;
use cairn_e2e::{Home, Server, shell_words};

/// The commands a message names in backticks, `cairn ...` or `cairn-server ...` ones.
fn commands(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.starts_with("cairn"))
        .map(str::to_owned)
        .collect()
}

/// The code after `--invite ` on the line that starts with `line_start`.
fn code_after(text: &str, line_start: &str) -> String {
    text.split_once(line_start)
        .and_then(|(_, rest)| rest.split_once("--invite "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{line_start} ... --invite CODE` in: {text}"))
        .to_owned()
}

/// `team create NAME`: the id on stdout, and the founder's invite from the lines on stderr.
fn create(server: &Server, name: &str) -> (String, String) {
    let run = server.admin(&["team", "create", name]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.stdout.trim().to_owned();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "stdout is the id alone: {:?}",
        run.stdout
    );
    let join = code_after(&run.stderr, "cairn join URL");
    let publish = code_after(&run.stderr, "cairn publish URL");
    assert_eq!(join, publish, "one invite, two ways: {}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "cairn join URL --invite {join} --name \"YOUR NAME\""
        )),
        "{}",
        run.stderr
    );
    (id, join)
}

/// A command named by a message, run as written with its placeholders filled in.
fn run_named(home: &Home, server: &Server, command: &str, fill: &[(&str, &str)]) -> String {
    let mut line = command.replace("URL", &server.url);
    for (k, v) in fill {
        line = line.replace(k, v);
    }
    let w = shell_words(&line);
    let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
    match w[0].as_str() {
        "cairn" => home.run(&args).ok(),
        "cairn-server" => server.admin(&args).ok(),
        other => panic!("`{other}` is no command of ours: {command}"),
    }
}

#[test]
fn a_founder_starts_the_team_on_the_server_and_a_teammate_joins_it() {
    let server = Server::start();
    let (id, founder) = create(&server, "Guild");
    // The founder's next command, as `team create` printed it.
    let mut ana = Home::new();
    ana.tz = "America/Sao_Paulo".into();
    let out = ana
        .run(&[
            "join",
            &server.url,
            "--invite",
            &founder,
            "--name",
            "Ana Lima",
        ])
        .ok();
    assert!(out.contains("Started Guild (America/Sao_Paulo)"), "{out}");
    let team = ana.run(&["team", "--json"]).json();
    assert_eq!(team["name"], "Guild", "{team}");
    assert_eq!(team["tz"], "America/Sao_Paulo", "{team}");
    assert!(server.changes(&id) > 0, "the team's first history went up");
    // The founder's invite is spent, and nobody else founds the team again.
    let again = Home::new()
        .run(&[
            "join",
            &server.url,
            "--invite",
            &founder,
            "--name",
            "Mallory",
        ])
        .fails();
    assert!(again.contains("invite"), "{again}");
    // A teammate joins with an invite made by the team's name, and sees the team.
    let invite = server.invite("Guild", 5);
    let bo = Home::joined(&server, &invite, &["--name", "Bo"]);
    let team = bo.run(&["team", "--json"]).json();
    assert_eq!(team["name"], "Guild", "{team}");
    let handles: Vec<&str> = team["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["handle"].as_str())
        .collect();
    assert!(
        handles.contains(&"ana-lima") && handles.contains(&"bo"),
        "{handles:?}"
    );
    // And the founder sees the teammate after a sync.
    ana.run(&["sync"]).ok();
    let team = ana.run(&["team", "--json"]).json();
    assert_eq!(team["members"].as_array().map(Vec::len), Some(2), "{team}");
}

#[test]
fn a_team_begun_offline_keeps_its_name_and_the_server_follows_it() {
    let server = Server::start();
    let (id, _) = create(&server, "Guild");
    let ana = Home::new();
    ana.run(&[
        "init",
        "--team",
        "Guild of Rustaceans",
        "--name",
        "Ana",
        "--tz",
        "Europe/Paris",
    ])
    .ok();
    // Another founder's invite, asked for by the team's name.
    let founder = server.founder("Guild");
    let run = ana.run(&["publish", &server.url, "--invite", &founder]);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, 0, "{said}");
    let line = "the server knew this team as `Guild`; it is `Guild of Rustaceans` there now";
    assert_eq!(said.matches(line).count(), 1, "said once: {said}");
    let teams = server.admin(&["team", "list", "--json"]).json();
    assert_eq!(teams[0]["id"], id.as_str());
    assert_eq!(teams[0]["name"], "Guild of Rustaceans", "{teams}");
    // Not said again, and the admin finds the team by its name now.
    let sync = ana.run(&["sync"]);
    assert!(!format!("{}{}", sync.stdout, sync.stderr).contains("knew this team"));
    let invite = server.invite("Guild of Rustaceans", 2);
    let bo = Home::joined(&server, &invite, &["--name", "Bo"]);
    assert_eq!(
        bo.run(&["team", "--json"]).json()["name"],
        "Guild of Rustaceans"
    );
    // A name that was the server's already is not said.
    let (_, founder) = create(&server, "Otters");
    let cy = Home::team("Cy", &[]);
    let run = cy.run(&["publish", &server.url, "--invite", &founder]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("knew this team"));
}

#[test]
fn only_the_founders_invite_brings_the_first_history_and_every_hint_leads_on() {
    let server = Server::start();
    let (id, _) = create(&server, "Otters");
    let general = server.invite(&id, 5);
    // A founder's invite that will come too late (the team's history will be there).
    let late = server.founder(&id);
    // A general invite does not publish: the refusal names the admin's command and the
    // founder's next one, and both work as written.
    let ana = Home::team("Ana", &[]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let err = ana
        .run(&["publish", &server.url, "--invite", &general])
        .fails();
    assert!(err.contains("founder's invite"), "{err}");
    assert_eq!(server.changes(&id), 0, "the empty team stays empty");
    let named = commands(&err);
    assert_eq!(named.len(), 2, "{err}");
    assert!(
        named[0].starts_with("cairn-server invite create") && named[0].ends_with("--founder"),
        "{err}"
    );
    // A joiner who comes early is told to come back, and not sent to `cairn doctor`.
    let bo = Home::new();
    let join = ["join", &server.url, "--invite", &general, "--name", "Bo"];
    let early = bo.run(&join).fails();
    assert!(
        early.contains("has no history yet") && !early.contains("doctor"),
        "{early}"
    );
    assert!(early.contains("run this `cairn join` again"), "{early}");
    // The admin's command from the refusal, then the founder's.
    let code = run_named(&ana, &server, &named[0], &[]).trim().to_owned();
    let out = run_named(&ana, &server, &named[1], &[("CODE", &code)]);
    assert!(out.contains("Published Otters"), "{out}");
    assert!(server.changes(&id) > 0);
    // Now the same join works.
    let out = bo.run(&join).ok();
    assert!(out.contains("Joined Otters"), "{out}");

    // A founder's invite made before the team had its history says what to do instead, and
    // that works too.
    let cy = Home::new();
    let err = cy
        .run(&["join", &server.url, "--invite", &late, "--name", "Cy"])
        .fails();
    assert!(err.contains("has its history already"), "{err}");
    let named = commands(&err);
    assert_eq!(named.len(), 1, "{err}");
    let code = run_named(&cy, &server, &named[0], &[]).trim().to_owned();
    cy.run(&["join", &server.url, "--invite", &code, "--name", "Cy"])
        .ok();
    // Another team begun offline cannot publish over it: its hint joins the team instead (on
    // a device of Dee's that holds no team, which any cairn takes).
    let dee = Home::team("Dee", &[]);
    let err = dee
        .run(&["publish", &server.url, "--invite", &general])
        .fails();
    assert!(err.contains("already has members"), "{err}");
    let named = commands(&err);
    assert_eq!(named.len(), 1, "{err}");
    let out = run_named(
        &Home::new(),
        &server,
        &named[0],
        &[("CODE", &general), ("YOUR NAME", "Dee")],
    );
    assert!(out.contains("Joined Otters"), "{out}");
    // A founder who forgot their name keeps their invite: the hint's command uses it.
    let (_, founder) = create(&server, "Badgers");
    let eve = Home::new();
    let err = eve
        .run(&["join", &server.url, "--invite", &founder])
        .fails();
    let named = commands(&err);
    assert_eq!(named.len(), 1, "{err}");
    let out = run_named(
        &eve,
        &server,
        &named[0],
        &[("CODE", &founder), ("YOUR NAME", "Eve")],
    );
    assert!(out.contains("Started Badgers"), "{out}");
}

#[test]
fn admin_commands_take_a_team_by_name_or_id_and_ask_about_a_near_miss() {
    let server = Server::start();
    let (id, _) = create(&server, "Otters");
    // By name, in any case, and by id.
    for team in ["Otters", "otters", id.as_str()] {
        let run = server.admin(&["invite", "create", "--team", team]);
        assert_eq!(run.code, 0, "--team {team}: {}", run.stderr);
    }
    let list = server.admin(&["invite", "list", "--team", "Otters"]).ok();
    assert_eq!(list.lines().count(), 5, "the founder's and three: {list}");
    assert_eq!(
        list.lines().filter(|l| l.contains("the-founder")).count(),
        1,
        "{list}"
    );
    let json = server
        .admin(&["invite", "list", "--team", "Otters", "--json"])
        .json();
    let founders = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["founder"] == true)
        .count();
    assert_eq!(founders, 1, "{json}");
    server.admin(&["device", "list", "--team", "Otters"]).ok();
    server
        .admin(&["team", "prune", "--team", "Otters", "--older-than", "0"])
        .ok();
    // A near miss: not found, and the team meant is named; its suggestion works.
    let run = server.admin(&["invite", "create", "--team", "Oters"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("no team is named `Oters`")
            && run.stderr.contains("did you mean `Otters`?"),
        "{}",
        run.stderr
    );
    for args in [
        &["invite", "list", "--team", "Oters"][..],
        &["device", "list", "--team", "otter"][..],
        &["change", "withdraw", "--team", "Oters", "abcdef12"][..],
    ] {
        let run = server.admin(args);
        assert!(
            run.code != 0 && run.stderr.contains("did you mean `Otters`?"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // Far from every team: no guess.
    let run = server.admin(&["invite", "create", "--team", "Walruses"]);
    assert!(
        run.code != 0 && !run.stderr.contains("did you mean"),
        "{}",
        run.stderr
    );
    // A second team of the same name would make the name useless: refused.
    let run = server.admin(&["team", "create", "OTTERS"]);
    assert!(run.code != 0 && run.stderr.contains(&id), "{}", run.stderr);
    // A founder's invite is one device's, and only for a team with no history.
    let run = server.admin(&[
        "invite",
        "create",
        "--team",
        "Otters",
        "--founder",
        "--uses",
        "2",
    ]);
    assert_ne!(run.code, 0, "{}", run.stdout);
}

#[test]
fn team_create_speaks_json_to_scripts() {
    let server = Server::start();
    let made = server.admin(&["team", "create", "Otters", "--json"]).json();
    assert_eq!(made["name"], "Otters");
    let code = made["founder_invite"]
        .as_str()
        .expect("the founder's invite");
    let ana = Home::new();
    ana.run(&["join", &server.url, "--invite", code, "--name", "Ana"])
        .ok();
    let id = made["id"].as_str().expect("the id");
    assert!(server.changes(id) > 0);
}

/// The same founding on PostgreSQL: the founder's invite, the name the server follows, the
/// refusal of a general invite.
#[test]
fn the_founder_path_holds_on_postgres() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let server = Server::start_shared(&pg.create_db("founding"), &[]);
    let (id, founder) = create(&server, "Guild");
    let general = server.invite("Guild", 3);
    let ana = Home::new();
    ana.run(&[
        "init",
        "--team",
        "Guild of Rustaceans",
        "--name",
        "Ana",
        "--tz",
        "Europe/Paris",
    ])
    .ok();
    let err = ana
        .run(&["publish", &server.url, "--invite", &general])
        .fails();
    assert!(err.contains("founder's invite"), "{err}");
    let out = ana
        .run(&["publish", &server.url, "--invite", &founder])
        .ok();
    assert!(
        out.contains("it is `Guild of Rustaceans` there now"),
        "{out}"
    );
    let teams = server.admin(&["team", "list", "--json"]).json();
    assert_eq!(teams[0]["name"], "Guild of Rustaceans", "{teams}");
    assert!(server.changes(&id) > 0);
    let bo = Home::joined(&server, &general, &["--name", "Bo"]);
    assert_eq!(
        bo.run(&["team", "--json"]).json()["name"],
        "Guild of Rustaceans"
    );
    let run = server.admin(&["invite", "list", "--team", "guild of rustaceans"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
