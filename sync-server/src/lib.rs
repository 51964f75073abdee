//! cairn's self-hosted sync server: each team's append-only log of automerge changes, the
//! invites and device tokens that guard it, and the HTTP API (`/v1/...`) the `cairn` client
//! speaks.
//!
//! Layout: [`db`] is the storage on SQLite and every rule about who may write what; [`router`]
//! maps HTTP onto it; [`serve`] runs it on a bound listener until a shutdown future completes;
//! [`metrics`] counts for Prometheus. The binary (`cairn-server`) adds the command line.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let db = Arc::new(cairn_server::db::Db::open(std::path::Path::new("server.sqlite3"))?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let state = cairn_server::State::new(db, cairn_server::Limits::default());
//! cairn_server::serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod db;
mod error;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State as Ext};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_protocol::{AUTH_SCHEME, Info, JoinRequest, PROTOCOL_VERSION, SyncRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{Db, Device};
pub use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// The sizes the server accepts and sends.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request body read, in bytes.
    pub max_request_bytes: usize,
    /// The most changes one sync may push.
    pub max_push_changes: usize,
    /// The largest single change, in bytes.
    pub max_change_bytes: usize,
    /// The most changes one sync response carries.
    pub max_page_changes: u32,
    /// The most change bytes one sync response carries (past its first change).
    pub max_page_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 16 << 20,
            max_push_changes: 10_000,
            max_change_bytes: 1 << 20,
            max_page_changes: 5_000,
            max_page_bytes: 4 << 20,
        }
    }
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct State {
    db: Arc<Db>,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
}

impl State {
    /// The state of a server over `db` with `limits`.
    pub fn new(db: Arc<Db>, limits: Limits) -> State {
        State {
            db,
            limits: Arc::new(limits),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// The HTTP API over `state`.
pub fn router(state: State) -> Router {
    let limit = state.limits.max_request_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/info", get(info))
        .route("/v1/join", post(join))
        .route("/v1/sync", post(sync))
        .route("/v1/link", post(link))
        .fallback(|| async { Error::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            Error::MethodNotAllowed("this route does not take that method".into())
        })
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn count(Ext(state): Ext<State>, req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        "/v1/sync" => "sync",
        "/v1/join" => "join",
        "/v1/link" => "link",
        "/v1/info" => "info",
        _ => "other",
    };
    let start = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .request(route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => Error::Internal(format!("cannot encode a response: {e}")).into_response(),
    }
}

/// Reads a JSON body, refusing other content types, oversize bodies and bad JSON alike.
fn body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<T> {
    let ok_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !ok_type {
        return Err(Error::UnsupportedMediaType(
            "send the body as application/json".into(),
        ));
    }
    let bytes = bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge("the request body is too large".into())
        } else {
            Error::BadRequest(format!("cannot read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::BadRequest(format!("the request body is not valid: {e}")))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a worker failed: {e}")))?
}

async fn authenticate(state: &State, headers: &HeaderMap) -> Result<Device> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(AUTH_SCHEME))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(Error::Unauthorized)?;
    let db = state.db.clone();
    blocking(move || db.authenticate(&token)).await
}

async fn ready(Ext(state): Ext<State>) -> Response {
    let db = state.db.clone();
    match blocking(move || db.ready()).await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => {
            tracing::error!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer\n",
            )
                .into_response()
        }
    }
}

async fn metrics(Ext(state): Ext<State>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
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

#[tracing::instrument(skip_all, err(Display))]
async fn join(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let req: JoinRequest = body(&headers, bytes)?;
    let db = state.db.clone();
    let resp = blocking(move || db.join(&req, now_ms())).await?;
    tracing::info!(team = %resp.team_id, device = %resp.device_id, "device joined");
    Ok(json(&resp))
}

#[tracing::instrument(skip_all, fields(team, device), err(Display))]
async fn sync(
    Ext(state): Ext<State>,
    headers: HeaderMap,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let device = authenticate(&state, &headers).await?;
    let span = tracing::Span::current();
    span.record("team", device.team.as_str());
    span.record("device", device.id.as_str());
    let req: SyncRequest = body(&headers, bytes)?;
    let db = state.db.clone();
    let limits = state.limits.clone();
    let (resp, counts) = blocking(move || db.sync(&device, &req, &limits, now_ms())).await?;
    state.metrics.synced(&counts);
    if counts.stored > 0 || counts.pulled > 0 {
        tracing::debug!(stored = counts.stored, pulled = counts.pulled, "synced");
    }
    Ok(json(&resp))
}

#[tracing::instrument(skip_all, err(Display))]
async fn link(Ext(state): Ext<State>, headers: HeaderMap) -> Result<Response> {
    let device = authenticate(&state, &headers).await?;
    let db = state.db.clone();
    let resp = blocking(move || db.link(&device, now_ms())).await?;
    Ok(json(&resp))
}
