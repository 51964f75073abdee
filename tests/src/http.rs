//! Requests to a `cairn-server` as a client that is not `cairn` would send them: a push of raw
//! changes with a token, and raw bytes over a socket for what no HTTP library lets one send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cairn_protocol::{Bytes, DocChanges, SyncRequest};

/// An agent that reports every status instead of failing on 4xx, and gives up after 30 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Pushes `changes` into `doc` with `token`, pulling nothing; returns the status and the body.
pub fn push(url: &str, token: &str, doc: &str, changes: Vec<Vec<u8>>) -> (u16, String) {
    let req = SyncRequest {
        cursor: 0,
        push: vec![DocChanges {
            doc: doc.into(),
            changes: changes.into_iter().map(Bytes).collect(),
        }],
        max_pull: Some(0),
        import_done: false,
        withdrawals: false,
        ..SyncRequest::default()
    };
    post(
        url,
        "/v1/sync",
        Some(token),
        &serde_json::to_vec(&req).unwrap(),
    )
}

/// POSTs a JSON body; returns the status and the body.
pub fn post(url: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut req = agent()
        .post(format!("{url}{path}"))
        .content_type("application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.send(body).expect("the server answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// GETs `path`; returns the status and the body.
pub fn get(url: &str, path: &str) -> (u16, String) {
    let mut resp = agent()
        .get(format!("{url}{path}"))
        .call()
        .expect("the server answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// A raw connection to `addr` that gives up reading after `wait`.
pub fn connect(addr: &str, wait: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("the server accepts");
    s.set_read_timeout(Some(wait)).unwrap();
    s
}

/// Writes `bytes`, then reads until the server closes the connection or `wait` passes; returns
/// what was read and whether the server closed it.
pub fn exchange(stream: &mut TcpStream, bytes: &[u8]) -> (String, bool) {
    stream.write_all(bytes).expect("the server takes the bytes");
    read_to_close(stream)
}

/// Reads until the server closes the connection (`true`) or the read timeout passes (`false`).
pub fn read_to_close(stream: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}
