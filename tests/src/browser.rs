//! A real browser for tests: Debian's Chromium driven over WebDriver by its own ChromeDriver,
//! started on a port it picks itself, with a fresh profile in a temp dir; and `cairn web` run as
//! a real process in a member's home.
//!
//! The binaries come from `CAIRN_CHROMEDRIVER` and `CAIRN_CHROMIUM`, else `chromedriver` and
//! `chromium` on `PATH` (Debian's `chromium-driver` and `chromium` packages). Without them a test
//! is skipped with a note, except in CI (`CI` set), where it fails: `.ci/run` installs them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::Home;

/// How long a test waits for something to show up in the browser.
pub const PATIENCE: Duration = Duration::from_secs(30);

fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// ChromeDriver and a WebDriver session in headless Chromium; both end on drop.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A browser for a test, or `None` (said on stderr) when Chromium or its driver is missing
    /// and this is not CI; in CI a missing browser fails the test.
    pub async fn for_test() -> Option<Browser> {
        let driver = find("CAIRN_CHROMEDRIVER", &["chromedriver"]);
        let chromium = find("CAIRN_CHROMIUM", &["chromium", "chromium-browser"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "Chromium and ChromeDriver are not installed, and CI must run the browser tests \
                 (.ci/run installs the chromium and chromium-driver packages)"
            );
            eprintln!("note: Chromium or ChromeDriver is not installed; skipping the browser test");
            return None;
        };
        Some(Self::start(&driver, &chromium).await)
    }

    async fn start(driver: &std::path::Path, chromium: &std::path::Path) -> Browser {
        let mut command = Command::new(driver);
        // A process group of its own, which the Chromium it starts joins: ended whole on drop.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", driver.display()));
        let port = driver_port(child.stdout.take().expect("piped stdout"));
        let profile = tempfile::tempdir().expect("a temp dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(caps);
        let client = builder
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                let _ = child.kill();
                panic!("no WebDriver session in Chromium: {e}")
            });
        Browser {
            client,
            driver: child,
            _profile: profile,
        }
    }

    /// Waits until an element matching `css` shows up (the page may reload meanwhile).
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing matches `{css}` in time: {e}"))
    }

    /// Types `text` into the field matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to type into: {e}"))
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("`{css}` takes no text: {e}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("`{css}` cannot be clicked: {e}"));
    }

    /// Waits until the page's text holds `text`, without reloading it.
    pub async fn wait_for_text(&self, text: &str) {
        let script = "return document.body ? document.body.innerText : ''";
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let shown = self
                .client
                .execute(script, vec![])
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if shown.contains(text) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page never showed `{text}`; it shows:\n{shown}"
            );
            // Polls the page, as WebDriver's own waits do.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("a body")
            .text()
            .await
            .expect("its text")
    }

    /// Saves a picture of the whole page (not only the window) under `target/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(900)
            .clamp(600, 8000) as u32;
        self.client
            .set_window_size(1280, height + 100)
            .await
            .expect("the window resizes");
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        self.client
            .set_window_size(1280, 900)
            .await
            .expect("the window resizes back");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium outlives a driver killed alone: the driver's whole group goes.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: `target/web-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    // The test runs as target/<profile>/deps/<test>.
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("web-screenshots"))
        .expect("tests run from target/<profile>/deps")
}

/// Reads ChromeDriver's first lines until it says which port it took.
fn driver_port(stdout: ChildStdout) -> u16 {
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref().take(20) {
        let line = line.expect("ChromeDriver writes text");
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            let port = rest.trim_end_matches('.').trim();
            // Keep reading in the background so ChromeDriver never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return port.parse().expect("a port number");
        }
    }
    panic!("ChromeDriver never said which port it listens on")
}

/// `cairn web` running in a home; stopped on drop.
#[derive(Debug)]
pub struct Web {
    child: Child,
    /// The link it printed, with its key.
    pub link: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Web {
    /// Starts `cairn web ARGS...` in `home` and reads the link it prints.
    pub fn start(home: &Home, args: &[&str]) -> Web {
        let mut all = vec!["web"];
        all.extend_from_slice(args);
        Self::start_command(home.command(&all))
    }

    /// Starts `command` (a `cairn web` made with [`Home::command`]) and reads the link it
    /// prints.
    pub fn start_command(mut command: Command) -> Web {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cairn web starts");
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut link = String::new();
        out.read_line(&mut link).expect("cairn web prints its link");
        let link = link.trim().to_owned();
        assert!(
            link.starts_with("http://") && link.contains("?key="),
            "not a link: {link:?}"
        );
        let base = link.split("/?").next().unwrap_or_default().to_owned();
        Web { child, link, base }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the link has a port")
    }

    /// The key of this run, from its link.
    pub fn key(&self) -> &str {
        self.link.split("key=").nth(1).unwrap_or_default()
    }

    /// Spends the link's key, as a browser opening it does, and returns the session cookie it
    /// is exchanged for, as a `Cookie` header carries it (`cairn-PORT=VALUE`).
    pub fn session(&self) -> String {
        let addr = self.base.trim_start_matches("http://");
        let mut stream = crate::http::connect(addr, Duration::from_secs(30));
        let request = format!(
            "GET /?key={} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            self.key()
        );
        let (answer, _) = crate::http::exchange(&mut stream, request.as_bytes());
        answer
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("the link's key gave no cookie: {answer}"))
            .to_owned()
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
