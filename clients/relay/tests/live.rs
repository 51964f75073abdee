//! The relay as a team runs it: a real `cairn-server`, two members with the real `cairn` in
//! homes of their own, and `cairn-relay` joined with a relay's invite, running, waiting at the
//! server for news, and posting to a fake of every platform.
//!
//! Needs the `cairn` and `cairn-server` binaries: `cargo build -p cairn-cli -p cairn-server`.

#[allow(dead_code)]
mod fake;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_e2e::{Home, Server};
use fake::{Fake, Hit, PLATFORMS};

const BIN: &str = env!("CARGO_BIN_EXE_cairn-relay");

/// A relay running as a child process, its standard output read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Waits for a line that contains `what`, for at most `limit`.
    fn line(&self, what: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(e) => panic!("the relay never said {what:?}: {e}"),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Relay {
    dir: tempfile::TempDir,
    fake: Fake,
}

impl Relay {
    /// A relay whose config names every platform of the fake (reached through the
    /// allow-list), looks at its replica only once a minute of its own accord, and has not
    /// joined yet.
    fn new() -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::start();
        std::fs::write(dir.path().join("webhook-secret"), fake::WEBHOOK_SECRET).unwrap();
        let mut c = format!(
            "home = {:?}\nallow_http = true\nallow_private = [\"127.0.0.1\"]\n\
             poll_interval_secs = 60\ntimeout_secs = 5\n\n",
            dir.path().join("home"),
        );
        for p in PLATFORMS {
            c.push_str(&format!(
                "[[destination]]\nname = \"{p}\"\nkind = \"{p}\"\n"
            ));
            match p {
                "matrix" => c.push_str(&format!(
                    "homeserver = {:?}\nroom = {:?}\naccess_token = \"env:TEST_MATRIX_TOKEN\"\n",
                    fake.url("matrix"),
                    fake::ROOM
                )),
                "webhook" => c.push_str(&format!(
                    "url = {:?}\nsecret = \"file:{}\"\n",
                    fake.url(p),
                    dir.path().join("webhook-secret").display()
                )),
                _ => c.push_str(&format!("url = {:?}\n", fake.url(p))),
            }
            c.push('\n');
        }
        std::fs::write(dir.path().join("relay.toml"), c).unwrap();
        Relay { dir, fake }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("TEST_MATRIX_TOKEN", fake::MATRIX_TOKEN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "cairn-relay {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(!out.status.success(), "cairn-relay {args:?} went through");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Starts `cairn-relay run`, and waits until its first look at the replica is done.
    fn run(&self) -> Running {
        let mut child = self
            .command(&["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                eprintln!("relay: {l}");
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Running { child, lines }
    }

    /// How many times `platform` took a message that contains `marker` (repeats it drops by
    /// their idempotency key left out).
    fn count(&self, platform: &str, marker: &str) -> usize {
        taken(&self.fake.hits(platform), marker)
    }

    /// Waits until every platform took a message with `marker`; returns when the last did.
    fn everywhere(&self, marker: &str, limit: Duration) -> Instant {
        let ok = self.fake.wait_until(limit, |hits| {
            PLATFORMS.iter().all(|p| {
                let of: Vec<Hit> = hits.iter().filter(|h| h.platform == *p).cloned().collect();
                taken(&of, marker) > 0
            })
        });
        assert!(
            ok,
            "not every platform got {marker:?}: {:#?}",
            self.fake.all()
        );
        PLATFORMS
            .iter()
            .flat_map(|p| self.fake.hits(p))
            .filter(|h| h.text().contains(marker))
            .map(|h| h.at)
            .max()
            .unwrap()
    }
}

fn taken(hits: &[Hit], marker: &str) -> usize {
    hits.iter()
        .filter(|h| !h.repeat && (200..300).contains(&h.status) && h.problem.is_none())
        .filter(|h| h.text().contains(marker))
        .count()
}

fn replica_of(relay: &Relay) -> PathBuf {
    relay.dir.path().join("home").join("replica.sqlite3")
}

fn exists(p: &Path) -> bool {
    p.exists()
}

/// A member on the real clock (a kudos from a pinned day weeks ago would be a late arrival,
/// held for the digest), joined to `server` with `invite`.
fn member(server: &Server, invite: &str, name: &str) -> Home {
    let mut home = Home::new();
    home.day = None;
    home.run(&["join", &server.url, "--invite", invite, "--name", name])
        .ok();
    home
}

#[test]
fn a_kudos_from_the_cli_reaches_every_platform_within_seconds_exactly_once_through_a_restart() {
    let server = Server::start();
    let team = server.team("Otters");
    let ana = member(&server, &server.founder(&team), "Ana");
    let ben = member(&server, &server.invite(&team, 1), "Ben");
    ana.run(&["sync"]).ok();
    ana.run(&["kudos", "@ben", "historyNeverPosted", "--pillar", "trust"])
        .ok();
    ana.run(&["sync"]).ok();

    let relay = Relay::new();
    // A member's invite is not a relay's: refused, nothing joined.
    let said = relay.fails(&["join", &server.url, "--invite", &server.invite(&team, 1)]);
    assert!(said.contains("relay"), "{said}");
    assert!(!exists(&replica_of(&relay)));
    let invite = server
        .admin(&["invite", "create", "--team", &team, "--relay"])
        .ok()
        .trim()
        .to_owned();
    let joined = relay.ok(&["join", &server.url, "--invite", &invite]);
    assert!(joined.contains("joined Otters as its relay"), "{joined}");
    // Once is enough: a second join is refused, the first replica kept.
    let again = relay.fails(&["join", &server.url, "--invite", &invite]);
    assert!(again.contains("joined a team already"), "{again}");
    // It is no member: the team's member list is as it was.
    ben.run(&["sync"]).ok();
    let members = ben.run(&["team", "--json"]).json()["members"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(members, 2);

    let running = relay.run();
    running.line("first start", Duration::from_secs(30));

    // Ana thanks Ben and syncs: every platform has it within 5 s of her sync, although the
    // relay looks at its replica of its own accord only once a minute: it waited for news.
    ana.run(&[
        "kudos",
        "@ben",
        "calm write-up kudosOne",
        "--pillar",
        "trust",
    ])
    .ok();
    ana.run(&["sync"]).ok();
    let synced = Instant::now();
    let last = relay.everywhere("kudosOne", Duration::from_secs(30));
    let took = last.saturating_duration_since(synced);
    assert!(
        took < Duration::from_secs(5),
        "posted {took:?} after the sync"
    );
    eprintln!("kudos to chat: {took:?} after the author's sync");

    // Killed and started again; Ben thanks Ana meanwhile.
    drop(running);
    ben.run(&[
        "kudos",
        "@ana",
        "steady hands kudosTwo",
        "--pillar",
        "trust",
    ])
    .ok();
    ben.run(&["sync"]).ok();
    let running = relay.run();
    relay.everywhere("kudosTwo", Duration::from_secs(30));
    // Ana's again, to know the restarted relay went past both.
    ana.run(&["kudos", "@ben", "and again kudosThree", "--pillar", "trust"])
        .ok();
    ana.run(&["sync"]).ok();
    relay.everywhere("kudosThree", Duration::from_secs(30));
    drop(running);

    for p in PLATFORMS {
        for marker in ["kudosOne", "kudosTwo", "kudosThree"] {
            assert_eq!(relay.count(p, marker), 1, "{p}: {marker}");
        }
        assert_eq!(relay.count(p, "historyNeverPosted"), 0, "{p}");
        let problems: Vec<_> = relay
            .fake
            .hits(p)
            .into_iter()
            .filter_map(|h| h.problem)
            .collect();
        assert!(problems.is_empty(), "{p}: {problems:?}");
    }
    // Posted as their authors wrote them, in order.
    let slack: Vec<String> = relay
        .fake
        .hits("slack")
        .iter()
        .map(Hit::text)
        .filter(|t| t.contains("kudos"))
        .collect();
    assert_eq!(slack.len(), 3, "{slack:?}");
    assert!(slack[0].contains("Ana") && slack[0].contains("kudosOne"));
    assert!(slack[1].contains("Ben") && slack[1].contains("kudosTwo"));
    assert!(slack[2].contains("kudosThree"));
    // The server lists it as a relay.
    let out = server.admin(&["device", "list", "--team", &team]).ok();
    assert!(out.contains("relay"), "{out}");
}

#[test]
fn a_member_who_is_not_named_in_chat_is_never_posted_one_by_one() {
    let server = Server::start();
    let team = server.team("Otters");
    let ana = member(&server, &server.founder(&team), "Ana");
    let ben = member(&server, &server.invite(&team, 1), "Ben");
    ana.run(&["sync"]).ok();
    let relay = Relay::new();
    let invite = server
        .admin(&["invite", "create", "--team", &team, "--relay"])
        .ok()
        .trim()
        .to_owned();
    relay.ok(&["join", &server.url, "--invite", &invite]);
    let running = relay.run();
    running.line("first start", Duration::from_secs(30));

    // Ben says no; Ana thanks him: the relay takes it in and posts nothing.
    ben.run(&["me", "chat", "off"]).ok();
    ben.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    ana.run(&["kudos", "@ben", "quietly thanked", "--pillar", "trust"])
        .ok();
    ana.run(&["sync"]).ok();
    let took = running.line("new event", Duration::from_secs(30));
    assert!(took.contains("0 message(s) queued"), "{took}");

    // Ben says yes again: the next kudos is posted, the one before never is.
    ben.run(&["me", "chat", "on"]).ok();
    ben.run(&["sync"]).ok();
    ana.run(&["kudos", "@ben", "loudly thanked", "--pillar", "trust"])
        .ok();
    ana.run(&["sync"]).ok();
    relay.everywhere("loudly", Duration::from_secs(30));
    drop(running);
    for p in PLATFORMS {
        assert_eq!(relay.count(p, "quietly"), 0, "{p}");
        assert_eq!(relay.count(p, "loudly"), 1, "{p}");
    }
}

/// The chat page of `docs/` followed word for word: a relay's invite, the example config (its
/// editing stands for this test's config, whose destinations are the fake's), the join, the
/// check, the run and the status, with only the server's address and the code filled in.
#[test]
fn the_chat_pages_commands_work_word_for_word() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/chat.md"))
        .expect("docs/chat.md");
    let block = page
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a sh block")
        .0;
    let server = Server::start();
    let team = server.team("Otters");
    let ana = member(&server, &server.founder(&team), "Ana");
    ana.run(&["sync"]).ok();
    let relay = Relay::new();
    let mut code = String::new();
    let mut ran = 0;
    let mut running = None;
    for line in block.lines() {
        let line = match line.find(" #") {
            Some(i) => line[..i].trim(),
            None => line.trim(),
        };
        if line.is_empty() || line.starts_with("cargo install") {
            continue;
        }
        ran += 1;
        let line = line
            .replace("https://cairn.example.org", &server.url)
            .replace("RELAY_CODE", &code);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["cairn-server", args @ ..] => {
                code = server.admin(args).ok().trim().to_owned();
                assert!(!code.is_empty(), "{line}");
            }
            ["cairn-relay", "example", ">", file, "&&", "$EDITOR", edited] => {
                assert_eq!(file, edited, "{line}");
                let example = Command::new(BIN).arg("example").output().unwrap();
                assert!(example.status.success());
                let text = String::from_utf8(example.stdout).unwrap();
                let parsed: toml::Table = text.parse().expect("the example is TOML");
                assert!(parsed.contains_key("destination"), "{text}");
            }
            ["cairn-relay", "--config", "relay.toml", "run"] => {
                let r = relay.run();
                r.line("first start", Duration::from_secs(30));
                running = Some(r);
            }
            ["cairn-relay", "--config", "relay.toml", args @ ..] => {
                let said = relay.ok(args);
                assert!(!said.trim().is_empty(), "{line}");
            }
            _ => panic!("the chat page runs `{line}`, which this test does not know"),
        }
    }
    assert_eq!(ran, 6, "{block}");
    // And it posts: a kudos from the CLI reaches the platforms.
    assert!(running.is_some(), "the page runs the relay");
    member(&server, &server.invite(&team, 1), "Ben");
    ana.run(&["sync"]).ok();
    ana.run(&["kudos", "@ben", "wordForWordKudos"]).ok();
    ana.run(&["sync"]).ok();
    relay.everywhere("wordForWordKudos", Duration::from_secs(30));
}
