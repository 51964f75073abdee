//! The real `cairn-relay` binary against a real replica and a fake of every platform.

mod fake;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cairn_core::ids::EventId;
use cairn_core::{NewEvent, Stamp, team};
use cairn_store::{NewTeam, Replica};
use fake::{Answer, Fake, Hit, PLATFORMS};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cairn-relay");
const WAIT: Duration = Duration::from_secs(30);

/// A team's replica, a relay home and config, and the fake platforms.
struct Team {
    dir: tempfile::TempDir,
    replica: PathBuf,
    config: PathBuf,
    fake: Fake,
    n: u8,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn date_of(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

impl Team {
    /// A team of Ana, Ben and Cy with the pillar trust, and (trust is one of a new team's pillars) and a relay whose destinations are
    /// every platform of the fake, reached through the allow-list.
    fn new() -> Team {
        let dir = tempfile::tempdir().unwrap();
        let replica = dir.path().join("replica.sqlite3");
        let new = NewTeam {
            team_id: "t1".into(),
            team_name: "Otters".into(),
            tz: "UTC".into(),
            member_id: "ana".into(),
            member_name: "Ana".into(),
            handle: "ana".into(),
            at_ms: now_ms() - 86_400_000,
        };
        let mut r = Replica::create(&replica, &new).unwrap();
        let at = now_ms() - 86_400_000;
        r.change_team("ana", |doc, state| {
            team::add_member(doc, state, "ben", "Ben", None, at)
        })
        .unwrap();
        r.change_team("ana", |doc, state| {
            team::add_member(doc, state, "cy", "Cy", None, at)
        })
        .unwrap();
        drop(r);
        let fake = Fake::start();
        std::fs::write(
            dir.path().join("webhook-secret"),
            format!("{}\n", fake::WEBHOOK_SECRET),
        )
        .unwrap();
        let mut t = Team {
            config: dir.path().join("relay.toml"),
            dir,
            replica,
            fake,
            n: 0,
        };
        t.write_config("allow_private = [\"127.0.0.1\"]\n", &PLATFORMS);
        t
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Writes the config: `head` at the top, a destination per platform in `platforms`.
    fn write_config(&mut self, head: &str, platforms: &[&str]) {
        let mut c = format!(
            "home = {:?}\nreplica = {:?}\nallow_http = true\npoll_interval_secs = 0.2\n\
             timeout_secs = 2\n{head}\n",
            self.home(),
            self.replica
        );
        for p in platforms {
            c.push_str(&format!(
                "[[destination]]\nname = \"{p}\"\nkind = \"{p}\"\n"
            ));
            match *p {
                "matrix" => c.push_str(&format!(
                    "homeserver = {:?}\nroom = {:?}\naccess_token = \"env:TEST_MATRIX_TOKEN\"\n",
                    self.fake.url("matrix"),
                    fake::ROOM
                )),
                "webhook" => c.push_str(&format!(
                    "url = {:?}\nsecret = \"file:{}\"\n",
                    self.fake.url(p),
                    self.dir.path().join("webhook-secret").display()
                )),
                _ => c.push_str(&format!("url = \"env:TEST_URL_{}\"\n", p.to_uppercase())),
            }
            c.push('\n');
        }
        std::fs::write(&self.config, c).unwrap();
    }

    /// `cairn-relay ARGS` with the config and the secrets in its environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("TEST_MATRIX_TOKEN", fake::MATRIX_TOKEN)
            .arg("--config")
            .arg(&self.config)
            .args(args);
        for p in PLATFORMS {
            cmd.env(format!("TEST_URL_{}", p.to_uppercase()), self.fake.url(p));
        }
        cmd
    }

    /// Runs `cairn-relay ARGS` and asserts it succeeded.
    fn relay(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "cairn-relay {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn status(&self) -> Value {
        let out = self.relay(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn destination(&self, name: &str) -> Value {
        self.status()["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()
            .clone()
    }

    /// Ana writes `new`, `ago_ms` ago.
    fn write(&mut self, new: &NewEvent, ago_ms: i64) -> EventId {
        self.write_as("ana", new, ago_ms)
    }

    /// `author` writes `new`, `ago_ms` ago.
    fn write_as(&mut self, author: &str, new: &NewEvent, ago_ms: i64) -> EventId {
        self.n += 1;
        let at = now_ms() - ago_ms;
        let id = EventId::new(at, [self.n, 0, 0, 0, 1]);
        let stamp = Stamp {
            at_ms: at,
            tz: "UTC".into(),
            date: date_of(at),
            late: false,
        };
        let mut r = Replica::open(&self.replica).unwrap();
        r.add_event(author, &id, &stamp, new).unwrap();
        id
    }

    /// Ana thanks Ben and Cy for `text`, `ago_ms` ago.
    fn kudos_at(&mut self, text: &str, ago_ms: i64) -> EventId {
        let to = vec!["ben".into(), "cy".into()];
        self.write(&NewEvent::kudos(to, text, Some("trust".into())), ago_ms)
    }

    /// Ana logs a micro-action, now.
    fn action(&mut self, text: &str, why: &str) {
        let new = NewEvent::action(text, Some("trust".into()), Some(why.into()));
        self.write(&new, 0);
    }

    fn kudos(&mut self, text: &str) -> EventId {
        self.kudos_at(text, 0)
    }
}

/// The texts `platform` received that it did not drop as repeats.
fn texts(hits: &[Hit]) -> Vec<String> {
    hits.iter()
        .filter(|h| !h.repeat && (200..300).contains(&h.status))
        .map(Hit::text)
        .collect()
}

fn no_problems(fake: &Fake) {
    for h in fake.all() {
        assert_eq!(h.problem, None, "{}: {}", h.platform, h.body);
    }
}

/// Whether `c` appears in `text` without a backslash before it.
fn unescaped(text: &str, c: char) -> bool {
    let mut escaped = false;
    for x in text.chars() {
        if x == c && !escaped {
            return true;
        }
        escaped = x == '\\' && !escaped;
    }
    false
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn marker_count(fake: &Fake, platform: &str, marker: &str) -> usize {
    texts(&fake.hits(platform))
        .iter()
        .filter(|t| t.contains(marker))
        .count()
}

#[test]
fn each_kudos_is_posted_once_per_destination_in_order_through_restarts() {
    let mut t = Team::new();
    t.kudos("history one");
    // The first start: history is recorded, nothing posted.
    let out = t.relay(&["run", "--once"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 event(s) of history"));
    assert!(t.fake.all().is_empty());

    for i in 1..=3 {
        t.kudos(&format!("kudos number {i}"));
    }
    t.relay(&["run", "--once"]);
    for p in PLATFORMS {
        let got = texts(&t.fake.hits(p));
        assert_eq!(got.len(), 3, "{p}: {got:?}");
        for (i, text) in got.iter().enumerate() {
            assert!(
                text.contains(&format!("kudos number {}", i + 1)),
                "{p}: {got:?}"
            );
            let plain = text.replace("**", "");
            assert!(plain.starts_with("Ana thanked Ben and Cy"), "{p}: {text}");
        }
    }
    // Nothing new: nothing sent.
    t.relay(&["run", "--once"]);
    assert_eq!(t.fake.all().len(), 18);

    // The loop delivers the next one, and is killed; what comes while it is down comes after.
    let child = t.command(&["run"]).stdout(Stdio::null()).spawn().unwrap();
    t.kudos("kudos number 4");
    assert!(t.fake.wait_until(WAIT, |hits| {
        PLATFORMS.iter().all(|p| {
            hits.iter()
                .any(|h| h.platform == *p && h.status != 0 && h.text().contains("number 4"))
        })
    }));
    kill(child);
    t.kudos("kudos number 5");
    t.relay(&["run", "--once"]);
    for p in PLATFORMS {
        let got = texts(&t.fake.hits(p));
        assert_eq!(got.len(), 5, "{p}: {got:?}");
        for (i, text) in got.iter().enumerate() {
            assert!(
                text.contains(&format!("kudos number {}", i + 1)),
                "{p}: {got:?}"
            );
        }
        // The kill may land between a request and its record: Matrix and the webhook then
        // get it again under the same key (and drop it), the others never again.
        let repeats = t.fake.hits(p).iter().filter(|h| h.repeat).count();
        assert!(
            repeats <= usize::from(p == "matrix" || p == "webhook"),
            "{p}"
        );
        assert_eq!(
            t.fake.hits(p).len(),
            5 + repeats,
            "{p}: nothing posted twice"
        );
    }
    // At most one message a second to each destination.
    for p in PLATFORMS {
        let hits = t.fake.hits(p);
        for w in hits.windows(2) {
            let gap = w[1].at - w[0].at;
            assert!(gap >= Duration::from_millis(950), "{p}: {gap:?}");
        }
    }
    no_problems(&t.fake);
    // What the kill caught mid-request on Slack is in doubt (it was posted: the fake saw it).
    let slack = t.destination("slack");
    let done = slack["counts"]["done"].as_i64().unwrap();
    let doubt = slack["counts"]["in_doubt"].as_i64().unwrap_or(0);
    assert!(done + doubt == 5 && doubt <= 1, "{slack}");
    assert_eq!(slack["disabled"], false);
}

#[test]
fn mentions_and_markup_in_member_text_are_neutralised_on_each_platform() {
    let mut t = Team::new();
    t.relay(&["run", "--once"]);
    t.kudos(
        "@channel @here @everyone @room <!channel> <!here> <@U024BE7LH> <@123456789> \
         [click](https://evil.example) **bold** <https://evil.example|x> <b>html</b> # head",
    );
    t.relay(&["run", "--once"]);
    no_problems(&t.fake);
    for p in PLATFORMS {
        let hits = t.fake.hits(p);
        assert_eq!(hits.len(), 1, "{p}");
        let body = hits[0].body.to_string();
        let text = hits[0].text();
        for mention in ["@channel", "@here", "@everyone", "@room"] {
            assert!(!text.contains(mention), "{p}: {mention} in {text}");
        }
        match p {
            "slack" => {
                assert!(!body.contains("<!") && !body.contains("<@") && !body.contains("<http"));
                assert!(text.contains("&lt;!channel&gt;"), "{text}");
                assert_eq!(hits[0].body["blocks"][0]["text"]["type"], "plain_text");
            }
            "mattermost" | "discord" => {
                // Every special the member typed is escaped: no link, no bold, no tag.
                for c in ['[', ']', '(', ')', '*', '<', '>', '#'] {
                    assert!(
                        !unescaped(text.split('“').nth(1).unwrap(), c),
                        "{p}: {c} in {text}"
                    );
                }
                assert!(
                    text.contains("\\[click\\]\\(https://evil.example\\)"),
                    "{text}"
                );
            }
            "teams" => {
                // TextRuns render no Markdown; no run is a mention entity.
                assert!(!body.contains("msteams") && !body.contains("<at>"));
                let runs = &hits[0].body["attachments"][0]["content"]["body"][0]["inlines"];
                assert!(
                    runs.as_array()
                        .unwrap()
                        .iter()
                        .all(|r| r["type"] == "TextRun")
                );
            }
            "matrix" => {
                let html = hits[0].body["formatted_body"].as_str().unwrap();
                assert!(!html.contains("<a") && !html.contains("<b>html"), "{html}");
                assert!(html.contains("&lt;b&gt;html&lt;/b&gt;"), "{html}");
                assert_eq!(hits[0].body["m.mentions"], serde_json::json!({}));
            }
            _ => {}
        }
    }
}

#[test]
fn a_429_waits_out_retry_after_and_a_500_or_a_stall_is_tried_again() {
    let mut t = Team::new();
    t.relay(&["run", "--once"]);
    t.fake.script(
        "slack",
        vec![Answer::Status(
            429,
            vec![("retry-after", "2".into())],
            "slow down".into(),
        )],
    );
    t.fake.script(
        "discord",
        vec![Answer::Status(
            429,
            vec![],
            r#"{"message":"rate limited","retry_after":1.5,"global":false}"#.into(),
        )],
    );
    t.fake.script(
        "mattermost",
        vec![Answer::Status(500, vec![], "oops".into())],
    );
    t.fake.script("teams", vec![Answer::Stall]);
    t.kudos("kudos number 1");
    t.relay(&["run", "--once"]);
    no_problems(&t.fake);
    let gap = |p: &str, at_least: Duration| {
        let hits = t.fake.hits(p);
        assert_eq!(hits.len(), 2, "{p}");
        assert!((200..300).contains(&hits[1].status), "{p}");
        let gap = hits[1].at - hits[0].at;
        assert!(gap >= at_least, "{p}: {gap:?}");
    };
    gap("slack", Duration::from_secs(2));
    gap("discord", Duration::from_millis(1500));
    // 5 s less a fifth of jitter.
    gap("mattermost", Duration::from_secs(4));
    // The stall was given up at the 2 s timeout, then tried again.
    gap("teams", Duration::from_secs(2));
    for p in ["matrix", "webhook"] {
        assert_eq!(t.fake.hits(p).len(), 1, "{p}");
    }
    for p in PLATFORMS {
        assert_eq!(t.destination(p)["counts"]["done"], 1, "{p}");
    }
}

#[test]
fn a_410_disables_its_destination_while_the_others_go_on() {
    let mut t = Team::new();
    t.relay(&["run", "--once"]);
    t.fake
        .script("discord", vec![Answer::Status(410, vec![], "gone".into())]);
    t.fake.script(
        "mattermost",
        vec![Answer::Status(
            302,
            vec![("location", "/elsewhere".into())],
            String::new(),
        )],
    );
    t.kudos("kudos number 1");
    t.kudos("kudos number 2");
    t.relay(&["run", "--once"]);
    assert_eq!(t.fake.hits("discord").len(), 1, "nothing after the 410");
    let discord = t.destination("discord");
    assert_eq!(discord["disabled"], true, "{discord}");
    assert!(discord["disabled_why"].as_str().unwrap().contains("410"));
    // The redirect was not followed: that message failed, the next went.
    assert!(t.fake.hits("elsewhere").is_empty());
    assert_eq!(texts(&t.fake.hits("mattermost")).len(), 1);
    let mm = t.destination("mattermost");
    assert_eq!(mm["counts"]["failed"], 1, "{mm}");
    assert!(
        mm["latest"][1]["error"]
            .as_str()
            .unwrap()
            .contains("redirect")
    );
    for p in ["slack", "teams", "matrix", "webhook"] {
        assert_eq!(texts(&t.fake.hits(p)).len(), 2, "{p}");
    }
    // Said for a person too.
    let said = String::from_utf8(t.relay(&["status"]).stdout).unwrap();
    assert!(
        said.lines()
            .any(|l| l.starts_with("discord (discord): DISABLED: answered 410: gone")),
        "{said}"
    );
    assert!(said.contains("slack (slack): ok\n  done 2\n"), "{said}");
    // A disabled destination stays quiet on the next pass, and comes back when enabled.
    t.kudos("kudos number 3");
    t.relay(&["run", "--once"]);
    assert_eq!(t.fake.hits("discord").len(), 1);
    assert_eq!(texts(&t.fake.hits("slack")).len(), 3);
    t.relay(&["enable", "discord"]);
    t.kudos("kudos number 4");
    t.relay(&["run", "--once"]);
    assert_eq!(
        texts(&t.fake.hits("discord"))
            .iter()
            .filter(|x| x.contains("number 4"))
            .count(),
        1
    );
}

#[test]
fn loopback_and_private_addresses_are_refused_unless_allowed() {
    let mut t = Team::new();
    let port = t.fake.addr.port();
    // No allow-list: an address, a private address and a name that resolves to loopback.
    let cfg = format!(
        "home = {:?}\nreplica = {:?}\nallow_http = true\n\n\
         [[destination]]\nname = \"by-address\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{port}/slack\"\n\n\
         [[destination]]\nname = \"by-name\"\nkind = \"discord\"\nurl = \"http://localhost:{port}/discord\"\n\n\
         [[destination]]\nname = \"private\"\nkind = \"mattermost\"\nurl = \"http://10.255.255.1:{port}/mattermost\"\n\n\
         [[destination]]\nname = \"ipv6\"\nkind = \"teams\"\nurl = \"http://[::1]:{port}/teams\"\n",
        t.home(),
        t.replica
    );
    std::fs::write(&t.config, cfg).unwrap();
    let out = t.command(&["check"]).output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    for (name, what) in [
        ("by-address", "127.0.0.1, a loopback address"),
        ("by-name", "refused to connect to localhost"),
        ("private", "10.255.255.1, a private address"),
        ("ipv6", "::1, a loopback address"),
    ] {
        assert!(
            said.lines()
                .any(|l| l.starts_with(name) && l.contains(what)),
            "{name}: {said}"
        );
    }
    // HTTPS only unless allowed.
    std::fs::write(
        &t.config,
        format!(
            "home = {:?}\n[[destination]]\nname = \"s\"\nkind = \"slack\"\nurl = \"http://hooks.example/x\"\n",
            t.home()
        ),
    )
    .unwrap();
    let out = t.command(&["check", "--no-send"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("destination[0] (s).url: uses http: only https is allowed")
    );
    // The queue: a refused destination is disabled, the request never made.
    t.write_config("", &["slack"]);
    t.relay(&["run", "--once"]);
    t.kudos("kudos number 1");
    t.relay(&["run", "--once"]);
    assert!(t.fake.all().is_empty());
    let slack = t.destination("slack");
    assert!(
        slack["disabled_why"]
            .as_str()
            .unwrap()
            .contains("a loopback address"),
        "{slack}"
    );
}

#[test]
fn the_first_start_posts_no_history_and_a_late_event_is_held_for_the_digest() {
    let mut t = Team::new();
    for i in 1..=3 {
        t.kudos(&format!("old kudos {i}"));
    }
    let out = t.relay(&["run", "--once"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 event(s) of history"));
    assert!(t.fake.all().is_empty());
    // A member back from offline: their kudos of 7 hours ago arrives now, beside a fresh one.
    t.kudos_at("from the train", 7 * 3_600_000);
    t.kudos("fresh kudos");
    t.relay(&["run", "--once"]);
    for p in PLATFORMS {
        let got = texts(&t.fake.hits(p));
        assert_eq!(got.len(), 1, "{p}: {got:?}");
        assert!(got[0].contains("fresh kudos"), "{p}");
    }
    assert_eq!(t.status()["held_for_digest"], 1);
    assert_eq!(marker_count(&t.fake, "slack", "old kudos"), 0);
}

#[test]
fn a_message_in_flight_when_the_relay_dies_is_sent_again_only_with_an_idempotency_key() {
    let mut t = Team::new();
    t.write_config(
        "allow_private = [\"127.0.0.1\"]\n",
        &["slack", "matrix", "webhook"],
    );
    t.relay(&["run", "--once"]);
    for p in ["slack", "matrix", "webhook"] {
        t.fake.script(p, vec![Answer::Stall]);
    }
    t.kudos("kudos number 1");
    let child = t.command(&["run"]).stdout(Stdio::null()).spawn().unwrap();
    assert!(t.fake.wait_until(WAIT, |hits| hits.len() == 3));
    // Killed while all three requests wait for their answers.
    kill(child);
    t.fake.release();
    let out = t.relay(&["run", "--once"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 left in doubt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Slack takes no idempotency key: not sent again (at most once), said to be in doubt.
    assert_eq!(t.fake.hits("slack").len(), 1);
    let slack = t.destination("slack");
    assert_eq!(slack["counts"]["in_doubt"], 1, "{slack}");
    // Matrix and the webhook got it again with the same key, and dropped the repeat.
    for p in ["matrix", "webhook"] {
        let hits = t.fake.hits(p);
        assert_eq!(hits.len(), 2, "{p}");
        assert!(hits[1].repeat, "{p}: the same key both times");
        assert_eq!(t.destination(p)["counts"]["done"], 1, "{p}");
    }
    let ids: Vec<_> = t
        .fake
        .hits("webhook")
        .iter()
        .map(|h| h.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
    no_problems(&t.fake);
}

#[test]
fn check_sends_a_test_message_and_names_each_problem_by_its_field() {
    let t = Team::new();
    let out = t.relay(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    for p in PLATFORMS {
        assert!(
            said.contains(&format!("{p}: test message posted")),
            "{said}"
        );
        assert_eq!(t.fake.hits(p).len(), 1);
        assert!(t.fake.hits(p)[0].text().contains("Otters"));
    }
    no_problems(&t.fake);
    // A secret that is not there, a missing field: named, and nothing sent.
    let out = t
        .command(&["check"])
        .env_remove("TEST_MATRIX_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "destination[4] (matrix).access_token: the environment variable TEST_MATRIX_TOKEN \
             is not set"
        ),
        "{err}"
    );
    assert_eq!(t.fake.all().len(), 6);
    // No output ever shows a secret.
    assert!(!said.contains(fake::MATRIX_TOKEN) && !err.contains(fake::MATRIX_TOKEN));
    assert!(!said.contains(&t.fake.url("slack")));
}

#[test]
fn each_destination_gets_the_parts_it_asks_for_and_a_challenge_reached_is_celebrated_once() {
    let mut t = Team::new();
    t.write_config("allow_private = [\"127.0.0.1\"]\n", &["slack", "webhook"]);
    // The last table is the webhook's: it takes every part.
    let mut cfg = std::fs::read_to_string(&t.config).unwrap();
    cfg.push_str(
        "post = [\"recognitions\", \"micro-actions\", \"team-notes\", \"celebrations\"]\n",
    );
    std::fs::write(&t.config, cfg).unwrap();
    let today: jiff::civil::Date = date_of(now_ms()).parse().unwrap();
    let challenge = cairn_core::goals::Challenge {
        id: "c1".into(),
        title: "Two kudos this week".into(),
        metric: cairn_core::goals::Metric::Kudos,
        target: 2,
        start: today.yesterday().unwrap(),
        until: today.tomorrow().unwrap(),
    };
    let mut r = Replica::open(&t.replica).unwrap();
    r.change_team("ana", |doc, _| {
        team::add_challenge(doc, &challenge, "ana", now_ms())
    })
    .unwrap();
    drop(r);
    t.relay(&["run", "--once"]);
    assert!(t.fake.all().is_empty());

    t.kudos("kudos number 1");
    t.action("tidied the shared board", "so nobody hunts for tickets");
    t.relay(&["run", "--once"]);
    assert_eq!(texts(&t.fake.hits("slack")).len(), 1, "recognitions only");
    let hooks = t.fake.hits("webhook");
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[1].body["type"], "cairn.micro_action");
    assert_eq!(
        hooks[1].text(),
        "Ana: tidied the shared board (why: so nobody hunts for tickets) #trust"
    );

    t.kudos("kudos number 2");
    t.relay(&["run", "--once"]);
    t.kudos("kudos number 3");
    t.relay(&["run", "--once"]);
    assert_eq!(texts(&t.fake.hits("slack")).len(), 3);
    let celebrations: Vec<Hit> = t
        .fake
        .hits("webhook")
        .into_iter()
        .filter(|h| h.body["type"] == "cairn.celebration")
        .collect();
    assert_eq!(celebrations.len(), 1, "once");
    assert_eq!(
        celebrations[0].text(),
        "🎉 Otters reached the challenge “Two kudos this week”: 2 of 2 kudos"
    );
    no_problems(&t.fake);
}

#[test]
fn a_stalled_destination_holds_back_neither_the_others_nor_the_replica() {
    let mut t = Team::new();
    t.write_config("allow_private = [\"127.0.0.1\"]\n", &["slack", "discord"]);
    t.relay(&["run", "--once"]);
    // Slack stalls every request until the 2 s timeout, then backs off.
    t.fake.script("slack", vec![Answer::Stall; 10]);
    let child = t.command(&["run"]).stdout(Stdio::null()).spawn().unwrap();
    t.kudos("kudos number 1");
    assert!(t.fake.wait_until(WAIT, |hits| {
        hits.iter()
            .any(|h| h.platform == "discord" && h.status == 204)
    }));
    // While Slack's worker waits on its stalls and its backoff (9 s and more), the loop goes
    // on looking at the replica and Discord gets the next kudos at once.
    let written = std::time::Instant::now();
    t.kudos("kudos number 2");
    assert!(t.fake.wait_until(WAIT, |hits| {
        hits.iter()
            .any(|h| h.platform == "discord" && h.status == 204 && h.text().contains("number 2"))
    }));
    let took = written.elapsed();
    // A second relay on the same home would send twice: refused.
    let second = t.command(&["run", "--once"]).output().unwrap();
    kill(child);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another cairn-relay is running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // Before, the next look waited for Slack's 2 s timeouts and its first 5 s retry.
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(t.fake.hits("slack").iter().all(|h| h.status == 0));
}

/// What a look at a large replica costs: `cargo test -p cairn-relay --release --test relay --
/// --ignored --nocapture scan_cost` (`SCAN_EVENTS`, default 150,000 events over two years).
#[test]
#[ignore]
fn scan_cost() {
    let n: usize = std::env::var("SCAN_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let mut t = Team::new();
    t.write_config("allow_private = [\"127.0.0.1\"]\n", &["discord"]);
    let start = now_ms() - 2 * 365 * 86_400_000;
    let step = (2 * 365 * 86_400_000 - 86_400_000) / n as i64;
    let mut r = Replica::open(&t.replica).unwrap();
    let seeding = std::time::Instant::now();
    let mut batch = Vec::new();
    for i in 0..n {
        let at = start + i as i64 * step;
        let b = (i as u64).to_be_bytes();
        let id = EventId::new(at, [b[3], b[4], b[5], b[6], b[7]]);
        let stamp = Stamp {
            at_ms: at,
            tz: "UTC".into(),
            date: date_of(at),
            late: false,
        };
        let new = if i % 3 == 0 {
            NewEvent::kudos(
                vec!["ben".into()],
                "thanks for the review",
                Some("trust".into()),
            )
        } else {
            NewEvent::action("tidied the board", Some("trust".into()), None)
        };
        batch.push((id, stamp, new));
        if batch.len() == 5_000 {
            r.add_events("ana", &batch).unwrap();
            batch.clear();
        }
    }
    r.add_events("ana", &batch).unwrap();
    drop(r);
    eprintln!("seeded {n} events in {:?}", seeding.elapsed());
    let time = |t: &Team| {
        let began = std::time::Instant::now();
        t.relay(&["run", "--once"]);
        began.elapsed()
    };
    eprintln!("first start (history recorded): {:?}", time(&t));
    for _ in 0..3 {
        eprintln!("run --once, nothing new: {:?}", time(&t));
    }
    t.kudos("one new kudos");
    eprintln!("run --once, one new kudos posted: {:?}", time(&t));
    assert_eq!(texts(&t.fake.hits("discord")).len(), 1);
}

/// A server that answers `status` with a body it never finishes: the head and 7 of the 100
/// bytes it announces, then nothing until the client leaves. Returns its port and a count of
/// the requests it took.
fn slow_body_server(status: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let head = format!("HTTP/1.1 {status} X\r\nContent-Length: 100\r\n\r\npartial");
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                // Holds the connection until the client gives up on it.
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    (port, count)
}

#[test]
fn a_body_that_never_ends_is_cut_at_the_timeout_and_judged_by_its_status() {
    let mut t = Team::new();
    let (port, count) = slow_body_server(200);
    t.write_config("allow_private = [\"127.0.0.1\"]\n", &["slack"]);
    let cfg = std::fs::read_to_string(&t.config).unwrap().replace(
        "env:TEST_URL_SLACK",
        &format!("http://127.0.0.1:{port}/slack"),
    );
    std::fs::write(&t.config, cfg).unwrap();
    t.relay(&["run", "--once"]);
    t.kudos("kudos number 1");
    let began = std::time::Instant::now();
    t.relay(&["run", "--once"]);
    // Cut at the 2 s timeout: the 200 was taken, so it is done and not sent again.
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    let slack = t.destination("slack");
    assert_eq!(slack["counts"]["done"], 1, "{slack}");
    t.relay(&["run", "--once"]);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// `GET path` on `addr`, the whole answer.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_say_what_was_delivered_and_what_is_disabled() {
    use std::io::BufRead;
    let mut t = Team::new();
    t.write_config("allow_private = [\"127.0.0.1\"]\n", &["slack", "discord"]);
    t.relay(&["run", "--once"]);
    t.fake
        .script("discord", vec![Answer::Status(410, vec![], "gone".into())]);
    t.kudos("kudos number 1");
    t.relay(&["run", "--once"]);
    let mut child = t
        .command(&["run", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .find_map(|l| {
            l.unwrap()
                .strip_prefix("metrics at http://")
                .map(|a| a.trim_end_matches("/metrics").to_owned())
        })
        .unwrap();
    let page = http_get(&addr, "/metrics");
    let missing = http_get(&addr, "/");
    kill(child);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    for line in [
        "cairn_relay_messages{destination=\"slack\",state=\"done\"} 1",
        "cairn_relay_messages{destination=\"discord\",state=\"failed\"} 1",
        "cairn_relay_destination_disabled{destination=\"discord\"} 1",
        "cairn_relay_destination_disabled{destination=\"slack\"} 0",
        "cairn_relay_oldest_pending_seconds{destination=\"slack\"} 0",
        "cairn_relay_held_for_digest 0",
    ] {
        assert!(page.lines().any(|l| l == line), "{line}\n{page}");
    }
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[test]
fn what_waits_is_posted_as_it_now_reads_and_not_at_all_once_retracted() {
    let mut t = Team::new();
    t.write_config("allow_private = [\"127.0.0.1\"]\n", &["discord"]);
    t.relay(&["run", "--once"]);
    // Discord is gone after the first: the next two wait.
    t.fake
        .script("discord", vec![Answer::Status(410, vec![], "gone".into())]);
    t.kudos("kudos number 1");
    let two = t.kudos("kudos number 2");
    let three = t.kudos("kudos number 3");
    t.relay(&["run", "--once"]);
    assert_eq!(t.destination("discord")["counts"]["pending"], 2);
    let mut r = Replica::open(&t.replica).unwrap();
    r.retract_event("ana", &two, now_ms()).unwrap();
    let edit = cairn_core::Edit {
        text: Some("kudos number 3, edited".into()),
        pillar: None,
        why: None,
    };
    r.edit_event("ana", &three, &edit, now_ms()).unwrap();
    drop(r);
    t.relay(&["run", "--once"]);
    t.relay(&["enable", "discord"]);
    t.relay(&["run", "--once"]);
    let got = texts(&t.fake.hits("discord"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("kudos number 3, edited"), "{got:?}");
    let discord = t.destination("discord");
    assert_eq!(discord["counts"]["failed"], 2, "{discord}");
    assert!(
        discord["latest"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["error"] == "retracted or withdrawn before it was posted"),
        "{discord}"
    );
}

#[test]
fn a_team_streak_milestone_is_celebrated_once() {
    let mut t = Team::new();
    t.write_config("allow_private = [\"127.0.0.1\"]\n", &["webhook"]);
    let mut cfg = std::fs::read_to_string(&t.config).unwrap();
    cfg.push_str("post = [\"recognitions\", \"celebrations\"]\n");
    std::fs::write(&t.config, cfg).unwrap();
    // Three weeks in a row before this one, Ana and Ben at noon on their Tuesdays (half the
    // team active makes a week count).
    let today: jiff::civil::Date = date_of(now_ms()).parse().unwrap();
    let monday = cairn_core::time::week_start(today);
    for weeks in 1..=3 {
        let noon = monday
            .checked_sub(jiff::Span::new().days(7 * weeks - 1))
            .unwrap()
            .at(12, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond();
        let new = NewEvent::action("kept the board tidy", Some("trust".into()), None);
        t.write(&new, now_ms() - noon);
        t.write_as("ben", &new, now_ms() - noon);
    }
    t.relay(&["run", "--once"]);
    assert!(
        t.fake.all().is_empty(),
        "three weeks is no milestone, and history"
    );
    // This week counts once two of the three were active: the fourth week in a row.
    t.kudos("kudos number 1");
    t.relay(&["run", "--once"]);
    let action = NewEvent::action("paired on the release", Some("trust".into()), None);
    t.write_as("ben", &action, 0);
    t.relay(&["run", "--once"]);
    t.kudos("kudos number 2");
    t.relay(&["run", "--once"]);
    let hooks = t.fake.hits("webhook");
    let streaks: Vec<String> = hooks
        .iter()
        .filter(|h| h.body["type"] == "cairn.celebration")
        .map(Hit::text)
        .collect();
    assert_eq!(
        streaks,
        vec!["🎉 Otters kept its team streak: 4 weeks in a row".to_owned()]
    );
    assert_eq!(texts(&hooks).len(), 3, "two kudos and the streak");
    no_problems(&t.fake);
}
