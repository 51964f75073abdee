//! cairn's self-hosted sync server: each team's append-only log of automerge changes, the
//! invites and device tokens that guard it, and the HTTP API (`/v1/...`) the `cairn` client
//! speaks.
//!
//! Layout: [`hub`] holds every rule about who may write what; [`store`] keeps what the hub
//! decided, on SQLite (embedded, the default) or PostgreSQL (several server processes on one
//! database), behind one async trait; [`router`] maps HTTP onto the hub; [`serve`] runs it on a
//! bound listener until a shutdown future completes; [`metrics`] counts for Prometheus. The
//! binary (`cairn-server`) adds the command line.
//!
//! Besides members' devices, a team may have relays (`cairn-relay`): read-only devices of no
//! member, which pull and are refused every write. Any device may wait for news
//! (`GET /v1/wait`, [`hub::Hub::wait`]): bounded in time, per device and in all, at no cost while
//! idle, and ended at once when the server stops.
//!
//! Teams may belong to an organisation, whose log every device of its teams reads through the
//! same routes (`/v1/sync?org=ID`, `/v1/wait?org=ID&after=N`) and only its stewards' devices
//! write; `GET /v1/org` says which one a device's team belongs to (see `hub`'s `org` module for
//! the rules and what a client does).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = cairn_server::store::open("server.sqlite3", &Default::default()).await?;
//! let hub = Arc::new(cairn_server::hub::Hub::new(store, cairn_server::hub::DOC_CACHE));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let state = cairn_server::State::new(hub, cairn_server::Limits::default());
//! cairn_server::serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod backup;
mod body;
mod docs;
mod error;
pub mod hub;
pub mod limits;
pub mod logs;
pub mod metrics;
mod net;
pub mod store;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as Ext};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_protocol::{Info, JoinRequest, OrgResponse, PROTOCOL_VERSION, SyncRequest, WaitResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::error::Refused;
pub use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::limits::{Buckets, Fair, FairSlot, InFlight, LogBudget, Slot, address_key};
pub use crate::limits::{Limits, Rate};
use crate::metrics::Metrics;
pub use crate::net::client_ip;
use crate::store::Device;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct State {
    hub: Arc<Hub>,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    guards: Arc<Guards>,
}

/// The rate limits and caps every request passes before it costs anything.
#[derive(Debug)]
struct Guards {
    heavy: Fair,
    join: Buckets<IpAddr>,
    bad_token: Buckets<IpAddr>,
    sync: Buckets<String>,
    /// Syncs per member: a member's devices share one budget.
    member_sync: Buckets<String>,
    link: Buckets<String>,
    in_flight: InFlight,
    member_in_flight: InFlight,
    log: LogBudget,
    /// The last readiness answer and when it was found.
    ready: tokio::sync::Mutex<Option<(Instant, std::result::Result<(), String>)>>,
    /// Request bodies held at once, in KiB: what devices could otherwise make the server hold.
    body_kib: Arc<Semaphore>,
    /// Token lookups at once for addresses past their refused-token limit.
    suspect_lookups: Semaphore,
    /// Waits for news pending, all devices together.
    waiters: Arc<Semaphore>,
    /// Waits for news pending, by device.
    device_waiters: InFlight,
    /// Set when the server begins to stop: pending waits end at once.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Client addresses and devices the rate limits remember at most.
const MAX_RATE_KEYS: usize = 100_000;

/// Token lookups at once, server-wide, for addresses past their refused-token limit: a stranger
/// flooding from a member's address costs the database this much at most, and the member's own
/// lookup waits behind a few of the stranger's, never for a token of the bucket.
const SUSPECT_LOOKUPS: usize = 2;

impl State {
    /// The state of a server over `hub` with `limits`.
    pub fn new(hub: Arc<Hub>, limits: Limits) -> State {
        let guards = Guards {
            heavy: Fair::new(limits.max_heavy.max(1), limits.max_member_heavy.max(1)),
            join: Buckets::new(limits.join, MAX_RATE_KEYS),
            bad_token: Buckets::new(limits.bad_token, MAX_RATE_KEYS),
            sync: Buckets::new(limits.sync, MAX_RATE_KEYS),
            member_sync: Buckets::new(limits.sync, MAX_RATE_KEYS),
            link: Buckets::new(limits.link, MAX_RATE_KEYS),
            in_flight: InFlight::new(limits.max_device_in_flight.max(1)),
            member_in_flight: InFlight::new(limits.max_member_in_flight.max(1)),
            log: LogBudget::new(Rate::new(200, Duration::from_millis(50))),
            ready: tokio::sync::Mutex::new(None),
            body_kib: Arc::new(Semaphore::new(limits.max_body_memory >> 10)),
            suspect_lookups: Semaphore::new(SUSPECT_LOOKUPS),
            waiters: Arc::new(Semaphore::new(limits.max_waiters)),
            device_waiters: InFlight::new(limits.max_device_waiters.max(1)),
            stopping: tokio::sync::watch::Sender::new(false),
        };
        State {
            hub,
            limits: Arc::new(limits),
            metrics: Arc::new(Metrics::default()),
            guards: Arc::new(guards),
        }
    }

    /// A heavy-work slot for work of `member` of `team` (shared fairly between teams and
    /// members), waiting at most `heavy_wait` for one.
    async fn heavy(&self, team: &str, member: &str) -> Result<FairSlot> {
        self.guards
            .heavy
            .acquire(team, member, self.limits.heavy_wait)
            .await
            .ok_or_else(|| Error::busy("the server is busy; try again in a moment"))
    }

    /// The device whose token the request carries. Only refused tokens count against the
    /// client's address, and a token the server knows is never held back by them: members behind
    /// one address with a stranger (an office's NAT, a proxy not trusted) still get in. What can
    /// be no token of ours is refused without asking the database; the lookups of an address that
    /// keeps sending refused tokens (a hash lookup each) go a few at a time, server-wide.
    async fn authenticate(&self, client: IpAddr, headers: &HeaderMap) -> Result<Device> {
        let key = address_key(client);
        // Counts the refusal; a 429 past the address's limit, a 401 before it.
        let refused = |state: &State| match state.guards.bad_token.take(&key) {
            Ok(()) => Error::Unauthorized,
            Err(wait) => too_many("too many requests with a refused token", wait),
        };
        let Some(token) = bearer(headers).filter(|t| well_formed(t)) else {
            return Err(refused(self));
        };
        let _gate = match self.guards.bad_token.would_refuse(&key) {
            Some(_) => Some(
                self.guards
                    .suspect_lookups
                    .acquire()
                    .await
                    .map_err(|_| Error::busy("the server is stopping"))?,
            ),
            None => None,
        };
        match self.hub.authenticate(token).await {
            Ok(device) => {
                // The request's log line, and its handler's span, name the team and the device
                // from here on.
                let _ = REQUEST_TEAM.try_with(|t| t.replace(Some(device.team.clone())));
                let span = tracing::Span::current();
                span.record("team", device.team.as_str());
                span.record("device", device.id.as_str());
                Ok(device)
            }
            Err(Error::Unauthorized) => Err(refused(self)),
            Err(e) => Err(e),
        }
    }

    /// A place for one more request of `device`, and of its member.
    fn enter(&self, device: &Device) -> Result<(Slot, Slot)> {
        let busy = |what: &str| too_many(what, Duration::from_secs(1));
        let device_slot = self
            .guards
            .in_flight
            .enter(&device.id)
            .ok_or_else(|| busy("this device has too many requests in flight"))?;
        let member_slot = self
            .guards
            .member_in_flight
            .enter(&member_key(device))
            .ok_or_else(|| busy("this member's devices have too many requests in flight"))?;
        Ok((device_slot, member_slot))
    }

    /// Reads a body for a route of `caps`, counting it among the bodies held until it drops.
    async fn body(&self, body: Body, headers: &HeaderMap, caps: body::Caps) -> Result<body::Body> {
        let metrics = &self.metrics;
        body::read(
            body,
            headers,
            caps,
            &self.guards.body_kib,
            self.limits.body_timeout,
            |n| metrics.body_read(n),
        )
        .await
    }
}

/// JSON elements a join's body holds at most: a few fields, and room for newer ones.
const JOIN_ELEMENTS: u64 = 256;

/// JSON elements a sync's body holds at most: its fields, and for each list of changes pushed
/// (one list per document at most, as many as changes) its document, its list and its changes.
fn sync_elements(limits: &Limits) -> u64 {
    (limits.max_push_changes as u64).saturating_mul(3) + 64
}

/// The key of a member's shared budgets: their team and id (a relay, of no member, has one
/// of its own).
fn member_key(device: &Device) -> String {
    format!("{}/{}", device.team, budget_member(device))
}

/// Whom a device's work counts against in the fair shares: its member, or the relay itself.
fn budget_member(device: &Device) -> String {
    if device.relay {
        format!("relay {}", device.id)
    } else {
        device.member.clone()
    }
}

fn too_many(what: &str, wait: Duration) -> Error {
    Error::TooManyRequests {
        message: format!("{what}; try again in {} s", wait.as_secs().max(1)),
        retry_after: wait,
    }
}

/// Whether `token` has the shape of the tokens the server makes (`cairn_` and 64 hex digits):
/// anything else is refused without a lookup.
fn well_formed(token: &str) -> bool {
    token
        .strip_prefix("cairn_")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case, one or more spaces).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case(cairn_protocol::AUTH_SCHEME)
        && !token.is_empty()
        && !token.contains(char::is_whitespace))
    .then_some(token)
}

/// The client's address, as the request log and the rate limits see it.
#[derive(Clone, Copy, Debug)]
struct Client(IpAddr);

/// The HTTP API over `state`.
pub fn router(state: State) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/info", get(info))
        .route("/v1/join", post(join))
        .route("/v1/sync", post(sync))
        .route("/v1/link", post(link))
        .route("/v1/wait", get(wait))
        .route("/v1/org", get(org))
        .route("/v1/org/people", get(org_people))
        .fallback(|| async { Error::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            Error::MethodNotAllowed("this route does not take that method".into())
        })
        // Pages of changes go out gzipped to clients that ask (a no-op answer is too small to),
        // at the fastest level: what they carry is mostly base64 of bytes automerge compressed
        // already, which any level shrinks back as well, and a page costs the CPU of a server
        // serving many devices.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .gzip(true)
                .quality(tower_http::CompressionLevel::Fastest)
                .compress_when(tower_http::compression::predicate::SizeAbove::new(1024)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in flight
/// (for at most ten seconds).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let guards = state.guards.clone();
    let shutdown = async move {
        shutdown.await;
        // Waits for news end now rather than hold the graceful shutdown for their minute.
        guards.stopping.send_replace(true);
    };
    net::serve(listener, state, app, shutdown, Duration::from_secs(10)).await
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

tokio::task_local! {
    /// The team of the request being served, once its device is known, for its log line.
    static REQUEST_TEAM: std::cell::RefCell<Option<String>>;
}

/// Counts every request, and writes one log line per refused one: the client's address, the
/// route, the team when its device is known, the status and why, untrusted text escaped, at most a few hundred lines a second.
async fn observe(Ext(state): Ext<State>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = match path {
        "/v1/sync" => "sync",
        "/v1/join" => "join",
        "/v1/link" => "link",
        "/v1/info" => "info",
        "/v1/wait" => "wait",
        "/v1/org" => "org",
        "/v1/org/people" => "org_people",
        _ => "other",
    };
    let peer = req
        .extensions()
        .get::<net::Peer>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let client = client_ip(peer, forwarded, &state.limits.trusted_proxies);
    let shown_path: String = if route == "other" {
        path.chars().take(80).collect()
    } else {
        String::new()
    };
    req.extensions_mut().insert(Client(client));
    let method = req.method().clone();
    let start = Instant::now();
    let (resp, team) = REQUEST_TEAM
        .scope(std::cell::RefCell::new(None), async move {
            let resp = next.run(req).await;
            (resp, REQUEST_TEAM.with(std::cell::RefCell::take))
        })
        .await;
    let status = resp.status();
    state
        .metrics
        .request(route, status.as_u16(), start.elapsed().as_secs_f64());
    if status.is_client_error() || status.is_server_error() {
        let why = resp
            .extensions()
            .get::<Refused>()
            .map_or("", |r| r.0.as_str());
        if let Some(held) = state.guards.log.allow() {
            let code = status.as_u16();
            // The team's field only where there is one (a device's token was good).
            macro_rules! line {
                ($level:ident, $what:literal) => {
                    match team.as_deref() {
                        Some(team) => tracing::$level!(%client, %method, route, team,
                            path = ?shown_path, status = code, error = ?why, held_back = held, $what),
                        None => tracing::$level!(%client, %method, route,
                            path = ?shown_path, status = code, error = ?why, held_back = held, $what),
                    }
                };
            }
            match code {
                500.. if code != 503 => line!(error, "request failed"),
                429 | 503 => line!(warn, "request refused"),
                _ => line!(info, "request refused"),
            }
        }
    }
    resp
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => Error::Internal(format!("cannot encode a response: {e}")).into_response(),
    }
}

/// Refuses a body that is not JSON, before reading it.
fn json_type(headers: &HeaderMap) -> Result<()> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(
            "send the body as application/json".into(),
        ))
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("the request body is not valid: {e}")))
}

/// Runs `work` as a task of its own holding `hold` (a heavy-work slot, ...) until it really
/// ends, even if the client has hung up meanwhile: abandoned work still counts against the caps,
/// and a push is never cut off halfway.
async fn detached<T: Send + 'static, H: Send + 'static>(
    hold: H,
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(async move {
        let _hold = hold;
        work.await
    })
    .await
    .map_err(|e| Error::Internal(format!("a worker failed: {e}")))?
}

/// Readiness: a write to the database, at most once a second whoever asks (the answer is kept
/// for a second), so the check cannot be turned into a load on the database.
async fn ready(Ext(state): Ext<State>) -> Response {
    let mut last = state.guards.ready.lock().await;
    let fresh = last
        .as_ref()
        .filter(|(at, _)| at.elapsed() < Duration::from_secs(1))
        .map(|(_, answer)| answer.clone());
    let answer = match fresh {
        Some(answer) => answer,
        None => {
            let hub = state.hub.clone();
            let check = tokio::spawn(async move { hub.ready(now_ms()).await });
            let answer = match tokio::time::timeout(Duration::from_secs(2), check).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the database did not answer within 2 s".to_owned()),
            };
            *last = Some((Instant::now(), answer.clone()));
            answer
        }
    };
    drop(last);
    match answer {
        Ok(()) => format!("ready ({})\n", state.hub.store().backend()).into_response(),
        Err(detail) => {
            // The detail goes to the log; whoever asked learns only that it is not ready.
            let mut resp = (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database does not take writes\n",
            )
                .into_response();
            resp.extensions_mut().insert(Refused(detail));
            resp
        }
    }
}

async fn metrics(Ext(state): Ext<State>) -> Response {
    let docs = state.hub.cached_docs();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(
            docs,
            state.hub.compactions_pending(),
            state.hub.store().backend(),
        ),
    )
        .into_response()
}

async fn info(Ext(state): Ext<State>) -> Response {
    json(&Info {
        protocol: PROTOCOL_VERSION,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        max_request_bytes: state.limits.max_request_bytes as u64,
        max_page_changes: state.limits.max_page_changes,
    })
}

#[tracing::instrument(skip_all)]
async fn join(
    Ext(state): Ext<State>,
    axum::Extension(Client(client)): axum::Extension<Client>,
    req: Request,
) -> Result<Response> {
    if let Err(wait) = state.guards.join.take(&address_key(client)) {
        return Err(too_many("too many joins from this address", wait));
    }
    let (parts, body) = req.into_parts();
    json_type(&parts.headers)?;
    let caps = body::Caps {
        max_bytes: state.limits.max_join_bytes,
        max_elements: JOIN_ELEMENTS,
    };
    let body = state.body(body, &parts.headers, caps).await?;
    let req: JoinRequest = parse(&body.bytes)?;
    // Joins have no member yet: those of one address take turns as one.
    let permit = state
        .heavy("", &format!("join {}", address_key(client)))
        .await?;
    let hub = state.hub.clone();
    let max_devices = state.limits.max_devices_per_member;
    let resp = detached((permit, body), async move {
        hub.join(&req, now_ms(), max_devices).await
    })
    .await?;
    tracing::info!(%client, team = %resp.team_id, device = %resp.device_id, "device joined");
    Ok(json(&resp))
}

#[tracing::instrument(skip_all, fields(team, device, org))]
async fn sync(
    Ext(state): Ext<State>,
    axum::Extension(Client(client)): axum::Extension<Client>,
    req: Request,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    // The token first: nobody without one makes the server read a byte of the body.
    let device = state.authenticate(client, &parts.headers).await?;
    let org = org_query(parts.uri.query())?;
    if let Some(org) = &org {
        tracing::Span::current().record("org", org.as_str());
    }
    let slot = state.enter(&device)?;
    if let Err(wait) = state.guards.sync.take(&device.id) {
        return Err(too_many("this device syncs too often", wait));
    }
    if let Err(wait) = state.guards.member_sync.take(&member_key(&device)) {
        return Err(too_many("this member's devices sync too often", wait));
    }
    json_type(&parts.headers)?;
    // Read with its items counted as they come: parsing it then costs what an honest push of
    // the most changes costs at most.
    let caps = body::Caps {
        max_bytes: state.limits.max_request_bytes,
        max_elements: sync_elements(&state.limits),
    };
    let body = state.body(body, &parts.headers, caps).await?;
    let permit = state.heavy(&device.team, &budget_member(&device)).await?;
    let hub = state.hub.clone();
    let limits = state.limits.clone();
    let (resp, counts) = detached((permit, slot), async move {
        // Parsing (JSON, base64) is heavy work too: off the runtime's threads, in a slot. The
        // body stays counted among those held until the work it caused is done.
        let (req, body) = tokio::task::spawn_blocking(move || {
            let req: Result<SyncRequest> = parse(&body.bytes);
            (req, body)
        })
        .await
        .map_err(|e| Error::Internal(format!("a worker failed: {e}")))?;
        let out = match org {
            Some(org) => hub.sync_org(&device, &org, req?, &limits, now_ms()).await,
            None => hub.sync(&device, req?, &limits, now_ms()).await,
        };
        drop(body);
        out
    })
    .await?;
    state.metrics.synced(&counts);
    if counts.stored > 0 || counts.pulled > 0 {
        tracing::debug!(stored = counts.stored, pulled = counts.pulled, "synced");
    }
    Ok(json(&resp))
}

#[tracing::instrument(skip_all, fields(team, device))]
async fn link(
    Ext(state): Ext<State>,
    axum::Extension(Client(client)): axum::Extension<Client>,
    req: Request,
) -> Result<Response> {
    let device = state.authenticate(client, req.headers()).await?;
    let slot = state.enter(&device)?;
    if let Err(wait) = state.guards.link.take(&device.id) {
        return Err(too_many("this device asks for link codes too often", wait));
    }
    let permit = state.heavy(&device.team, &budget_member(&device)).await?;
    let hub = state.hub.clone();
    let max = state.limits.max_link_codes;
    let resp = detached((permit, slot), async move {
        hub.link(&device, now_ms(), max).await
    })
    .await?;
    Ok(json(&resp))
}

/// `GET /v1/wait?after=N&timeout_s=S`: answers as soon as the team's log has an entry after
/// `N` (200 with its head), or with 204 once `S` seconds passed without one. Waiting holds no
/// heavy-work slot and costs nothing but its place among the waiters while idle.
#[tracing::instrument(skip_all, fields(team, device, org))]
async fn wait(
    Ext(state): Ext<State>,
    axum::Extension(Client(client)): axum::Extension<Client>,
    req: Request,
) -> Result<Response> {
    let device = state.authenticate(client, req.headers()).await?;
    let (after, timeout) = wait_query(req.uri().query())?;
    // The organisation's log instead of the team's: the device must be one of its teams'.
    let device = match org_query(req.uri().query())? {
        Some(org) => {
            tracing::Span::current().record("org", org.as_str());
            state.hub.org_device(&device, &org).await?.0
        }
        None => device,
    };
    // As costly as a sync with nothing to move when the answer is at hand: the same budget.
    if let Err(wait) = state.guards.sync.take(&device.id) {
        return Err(too_many("this device syncs too often", wait));
    }
    let full = |what: &str| Error::Unavailable {
        message: format!("{what}; try again in a few seconds"),
        retry_after: Duration::from_secs(5),
    };
    let _device_place = state
        .guards
        .device_waiters
        .enter(&device.id)
        .ok_or_else(|| full("this device has too many waits for news pending"))?;
    let _place = state
        .guards
        .waiters
        .clone()
        .try_acquire_owned()
        .map_err(|_| full("the server has too many waits for news pending"))?;
    let mut stopping = state.guards.stopping.subscribe();
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let pending = state.metrics.wait_began();
    let waited = state
        .hub
        .wait(&device, after, timeout, state.limits.wait_poll, stop)
        .await?;
    drop(pending);
    state.metrics.wait_ended(waited);
    match waited {
        hub::Waited::News(head) => Ok(json(&WaitResponse { head })),
        hub::Waited::Timeout => Ok(StatusCode::NO_CONTENT.into_response()),
        hub::Waited::Stopping => Err(Error::busy("the server is stopping; try again in a moment")),
    }
}

/// `GET /v1/org`: the organisation the device's team belongs to now, if any.
#[tracing::instrument(skip_all, fields(team, device))]
async fn org(
    Ext(state): Ext<State>,
    axum::Extension(Client(client)): axum::Extension<Client>,
    req: Request,
) -> Result<Response> {
    let device = org_reader(&state, client, req.headers()).await?;
    let org = state.hub.org_of(&device).await?;
    Ok(json(&OrgResponse {
        org,
        team: Some(device.team.clone()),
    }))
}

/// The device asking `GET /v1/org` or `/v1/org/people`, within its budget: each is a few
/// indexed reads, as costly as a sync with nothing to move, and takes the same budget.
async fn org_reader(state: &State, client: IpAddr, headers: &HeaderMap) -> Result<store::Device> {
    let device = state.authenticate(client, headers).await?;
    if let Err(wait) = state.guards.sync.take(&device.id) {
        return Err(too_many("this device syncs too often", wait));
    }
    Ok(device)
}

/// `GET /v1/org/people`: everyone of the teams of the device's organisation (whom kudos across
/// teams may name); 404 when its team belongs to none.
async fn org_people(
    Ext(state): Ext<State>,
    axum::Extension(Client(client)): axum::Extension<Client>,
    req: Request,
) -> Result<Response> {
    let device = org_reader(&state, client, req.headers()).await?;
    let Some(org) = state.hub.org_of(&device).await? else {
        return Err(Error::NotFound(
            "this device's team belongs to no organisation".into(),
        ));
    };
    Ok(json(&state.hub.org_people(&org.id).await?))
}

/// The organisation a sync or wait is about (`org=ID` in its query): `None` for the device's
/// team, as every request without it.
fn org_query(query: Option<&str>) -> Result<Option<String>> {
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "org" {
            if value.is_empty()
                || value.len() > 64
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(Error::BadRequest(format!(
                    "`org` takes an organisation's id (GET /v1/org says it), not `{}`",
                    value.chars().take(20).collect::<String>()
                )));
            }
            return Ok(Some(value.to_owned()));
        }
    }
    Ok(None)
}

/// The `after` and `timeout_s` of a wait's query: `after` required, `timeout_s` at most
/// [`cairn_protocol::MAX_WAIT_S`] (a longer one is cut to it), by default
/// [`cairn_protocol::DEFAULT_WAIT_S`].
fn wait_query(query: Option<&str>) -> Result<(u64, Duration)> {
    let mut after = None;
    let mut timeout = cairn_protocol::DEFAULT_WAIT_S;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = |what: &str| {
            value.parse::<u64>().map_err(|_| {
                Error::BadRequest(format!(
                    "`{what}` takes a whole number, not `{}`",
                    value.chars().take(20).collect::<String>()
                ))
            })
        };
        match key {
            "after" => after = Some(number("after")?),
            "timeout_s" => timeout = number("timeout_s")?,
            // Room for parameters a newer client may send.
            _ => {}
        }
    }
    let after = after.ok_or_else(|| {
        Error::BadRequest(
            "a wait names the last entry of the team's log it knows: /v1/wait?after=N".into(),
        )
    })?;
    Ok((
        after,
        Duration::from_secs(timeout.min(cairn_protocol::MAX_WAIT_S)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn a_body_stays_counted_while_it_waits_for_a_slot_and_until_its_work_is_done() {
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.sqlite3");
        let store = crate::store::open(path.to_str().unwrap(), &Default::default())
            .await
            .unwrap();
        let hub = Arc::new(Hub::new(store, 16));
        let team = hub.create_team("Otters", 0).await.unwrap();
        let code = hub
            .create_invite(&team.id, 1, i64::MAX, 0, crate::hub::Whom::Founder)
            .await
            .unwrap();
        let ana = JoinRequest {
            invite: code,
            device_name: "ana's laptop".into(),
            publish: Some("ana".into()),
            ..JoinRequest::default()
        };
        let token = hub.join(&ana, 0, 10).await.unwrap().token.0;
        let state = State::new(
            hub,
            Limits {
                max_heavy: 1,
                heavy_wait: Duration::from_secs(60),
                ..Limits::default()
            },
        );
        let room = || state.guards.body_kib.available_permits();
        let all = room();
        // The one heavy-work slot is taken; a sync comes with a body of some 20 KB.
        let busy = state
            .guards
            .heavy
            .acquire("another", "team", Duration::ZERO)
            .await
            .unwrap();
        let body = format!(r#"{{"cursor":0{}}}"#, " ".repeat(20 << 10));
        let req = Request::post("/v1/sync")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let call = tokio::spawn(router(state.clone()).oneshot(req));
        while state.guards.heavy.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        // Read, and waiting: its 20 KB are counted among the bodies held.
        assert_eq!(all - room(), 21);
        drop(busy);
        let resp = call.await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(room(), all);
    }

    #[test]
    fn a_wait_query_needs_after_and_keeps_its_timeout_within_bounds() {
        let secs = |q: &str| wait_query(Some(q)).map(|(a, t)| (a, t.as_secs()));
        assert_eq!(secs("after=7").unwrap(), (7, 50));
        assert_eq!(secs("after=7&timeout_s=2").unwrap(), (7, 2));
        assert_eq!(secs("timeout_s=600&after=0").unwrap(), (0, 60));
        assert_eq!(secs("after=1&later=x").unwrap(), (1, 50));
        assert!(matches!(secs("timeout_s=5"), Err(Error::BadRequest(_))));
        assert!(matches!(wait_query(None), Err(Error::BadRequest(_))));
        let err = secs("after=-1").unwrap_err().to_string();
        assert!(err.contains("`after` takes a whole number"), "{err}");
        assert!(matches!(
            secs("after=1&timeout_s=x"),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn an_org_query_names_an_id_or_nothing() {
        assert_eq!(org_query(None).unwrap(), None);
        assert_eq!(org_query(Some("after=3")).unwrap(), None);
        assert_eq!(
            org_query(Some("after=3&org=k3x9q2m7p4ab"))
                .unwrap()
                .as_deref(),
            Some("k3x9q2m7p4ab")
        );
        for bad in [
            "org=",
            "org=a/b",
            "org=%2e%2e",
            &format!("org={}", "a".repeat(65)),
        ] {
            assert!(
                matches!(org_query(Some(bad)), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_tokens_of_our_shape_are_looked_up() {
        let ours = format!("cairn_{}", "0a".repeat(32));
        assert!(well_formed(&ours));
        assert!(!well_formed("cairn_0000"));
        assert!(!well_formed(&format!("cairn_{}", "0g".repeat(32))));
        assert!(!well_formed(&format!("cairn_{}0", "0a".repeat(32))));
        assert!(!well_formed(&format!("token_{}", "0a".repeat(32))));
    }

    #[test]
    fn bearer_takes_any_case_and_needs_a_space() {
        assert_eq!(bearer(&auth("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&auth("bearer abc")), Some("abc"));
        assert_eq!(bearer(&auth("BEARER   abc  ")), Some("abc"));
        assert_eq!(bearer(&auth("Bearerabc")), None);
        assert_eq!(bearer(&auth("Bearer ")), None);
        assert_eq!(bearer(&auth("Bearer a b")), None);
        assert_eq!(bearer(&auth("Basic abc")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
