//! `cairn web` end to end: the real `cairn` binary serving a member's replica, a real
//! `cairn-server` between members, and a real Chromium driven over WebDriver.

use std::time::{Duration, Instant};

use cairn_e2e::browser::{Browser, Web, screenshot_dir};
use cairn_e2e::http::{connect, exchange};
use cairn_e2e::{Home, Server, feed};
use fantoccini::Locator;

/// A home on the real clock: the web app reads the time at each request.
fn live_home() -> Home {
    let mut home = Home::new();
    home.day = None;
    home
}

/// One raw HTTP/1.1 request; returns the status and the whole answer (head and body).
fn raw(web: &Web, request: &str) -> (u16, String) {
    let addr = web.base.trim_start_matches("http://");
    let mut s = connect(addr, Duration::from_secs(30));
    let (answer, _) = exchange(&mut s, request.as_bytes());
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

fn get(web: &Web, path: &str, cookie: Option<&str>) -> (u16, String) {
    let addr = web.base.trim_start_matches("http://");
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    raw(
        web,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Connection: close\r\n\r\n"),
    )
}

fn post(web: &Web, path: &str, cookie: &str, extra: &str, body: &str) -> (u16, String) {
    let addr = web.base.trim_start_matches("http://");
    raw(
        web,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n{extra}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The hidden CSRF token of the forms of a page.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form");
    page[at + 19..].chars().take_while(|c| *c != '"').collect()
}

#[test]
fn the_web_app_refuses_strangers_and_escapes_what_members_typed() {
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["log", "<script>alert('x')</script> & <b>bold</b>"])
        .ok();
    let web = Web::start(&ana, &[]);
    assert!(web.base.starts_with("http://127.0.0.1:"), "{}", web.base);

    // The link's key is spent by its first use, for a session cookie of another value, and
    // the address loses it.
    let (status, answer) = get(&web, &format!("/feed?key={}", web.key()), None);
    assert_eq!(status, 303, "{answer}");
    assert!(answer.contains("location: /feed\r\n"), "{answer}");
    let set = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a cookie");
    assert!(
        set.ends_with("; HttpOnly; SameSite=Strict; Path=/"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let session = cookie.split_once('=').unwrap().1;
    assert_eq!(cookie, format!("cairn-{}={session}", web.port()));
    assert_eq!(session.len(), web.key().len());
    assert_ne!(session, web.key(), "the cookie is not the link's key");
    // Once spent, the key opens nothing: not for anyone who read it afterwards, not as a cookie.
    let (status, answer) = get(&web, &format!("/?key={}", web.key()), None);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("This link was used already"), "{answer}");
    assert!(!answer.contains("set-cookie"), "{answer}");
    let as_cookie = format!("cairn-{}={}", web.port(), web.key());
    assert_eq!(get(&web, "/feed", Some(&as_cookie)).0, 403);
    // The browser that holds the session goes on from the link (a reload, Back).
    let (status, answer) = get(&web, &format!("/?key={}", web.key()), Some(&cookie));
    assert_eq!(status, 303, "{answer}");
    assert!(!answer.contains("set-cookie"), "{answer}");

    // Without the key, or with another, nothing is shown.
    let (status, answer) = get(&web, "/feed", None);
    assert_eq!(status, 403);
    assert!(!answer.contains("alert"), "{answer}");
    assert_eq!(get(&web, "/?key=0123", None).0, 403);
    let wrong = format!("cairn-{}=0123456789abcdef0123456789abcdef", web.port());
    assert_eq!(get(&web, "/feed", Some(&wrong)).0, 403);

    // A name that is not an address (DNS rebinding) is refused, key or not.
    let (status, _) = raw(
        &web,
        &format!(
            "GET /feed HTTP/1.1\r\nHost: evil.example:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
            web.port()
        ),
    );
    assert_eq!(status, 421);

    // With the key: the page, escaped, under a strict policy.
    let (status, page) = get(&web, "/feed", Some(&cookie));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"));
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("content-security-policy: default-src 'none'; script-src 'self'"));
    assert!(page.to_lowercase().contains("x-frame-options: deny"));

    // A write needs the form's token, and comes from no other site.
    let token = csrf(&page);
    let before = feed(&ana, &[]).len();
    let (status, _) = post(&web, "/log", &cookie, "", "text=no+token");
    assert_eq!(status, 403);
    let (status, _) = post(&web, "/log", &cookie, "", "text=bad+token&csrf=00");
    assert_eq!(status, 403);
    let (status, _) = post(
        &web,
        "/log",
        &cookie,
        "Origin: http://evil.example\r\n",
        &format!("text=from+elsewhere&csrf={token}"),
    );
    assert_eq!(status, 403);
    assert_eq!(feed(&ana, &[]).len(), before, "nothing was written");

    // A good write goes back to the feed; the CLI sees it.
    let (status, answer) = post(
        &web,
        "/log",
        &cookie,
        "",
        &format!("text=Wrote+the+runbook&pillar=trust&csrf={token}&back=%2Ffeed"),
    );
    assert_eq!(status, 303, "{answer}");
    assert!(answer.contains("location: /feed?done=logged"), "{answer}");
    let items = feed(&ana, &[]);
    assert_eq!(items[0]["text"], "Wrote the runbook");
    assert_eq!(items[0]["pillar"], "trust");

    // A bad one says what is wrong beside the field, and keeps what was typed.
    let (status, page) = post(
        &web,
        "/kudos",
        &cookie,
        "",
        &format!("text=Great+demo&csrf={token}&back=%2Ffeed"),
    );
    assert_eq!(status, 422);
    assert!(
        page.contains("id=\"kudos-to-error\" role=\"alert\">name at least one teammate"),
        "{page}"
    );
    assert!(page.contains("value=\"Great demo\""), "{page}");
    let (status, page) = post(
        &web,
        "/kudos",
        &cookie,
        "",
        &format!("to=zed&text=Great+demo&csrf={token}"),
    );
    assert_eq!(status, 422);
    assert!(page.contains("unknown member `@zed`"), "{page}");
    // A redirect never leaves the app.
    let (status, answer) = post(
        &web,
        "/log",
        &cookie,
        "",
        &format!("text=Again&csrf={token}&back=%2F%2Fevil.example"),
    );
    assert_eq!(status, 303);
    assert!(answer.contains("location: /feed?done="), "{answer}");

    // Beyond loopback only the team screen may listen.
    let err = ana.run(&["web", "--listen", "0.0.0.0:0"]).fails();
    assert!(
        err.contains("loopback") && err.contains("--team-screen"),
        "{err}"
    );
}

#[test]
fn a_host_name_for_loopback_is_heard_and_the_feed_pages_back_to_its_first_event() {
    let ana = Home::team("Ana", &[]);
    for i in 0..25 {
        ana.run(&["log", &format!("Step {i}")]).ok();
    }
    // A name that resolves to loopback is loopback.
    let web = Web::start(&ana, &["--listen", "localhost:0"]);
    let host = web.base.trim_start_matches("http://");
    assert!(
        host.starts_with("127.0.0.1:") || host.starts_with("[::1]:"),
        "{}",
        web.base
    );
    let cookie = web.session();
    // Page by page through the "Older" links, each going on before the last item shown.
    let mut path = "/feed?limit=10".to_owned();
    let mut steps = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = get(&web, &path, Some(&cookie));
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for part in page.split("Step ").skip(1) {
            steps.push(part.split('<').next().unwrap().to_owned());
        }
        if pages > 1 {
            assert!(page.contains(">Newest</a>"), "{page}");
        }
        let Some(at) = page.find("\" rel=\"next\"") else {
            break;
        };
        let href = page[..at].rsplit("href=\"").next().unwrap();
        path = href.replace("&amp;", "&");
        assert!(path.contains("before="), "{path}");
    }
    let want: Vec<String> = (0..25).rev().map(|i| i.to_string()).collect();
    assert_eq!(steps, want, "every event once, newest first");
    assert_eq!(pages, 3);
    // A team of one reads in the singular.
    let (_, streaks) = get(&web, "/streaks?weeks=1", Some(&cookie));
    assert!(streaks.contains("per day, 1 week from"), "{streaks}");
    let (_, team) = get(&web, "/team", Some(&cookie));
    assert!(team.contains("0 of 1 member recognised"), "{team}");
    drop(web);
    // A name beyond loopback is refused as an address is.
    let err = ana.run(&["web", "--listen", "0.0.0.0:0"]).fails();
    assert!(err.contains("loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_logs_thanks_reacts_and_retracts_in_a_browser_and_sees_a_teammate_arrive() {
    let Some(browser) = Browser::for_test().await else {
        return;
    };
    let b = &browser;
    let server = Server::start();
    let ana = live_home();
    ana.run(&[
        "init",
        "--team",
        "Otters",
        "--name",
        "Ana",
        "--tz",
        "Europe/Paris",
    ])
    .ok();
    ana.run(&["team", "member", "add", "Bo Berg"]).ok();
    ana.run(&[
        "team",
        "commit",
        "We review within a day",
        "--why",
        "Waiting kills flow",
    ])
    .ok();
    ana.run(&[
        "challenge",
        "add",
        "20 kudos this quarter",
        "--metric",
        "kudos",
        "--target",
        "20",
        "--until",
        "2099-12-31",
    ])
    .ok();
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    let mut bo = Home::new();
    bo.day = None;
    bo.run(&[
        "join",
        &server.url,
        "--invite",
        &server.invite_for(&team, "@bo-berg"),
        "--claim",
        "@bo-berg",
    ])
    .ok();
    ana.run(&["sync"]).ok();

    let web = Web::start(&ana, &["--sync-every", "1"]);
    b.client.goto(&web.link).await.expect("the link opens");
    b.wait_for("form#log").await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/feed"),
        "the key left the address"
    );

    // Log a micro-action through the form.
    let text = b.client.find(Locator::Css("#log-text")).await.unwrap();
    text.send_keys("Paired with Bo on the release notes")
        .await
        .unwrap();
    let pillar = b.client.find(Locator::Css("#log-pillar")).await.unwrap();
    pillar.select_by_value("trust").await.unwrap();
    b.type_into("#log-why", "Bo is new here").await;
    b.click("#log button[type=submit]").await;
    b.wait_for_text("Done: logged").await;
    b.wait_for_text("Paired with Bo on the release notes").await;

    // Kudos without a teammate: the error shows beside the field, the text stays.
    b.type_into("#kudos-text", "Calm incident call").await;
    b.click("#kudos button[type=submit]").await;
    let error = b.wait_for("#kudos-to-error").await;
    assert!(
        error
            .text()
            .await
            .unwrap()
            .contains("at least one teammate"),
        "the error is about the teammates"
    );
    let kept = b.client.find(Locator::Css("#kudos-text")).await.unwrap();
    assert_eq!(
        kept.prop("value").await.unwrap().as_deref(),
        Some("Calm incident call")
    );

    // Kudos to Bo, picked by name.
    b.click("input[name=to][value=bo-berg]").await;
    b.click("#kudos button[type=submit]").await;
    b.wait_for_text("Done: recognised").await;
    b.wait_for_text("Ana recognised Bo Berg").await;

    // React to the kudos, then see it counted and pressed.
    let kudos_item = b.wait_for("li.item.kudos").await;
    kudos_item
        .find(Locator::Css("button[value='🎉']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let pressed = b
        .wait_for("li.item.kudos button.reaction[aria-pressed=true]")
        .await;
    assert_eq!(pressed.text().await.unwrap().trim(), "🎉 1");

    // Retract the micro-action (the page asks first).
    let logged = b
        .client
        .find(Locator::XPath(
            "//li[contains(., 'Paired with Bo on the release notes')]",
        ))
        .await
        .unwrap();
    logged
        .find(Locator::Css("form.retract button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.client.accept_alert().await.expect("the page asks first");
    b.wait_for_text("Done: retracted").await;
    assert!(
        !b.text()
            .await
            .contains("Paired with Bo on the release notes"),
        "the retracted event left the feed"
    );

    // The CLI reads the same replica: the kudos and its reaction, not the retracted event.
    let items = feed(&ana, &[]);
    let texts: Vec<&str> = items.iter().filter_map(|i| i["text"].as_str()).collect();
    assert!(texts.contains(&"Calm incident call"), "{texts:?}");
    assert!(!texts.contains(&"Paired with Bo on the release notes"));
    let kudos = items
        .iter()
        .find(|i| i["text"] == "Calm incident call")
        .unwrap();
    assert_eq!(kudos["to"][0], "bo-berg");
    assert_eq!(kudos["reactions"][0]["emoji"], "🎉");

    // The web app syncs after a write: Bo gets the kudos from the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        bo.run(&["sync"]).ok();
        if feed(&bo, &[])
            .iter()
            .any(|i| i["text"] == "Calm incident call")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Ana's kudos never reached the server"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Bo logs from his terminal; Ana's open page shows it without a reload by hand.
    bo.run(&[
        "log",
        "Fixed the flaky deploy test",
        "--pillar",
        "professionalism",
    ])
    .ok();
    bo.run(&["sync"]).ok();
    b.wait_for_text("Fixed the flaky deploy test").await;

    // Edit through the form.
    b.client.goto(&format!("{}/feed", web.base)).await.unwrap();
    let kudos_item = b.wait_for("li.item.kudos").await;
    kudos_item
        .find(Locator::Css("a.edit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let edit = b.wait_for("#edit-text").await;
    edit.clear().await.unwrap();
    edit.send_keys("Calm, clear incident call").await.unwrap();
    b.click("main form button[type=submit]").await;
    b.wait_for_text("Done: edited").await;
    b.wait_for_text("Calm, clear incident call").await;

    // Every page, for a person to look at.
    let mut shots = Vec::new();
    for (path, name, expect) in [
        ("/feed", "feed", "Give kudos"),
        ("/streaks", "streaks", "Team activity"),
        ("/team", "team", "We review within a day"),
        ("/digest", "digest", "Ready to paste"),
        ("/me", "me", "only you see this page"),
    ] {
        b.client.goto(&format!("{}{path}", web.base)).await.unwrap();
        b.wait_for_text(expect).await;
        shots.push(b.screenshot(name).await);
    }
    b.client
        .goto(&format!("{}/streaks", web.base))
        .await
        .unwrap();
    b.wait_for("svg rect.today").await;

    // The team screen: team views only, no forms, no personal numbers.
    let screen = Web::start(&ana, &["--team-screen", "--listen", "0.0.0.0:0"]);
    b.client.goto(&screen.link).await.unwrap();
    b.wait_for_text("Team screen: team views only").await;
    for (path, name, expect) in [
        ("/feed", "screen-feed", "Calm, clear incident call"),
        ("/streaks", "screen-streaks", "Team streak"),
        ("/team", "screen-team", "Team badges"),
        ("/digest", "screen-digest", "Recognitions"),
    ] {
        b.client
            .goto(&format!("{}{path}", screen.base))
            .await
            .unwrap();
        b.wait_for_text(expect).await;
        let text = b.text().await;
        for private in [
            "Your streak",
            "Your badges",
            "freeze",
            "Log a micro-action",
            "nudge",
        ] {
            assert!(!text.contains(private), "{path} shows `{private}`:\n{text}");
        }
        let forms = b
            .client
            .find_all(Locator::Css("form[method=post]"))
            .await
            .unwrap();
        assert!(forms.is_empty(), "{path} has forms that write");
        let me_links = b
            .client
            .find_all(Locator::Css("a[href='/me']"))
            .await
            .unwrap();
        assert!(me_links.is_empty(), "{path} links to the personal page");
        shots.push(b.screenshot(name).await);
    }
    b.client.goto(&format!("{}/me", screen.base)).await.unwrap();
    b.wait_for_text("No such page").await;
    for shot in &shots {
        let size = std::fs::metadata(shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is only {size} bytes", shot.display());
    }
    eprintln!("screenshots in {}", screenshot_dir().display());
}

#[test]
fn the_streaks_page_shows_the_figures_cairn_streaks_shows() {
    // Three weeks of a team of three (half of it makes a week count): two members the first,
    // one the second, two the third; Ana every day of the third so far. Bo and Cy were added by
    // name and count from their first stone: one of two members was enough in the second week.
    let mut ana = Home::team("Ana", &["Bo", "Cy"]);
    let mut on = |day: &str, who: &str, text: &str| {
        ana.day = Some(day.to_owned());
        ana.run(&["--as", who, "log", text]).ok();
    };
    on("2026-11-23", "ana", "Paired on a review");
    on("2026-11-24", "bo", "Fixed the flaky test");
    on("2026-11-30", "ana", "Explained the why");
    on("2026-12-07", "ana", "Picked up the litter");
    on("2026-12-07", "cy", "Checked in on a teammate");
    on("2026-12-08", "ana", "Delegated the release");
    on("2026-12-09", "ana", "Wrote the runbook");
    let cli = ana.run(&["streaks", "--json"]).json();
    assert_eq!(cli["team"]["current"], 3, "{cli}");
    assert_eq!(cli["team"]["best"], 3, "{cli}");
    assert_eq!(cli["you"]["current"], 3, "{cli}");
    let web = Web::start(&ana, &[]);
    let cookie = web.session();
    let (status, page) = get(&web, "/streaks", Some(&cookie));
    assert_eq!(status, 200, "{page}");
    for (name, figure) in [("team", "week"), ("you", "day")] {
        let (current, best) = (&cli[name]["current"], &cli[name]["best"]);
        let plural = if *current == 1 { "" } else { "s" };
        assert!(
            page.contains(&format!(
                "<p class=\"figure\">{current} <span>{figure}{plural}</span></p><p>Best {best}"
            )),
            "{name}: {current}/{best} not in {page}"
        );
    }
    // The heatmap's cells (from 2026-09-21): as many members on each day as the CLI counts.
    for (i, n, title) in [
        (63, 1, "Mon 23 Nov 2026: 1 member<"),
        (64, 1, "Tue 24 Nov 2026: 1 member<"),
        (70, 1, "Mon 30 Nov 2026: 1 member<"),
        (77, 2, "Mon 7 Dec 2026: 2 members<"),
        (78, 1, "Tue 8 Dec 2026: 1 member<"),
        (79, 1, "Wed 9 Dec 2026: 1 member (today)<"),
    ] {
        assert_eq!(cli["heatmap"]["cells"][i], n, "{cli}");
        assert!(page.contains(title), "{title} not in {page}");
    }
}

#[test]
fn the_team_page_counts_no_placeholder_in_its_reach() {
    // Bo was added by name and logged on this shared device, so he counts; Ana thanked him.
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["--as", "@bo", "log", "Fixed the flaky test"])
        .ok();
    ana.run(&["kudos", "@bo", "Thanks for the fix"]).ok();
    // Four more teammates added by name, who have not joined.
    for name in ["Ben Okafor", "Cy", "Di", "Ed"] {
        ana.run(&["team", "member", "add", name]).ok();
    }
    let web = Web::start(&ana, &[]);
    let cookie = web.session();
    let (status, page) = get(&web, "/team", Some(&cookie));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Reach: 1 of 2 members recognised in the last 30 days."),
        "{page}"
    );
    let cli = ana.run(&["badges", "--json"]).json();
    assert_eq!(
        (&cli["reach"]["recognised"], &cli["reach"]["members"]),
        (&serde_json::json!(1), &serde_json::json!(2)),
        "{cli}"
    );
}

#[test]
fn the_header_switches_between_the_teams_of_the_home() {
    let ana = Home::team("Ana", &[]);
    ana.run(&["log", "An Otters stone"]).ok();
    ana.run(&["init", "--team", "Kestrels", "--name", "Ana"])
        .ok();
    ana.run(&["--team", "kestrels", "log", "A Kestrels stone"])
        .ok();
    let kestrels = ana.run(&["team", "list", "--json"]).json()[1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let web = Web::start(&ana, &[]);
    let cookie = web.session();
    let (status, page) = get(&web, "/feed", Some(&cookie));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("An Otters stone") && !page.contains("A Kestrels stone"));
    // A form of real controls, with both teams to pick from.
    assert!(
        page.contains("action=\"/switch\"") && page.contains(&format!("value=\"{kestrels}\"")),
        "{page}"
    );
    let token = csrf(&page);
    // Without the form's token, or to a team the home does not hold: nothing moves.
    let (status, _) = post(&web, "/switch", &cookie, "", &format!("team={kestrels}"));
    assert_eq!(status, 403);
    let (status, _) = post(
        &web,
        "/switch",
        &cookie,
        "",
        &format!("team=..%2F..%2Fetc&csrf={token}"),
    );
    assert_eq!(status, 404);
    assert!(
        get(&web, "/feed", Some(&cookie))
            .1
            .contains("An Otters stone")
    );
    // The switch: the other team's feed, and its writes go to it.
    let (status, answer) = post(
        &web,
        "/switch",
        &cookie,
        "",
        &format!("team={kestrels}&csrf={token}"),
    );
    assert_eq!(status, 303, "{answer}");
    let (_, page) = get(&web, "/feed", Some(&cookie));
    assert!(
        page.contains("A Kestrels stone") && !page.contains("An Otters stone"),
        "{page}"
    );
    // A form left open from before the switch (another tab) is refused, never written into
    // the team shown since; the page's own form goes through.
    let (status, _) = post(
        &web,
        "/log",
        &cookie,
        "",
        &format!("text=From+a+stale+tab&csrf={token}"),
    );
    assert_eq!(status, 403);
    let (status, _) = post(
        &web,
        "/log",
        &cookie,
        "",
        &format!("text=From+the+browser&csrf={}", csrf(&page)),
    );
    assert_eq!(status, 303);
    let texts = |extra: &[&str]| -> Vec<String> {
        feed(&ana, extra)
            .iter()
            .map(|i| i["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        texts(&["--team", "kestrels"]),
        ["From the browser", "A Kestrels stone"]
    );
    assert_eq!(texts(&[]), ["An Otters stone"]);
}

/// Finding 8 (round two): `--open` puts nothing secret on a command line, where every local
/// user reads it (`/proc/PID/cmdline`). The browser (here a script in `BROWSER` that hands its
/// arguments to the test through a FIFO) is given a page in the home that only its user can
/// read, which goes on to the link; the key is spent by that first use, the page removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_open_hands_the_browser_no_secret_on_its_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let ana = live_home();
    ana.run(&["init", "--team", "Otters", "--name", "Ana"]).ok();
    ana.run(&["log", "Wrote the runbook"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("argv");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let script = dir.path().join("browser");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", fifo.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The arguments, read in a thread: the FIFO's reader waits for its writer.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(reader));
    });
    let mut command = ana.command(&["web", "--open"]);
    command.env("BROWSER", format!("{} --new-window", script.display()));
    let web = Web::start_command(command);
    let argv = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("cairn web --open starts the browser")
        .unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv.len(), 2, "{argv:?}");
    assert_eq!(argv[0], "--new-window");
    assert!(!argv.join(" ").contains(web.key()), "{argv:?}");
    assert!(!argv.join(" ").contains("key="), "{argv:?}");
    // A page of the home, its user's alone, that holds the link.
    let url = argv[1];
    let page = std::path::PathBuf::from(url.strip_prefix("file://").expect("a file URL"));
    let home = std::fs::canonicalize(ana.path()).unwrap();
    assert_eq!(page.parent(), Some(home.as_path()), "{url}");
    let mode = std::fs::metadata(&page).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(&web.link), "{html}");

    // A browser given that page lands on the feed, and the key is spent.
    let Some(browser) = Browser::for_test().await else {
        return;
    };
    let b = &browser;
    b.client.goto(url).await.expect("the page opens");
    b.wait_for("form#log").await;
    b.wait_for_text("Wrote the runbook").await;
    let at = b.client.current_url().await.unwrap();
    assert_eq!(at.path(), "/feed", "{at}");
    assert!(!at.as_str().contains("key="), "{at}");
    assert!(!page.exists(), "the page goes once its key is spent");
    let (status, answer) = get(&web, &format!("/?key={}", web.key()), None);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("This link was used already"), "{answer}");
}
