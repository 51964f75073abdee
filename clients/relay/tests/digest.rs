//! The weekly digest: the real `cairn-relay` binary, a real replica holding weeks of a team in
//! Tokyo (written with cairn-store, in the past), the relay's clock set with `CAIRN_RELAY_NOW`,
//! and a fake of every platform.

// Not every test binary uses every part of the fake.
#[allow(dead_code)]
mod fake;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_core::ids::EventId;
use cairn_core::{NewEvent, Stamp, team};
use cairn_store::{NewTeam, Replica};
use fake::{Answer, Fake, Hit, PLATFORMS};
use jiff::ToSpan as _;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cairn-relay");
const TZ: &str = "Asia/Tokyo";

fn tokyo() -> TimeZone {
    TimeZone::get(TZ).unwrap()
}

/// The Monday (in Tokyo) `weeks` weeks before the week of yesterday: every instant of that
/// week and of those after it until yesterday is in the past, whatever day the test runs.
fn monday(weeks: i64) -> Date {
    let yesterday = (jiff::Timestamp::now() - 24.hours())
        .to_zoned(tokyo())
        .date();
    cairn_core::time::week_start(yesterday) - (7 * weeks).days()
}

/// `day` days after `monday`, at `hh:mm` in Tokyo, in UTC milliseconds.
fn at(monday: Date, day: i64, hh: i8, mm: i8) -> i64 {
    (monday + day.days())
        .at(hh, mm, 0, 0)
        .to_zoned(tokyo())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn instant(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// A team in Tokyo (Ana, Ben and Cy, since `since`), a relay home and config, the fake
/// platforms.
struct Week {
    dir: tempfile::TempDir,
    replica: PathBuf,
    config: PathBuf,
    fake: Fake,
    n: u16,
}

impl Week {
    fn new(since: i64) -> Week {
        let dir = tempfile::tempdir().unwrap();
        let replica = dir.path().join("replica.sqlite3");
        let new = NewTeam {
            team_id: "t1".into(),
            team_name: "Otters".into(),
            tz: TZ.into(),
            member_id: "ana".into(),
            member_name: "Ana".into(),
            handle: "ana".into(),
            at_ms: since,
        };
        let mut r = Replica::create(&replica, &new).unwrap();
        for (id, name) in [("ben", "Ben"), ("cy", "Cy")] {
            r.change_team("ana", |doc, state| {
                team::add_member(doc, state, id, name, None, since)
            })
            .unwrap();
        }
        drop(r);
        let fake = Fake::start();
        std::fs::write(dir.path().join("webhook-secret"), fake::WEBHOOK_SECRET).unwrap();
        Week {
            config: dir.path().join("relay.toml"),
            dir,
            replica,
            fake,
            n: 0,
        }
    }

    /// Writes the config: `head` at the top, a destination per `(platform, post)`.
    fn write_config(&self, head: &str, destinations: &[(&str, &str)]) {
        let mut c = format!(
            "home = {:?}\nreplica = {:?}\nallow_http = true\nallow_private = [\"127.0.0.1\"]\n\
             timeout_secs = 20\n{head}\n",
            self.dir.path().join("home"),
            self.replica
        );
        for (p, post) in destinations {
            c.push_str(&format!(
                "[[destination]]\nname = \"{p}\"\nkind = \"{p}\"\npost = {post}\n"
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
                _ => c.push_str(&format!("url = {:?}\n", self.fake.url(p))),
            }
        }
        std::fs::write(&self.config, c).unwrap();
    }

    /// `cairn-relay ARGS` with its clock at `now_ms`.
    fn command(&self, now_ms: i64, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("TEST_MATRIX_TOKEN", fake::MATRIX_TOKEN)
            .env("CAIRN_RELAY_NOW", instant(now_ms))
            .arg("--config")
            .arg(&self.config)
            .args(args);
        cmd
    }

    fn relay(&self, now_ms: i64, args: &[&str]) -> Output {
        let out = self.command(now_ms, args).output().unwrap();
        assert!(
            out.status.success(),
            "cairn-relay {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn once(&self, now_ms: i64) -> String {
        String::from_utf8(self.relay(now_ms, &["run", "--once"]).stdout).unwrap()
    }

    fn status(&self, now_ms: i64) -> Value {
        serde_json::from_slice(&self.relay(now_ms, &["status", "--json"]).stdout).unwrap()
    }

    /// What status says of `name`'s digest at `now_ms`.
    fn digest_status(&self, now_ms: i64, name: &str) -> Value {
        self.status(now_ms)["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()["digest"]
            .clone()
    }

    /// Writes `events` by `author`, each at its instant.
    fn write(&mut self, author: &str, events: Vec<(i64, NewEvent)>) {
        let batch: Vec<_> = events
            .into_iter()
            .map(|(at_ms, new)| {
                self.n += 1;
                let id = EventId::new(at_ms, [(self.n >> 8) as u8, self.n as u8, 0, 0, 1]);
                let date = jiff::Timestamp::from_millisecond(at_ms)
                    .unwrap()
                    .to_zoned(tokyo())
                    .date()
                    .to_string();
                let stamp = Stamp {
                    at_ms,
                    tz: TZ.into(),
                    date,
                    late: false,
                };
                (id, stamp, new)
            })
            .collect();
        Replica::open(&self.replica)
            .unwrap()
            .add_events(author, &batch)
            .unwrap();
    }

    fn kudos(&mut self, from: &str, to: &str, text: &str, at_ms: i64) {
        let new = NewEvent::kudos(vec![to.into()], text, Some("trust".into()));
        self.write(from, vec![(at_ms, new)]);
    }
}

/// The text a person reads in `hit` (every block of a Teams card).
fn text(hit: &Hit) -> String {
    if hit.platform == "teams" {
        let blocks = hit.body["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap();
        return blocks
            .iter()
            .map(|b| {
                b["inlines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["text"].as_str().unwrap())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    hit.text()
}

/// The digests `platform` took (not dropped as repeats), as a person reads them.
fn digests(fake: &Fake, platform: &str) -> Vec<String> {
    fake.hits(platform)
        .iter()
        .filter(|h| !h.repeat && (200..300).contains(&h.status))
        .map(text)
        .filter(|t| t.contains("the week of"))
        .collect()
}

fn no_problems(fake: &Fake) {
    for h in fake.all() {
        assert_eq!(h.problem, None, "{}: {}", h.platform, h.body);
    }
}

/// Every platform but Mattermost asks for the digest.
fn all_but_mattermost() -> Vec<(&'static str, &'static str)> {
    PLATFORMS
        .iter()
        .map(|p| {
            let post = if *p == "mattermost" {
                "[\"recognitions\"]"
            } else {
                "[\"recognitions\", \"digest\"]"
            };
            (*p, post)
        })
        .collect()
}

#[test]
fn the_digest_arrives_once_where_asked_with_the_weeks_figures_and_late_kudos() {
    let w = monday(3);
    let next = w + 7.days();
    let mut t = Week::new(at(w, -14, 9, 0));
    t.write_config("", &all_but_mattermost());
    // The relay's first start, Tuesday of the week: nothing of history to post.
    assert!(t.once(at(w, 1, 10, 0)).contains("history recorded"));

    // The week: two kudos and a micro-action, each seen by the relay within the hour (the
    // kudos posted as they come).
    t.kudos("ana", "ben", "the calm write-up", at(w, 2, 11, 0));
    t.once(at(w, 2, 11, 30));
    let action = NewEvent::action("tidied the backlog", Some("trust".into()), None);
    t.write("ben", vec![(at(w, 2, 12, 0), action)]);
    t.once(at(w, 2, 12, 30));
    t.kudos("cy", "ana", "pairing on the release", at(w, 3, 15, 0));
    t.once(at(w, 3, 16, 0));
    // Late: Ben's kudos of Friday reaches the relay on Saturday, and Cy's of the week
    // before on the same look: both held for the digest.
    t.kudos("ben", "cy", "the late-night fix", at(w, 4, 10, 0));
    t.kudos("cy", "ben", "last week's demo", at(w, -4, 10, 0));
    let out = t.once(at(w, 5, 12, 0));
    assert!(out.contains("2 held for the digest"), "{out}");
    assert_eq!(t.status(at(w, 5, 12, 0))["held_for_digest"], 2);
    assert_eq!(
        t.fake.hits("slack").len(),
        2,
        "the two kudos on time, nothing else"
    );

    // A minute before Monday 09:00 in Tokyo: not yet, and status says when.
    t.once(at(next, 0, 8, 59));
    assert!(PLATFORMS.iter().all(|p| digests(&t.fake, p).is_empty()));
    let s = t.digest_status(at(next, 0, 8, 59), "slack");
    assert_eq!(
        s["next_due"],
        format!("{next}T09:00:00+09:00[Asia/Tokyo]"),
        "{s}"
    );
    assert_eq!(s["schedule"], "monday 09:00");

    // Monday 09:05: the digest of the week, once at each destination that asks for it.
    let out = t.once(at(next, 0, 9, 5));
    assert!(
        out.contains(&format!("the digest of the week of {w} queued")),
        "{out}"
    );
    // Through restarts: the next looks post nothing again.
    t.once(at(next, 0, 9, 30));
    t.once(at(next, 3, 9, 0));
    no_problems(&t.fake);
    assert!(
        digests(&t.fake, "mattermost").is_empty(),
        "mattermost did not ask"
    );
    assert_eq!(t.fake.hits("mattermost").len(), 2);
    for p in PLATFORMS.iter().filter(|p| **p != "mattermost") {
        let got = digests(&t.fake, p);
        assert_eq!(got.len(), 1, "{p}: {got:?}");
        let text = got[0].replace("**", "").replace('\\', "");
        for want in [
            format!("Otters: the week of {w} to {}", w + 6.days()),
            "1 micro-action and 3 recognitions from 3 of 3 members.".into(),
            "Ana thanked Ben: “the calm write-up”".into(),
            "Cy thanked Ana: “pairing on the release”".into(),
            // Held, of its week: quoted among the week's (and once).
            "Ben thanked Cy: “the late-night fix”".into(),
            // Held, of the week before: in this digest, with its day.
            format!("Cy thanked Ben: “last week's demo” ({})", w - 4.days()),
            "Team streak".into(),
            "Pillar mix".into(),
        ] {
            assert!(text.contains(&want), "{p}: {want:?} not in {text}");
        }
        assert_eq!(text.matches("the late-night fix").count(), 1, "{p}: {text}");
        // Nobody's own numbers, no spotlight of one person.
        let lower = text.to_lowercase();
        for never in ["spotlight", "you", "top", "most"] {
            assert!(!lower.contains(never), "{p}: {never:?} in {text}");
        }
    }
    // The whole digest as Matrix's plain body reads it: nothing but the team's.
    let matrix = digests(&t.fake, "matrix").remove(0);
    let expected = format!(
        "Otters: the week of {w} to {end}\n\
         1 micro-action and 3 recognitions from 3 of 3 members.\n\
         \n\
         Team streak\n\
         • 1 week in a row, best 1, consistency 0%\n\
         \n\
         Pillar mix\n\
         • #trust: 4\n\
         • #empowerment: 0\n\
         • #professionalism: 0\n\
         \n\
         Our commitments\n\
         • none yet\n\
         \n\
         Recognitions\n\
         • Ben thanked Cy: “the late-night fix”\n\
         • Cy thanked Ana: “pairing on the release”\n\
         • Ana thanked Ben: “the calm write-up”\n\
         \n\
         New team badges\n\
         • Nobody left out: every member has been recognised at least once\n\
         \n\
         Arrived late\n\
         • Cy thanked Ben: “last week's demo” ({late})",
        end = w + 6.days(),
        late = w - 4.days(),
    );
    assert_eq!(matrix, expected);
    // What a person reads in status.
    let out = t.relay(at(next, 3, 9, 0), &["status"]);
    let out = String::from_utf8(out.stdout).unwrap();
    let due = format!("{}T09:00:00+09:00[Asia/Tokyo]", next + 7.days());
    assert!(
        out.contains(&format!(
            "  digest (monday 09:00, Asia/Tokyo): next due {due}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("  digest of the week of {w}: posted")),
        "{out}"
    );
    // The held events are used: none waits for the next digest.
    let status = t.status(at(next, 3, 9, 0));
    assert_eq!(status["held_for_digest"], 0);
    let slack = t.digest_status(at(next, 3, 9, 0), "slack");
    assert_eq!(slack["last_week"], w.to_string());
    assert_eq!(slack["last"], "posted");
    assert_eq!(
        slack["next_due"],
        format!("{}T09:00:00+09:00[Asia/Tokyo]", next + 7.days())
    );
}

#[test]
fn no_digest_of_history_one_back_within_its_week_and_one_missed_is_said() {
    let w = monday(4);
    let mut t = Week::new(at(w, -14, 9, 0));
    t.write_config("", &all_but_mattermost());
    t.kudos("ana", "ben", "before the relay", at(w, 2, 11, 0));
    // First started on Tuesday of the week after: the week before is history, though the
    // relay is running after Monday 09:00.
    let w1 = w + 7.days();
    t.once(at(w1, 1, 10, 0));
    t.once(at(w1, 4, 10, 0));
    assert!(t.fake.all().is_empty(), "no digest of history");
    let s = t.digest_status(at(w1, 4, 10, 0), "discord");
    assert_eq!(s["last_week"], w.to_string());
    assert!(s["last"].as_str().unwrap().contains("history"), "{s}");

    // Down at Monday 09:00 of the week after; back on Wednesday: the digest of the week it
    // began in (and it began after the first start: its week is no history).
    let w2 = w1 + 7.days();
    t.kudos("ben", "cy", "an on-time kudos", at(w1, 2, 11, 0));
    let out = t.once(at(w2, 2, 10, 0));
    assert!(
        out.contains(&format!("the digest of the week of {w1} queued")),
        "{out}"
    );
    for p in PLATFORMS.iter().filter(|p| **p != "mattermost") {
        let got = digests(&t.fake, p);
        assert_eq!(got.len(), 1, "{p}: {got:?}");
        let text = got[0].replace('\\', "");
        assert!(text.contains(&format!("the week of {w1}")), "{p}: {text}");
        assert!(text.contains("“an on-time kudos”"), "{p}: {text}");
    }
    // Down from before the next Monday 09:00 until the Monday after, 08:00: that week's
    // digest is skipped, and status says so.
    let w4 = w2 + 14.days();
    let before = t.fake.all().len();
    t.once(at(w4, 0, 8, 0));
    assert_eq!(
        t.fake.all().len(),
        before,
        "a missed digest is not posted late"
    );
    let s = t.digest_status(at(w4, 0, 8, 0), "discord");
    assert_eq!(s["last_week"], w2.to_string());
    assert!(s["last"].as_str().unwrap().starts_with("skipped"), "{s}");
    no_problems(&t.fake);
}

#[test]
fn the_run_loop_wakes_for_the_digest_with_nothing_else_happening() {
    let w = monday(3);
    let mut t = Week::new(at(w, -14, 9, 0));
    // Looks at the replica once an hour: only the digest's own time can wake it sooner.
    t.write_config(
        "poll_interval_secs = 3600",
        &[("discord", "[\"digest\"]"), ("slack", "[\"recognitions\"]")],
    );
    t.once(at(w, 0, 10, 0));
    t.kudos("ana", "cy", "the quiet fix", at(w, 2, 11, 0));
    let next = w + 7.days();
    // Started two seconds before Monday 09:00 in Tokyo.
    let start = Instant::now();
    let mut child = t
        .command(at(next, 0, 8, 59) + 58_000, &["run"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let arrived = t.fake.wait_until(Duration::from_secs(30), |hits| {
        hits.iter()
            .any(|h| h.platform == "discord" && h.status != 0)
    });
    let took = start.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(arrived, "no digest within 30 s");
    println!(
        "digest posted {} ms after the relay started, 2 s before its time",
        took.as_millis()
    );
    assert!(
        took >= Duration::from_millis(1_900),
        "posted before its time: {took:?}"
    );
    let got = digests(&t.fake, "discord");
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("the quiet fix"), "{}", got[0]);
    assert!(t.fake.hits("slack").is_empty(), "slack asked for no digest");
}

#[test]
fn each_platforms_limit_holds_for_a_long_week() {
    let w = monday(3);
    let next = w + 7.days();
    let mut t = Week::new(at(w, -14, 9, 0));
    let every: Vec<(&str, &str)> = PLATFORMS.iter().map(|p| (*p, "[\"digest\"]")).collect();
    t.write_config("", &every);
    t.once(at(w, 0, 0, 30));
    // A hundred kudos of 500 characters, wide in bytes and full of what each platform
    // escapes; they reach the relay on Monday morning, too late to post alone: all held.
    let words = "🦦🦦🦦🦦&<*_@here ".repeat(40);
    let words: String = words.chars().take(495).collect();
    let kudos: Vec<_> = (0..100)
        .map(|i| {
            let new = NewEvent::kudos(vec!["ben".into()], &format!("{i:03} {words}"), None);
            (at(w, i / 15, 9, (i % 15) as i8), new)
        })
        .collect();
    t.write("ana", kudos);
    let out = t.once(at(next, 0, 9, 1));
    assert!(out.contains("100 held for the digest"), "{out}");
    no_problems(&t.fake);
    for p in PLATFORMS {
        let hits: Vec<Hit> = t
            .fake
            .hits(p)
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .collect();
        assert_eq!(hits.len(), 1, "{p}");
        let body_bytes = hits[0].body.to_string().len();
        let text = text(&hits[0]);
        println!(
            "{p}: {} characters, {body_bytes} bytes of JSON",
            text.chars().count()
        );
        match p {
            "slack" => {
                let section = hits[0].body["blocks"][0]["text"]["text"].as_str().unwrap();
                assert!(section.chars().count() <= 3_000);
                for (i, _) in section.match_indices('&') {
                    let rest = &section[i..];
                    assert!(
                        ["&amp;", "&lt;", "&gt;"]
                            .iter()
                            .any(|e| rest.starts_with(e)),
                        "an entity cut: {}",
                        &rest[..rest.len().min(8)]
                    );
                }
            }
            "mattermost" => assert!(text.chars().count() <= 16_383),
            "discord" => assert!(text.chars().count() <= 2_000),
            "teams" => assert!(body_bytes <= 24_000, "{body_bytes}"),
            "matrix" => {
                assert!(body_bytes <= 48_000, "{body_bytes}");
                let html = hits[0].body["formatted_body"].as_str().unwrap();
                assert!(
                    !html.contains("<*") && !html.contains("&<"),
                    "unescaped HTML"
                );
            }
            _ => {}
        }
        if matches!(p, "mattermost" | "discord") {
            // A backslash escape is never left without what it escapes.
            assert!(!text.contains("\\…") && !text.ends_with('\\'), "{p}");
        }
        assert!(!text.contains("@here"), "{p}: a mention got through");
        if p == "webhook" {
            // A program's copy has no limit: every quote whole, the late ones counted past 20.
            let digest = &hits[0].body["data"]["digest"];
            let late = digest["sections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["title"] == "Arrived late")
                .unwrap();
            assert!(
                late.to_string().contains("and 75 more that arrived late"),
                "{late}"
            );
        } else {
            // Cut to fit, with what was left out counted or the words ended with `…`.
            assert!(
                text.contains('…') || text.contains("not shown here"),
                "{p}: {text}"
            );
            assert!(
                text.replace("**", "").contains("Otters: the week of"),
                "{p}"
            );
            assert!(text.contains("from 1 of 3 members"), "{p}");
        }
    }
    assert_eq!(t.status(at(next, 0, 9, 2))["held_for_digest"], 0);
}

#[test]
fn an_operator_sees_the_digest_and_can_send_it_now_once() {
    let w = monday(3);
    let mut t = Week::new(at(w, -14, 9, 0));
    t.write_config("", &all_but_mattermost());
    t.once(at(w, 0, 10, 0));
    t.kudos("ana", "ben", "the calm write-up", at(w, 2, 11, 0));
    t.once(at(w, 2, 11, 30));
    let posted = t.fake.all().len();
    // Wednesday of the week after: the preview of last week's digest, nothing sent.
    let now = at(w, 9, 10, 0);
    let out = String::from_utf8(t.relay(now, &["digest"]).stdout).unwrap();
    assert!(
        out.contains(&format!("Otters: the week of {w} to {}", w + 6.days())),
        "{out}"
    );
    assert!(
        out.contains("Ana thanked Ben: “the calm write-up”"),
        "{out}"
    );
    assert!(out.contains("--send-now` posts it to: slack, discord, teams, matrix, webhook"));
    assert_eq!(t.fake.all().len(), posted);
    // Sent now: once at each destination that asks; a second time, nothing.
    let out = String::from_utf8(t.relay(now, &["digest", "--send-now"]).stdout).unwrap();
    assert!(out.contains(&format!("slack: digest:{w} queued")), "{out}");
    let again = String::from_utf8(t.relay(now, &["digest", "--send-now"]).stdout).unwrap();
    assert!(again.contains("was queued or posted already"), "{again}");
    // Nor does its time, later, post it again.
    t.once(at(w, 9, 11, 0));
    no_problems(&t.fake);
    for p in PLATFORMS {
        let n = usize::from(p != "mattermost");
        assert_eq!(digests(&t.fake, p).len(), n, "{p}");
    }
    // A week that is not a date is refused by name.
    let out = t
        .command(now, &["digest", "--week", "last"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--week"));
}

#[test]
fn a_digest_in_flight_when_the_relay_dies_is_sent_again_only_with_an_idempotency_key() {
    let w = monday(3);
    let next = w + 7.days();
    let mut t = Week::new(at(w, -14, 9, 0));
    t.write_config("", &all_but_mattermost());
    t.once(at(w, 0, 10, 0));
    t.kudos("ana", "ben", "the calm write-up", at(w, 2, 11, 0));
    t.once(at(w, 2, 11, 30));
    let before = t.fake.all().len();
    // Every destination that asks holds its answer: the kill finds each request in flight.
    for p in ["slack", "discord", "teams", "matrix", "webhook"] {
        t.fake.script(p, vec![Answer::Stall]);
    }
    // Monday 09:00:30: the loop queues the digest; killed while the five requests wait.
    let mut child = t
        .command(at(next, 0, 9, 0) + 30_000, &["run"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let five = |hits: &[Hit]| hits.len() == before + 5;
    assert!(t.fake.wait_until(Duration::from_secs(30), five));
    child.kill().unwrap();
    child.wait().unwrap();
    t.fake.release();
    let out = t
        .command(at(next, 0, 9, 10), &["run", "--once"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("2 message(s) sent again") && said.contains("3 left in doubt"),
        "{said}"
    );
    // Slack, Discord and Teams take no idempotency key: never sent again, in doubt (it was
    // posted: the fake saw it). Matrix and the webhook: sent again with the same key, the
    // repeat dropped.
    for p in ["slack", "discord", "teams"] {
        assert_eq!(
            t.fake.hits(p).len(),
            2,
            "{p}: the kudos and the digest, once"
        );
        assert_eq!(t.digest_status(at(next, 0, 9, 10), p)["last"], "in doubt");
    }
    for p in ["matrix", "webhook"] {
        let hits = t.fake.hits(p);
        assert_eq!(hits.len(), 3, "{p}: the kudos, the digest and its repeat");
        assert!(hits[2].repeat, "{p}: the same key both times");
        assert_eq!(t.digest_status(at(next, 0, 9, 10), p)["last"], "posted");
    }
    // Each digest reached each platform that asks once (the stalled ones never answered the
    // killed relay; a repeat dropped by its key is not a second post).
    for p in PLATFORMS {
        let reached = t
            .fake
            .hits(p)
            .iter()
            .filter(|h| !h.repeat && text(h).contains("the week of"))
            .count();
        assert_eq!(reached, usize::from(p != "mattermost"), "{p}");
    }
    no_problems(&t.fake);
}

#[test]
fn a_member_not_named_in_chat_is_counted_in_the_digest_and_never_named() {
    let w = monday(3);
    let next = w + 7.days();
    let mut t = Week::new(at(w, -14, 9, 0));
    t.write_config("", &[("discord", "[\"recognitions\", \"digest\"]")]);
    // Ben said no (`cairn me chat off`), on his own device.
    Replica::open(&t.replica)
        .unwrap()
        .change_team("ben", |doc, state| {
            team::set_named_in_chat(doc, state, "ben", false)
        })
        .unwrap();
    t.once(at(w, 0, 10, 0));
    t.kudos("ana", "ben", "the quiet help", at(w, 2, 11, 0));
    t.once(at(w, 2, 11, 30));
    t.kudos("cy", "ana", "pairing on the release", at(w, 3, 15, 0));
    t.once(at(w, 3, 16, 0));
    // Late, by Ben: held, then counted and not quoted.
    t.kudos("ben", "cy", "the late-night fix", at(w, 4, 10, 0));
    t.once(at(w, 5, 12, 0));
    t.once(at(next, 0, 9, 5));
    no_problems(&t.fake);
    let got = digests(&t.fake, "discord");
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0].replace("**", "").replace('\\', "");
    assert!(
        text.contains("0 micro-actions and 3 recognitions from 3 of 3 members."),
        "{text}"
    );
    assert!(
        text.contains("Cy thanked Ana: “pairing on the release”"),
        "{text}"
    );
    assert!(
        text.contains("and 2 more recognitions in the feed"),
        "{text}"
    );
    for never in ["Ben", "quiet help", "late-night", "Arrived late"] {
        assert!(!text.contains(never), "{never:?} in {text}");
    }
}
