//! The command blocks of `docs/` not run by `readme.rs` or `backup.rs`, run word for word with
//! only their placeholders filled in: the web page's (`cairn web`, and a team screen on another
//! address), the server page's log pruning, and its PostgreSQL blocks (a database made with
//! `createdb`, two server processes on it, the admin commands, and a SQLite database copied
//! into PostgreSQL and served from there). Addresses become loopback with a port the system
//! picks; `db.internal` becomes the test's PostgreSQL.

use std::process::{Command, Stdio};

use cairn_e2e::browser::Web;
use cairn_e2e::pg::Postgres;
use cairn_e2e::{Background, Home, Server, bin, serve_in_background, shell_words};

/// The lines of the first `sh` block after `heading` in `docs/<page>`, without comments.
fn block(page: &str, heading: &str) -> Vec<String> {
    cairn_e2e::sh_block(&format!("docs/{page}"), heading)
        .iter()
        .map(
            |l| match l.find(" #").or_else(|| l.starts_with('#').then_some(0)) {
                Some(i) => l[..i].trim().to_owned(),
                None => l.trim().to_owned(),
            },
        )
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_web_pages_commands_work_word_for_word() {
    let home = Home::team("Ana", &[]);
    home.run(&["log", "Tidied the backlog"]).ok();
    let lines = block("web.md", "# In a browser");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let line = line.replace("0.0.0.0:8080", "127.0.0.1:0");
        let words = shell_words(&line);
        assert_eq!(words[..2], ["cairn", "web"], "{line}");
        let args: Vec<&str> = words[2..].iter().map(String::as_str).collect();
        let web = Web::start(&home, &args);
        assert!(
            web.link.starts_with("http://127.0.0.1:") && web.link.contains("/?key="),
            "`{line}` printed {}",
            web.link
        );
        // The link opens the page: its key is spent for a session.
        assert!(!web.session().is_empty(), "`{line}`");
    }
}

#[test]
fn the_server_pages_pruning_works_word_for_word() {
    let server = Server::start();
    let (team, ana) = server.found_team("Otters", None, "Ana");
    ana.run(&["log", "Tidied the backlog"]).ok();
    ana.run(&["sync"]).ok();
    let lines = block("server.md", "## Catching up from far behind");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let words = shell_words(&line.replace("TEAM_ID", &team));
        assert_eq!(words[0], "cairn-server", "{line}");
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        let said = server.admin(&args).ok();
        if args[..2] == ["team", "list"] {
            assert!(said.contains("Otters"), "{said}");
        }
    }
}

/// `cairn-server ARGS` in the background, as `... &` does, once it listens: the process and the
/// address it printed.
fn serve(args: &[String], env: &[(String, String)]) -> (Background, String) {
    let mut c = Command::new(bin("cairn-server"));
    c.args(args)
        .env_remove("CAIRN_SERVER_DB")
        .env_remove("CAIRN_SERVER_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    serve_in_background(c)
}

fn admin(args: &[String], env: &[(String, String)]) -> String {
    let mut c = Command::new(bin("cairn-server"));
    c.args(args)
        .env_remove("CAIRN_SERVER_DB")
        .env_remove("CAIRN_SERVER_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("cairn-server runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_server_pages_postgresql_blocks_work_word_for_word() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    // Two processes on one database.
    let lines = block("server.md", "## PostgreSQL and several server processes");
    let mut env: Vec<(String, String)> = Vec::new();
    let mut servers = Vec::new();
    let mut ran = 0;
    for line in &lines {
        if line == "createdb cairn" {
            // The harness's own createdb, with its host, port and role.
            pg.create_db("cairn");
            ran += 1;
            continue;
        }
        let line = line
            .replace(
                "postgres://cairn:SECRET@db.internal/cairn",
                &pg.url("cairn"),
            )
            .replace("10.0.0.11:7878", "127.0.0.1:0")
            .replace("10.0.0.12:7878", "127.0.0.1:0");
        if let Some(rest) = line.strip_prefix("export ") {
            let (k, v) = rest.split_once('=').unwrap();
            env.push((k.to_owned(), v.to_owned()));
            continue;
        }
        let words = shell_words(line.trim_end_matches('&'));
        assert_eq!(words[0], "cairn-server", "{line}");
        if line.ends_with('&') {
            servers.push(serve(&words[1..], &env));
        } else {
            assert!(!admin(&words[1..], &env).trim().is_empty(), "{line}");
        }
        ran += 1;
    }
    assert_eq!((ran, servers.len()), (4, 2), "{lines:?}");
    // The team the admin made is there for both.
    let team = admin(&["team".into(), "list".into(), "--json".into()], &env);
    assert!(team.contains("Otters"), "{team}");

    // A SQLite server's database copied into PostgreSQL, then served from there.
    let mut sqlite = Server::start();
    let (_, ana) = sqlite.found_team("Copied", None, "Ana");
    ana.run(&["log", "Wrote the runbook"]).ok();
    ana.run(&["sync"]).ok();
    // "stop it, copy, start it on the new database"
    sqlite.kill();
    let target = pg.create_db("copied");
    let lines = block("server.md", "Moving a server from SQLite to PostgreSQL");
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let line = line
            .replace("/var/lib/cairn/server.sqlite3", sqlite.database())
            .replace("postgres://cairn@db.internal/cairn", &target);
        let words = shell_words(&line);
        if words.last().map(String::as_str) == Some("serve") {
            let mut args = words[1..].to_vec();
            args.extend(["--listen".into(), "127.0.0.1:0".into()]);
            let (_served, url) = serve(&args, &[]);
            ana.run(&["remote", "set-url", &url]).ok();
            ana.run(&["log", "Synced through PostgreSQL"]).ok();
            let said = ana.run(&["sync"]);
            assert_eq!(said.code, 0, "{}", said.stderr);
        } else {
            admin(&words[1..], &[]);
        }
    }
}
