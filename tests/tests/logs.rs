//! The server's log as a log shipper reads it: `serve --log-format json` writes one JSON object
//! per line, with the fields of the text format, whatever a client sends.

use std::time::Duration;

use cairn_e2e::{Home, Server, http};
use serde_json::Value;

/// Every line of the server's log, each parsed as one JSON object.
fn lines(server: &Server) -> Vec<Value> {
    let log = server.log();
    log.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line:?}\nlog:\n{log}"));
            assert!(v.is_object(), "{line}");
            v
        })
        .collect()
}

/// Sends `request` on a connection of its own; returns the status line.
fn raw(server: &Server, request: &[u8]) -> String {
    let mut stream = http::connect(server.addr(), Duration::from_secs(10));
    let (answer, _) = http::exchange(&mut stream, request);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn json_logs_are_one_object_per_line_with_client_route_status_reason_and_team() {
    let server = Server::start_with(&["--log-format", "json"]);
    // A good request: a founder publishes, the server says a device joined.
    let ana = Home::team("Ana", &[]);
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    let token = ana.meta("token");

    // A path with quotes, a backslash, braces, UTF-8 and an escaped newline (hyper refuses
    // raw control characters before the server sees them).
    let path = "/x\"y\\z{}é%0A/\"}";
    let status = raw(
        &server,
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(status.contains(" 404 "), "{status}");
    // A reason quoting what a client sent, with quotes, a newline and a control character.
    let body = r#"{"invite":"x","device_name":"d","found":"\n\"}{\u0001 \"level\":\"ERROR\""}"#;
    let status = raw(
        &server,
        format!(
            "POST /v1/join HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert!(status.contains(" 400 "), "{status}");
    // A device's refused request, quoting its query (hyper refuses a raw quote there): its
    // team is named.
    let status = raw(
        &server,
        format!(
            "GET /v1/wait?after=0&org=a\\b{{}}'é%0A HTTP/1.1\r\nHost: a\r\n\
             Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(status.contains(" 400 "), "{status}");

    // Every line is in the log by now: each is written before its answer is sent.
    let lines = lines(&server);
    for l in &lines {
        assert!(l["time"].is_string() && l["level"].is_string(), "{l}");
    }
    let serving = lines.iter().find(|l| l["message"] == "serving").unwrap();
    assert_eq!(serving["addr"], server.addr());
    let joined = lines
        .iter()
        .find(|l| l["message"] == "device joined")
        .expect("the good request is logged");
    assert_eq!(joined["team"], team.as_str(), "{joined}");
    assert_eq!(joined["client"], "127.0.0.1");

    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request refused")
        .collect();
    let other = refused
        .iter()
        .find(|l| l["route"] == "other")
        .expect("the odd path is logged");
    assert_eq!(other["path"], path, "{other}");
    assert_eq!(other["status"], 404);
    assert_eq!(other["client"], "127.0.0.1");
    assert_eq!(other["method"], "GET");
    assert!(
        other.get("team").is_none(),
        "no team without a token: {other}"
    );

    let join = refused
        .iter()
        .find(|l| l["route"] == "join")
        .expect("the bad join is logged");
    assert_eq!(join["status"], 400);
    let why = join["error"].as_str().unwrap();
    assert!(
        why.contains("not valid") && why.contains("\"level\\\":\\\"ERROR"),
        "{why}"
    );

    let wait = refused
        .iter()
        .find(|l| l["route"] == "wait")
        .unwrap_or_else(|| panic!("the bad wait is logged: {lines:#?}"));
    assert_eq!(wait["status"], 400);
    assert_eq!(wait["team"], team.as_str(), "{wait}");
    assert!(
        wait["error"].as_str().unwrap().contains("a\\b{}'é%0A"),
        "{wait}"
    );
}

#[test]
fn text_stays_the_default_format() {
    let server = Server::start();
    let status = raw(
        &server,
        b"GET /nothing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains(" 404 "), "{status}");
    // Once it answered, the server has logged that it serves (it does before it accepts).
    let log = server.log();
    assert!(!log.contains('{') && log.contains("serving"), "{log}");
    assert!(
        log.contains("request refused") && log.contains("route=\"other\""),
        "{log}"
    );
}

/// The first JSON line of a server started with `env` and `flags` on a database of its own,
/// after one refused request: the format comes from wherever the settings do.
fn first_refusal(env: &[(&str, &str)], flags: &[&str]) -> Value {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    /// Stops the server however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(cairn_e2e::bin("cairn-server"))
        .args(flags)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CAIRN_SERVER_DB", dir.path().join("server.sqlite3"))
        .env("CAIRN_LOG", "info")
        .env_remove("CAIRN_SERVER_LOG_FORMAT")
        .env_remove("CAIRN_SERVER_CONFIG")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("cairn-server starts");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .trim_start_matches("listening on http://")
        .to_owned();
    let mut stream = http::connect(&addr, Duration::from_secs(10));
    let (answer, _) = http::exchange(
        &mut stream,
        b"GET /nothing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    drop(running);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let text = std::fs::read_to_string(&log).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {text}")))
        .find(|v| v["message"] == "request refused")
        .unwrap_or_else(|| panic!("no refusal logged: {text}"))
}

#[test]
fn the_json_format_comes_from_the_environment_or_the_configuration_file() {
    let line = first_refusal(&[("CAIRN_SERVER_LOG_FORMAT", "json")], &[]);
    assert_eq!(
        (&line["route"], &line["status"]),
        (&"other".into(), &404.into())
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[serve]\nlog_format = \"json\"\n").unwrap();
    let line = first_refusal(&[], &["--config", &config.display().to_string()]);
    assert_eq!(line["path"], "/nothing");
}
