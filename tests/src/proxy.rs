//! A proxy at a server's door that counts the requests going through it, by method and path:
//! for tests of how many requests a client makes. It forwards bytes as they are, each client
//! connection over a server connection of its own, and takes a request to begin with the
//! first bytes a client sends after the server answered (HTTP/1.1 clients without pipelining
//! ask again only after the answer). It stops accepting in `Drop`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A counting proxy on `127.0.0.1:0`.
#[derive(Debug)]
pub struct Proxy {
    /// The address members give instead of the server's.
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy in front of the server at `server_url` (`http://host:port`).
    pub fn start(server_url: &str) -> Proxy {
        let target = server_url.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        let addr = listener.local_addr().expect("the proxy has an address");
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let fresh = Arc::new(AtomicBool::new(true));
                let (up, log) = (fresh.clone(), log.clone());
                std::thread::spawn(move || forward_up(client_in, server_out, &up, &log));
                std::thread::spawn(move || forward_down(server, client, &fresh));
            }
        });
        Proxy {
            url: format!("http://{addr}"),
            seen,
            stop,
        }
    }

    /// Every request so far, as `GET /v1/org` (no query), in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests went to `path` (any method, any query).
    pub fn count(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|l| l.split(' ').nth(1) == Some(path))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees it should stop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn forward_up(
    mut from: TcpStream,
    mut to: TcpStream,
    fresh: &AtomicBool,
    seen: &Mutex<Vec<String>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        if fresh.swap(false, Ordering::SeqCst) {
            let head = String::from_utf8_lossy(&buf[..n.min(512)]).into_owned();
            let first = head.lines().next().unwrap_or_default();
            let mut words = first.split(' ');
            let method = words.next().unwrap_or_default();
            let path = words.next().unwrap_or_default();
            let path = path.split('?').next().unwrap_or_default();
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{method} {path}"));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn forward_down(mut from: TcpStream, mut to: TcpStream, fresh: &AtomicBool) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        // Before the client can have the answer, and so before it can ask again.
        fresh.store(true, Ordering::SeqCst);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
