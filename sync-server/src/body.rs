//! Request bodies, read with the work they cause bounded as they arrive, not after.
//!
//! A body is inflated here (when gzipped) and scanned as each piece comes in: past its route's
//! byte limit, past a few dozen times what came over the wire (a gzip bomb), or past its route's
//! count of JSON elements or nesting (millions of empty changes in a few kilobytes), it is
//! refused there and then, and the rest is never read. So parsing it afterwards costs what an
//! honest body of that route costs at most. What a body holds is counted in the bodies the server
//! holds at once, by the bytes really read, and stays counted until the [`Body`] is dropped: its
//! handler keeps it to the end of the work it causes.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// What one route's bodies may hold.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Bytes at most, as read (inflated, for a gzipped body).
    pub max_bytes: usize,
    /// JSON elements at most: array items and object members, every level together.
    pub max_elements: u64,
}

/// How deep a body's JSON nests at most (a sync request needs four levels).
pub const MAX_DEPTH: u32 = 32;
/// A gzipped body inflates to at most this many times the bytes that came over the wire...
pub const MAX_INFLATION: usize = 32;
/// ...or this many bytes, whichever is more.
pub const INFLATION_FLOOR: usize = 64 << 10;

/// A body read whole, counted among the bodies the server holds until it is dropped.
#[derive(Debug)]
pub struct Body {
    pub bytes: Bytes,
    _room: Room,
}

/// Room taken among the bodies held at once, in KiB, grown as a body comes in.
#[derive(Debug)]
struct Room {
    pool: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    kib: usize,
}

impl Room {
    /// Room for `bytes` in all; a 503 when the server holds as much as it may already. Never
    /// waits: a body is held only for what really came.
    fn grow(&mut self, bytes: usize) -> Result<()> {
        let kib = bytes.div_ceil(1024);
        if kib <= self.kib {
            return Ok(());
        }
        let more = u32::try_from(kib - self.kib).unwrap_or(u32::MAX);
        let permit = self
            .pool
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| Error::busy("the server holds too many request bodies; try again"))?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.kib = kib;
        Ok(())
    }
}

/// How a body came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Plain,
    Gzip,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding> {
    let unsupported = || {
        Error::UnsupportedMediaType("send the body as it is, or gzipped (Content-Encoding)".into())
    };
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(Encoding::Plain),
        Some(v) => match v.to_str().map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v == "identity" || v.is_empty() => Ok(Encoding::Plain),
            Ok(v) if v == "gzip" || v == "x-gzip" => Ok(Encoding::Gzip),
            _ => Err(unsupported()),
        },
    }
}

/// Counts the elements and nesting of JSON as it comes, a piece at a time, without parsing it:
/// a few states and a counter, so any body is looked at once, at the speed of a byte loop.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    elements: u64,
}

impl Scan {
    /// Looks at the next piece of the body.
    pub fn feed(&mut self, piece: &[u8], caps: &Caps) -> Result<()> {
        for &b in piece {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    self.elements += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(Error::BadRequest(format!(
                            "the request body nests deeper than {MAX_DEPTH} levels"
                        )));
                    }
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                b',' => self.elements += 1,
                _ => continue,
            }
            if self.elements > caps.max_elements {
                return Err(Error::TooLarge(format!(
                    "the request body holds more than {} items; send fewer changes at once",
                    caps.max_elements
                )));
            }
        }
        Ok(())
    }
}

/// Where a body's bytes go as they are read (inflated, for a gzipped body): checked against the
/// caps before they are kept.
struct Sink<'a> {
    out: Vec<u8>,
    scan: Scan,
    caps: Caps,
    /// The most bytes the body may have now: the route's limit, or less while a gzipped body's
    /// wire bytes are few.
    limit: usize,
    room: &'a mut Room,
    /// Why the sink refused a write (the decoder's error says only that it failed).
    refused: Option<Error>,
}

impl Sink<'_> {
    fn take(&mut self, piece: &[u8]) -> Result<()> {
        let total = self.out.len() + piece.len();
        if total > self.limit {
            return Err(if self.limit < self.caps.max_bytes {
                Error::TooLarge(format!(
                    "the gzipped request body inflates past {MAX_INFLATION} times its size"
                ))
            } else {
                Error::TooLarge(format!(
                    "the request body is larger than {} bytes",
                    self.caps.max_bytes
                ))
            });
        }
        self.scan.feed(piece, &self.caps)?;
        self.room.grow(total)?;
        self.out.extend_from_slice(piece);
        Ok(())
    }
}

impl std::io::Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.take(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.refused = Some(e);
                Err(std::io::Error::other("refused"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a body within `timeout`, inflating a gzipped one, refusing it as soon as it passes
/// `caps` (a declared length past them before a byte is read), and counting what it holds in
/// `pool` (KiB) until the returned body is dropped. `read` is told every byte taken in (inflated).
pub async fn read(
    body: axum::body::Body,
    headers: &HeaderMap,
    caps: Caps,
    pool: &Arc<Semaphore>,
    timeout: Duration,
    mut read: impl FnMut(usize),
) -> Result<Body> {
    let encoding = encoding(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > caps.max_bytes as u64) {
        return Err(Error::TooLarge(format!(
            "the request body is larger than {} bytes",
            caps.max_bytes
        )));
    }
    let mut room = Room {
        pool: pool.clone(),
        held: None,
        kib: 0,
    };
    let mut body = body;
    let reading = async {
        let mut sink = Sink {
            out: Vec::with_capacity(declared.map_or(0, |n| n as usize).min(caps.max_bytes)),
            scan: Scan::default(),
            caps,
            limit: match encoding {
                Encoding::Plain => caps.max_bytes,
                Encoding::Gzip => INFLATION_FLOOR.min(caps.max_bytes),
            },
            room: &mut room,
            refused: None,
        };
        let mut gzip =
            (encoding == Encoding::Gzip).then(|| flate2::write::GzDecoder::new(Vec::new()));
        let mut wire = 0usize;
        let broken = |e: &dyn std::fmt::Display| {
            Error::BadRequest(format!("cannot read the request body: {e}"))
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| broken(&e))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            wire += data.len();
            match &mut gzip {
                None => {
                    read(data.len());
                    sink.take(&data)?;
                }
                Some(decoder) => {
                    sink.limit = wire
                        .saturating_mul(MAX_INFLATION)
                        .max(INFLATION_FLOOR)
                        .min(caps.max_bytes);
                    inflate(decoder, &data, &mut sink, &mut read)?;
                }
            }
        }
        if let Some(mut decoder) = gzip {
            if wire == 0 {
                return Err(broken(&"an empty gzip stream"));
            }
            decoder
                .try_finish()
                .map_err(|e| broken(&format!("not gzip as sent: {e}")))?;
            let rest = std::mem::take(decoder.get_mut());
            read(rest.len());
            sink.take(&rest)?;
        }
        Ok::<_, Error>(sink.out)
    };
    let out = match tokio::time::timeout(timeout, reading).await {
        Err(_) => {
            return Err(Error::Timeout(
                "the request body did not arrive in time".into(),
            ));
        }
        Ok(out) => out?,
    };
    Ok(Body {
        bytes: Bytes::from(out),
        _room: room,
    })
}

/// Inflates one piece of a gzipped body into `sink`, a little at a time: the decoder writes what
/// it inflated into its own small buffer, which goes through the sink's checks before more is
/// inflated.
fn inflate(
    decoder: &mut flate2::write::GzDecoder<Vec<u8>>,
    mut data: &[u8],
    sink: &mut Sink<'_>,
    read: &mut impl FnMut(usize),
) -> Result<()> {
    /// Compressed bytes given to the decoder at once: a bomb inflates about a thousand times.
    const STEP: usize = 64;
    let broken = |e: std::io::Error| {
        Error::BadRequest(format!(
            "cannot read the request body: not gzip as sent: {e}"
        ))
    };
    while !data.is_empty() {
        let n = decoder
            .write(&data[..data.len().min(STEP)])
            .map_err(broken)?;
        data = &data[n..];
        let inflated = std::mem::take(decoder.get_mut());
        if !inflated.is_empty() {
            read(inflated.len());
            if sink.write_all(&inflated).is_err() {
                return Err(sink
                    .refused
                    .take()
                    .unwrap_or_else(|| Error::Internal("a body was refused unsaid".into())));
            }
        }
        if n == 0 {
            // The decoder takes nothing more: the stream ended (what follows is not gzip).
            return Err(broken(std::io::Error::other(
                "bytes after the end of the stream",
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const CAPS: Caps = Caps {
        max_bytes: 1 << 20,
        max_elements: 100,
    };

    #[test]
    fn a_scan_counts_items_and_members_across_pieces_and_ignores_strings() {
        let body = br#"{"cursor":1,"push":[{"doc":"team","changes":["a,[{","b\"]",""]}]}"#;
        for split in 0..body.len() {
            let mut s = Scan::default();
            s.feed(&body[..split], &CAPS).unwrap();
            s.feed(&body[split..], &CAPS).unwrap();
            // { cursor, push } [ {doc, changes} [ three strings ]
            assert_eq!(s.elements, 1 + 1 + 1 + 1 + 1 + 1 + 2, "split at {split}");
            assert_eq!(s.depth, 0);
        }
    }

    #[test]
    fn a_scan_refuses_past_its_count_and_depth() {
        let mut s = Scan::default();
        let many = format!("[{}\"\"]", "\"\",".repeat(100));
        assert!(matches!(
            s.feed(many.as_bytes(), &CAPS),
            Err(Error::TooLarge(_))
        ));
        let mut s = Scan::default();
        let deep = "[".repeat(MAX_DEPTH as usize + 1);
        assert!(matches!(
            s.feed(deep.as_bytes(), &CAPS),
            Err(Error::BadRequest(_))
        ));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn gzipped() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        h
    }

    async fn read_all(
        bytes: Vec<u8>,
        headers: &HeaderMap,
        caps: Caps,
        pool: &Arc<Semaphore>,
    ) -> (Result<Body>, usize) {
        let mut taken = 0;
        let body = read(
            axum::body::Body::from(bytes),
            headers,
            caps,
            pool,
            Duration::from_secs(5),
            |n| taken += n,
        )
        .await;
        (body, taken)
    }

    #[tokio::test]
    async fn a_gzip_bomb_is_refused_having_inflated_little_of_it() {
        let pool = Arc::new(Semaphore::new(64 << 10));
        let caps = Caps {
            max_bytes: 8 << 20,
            max_elements: 30_064,
        };
        // Issue 25: 8 MiB of empty changes in about 8 KB.
        let json = format!(
            "{{\"cursor\":0,\"push\":[{{\"doc\":\"team\",\"changes\":[{}\"\"]}}]}}",
            "\"\",".repeat((8 << 20) / 3)
        );
        let bomb = gzip(json.as_bytes());
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let (body, taken) = read_all(bomb, &gzipped(), caps, &pool).await;
        assert!(matches!(body, Err(Error::TooLarge(_))), "{body:?}");
        assert!(taken < 256 << 10, "inflated {taken} bytes");
        // Spaces, which any count of elements lets through: refused by how far they inflate
        // (32 times the wire's bytes, here about 8 KB).
        let spaces = gzip(&vec![b' '; 8 << 20]);
        let wire = spaces.len();
        let (body, taken) = read_all(spaces, &gzipped(), caps, &pool).await;
        assert!(matches!(body, Err(Error::TooLarge(_))), "{body:?}");
        assert!(
            taken <= MAX_INFLATION * wire + (64 << 10),
            "inflated {taken} bytes of {wire}"
        );
        // Nothing is held after a refusal.
        assert_eq!(pool.available_permits(), 64 << 10);
    }

    #[tokio::test]
    async fn an_honest_body_comes_through_gzipped_or_not_and_holds_its_room_until_dropped() {
        let pool = Arc::new(Semaphore::new(1024));
        // Changes as honest ones look on the wire: base64 of bytes that compress little.
        let mut seed = 7u64;
        let changes: Vec<String> = (0..2_000)
            .map(|_| {
                let text: String = (0..60)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        char::from(
                            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                                [(seed >> 58) as usize],
                        )
                    })
                    .collect();
                format!("\"{text}\"")
            })
            .collect();
        let json = format!(
            "{{\"cursor\":0,\"push\":[{{\"doc\":\"team\",\"changes\":[{}]}}]}}",
            changes.join(",")
        );
        let caps = Caps {
            max_bytes: 1 << 20,
            max_elements: 10_000,
        };
        for headers in [HeaderMap::new(), gzipped()] {
            let bytes = if headers.is_empty() {
                json.clone().into_bytes()
            } else {
                gzip(json.as_bytes())
            };
            let (body, taken) = read_all(bytes, &headers, caps, &pool).await;
            let body = body.unwrap();
            assert_eq!(body.bytes, json.as_bytes());
            assert_eq!(taken, json.len());
            let kib = json.len().div_ceil(1024);
            assert_eq!(pool.available_permits(), 1024 - kib);
            drop(body);
            assert_eq!(pool.available_permits(), 1024);
        }
        // A pool that is full refuses at once rather than queueing.
        let _all = pool.clone().try_acquire_many_owned(1024).unwrap();
        let (body, _) = read_all(json.into_bytes(), &HeaderMap::new(), caps, &pool).await;
        assert!(matches!(body, Err(Error::Unavailable { .. })), "{body:?}");
    }

    #[tokio::test]
    async fn what_is_not_gzip_or_plain_is_refused_as_such() {
        let pool = Arc::new(Semaphore::new(1024));
        let (body, _) = read_all(b"not gzip".to_vec(), &gzipped(), CAPS, &pool).await;
        assert!(matches!(body, Err(Error::BadRequest(_))), "{body:?}");
        let mut br = HeaderMap::new();
        br.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        let (body, _) = read_all(b"{}".to_vec(), &br, CAPS, &pool).await;
        assert!(
            matches!(body, Err(Error::UnsupportedMediaType(_))),
            "{body:?}"
        );
    }
}
