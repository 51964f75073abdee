//! Every bad input: an error with a hint, a non-zero exit, and the replica exactly as it was.

use cairn_e2e::{Home, feed};

#[test]
fn bad_input_is_refused_in_one_line_and_changes_nothing() {
    let home = Home::team("Ana", &["Ben"]);
    home.run(&["--as", "@ben", "log", "Ben's own"]).ok();
    home.run(&["log", "Ana's own"]).ok();
    let items = feed(&home, &[]);
    let bens = items[1]["short"].as_str().unwrap().to_owned();
    assert_eq!(items[1]["author"], "ben");
    let anas = items[0]["short"].as_str().unwrap().to_owned();
    let too_long = "x".repeat(501);
    let before = home.dump();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["log", ""], "empty"),
        (vec!["log", "   "], "empty"),
        (vec!["log", &too_long], "501 characters"),
        (vec!["log", "x", "--pillar", "speed"], "unknown pillar"),
        (vec!["kudos", "@zed", "hi"], "unknown member `@zed`"),
        (vec!["kudos", "@ben,@zed", "hi"], "unknown member"),
        (vec!["kudos", "@ana", "me"], "yourself"),
        (vec!["kudos", ",", "nobody"], "at least one"),
        (vec!["--as", "@zed", "log", "x"], "unknown member"),
        (vec!["edit", &bens, "mine now"], "belongs to someone else"),
        (vec!["retract", &bens], "belongs to someone else"),
        (vec!["edit", &anas], "nothing to change"),
        (vec!["react", "zzzzzz"], "no event"),
        (vec!["react", "!!"], "no event"),
        (vec!["react", &bens, "two words"], "invalid emoji"),
        (vec!["feed", "--since", "someday"], "not a day"),
        (vec!["feed", "--since", "99999999d"], "not a day"),
        (vec!["log", "bell\u{7}ringing"], "control characters"),
        (vec!["feed", "--member", "@zed"], "unknown member"),
        (
            vec!["team", "member", "add", "Ben", "--handle", "ben"],
            "on the team already",
        ),
        (
            vec!["team", "member", "add", "Bea", "--handle", "ben"],
            "already taken",
        ),
        (
            vec!["team", "member", "add", "X", "--handle", "Bad Handle"],
            "invalid handle",
        ),
        (vec!["team", "pillar", "add", "Trust"], "already exists"),
        (vec!["team", "commit", " ", "--why", "x"], "empty"),
        (
            vec!["init", "--team", "Otters", "--name", "Ana"],
            "already holds a team named Otters",
        ),
    ];
    for (args, expected) in cases {
        let line = home.run(&args).fails();
        assert!(
            line.contains(expected),
            "{args:?}: `{line}` lacks `{expected}`"
        );
        if !line.contains("already exists") {
            assert!(
                line.contains("hint:") || args[0] == "feed" || args[0] == "react",
                "{args:?}: {line}"
            );
        }
        assert_eq!(home.dump(), before, "{args:?} changed the replica");
    }
}

#[test]
fn out_of_range_limits_are_usage_errors() {
    let home = Home::team("Ana", &[]);
    for limit in ["0", "-1", "18446744073709551615"] {
        let run = home.run(&["feed", "--limit", limit]);
        assert_eq!(run.code, 2, "--limit {limit}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
    }
}

#[test]
fn a_bad_zone_or_clock_is_refused_before_anything_is_made() {
    let home = Home::new();
    let line = home
        .run(&[
            "init",
            "--team",
            "T",
            "--name",
            "Ana",
            "--tz",
            "Mars/Olympus",
        ])
        .fails();
    assert!(line.contains("unknown time zone"), "{line}");
    assert!(!home.replica().exists());
    let line = home
        .command(&["feed"])
        .env("CAIRN_NOW", "yesterday-ish")
        .output()
        .unwrap();
    assert_ne!(line.status.code(), Some(0));
}

#[test]
fn missing_corrupt_and_newer_replicas_exit_3_with_a_hint() {
    let home = Home::new();
    let run = home.run(&["feed"]);
    assert_eq!(run.code, 3);
    assert!(run.fails().contains("cairn init"));
    assert!(!home.replica().exists(), "a read never creates a replica");

    std::fs::write(home.replica(), vec![0x42u8; 8192]).unwrap();
    for args in [&["feed"][..], &["log", "x"], &["team"]] {
        let run = home.run(args);
        assert_eq!(run.code, 3, "{args:?}");
        let line = run.fails();
        assert!(line.contains("damaged") && line.contains("hint:"), "{line}");
    }
    assert_eq!(
        std::fs::read(home.replica()).unwrap(),
        vec![0x42u8; 8192],
        "left as it was"
    );

    let newer = Home::team("Ana", &[]);
    let conn = rusqlite::Connection::open(newer.replica()).unwrap();
    conn.pragma_update(None, "user_version", 1000).unwrap();
    drop(conn);
    let before = newer.dump();
    let run = newer.run(&["log", "from the past"]);
    assert_eq!(run.code, 3);
    assert!(run.fails().contains("newer cairn"));
    assert_eq!(newer.dump(), before);
}

#[test]
fn a_stalled_server_is_named_when_the_wait_ends() {
    // A server that takes connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let home = Home::new();
    let started = std::time::Instant::now();
    let out = home
        .command(&[
            "join",
            &format!("http://{addr}"),
            "--invite",
            "code",
            "--name",
            "Zed",
        ])
        .env("CAIRN_SYNC_TIMEOUT", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains(&format!("the server at http://{addr} went silent for 2 s"))
            && err.contains("stalled"),
        "{err}"
    );
    // Told within the seconds asked for, not after a minute (nor twice the time).
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
}

#[test]
fn a_slow_answer_that_keeps_coming_is_waited_for() {
    use std::io::{Read, Write};
    // A server whose answer to `/v1/info` takes three seconds, a few bytes at a time: longer
    // than the one second of silence cairn is told to bear, but never silent that long.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = br#"{"protocol":99,"server_version":"slow","max_request_bytes":1,"max_page_changes":1}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            for chunk in body.chunks(body.len() / 10 + 1) {
                std::thread::sleep(std::time::Duration::from_millis(300));
                let _ = conn.write_all(chunk).and_then(|()| conn.flush());
            }
        }
    });
    let home = Home::new();
    let out = home
        .command(&[
            "join",
            &format!("http://{addr}"),
            "--invite",
            "code",
            "--name",
            "Zed",
        ])
        .env("CAIRN_SYNC_TIMEOUT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The whole answer arrived: it names a protocol this cairn does not speak.
    assert!(err.contains("the server speaks protocol 99"), "{err}");
}

#[test]
fn colour_is_asked_for_or_refused_by_flag() {
    let home = Home::team("Ana", &[]);
    // The harness sets NO_COLOR and pipes stdout: no colour unless asked for.
    assert!(!home.run(&["team"]).ok().contains('\x1b'));
    assert!(
        home.run(&["--color", "always", "team"])
            .ok()
            .contains("\x1b[")
    );
    assert!(
        !home
            .run(&["--color", "never", "team"])
            .ok()
            .contains('\x1b')
    );
    let bad = home.run(&["--color", "blue", "team"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[test]
fn usage_lines_show_what_was_typed_not_what_the_environment_set() {
    // The harness sets CAIRN_HOME: the usage must not ask for --home.
    let home = Home::team("Ana", &["Ben"]);
    let out = home.run(&["log"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("Usage: cairn log"), "{}", out.stderr);
    assert!(!out.stderr.contains("--home"), "{}", out.stderr);
    let out = home.run(&["kudos", "@ben"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("Usage: cairn kudos <@HANDLE> <TEXT>..."),
        "{}",
        out.stderr
    );
    home.run(&["kudos", "@ben", "Calm", "incident", "call"])
        .ok();
}

#[test]
fn a_server_out_of_reach_is_told_with_its_cause_and_a_hint_that_fits() {
    // A port nobody listens on: bound by the OS, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let newcomer = Home::new();
    let url = format!("http://127.0.0.1:{port}");
    let run = newcomer.run(&["join", &url, "--invite", "abc", "--name", "Zed"]);
    let stderr = run.stderr.clone();
    let err = run.fails();
    assert!(
        err.starts_with(&format!("error: cannot reach the server at {url}")),
        "{err}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("caused by: ")),
        "{stderr}"
    );
    // Nothing exists to sync yet: the hint says to run the command again, not `cairn sync`.
    assert!(
        err.contains("is cairn-server running there?") && err.contains("run the command again"),
        "{err}"
    );
    assert!(!err.contains("cairn sync"), "{err}");
    assert!(
        !newcomer.replica().exists(),
        "a failed join leaves no replica"
    );

    // https:// to a server that speaks plain HTTP: the hint offers http://.
    let server = cairn_e2e::server::Server::start();
    let https = server.url.replacen("http://", "https://", 1);
    let err = newcomer
        .run(&["join", &https, "--invite", "abc", "--name", "Zed"])
        .fails();
    assert!(
        err.contains("does not speak HTTPS") && err.contains(&format!("use {}", server.url)),
        "the hint names the http:// address: {err}"
    );
}
