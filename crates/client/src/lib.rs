//! What every cairn client does besides its interface: joining a team, the sync client, the
//! writer context and a member's writes, and the views every client shows. The `cairn` CLI,
//! `cairn web`'s handlers and `cairn-relay` are interfaces over it; none reaches into another.
//!
//! It never prints and never exits: what a person might be told while a request is under way
//! comes as a [`sync::Notice`] to an observer the client was given, what an exchange does as a
//! [`sync::Step`] to a callback, and every failure as a typed error of its area
//! ([`sync::Error`], [`write::Error`]) that the binary turns into its own words.
//!
//! # Layout
//! - [`sync`]: HTTP to a `cairn-server` ([`sync::Client`]), the exchange loop and the mapping of
//!   the protocol's pages onto the store ([`sync::exchange`]), the sync a device runs
//!   ([`sync::sync_once`]), joining ([`sync::join`], or [`sync::register`] then
//!   [`sync::begin`]) and publishing ([`sync::publish`]), and the memory of a sync refused for
//!   good ([`sync::problem`]).
//! - [`write`](mod@write): the writer context ([`write::Writer`]: the replica, the member it
//!   acts as, the team, the [`write::Clock`]) and a member's writes (log, kudos, react, edit,
//!   retract) with the rules every client applies alike: the late-log window
//!   ([`write::late_day`]), who a kudos names ([`write::recipients`]), who may write as whom
//!   ([`write::actor`]); the organisation's document as this home holds it
//!   ([`write::org_state`]), a steward's changes to it ([`write::write_org`]) and a team's own
//!   how of each non-negotiable ([`write::Writer::set_practice`], [`write::practices`]).
//! - [`views`]: what every client shows of a team, as models an interface renders its own way:
//!   the streaks, the digest (and [`views::DigestView`], the digest in words), a member's own
//!   numbers, the badges and reach.
//!
//! # Example
//! A headless device that joins a team, later waits for news and syncs, and writes:
//! ```no_run
//! use cairn_client::sync::{self, Client, Options, TIMEOUT};
//! use cairn_client::write::{Clock, Writer};
//! use cairn_protocol::JoinRequest;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = sync::normalise_url("http://127.0.0.1:7878")?;
//! let server = Client::new(&url, None, TIMEOUT);
//! let join = sync::Join {
//!     request: JoinRequest {
//!         invite: "INVITE-CODE".into(),
//!         device_name: "a kiosk".into(),
//!         ..JoinRequest::default()
//!     },
//!     ..sync::Join::default()
//! };
//! let now_ms = 1_764_000_000_000;
//! let path = std::path::Path::new("/var/lib/kiosk/replica.sqlite3");
//! let joined = sync::join(&server, &join, path, now_ms, Options::ASKED, &mut |_| {})?;
//! println!("joined team {}", joined.response.team_id);
//! drop(joined);
//!
//! // Later: open the device again; wait for news (at most 50 s) and bring it.
//! let mut device = sync::Device::open(path, TIMEOUT)?;
//! if device.wait(50)?.is_some() {
//!     let report = device.sync(now_ms, Options::ASKED, &mut |_| {})?;
//!     println!("received {} changes", report.received);
//! }
//!
//! // A member's device writes through the writer context; the next sync sends it.
//! let clock = Clock::new(jiff::Timestamp::now(), jiff::tz::TimeZone::system());
//! let mut w = Writer::new(&mut device.replica, clock, None)?;
//! let (id, _) = w.log("Paired on the flaky test", None, None, None)?;
//! println!("logged {}", id.short());
//! # Ok(())
//! # }
//! ```

pub mod across;
pub mod orgview;
pub mod shared;
pub mod sync;
pub mod views;
pub mod write;
