//! cairn-relay: a read-only device of a cairn team that posts what the team shares to chat.
//!
//! The relay reads the team's replica (through `cairn-store`), takes each new event into a
//! durable queue of its own, and delivers it to each destination (Slack, Mattermost, Discord,
//! Microsoft Teams, Matrix, a signed webhook) in that platform's format. It never posts an
//! individual's numbers, a ranking or a nudge: only the events members shared with the team.
//!
//! Layout:
//! - [`config`]: the TOML config, secrets by reference, precedence defaults < file <
//!   environment < flags;
//! - [`post`]: what is posted, before any platform's format;
//! - [`format`](mod@format): each platform's request: format, limits, escaping, idempotency
//!   keys, the Standard Webhooks signature;
//! - [`queue`]: the delivery queue in the relay's own SQLite file;
//! - [`net`]: where the relay may connect (no private address unless allowed, checked at
//!   connect time);
//! - [`deliver`]: one worker per destination, what each answer means, retries and backoff;
//! - [`digest`]: the weekly digest: when it is due in the team's zone, what it says (from
//!   `cairn_client::views`, the model `cairn digest` shows), the events held for it;
//! - [`metrics`]: Prometheus metrics, read from the queue when scraped;
//! - [`chat`]: the `/kudos` slash command of Slack and Mattermost, verified and answered over
//!   HTTP; [`links`]: the chat users linked to members, each a device of that member;
//! - [`relay`]: one pass: the replica brought up to date, what is new taken in, what is due
//!   delivered.
//!
//! # What survives a crash
//! Each (destination, event) is queued once (a unique key) and marked `sending`, committed,
//! before its request goes out. A process that dies before it records the answer leaves the
//! row `sending`; the next start ([`queue::Queue::recover`]) sends it again only where the
//! platform drops a repeat by its idempotency key (Matrix's transaction id and a Standard
//! Webhooks `webhook-id`, both derived from the destination and the event), and otherwise marks
//! it `in_doubt` and never sends it again: at most once, never twice. `status` shows rows in
//! doubt.
//!
//! ```
//! use cairn_relay::config::{Config, Overrides};
//! use cairn_relay::format;
//! use cairn_relay::post::{Post, PostKind};
//!
//! let cfg = Config::parse(r#"
//!     [[destination]]
//!     name = "chat"
//!     kind = "discord"
//!     url = "https://discord.example/api/webhooks/1/abc"
//! "#, &Overrides::default()).unwrap();
//! let post = Post {
//!     kind: PostKind::Recognition, event: "e1".into(), team: "Otters".into(),
//!     author: "Ana".into(), to: vec!["Ben".into()], text: "@everyone look".into(),
//!     why: None, pillar: Some("trust".into()), at_ms: 0, digest: None,
//! };
//! let req = format::request(&cfg.destinations[0], "e1/ana", &post, 0).unwrap();
//! let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
//! assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
//! assert!(!body["content"].as_str().unwrap().contains("@everyone"));
//! ```

pub mod chat;
pub mod config;
pub mod deliver;
pub mod digest;
mod error;
pub mod format;
pub mod links;
pub mod metrics;
pub mod net;
pub mod post;
pub mod queue;
pub mod relay;

pub use error::{Error, Result};
