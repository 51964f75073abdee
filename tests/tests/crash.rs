//! A `cairn` process killed in the middle of writing leaves a replica that opens, whose index
//! matches its documents, and that holds each write whole or not at all.

use std::time::{Duration, Instant};

use cairn_e2e::{Home, feed};

#[test]
fn killed_writers_never_leave_half_a_write() {
    let mut home = Home::team("Ana", &["Ben"]);
    // A real clock: every run below writes at its own instant.
    home.day = None;

    // How long one write takes here, to spread the kills over its whole life.
    let t = Instant::now();
    home.run(&["log", "warm-up"]).ok();
    let span = t.elapsed().max(Duration::from_millis(2));

    let n = 48u32;
    let mut completed = Vec::new();
    let mut attempted = Vec::new();
    for i in 0..n {
        let text = format!("write {i} {}end", "·".repeat(i as usize % 7 * 40));
        let args: Vec<String> = if i % 3 == 0 {
            vec!["kudos".into(), "@ben".into(), text.clone()]
        } else {
            vec![
                "log".into(),
                text.clone(),
                "--pillar".into(),
                "trust".into(),
            ]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = home.command(&args).spawn().unwrap();
        // Not synchronisation: the kill point, from right after start to past the end.
        let kill_at = span.mul_f64(f64::from(i) / f64::from(n) * 1.3);
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if started.elapsed() >= kill_at {
                break None;
            }
            std::hint::spin_loop();
        };
        match status {
            Some(s) if s.success() => completed.push(text.clone()),
            Some(s) => panic!("write {i} failed on its own: {s}"),
            None => {
                let _ = child.kill();
                let s = child.wait().unwrap();
                if s.success() {
                    completed.push(text.clone());
                }
            }
        }
        attempted.push(text);
    }

    let doctor = home.run(&["doctor", "--json"]).json();
    assert_eq!(doctor["index_ok"], true, "{doctor}");
    // Rebuilding the index from the documents gives the same feed: nothing half-indexed.
    let before: Vec<_> = feed(&home, &[]);
    home.run(&["doctor", "--reindex"]).ok();
    assert_eq!(feed(&home, &[]), before);

    let texts: Vec<String> = before
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_owned())
        .collect();
    for t in &texts {
        assert!(
            t == "warm-up" || attempted.contains(t),
            "a torn or foreign write: {t}"
        );
    }
    for c in &completed {
        assert!(
            texts.contains(c),
            "a write that reported success is missing: {c}"
        );
    }
    assert!(
        completed.len() < n as usize,
        "no write was killed in flight; the test proved nothing"
    );
    // And the replica still takes writes.
    home.run(&["log", "after the storm"]).ok();
    assert_eq!(feed(&home, &[]).len(), before.len() + 1);
}
