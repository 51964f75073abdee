//! `cairn web`: a small web app over the local replica.
//!
//! Server-rendered HTML from maud templates (every text escaped by construction), a little
//! vanilla JS that only adds to pages that already work without it, every asset inside the
//! binary. Reads and writes go through the same calls as the CLI's commands.
//!
//! Safe by default: it listens on loopback; the link it prints carries a one-time key, spent by
//! its first use in exchange for a session cookie of another random value (`HttpOnly`,
//! `SameSite=Strict`), and every other request without that cookie is refused; `--open` puts
//! no secret on a command line (where every local user can read it in `/proc`): the browser is
//! given a page in the home, readable by its user alone, that goes on to the link; the `Host`
//! header must be an address or `localhost` (no DNS rebinding); every form carries a CSRF token
//! and a cross-site `Origin` is refused; a strict content security policy allows nothing but
//! this server's own script and style.

mod pages;

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cairn_core::goals::Act;
use cairn_store::Replica;
use maud::Markup;

use crate::commands::sync as sync_cmd;
use crate::context::{Ctx, Writer, random_bytes};
use crate::error::{CliError, Input, Kind, Result};

/// How `cairn web` runs.
#[derive(Debug)]
pub struct Options {
    /// Where to listen: the first of these that can be bound.
    pub listen: Vec<SocketAddr>,
    pub open: bool,
    /// Team views only, read-only: for a shared screen.
    pub screen: bool,
    /// Sync this often while running; `None`: only after a write.
    pub sync_every: Option<Duration>,
}

/// What every request shares.
#[derive(Debug)]
pub struct Web {
    home: PathBuf,
    as_member: Option<String>,
    /// The one-time key of the link printed (and of `--open`'s page): spent by its first use.
    key: String,
    spent: AtomicBool,
    /// What the key is exchanged for: the session cookie's value, a secret of its own that
    /// is never printed.
    session: String,
    /// `--open`'s page, which holds the link: removed once the key is spent, and at exit.
    open_page: Option<PathBuf>,
    /// The token every form carries.
    csrf: String,
    /// The cookie's name; cookies ignore ports, so each run names its own.
    cookie: String,
    screen: bool,
    /// The team shown (its id), which the header's switch changes; `None`: the home's only one.
    team: Arc<Mutex<Option<String>>>,
    /// The home's teams when the app started or last switched: (id, name).
    teams: Mutex<Vec<(String, String)>>,
    replica: Mutex<Replica>,
    /// Writes made through this server: part of the version pages poll, since a connection does
    /// not see its own commits in `data_version`.
    writes: AtomicU64,
    poke: Mutex<Option<mpsc::Sender<()>>>,
    sync: Arc<Mutex<SyncStatus>>,
    /// What the pages compute from every act, as of one version of the replica.
    derived: Mutex<Derived>,
}

/// Every act of the team as of a version (what streaks, badges, challenges, the digest and "me"
/// count), and what pages computed from them: read once per change to the replica, not once per
/// page. Each result is a pure function of the acts and of its key, so it stays exact until the
/// version moves.
#[derive(Default)]
struct Derived {
    version: String,
    acts: Option<Arc<Vec<Act>>>,
    results: HashMap<View, Arc<dyn Any + Send + Sync>>,
}

/// What a page computes from the replica, named by every input it depends on besides the
/// replica's version: a result is found again only under the same inputs, and a new input is
/// a new field the compiler asks every page for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum View {
    Streaks {
        today: jiff::civil::Date,
        me: String,
        weeks: u32,
    },
    Team {
        today: jiff::civil::Date,
        me: String,
        /// The team screen shows nobody's own badges.
        screen: bool,
    },
    Me {
        today: jiff::civil::Date,
        me: String,
    },
    Digest {
        today: jiff::civil::Date,
        period: cairn_client::views::Period,
    },
}

impl Derived {
    /// Forgets what was computed for another version of the replica.
    fn now_at(&mut self, version: String) {
        if self.version != version {
            *self = Derived {
                version,
                acts: None,
                results: HashMap::new(),
            };
        }
    }

    /// What was computed under `key` for this version, if anything was.
    fn found<T: Any + Send + Sync>(&self, key: &View) -> Option<Arc<T>> {
        self.results
            .get(key)
            .and_then(|r| r.clone().downcast::<T>().ok())
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Derived")
            .field("version", &self.version)
            .field("acts", &self.acts.as_ref().map(|a| a.len()))
            .field("results", &self.results.len())
            .finish()
    }
}

/// What the last sync did, for the footer.
#[derive(Debug, Default, Clone)]
pub struct SyncStatus {
    /// No server is known: the team lives on this device.
    pub offline: bool,
    pub last_ok_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl Web {
    /// A context for one request: the clock read now (or `CAIRN_NOW`).
    fn ctx(&self) -> Result<Ctx> {
        let team = self.shown_team();
        Ok(Ctx::new(Some(self.home.clone()), false, self.as_member.clone())?.with_team(team))
    }

    /// The token every form of the team shown carries: this run's secret and the team's id, so
    /// a form left open in another tab from before a switch is refused, never written into the
    /// team shown since.
    pub fn form_token(&self) -> String {
        format!("{}.{}", self.csrf, self.shown_team().unwrap_or_default())
    }

    /// The id of the team shown.
    pub fn shown_team(&self) -> Option<String> {
        self.team.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `token` is a form token of the team shown now.
    fn token_ok(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| same_secret(t, &self.form_token()))
    }

    /// The home's teams, for the header's switch: (id, name).
    pub fn teams(&self) -> Vec<(String, String)> {
        self.teams.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Shows team `id` from now on: its replica in place of the one shown, every remembered
    /// page forgotten, the sync loop told.
    fn switch(&self, id: &str) -> Result<()> {
        let ctx = Ctx::new(Some(self.home.clone()), false, self.as_member.clone())?
            .with_team(Some(id.to_owned()));
        let replica = ctx.open()?;
        // The member acting (`--as`) must be one of that team, and may act there.
        ctx.actor(&replica, &replica.team()?)?;
        *self.replica() = replica;
        *self.team.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_owned());
        *self.derived.lock().unwrap_or_else(|e| e.into_inner()) = Derived::default();
        *self.teams.lock().unwrap_or_else(|e| e.into_inner()) = home_teams(&self.home);
        self.wrote();
        Ok(())
    }

    fn replica(&self) -> MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What changes when anything in the replica does.
    fn version(&self) -> Result<String> {
        self.version_of(&self.replica())
    }

    /// The same, through a replica already held.
    fn version_of(&self, replica: &Replica) -> Result<String> {
        let data = replica.data_version()?;
        Ok(format!("{data}.{}", self.writes.load(Ordering::Relaxed)))
    }

    /// `compute` applied to every act of the team as of now, remembered under `key` (which must
    /// name every other input) until the replica changes. One reader computes; pages that ask
    /// meanwhile wait for it instead of computing again.
    fn derive<T: Any + Send + Sync>(
        &self,
        replica: &Replica,
        key: View,
        compute: impl FnOnce(&[Act]) -> Result<T>,
    ) -> Result<Arc<T>> {
        self.remember(replica, key, |d| {
            if d.acts.is_none() {
                d.acts = Some(Arc::new(replica.acts()?));
            }
            let acts = d.acts.clone().unwrap_or_default();
            compute(&acts)
        })
    }

    /// Like [`Web::derive`], for what the replica's own queries compute without every act (the
    /// streaks: a row per member and week): right after a change it costs those queries only.
    fn derive_from_queries<T: Any + Send + Sync>(
        &self,
        replica: &Replica,
        key: View,
        compute: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        self.remember(replica, key, |_| compute())
    }

    /// What `compute` gives, remembered under `key` for this version of the replica.
    fn remember<T: Any + Send + Sync>(
        &self,
        replica: &Replica,
        key: View,
        compute: impl FnOnce(&mut Derived) -> Result<T>,
    ) -> Result<Arc<T>> {
        let version = self.version_of(replica)?;
        let mut d = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        d.now_at(version);
        if let Some(found) = d.found::<T>(&key) {
            return Ok(found);
        }
        let result = Arc::new(compute(&mut d)?);
        d.results.insert(key, result.clone());
        Ok(result)
    }

    /// Computes what the pages show by default ahead of them, after a change.
    fn warm(self: &Arc<Self>) {
        let web = self.clone();
        tokio::task::spawn_blocking(move || {
            let _ = pages::warm(&web);
        });
    }

    /// After a write: a new version, and a sync soon.
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = self.poke.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = tx.send(());
        }
    }

    fn sync_status(&self) -> SyncStatus {
        self.sync.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Runs the web app until Ctrl-C.
pub fn serve(ctx: &mut Ctx, opts: Options) -> Result<()> {
    let listener = std::net::TcpListener::bind(&opts.listen[..]).map_err(|e| {
        let at: Vec<String> = opts.listen.iter().map(SocketAddr::to_string).collect();
        CliError::new(format!("cannot listen on {}", at.join(" or ")))
            .hint("pick another address or port with --listen")
            .kind(Kind::Failure)
            .because(e)
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let key = hex(&random_bytes::<16>()?);
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let link = format!("http://{shown}/?key={key}");
    let open_page = if opts.open {
        match write_open_page(&ctx.home, addr.port(), &link) {
            Ok(page) => Some(page),
            Err(e) => {
                crate::output::note!(
                    "cairn web: could not write the page that opens your browser ({e}); open the link by hand"
                );
                None
            }
        }
    } else {
        None
    };
    let replica = ctx.open()?;
    let shown_team = replica.team_id().ok();
    let web = Arc::new(Web {
        team: Arc::new(Mutex::new(shown_team)),
        teams: Mutex::new(home_teams(&ctx.home)),
        home: ctx.home.clone(),
        as_member: ctx.as_member.clone(),
        key,
        spent: AtomicBool::new(false),
        session: hex(&random_bytes::<16>()?),
        open_page: open_page.clone(),
        csrf: hex(&random_bytes::<16>()?),
        cookie: format!("cairn-{}", addr.port()),
        screen: opts.screen,
        replica: Mutex::new(replica),
        writes: AtomicU64::new(0),
        poke: Mutex::new(None),
        sync: Arc::new(Mutex::new(SyncStatus::default())),
        derived: Mutex::new(Derived::default()),
    });
    let (tx, rx) = mpsc::channel();
    *web.poke.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    let home = ctx.home.clone();
    let as_member = ctx.as_member.clone();
    let status = web.sync.clone();
    let every = opts.sync_every;
    let team = web.team.clone();
    std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || sync_loop(home, as_member, team, rx, every, status))?;

    ctx.out.line(&link)?;
    ctx.out.flush()?;
    crate::output::note!(
        "cairn web: {} on {addr}; open the link above (its key works once). Ctrl-C stops it.",
        if opts.screen {
            "the team screen"
        } else {
            "your team"
        }
    );
    if addr.ip().is_unspecified() {
        crate::output::note!(
            "cairn web: from another device, use this machine's address in place of {}",
            shown.ip()
        );
    }
    if let Some(page) = &open_page {
        open_browser(&file_url(page));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(watch(web.clone()));
        axum::serve(listener, router(web))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    });
    if let Some(page) = &open_page {
        let _ = std::fs::remove_file(page);
    }
    served?;
    Ok(())
}

/// Writes `--open`'s page into the home: new, readable by its user alone, following no link.
/// It goes on to `link` at once; the browser is given its path, which holds no secret.
fn write_open_page(home: &std::path::Path, port: u16, link: &str) -> std::io::Result<PathBuf> {
    let page = home.join(format!("web-{port}.html"));
    // (One left by a run that was killed holds a spent key.)
    let _ = std::fs::remove_file(&page);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let html = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="referrer" content="no-referrer";
                meta http-equiv="refresh" content=(format!("0; url={link}"));
                title { "cairn web" }
            }
            body { p { a href=(link) { "Open cairn web" } } }
        }
    };
    std::io::Write::write_all(&mut options.open(&page)?, html.into_string().as_bytes())?;
    std::fs::canonicalize(&page)
}

/// A `file:` URL for the absolute path `path`.
fn file_url(path: &std::path::Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut url = String::from("file://");
    if !text.starts_with('/') {
        url.push('/');
    }
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~:".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Notices every change to the replica (a sync, the CLI, this app) within a second, and computes
/// the pages' figures for it before anyone asks.
async fn watch(web: Arc<Web>) {
    let mut seen = String::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let w = web.clone();
        let now = tokio::task::spawn_blocking(move || w.version().ok())
            .await
            .ok()
            .flatten();
        if let Some(now) = now.filter(|now| *now != seen) {
            seen = now;
            web.warm();
        }
    }
}

fn router(web: Arc<Web>) -> Router {
    let mut app = Router::new()
        .route("/", get(|| async { Redirect::to("/feed") }))
        .route("/feed", get(feed))
        .route("/streaks", get(streaks))
        .route("/team", get(team))
        .route("/digest", get(digest))
        .route("/version", get(version))
        .route("/static/style.css", get(style))
        .route("/static/app.js", get(script));
    if !web.screen {
        app = app
            .route("/me", get(me))
            .route("/org", get(organisation))
            .route("/switch", post(switch))
            .route("/log", post(log))
            .route("/kudos", post(kudos))
            .route("/react", post(react))
            .route("/retract", post(retract))
            .route("/event/{id}/edit", get(edit_form).post(edit));
    }
    app.fallback(not_found)
        .layer(middleware::from_fn_with_state(web.clone(), guard))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(web)
}

/// Quiet syncs: every `every`, and soon after each write.
fn sync_loop(
    home: PathBuf,
    as_member: Option<String>,
    team: Arc<Mutex<Option<String>>>,
    rx: mpsc::Receiver<()>,
    every: Option<Duration>,
    status: Arc<Mutex<SyncStatus>>,
) {
    let mut first = true;
    loop {
        if !first {
            let got = match every {
                Some(d) => rx.recv_timeout(d),
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            if got == Err(mpsc::RecvTimeoutError::Disconnected) {
                return;
            }
            // Writes in a burst make one sync.
            while rx.try_recv().is_ok() {}
        }
        first = false;
        let outcome = (|| -> Result<bool> {
            let shown = team.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let ctx = Ctx::new(Some(home.clone()), false, as_member.clone())?.with_team(shown);
            let mut replica = ctx.open()?;
            if replica.remote()?.is_none() {
                return Ok(false);
            }
            sync_cmd::exchange(&ctx, &mut replica, ctx.patience(), false)?;
            Ok(true)
        })();
        let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(false) => s.offline = true,
            Ok(true) => {
                s.offline = false;
                s.last_ok_ms = Some(jiff::Timestamp::now().as_millisecond());
                s.last_error = None;
            }
            Err(e) => {
                s.offline = false;
                s.last_error = Some(e.said());
            }
        }
    }
}

/// The teams of `home`, (id, name), for the header's switch; none when they cannot be read.
fn home_teams(home: &std::path::Path) -> Vec<(String, String)> {
    crate::home::list(home)
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let name = if t.name.is_empty() {
                t.id.clone()
            } else {
                t.name
            };
            (t.id, name)
        })
        .collect()
}

/// `POST /switch`: shows another team of the home (the header's form).
async fn switch(State(web): State<Arc<Web>>, body: Bytes) -> Response {
    let values = Params::parse(&body);
    blocking(web, move |web| {
        if !web.token_ok(values.get("csrf")) {
            return refuse(
                StatusCode::FORBIDDEN,
                "This form is out of date",
                "Go back, reload the page and send it again.",
            );
        }
        let wanted = values.get("team").unwrap_or("");
        if !web.teams().iter().any(|(id, _)| id == wanted) {
            return refuse(
                StatusCode::NOT_FOUND,
                "No such team here",
                "Go back, reload the page and pick a team from the list.",
            );
        }
        match web.switch(wanted) {
            Ok(()) => Redirect::to("/feed").into_response(),
            Err(e) => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "That team could not be opened",
                &e.sentence(),
            ),
        }
    })
    .await
}

/// Starts a browser on `target`: the first command `BROWSER` names (`%s` in it stands for the
/// target, else the target goes last), else the system's opener.
fn open_browser(target: &str) {
    let configured = std::env::var("BROWSER").ok().and_then(|b| {
        b.split(':')
            .map(str::trim)
            .find(|c| !c.is_empty())
            .map(str::to_owned)
    });
    let default = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let line = configured.unwrap_or_else(|| default.to_owned());
    let mut words = line.split_whitespace();
    let program = words.next().unwrap_or(default).to_owned();
    let mut command = std::process::Command::new(&program);
    let mut placed = false;
    for word in words {
        placed |= word.contains("%s");
        command.arg(word.replace("%s", target));
    }
    if !placed {
        command.arg(target);
    }
    let opened = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if opened.is_err() {
        crate::output::note!(
            "cairn web: could not start a browser ({program}); open the link by hand"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A `Host` this server answers to: an IP address or `localhost`, with any port. A name that
/// could be an attacker's, pointed at this machine (DNS rebinding), is refused.
fn host_allowed(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((v6, port)) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok()
                    && (port.is_empty()
                        || port
                            .strip_prefix(':')
                            .is_some_and(|p| p.parse::<u16>().is_ok()));
            }
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The security every request goes through, and the headers every answer carries.
async fn guard(State(web): State<Arc<Web>>, req: Request, next: Next) -> Response {
    let mut res = check(&web, req, next).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn check(web: &Web, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_allowed(host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "This address is not one cairn web answers to",
            "Open the link that `cairn web` printed.",
        );
    }
    let path = req.uri().path().to_owned();
    if path.starts_with("/static/") {
        return next.run(req).await;
    }
    let authorised =
        cookie_value(req.headers(), &web.cookie).is_some_and(|v| same_secret(v, &web.session));
    // The link: its key, spent by its first use, becomes a session cookie, and the address
    // loses it.
    let given = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "key")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(given) = given {
        // (Never `//host`, which a browser takes for another site.)
        let onward = format!("/{}", path.trim_start_matches(['/', '\\']));
        // The browser that has the session (a reload, Back to the link) goes on.
        if authorised {
            return Redirect::to(&onward).into_response();
        }
        if !same_secret(&given, &web.key) {
            return refuse(
                StatusCode::FORBIDDEN,
                "This link's key is not this run's",
                "Each run of `cairn web` prints a new link; open the latest one.",
            );
        }
        if web.spent.swap(true, Ordering::SeqCst) {
            return refuse(
                StatusCode::FORBIDDEN,
                "This link was used already",
                "Its key opens one browser, once. Stop `cairn web` (Ctrl-C) and run it again for a new link.",
            );
        }
        if let Some(page) = &web.open_page {
            let _ = std::fs::remove_file(page);
        }
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            web.cookie, web.session
        );
        // A link followed from another site (`--open`'s page is a file) starts a cross-site
        // navigation, whose redirects would not carry a strict cookie: a page of this site
        // goes on instead.
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "none" && v != "same-origin");
        let mut res = if cross_site {
            Html(pages::onward(&onward).into_string()).into_response()
        } else {
            Redirect::to(&onward).into_response()
        };
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return res;
    }
    if !authorised {
        return refuse(
            StatusCode::FORBIDDEN,
            "This page needs the key of this run",
            "Open the link that `cairn web` printed; it carries the key.",
        );
    }
    if req.method() == Method::POST {
        let h = req.headers();
        let cross_origin = h
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o != format!("http://{host}"));
        let cross_site = h
            .get("sec-fetch-site")
            .and_then(|o| o.to_str().ok())
            .is_some_and(|s| s != "same-origin" && s != "none");
        if cross_origin || cross_site {
            return refuse(
                StatusCode::FORBIDDEN,
                "A form from another site was refused",
                "Write from the pages of `cairn web` itself.",
            );
        }
    }
    next.run(req).await
}

/// A small page that says why a request was refused.
fn refuse(status: StatusCode, title: &str, what: &str) -> Response {
    (status, Html(pages::bare(title, what).into_string())).into_response()
}

async fn not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "No such page",
        "The pages are Feed, Streaks, Team and Digest.",
    )
}

/// The query or form fields of a request.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    fn parse(bytes: &[u8]) -> Params {
        Params(form_urlencoded::parse(bytes).into_owned().collect())
    }

    fn of(uri: &Uri) -> Params {
        Params::parse(uri.query().unwrap_or("").as_bytes())
    }

    /// The first value of `name`, trimmed; `None` when missing or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A form sent back with what was typed and what was wrong.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    /// Which form: `log`, `kudos`, `edit`, `react`.
    pub form: &'static str,
    pub values: Params,
    pub error: Option<(Option<Input>, String)>,
}

impl Sent {
    fn failed(form: &'static str, values: Params, e: CliError) -> Sent {
        Sent {
            form,
            values,
            error: Some((e.input, e.sentence())),
        }
    }

    /// The error when it is about `input`.
    pub fn error_for(&self, form: &str, input: Input) -> Option<&str> {
        match &self.error {
            Some((Some(i), m)) if self.form == form && *i == input => Some(m),
            _ => None,
        }
    }

    /// The error of `form` that no field owns.
    pub fn general_error(&self, form: &str, fields: &[Input]) -> Option<&str> {
        match &self.error {
            Some((i, m)) if self.form == form && !i.is_some_and(|i| fields.contains(&i)) => Some(m),
            _ => None,
        }
    }

    pub fn value(&self, form: &str, name: &str) -> Option<&str> {
        if self.form == form {
            self.values.get(name)
        } else {
            None
        }
    }
}

/// Runs page work off the async thread, timing it for the `Server-Timing` header.
async fn blocking<F>(web: Arc<Web>, f: F) -> Response
where
    F: FnOnce(&Web) -> Response + Send + 'static,
{
    let started = Instant::now();
    let mut res = match tokio::task::spawn_blocking(move || f(&web)).await {
        Ok(res) => res,
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something broke",
            "This is a bug worth reporting; `cairn doctor` checks the replica.",
        ),
    };
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if let Ok(v) = HeaderValue::from_str(&format!("render;dur={ms:.2}")) {
        res.headers_mut().insert("server-timing", v);
    }
    res
}

/// A page, or the error that kept it from rendering.
fn page(result: Result<Markup>, status: StatusCode) -> Response {
    match result {
        Ok(m) => (status, Html(m.into_string())).into_response(),
        Err(e) => {
            let status = match e.kind {
                Kind::Input => StatusCode::BAD_REQUEST,
                Kind::Replica => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let what = e.hint.clone().unwrap_or_default();
            refuse(status, &e.said(), &what)
        }
    }
}

async fn feed(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    let q = Params::of(&uri);
    blocking(web, move |web| {
        page(pages::feed(web, &q, &Sent::default()), StatusCode::OK)
    })
    .await
}

async fn streaks(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    let q = Params::of(&uri);
    blocking(web, move |web| {
        page(pages::streaks(web, &q), StatusCode::OK)
    })
    .await
}

async fn team(State(web): State<Arc<Web>>) -> Response {
    blocking(web, move |web| page(pages::team(web), StatusCode::OK)).await
}

async fn digest(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    let q = Params::of(&uri);
    blocking(web, move |web| page(pages::digest(web, &q), StatusCode::OK)).await
}

async fn me(State(web): State<Arc<Web>>) -> Response {
    blocking(web, move |web| page(pages::me(web), StatusCode::OK)).await
}

/// `GET /org`: the team's organisation; a team of none has no such page.
async fn organisation(State(web): State<Arc<Web>>, uri: Uri) -> Response {
    let q = Params::of(&uri);
    blocking(web, move |web| match pages::org(web, &q) {
        Ok(Some(m)) => page(Ok(m), StatusCode::OK),
        Ok(None) => refuse(
            StatusCode::NOT_FOUND,
            "This team belongs to no organisation",
            "An organisation's page shows its non-negotiables, its feed and what its teams \
             share; ask the server's admin to attach this team to one \
             (`cairn-server team attach TEAM --org ORG`).",
        ),
        Err(e) => page(Err(e), StatusCode::OK),
    })
    .await
}

async fn version(State(web): State<Arc<Web>>) -> Response {
    blocking(web, move |web| match web.version() {
        Ok(v) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], v).into_response(),
        Err(e) => page(Err(e), StatusCode::OK),
    })
    .await
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Where to go after a form: the page it came from, when that is one of ours.
fn back(values: &Params, done: &str) -> Response {
    let to = values
        .get("back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or("/feed");
    let (path, query) = to.split_once('?').unwrap_or((to, ""));
    let mut kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "done")
        .collect();
    kept.push(("done".into(), done.into()));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish();
    Redirect::to(&format!("{path}?{query}")).into_response()
}

/// A form post: checks its token, runs `write`, and goes back; or shows the form again with the
/// error beside its field.
async fn write<F>(web: Arc<Web>, body: Bytes, form: &'static str, write: F) -> Response
where
    F: FnOnce(&mut Writer<'_>, &Params) -> Result<String> + Send + 'static,
{
    let values = Params::parse(&body);
    let after = web.clone();
    let res = blocking(web, move |web| {
        if !web.token_ok(values.get("csrf")) {
            return refuse(
                StatusCode::FORBIDDEN,
                "This form is out of date",
                "Go back, reload the page and send it again.",
            );
        }
        let done = web.ctx().and_then(|ctx| {
            let mut replica = web.replica();
            let mut w = ctx.writer(&mut replica)?;
            write(&mut w, &values)
        });
        match done {
            Ok(done) => {
                web.wrote();
                back(&values, &done)
            }
            Err(e) => {
                let sent = Sent::failed(form, values.clone(), e);
                let result = if form == "edit" {
                    // The address's id, appended last (see `edit`), whatever the form said.
                    pages::edit(web, values.all("id").last().copied().unwrap_or(""), &sent)
                } else {
                    pages::feed(web, &back_query(&values), &sent)
                };
                page(result, StatusCode::UNPROCESSABLE_ENTITY)
            }
        }
    })
    .await;
    // The page the browser goes back to next may need the acts.
    after.warm();
    res
}

/// The query of the page a form came from, to show it again.
fn back_query(values: &Params) -> Params {
    let back = values.get("back").unwrap_or("");
    Params::parse(back.split_once('?').map_or("", |(_, q)| q).as_bytes())
}

async fn log(State(web): State<Arc<Web>>, body: Bytes) -> Response {
    write(web, body, "log", |w, v| {
        let text = v.get("text").unwrap_or("");
        let (id, _) = w.log(
            text,
            v.get("pillar").map(str::to_owned),
            v.get("why").map(str::to_owned),
            v.get("yesterday").map(|_| "yesterday"),
        )?;
        Ok(format!("logged {}", id.short()))
    })
    .await
}

async fn kudos(State(web): State<Arc<Web>>, body: Bytes) -> Response {
    write(web, body, "kudos", |w, v| {
        let to = v.all("to");
        let id = w.kudos(
            &to,
            v.get("text").unwrap_or(""),
            v.get("pillar").map(str::to_owned),
        )?;
        Ok(format!("recognised {}", id.short()))
    })
    .await
}

async fn react(State(web): State<Arc<Web>>, body: Bytes) -> Response {
    write(web, body, "react", |w, v| {
        let emoji = v.get("emoji").unwrap_or("");
        crate::render::refuse_outside(w.replica, &w.me, v.get("id").unwrap_or(""), "reacted to")?;
        let (target, outcome) = w.react(v.get("id").unwrap_or(""), emoji)?;
        Ok(match outcome {
            cairn_store::Reacted::Added => format!("{emoji} on {}", target.id.short()),
            cairn_store::Reacted::Removed => format!("took back {emoji} on {}", target.id.short()),
        })
    })
    .await
}

async fn retract(State(web): State<Arc<Web>>, body: Bytes) -> Response {
    write(web, body, "retract", |w, v| {
        crate::render::refuse_outside(w.replica, &w.me, v.get("id").unwrap_or(""), "retracted")?;
        let e = w.retract(v.get("id").unwrap_or(""))?;
        Ok(format!("retracted {}", e.id.short()))
    })
    .await
}

async fn edit_form(State(web): State<Arc<Web>>, Path(id): Path<String>) -> Response {
    blocking(web, move |web| {
        page(pages::edit(web, &id, &Sent::default()), StatusCode::OK)
    })
    .await
}

async fn edit(State(web): State<Arc<Web>>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut body = body.to_vec();
    // The id comes from the address, whatever the form says.
    body.extend_from_slice(b"&id=");
    body.extend(form_urlencoded::byte_serialize(id.as_bytes()).flat_map(str::bytes));
    write(web, body.into(), "edit", |w, v| {
        let id = v.all("id").last().copied().unwrap_or("");
        let edit = cairn_core::Edit {
            text: v.get("text").map(str::to_owned),
            pillar: v.get("pillar").map(str::to_owned),
            why: v.get("why").map(str::to_owned),
        };
        crate::render::refuse_outside(w.replica, &w.me, id, "edited")?;
        let e = w.edit(id, &edit)?;
        Ok(format!("edited {}", e.id.short()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_and_localhost_are_hosts() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:1234",
            "LOCALHOST",
            "[::1]:80",
            "192.168.1.20:8080",
            "10.0.0.2",
        ] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1.nip.io:8080",
            "localhost.evil.com",
            "",
            "[::1",
            "127.0.0.1:port",
            "[evil]:80",
        ] {
            assert!(!host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cairn-80=secret; b=2"),
        );
        assert_eq!(cookie_value(&h, "cairn-80"), Some("secret"));
        assert_eq!(cookie_value(&h, "cairn-81"), None);
    }
}
