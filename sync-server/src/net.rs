//! Connections: accepted up to a cap, each with timeouts on its headers and on idling between
//! requests, served over HTTP/1.1 by hyper; the client's address handed to the handlers.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::State;
use crate::limits::LogBudget;

/// The address of the peer that opened the connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// What a connection refused for want of room is told before it is closed.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 70\r\n\r\n\
{\"error\":\"busy\",\"message\":\"the server has too many connections open\"}\n";

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (for at most `grace`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let limits = state.limits.clone();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let full_log = LogBudget::new(crate::limits::Rate::new(1, Duration::from_secs(10)));
    let open_by_address: OpenByAddress = Arc::default();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(16 << 10)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: say so and give the system a moment.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let key = crate::limits::address_key(addr.ip());
        let per_address = if limits.trusted_proxies.contains(&addr.ip()) {
            Some(PerAddress::unlimited())
        } else {
            PerAddress::enter(&open_by_address, key, limits.max_connections_per_address)
        };
        let (Some(per_address), Ok(permit)) =
            (per_address, connections.clone().try_acquire_owned())
        else {
            state.metrics.connection_refused();
            if let Some(held) = full_log.allow() {
                tracing::warn!(client = %addr.ip(), refused_since_last = held,
                    max = limits.max_connections,
                    max_per_address = limits.max_connections_per_address,
                    "too many connections; refusing new ones");
            }
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(FULL).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(Peer(addr));
            router.clone().oneshot(req.map(Body::new))
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let metrics = state.metrics.clone();
        tokio::spawn(async move {
            metrics.connection_opened();
            // Errors here are a client hanging up or timing out: nothing to report.
            let _ = conn.await;
            metrics.connection_closed();
            drop(permit);
            drop(per_address);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(grace) => {
            tracing::warn!("connections still open after the grace period; closing them");
        }
    }
    Ok(())
}

type OpenByAddress = Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>;

/// One open connection of a client address; gives its place back when dropped.
struct PerAddress {
    held: Option<(OpenByAddress, IpAddr)>,
}

impl PerAddress {
    fn unlimited() -> PerAddress {
        PerAddress { held: None }
    }

    /// A place for one more connection of `key`, unless it has `max` open.
    fn enter(map: &OpenByAddress, key: IpAddr, max: usize) -> Option<PerAddress> {
        let mut open = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PerAddress {
            held: Some((map.clone(), key)),
        })
    }
}

impl Drop for PerAddress {
    fn drop(&mut self) {
        if let Some((map, key)) = self.held.take() {
            let mut open = map.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` that is not one of the trusted proxies.
pub fn client_ip(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(list) = forwarded else { return peer };
    let mut last = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => last = ip,
            Ok(ip) => return ip,
            Err(_) => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_refusal_says_its_length_right() {
        let text = std::str::from_utf8(FULL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        serde_json::from_str::<cairn_protocol::ErrorBody>(body).unwrap();
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let fwd = Some("198.51.100.1, 203.0.113.7");
        assert_eq!(
            client_ip(client, fwd, &[proxy]),
            client,
            "not a proxy: ignored"
        );
        assert_eq!(client_ip(proxy, fwd, &[proxy]), client);
        assert_eq!(
            client_ip(proxy, Some("198.51.100.1, 10.0.0.2"), &[proxy]),
            other
        );
        assert_eq!(client_ip(proxy, Some("garbage"), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, None, &[proxy]), proxy);
    }
}
