//! The domain of cairn on automerge: the team document, the journals of events and the pure rules
//! built on them.
//!
//! `cairn-core` owns the schema of every document and the operations that change them. It does no
//! I/O and knows no clock: the acting member, the instant, the time zone and the randomness behind
//! new ids are passed in, so every function here is deterministic and testable.
//!
//! Layout:
//! - [`change`]: changes from elsewhere, inspected with bounded work and applied without panics;
//! - [`ids`]: event, member and document ids (event ids sort by time);
//! - [`team`]: the team document (name, zone, pillars, commitments, members, its practices of
//!   the organisation's non-negotiables);
//! - [`org`]: the organisation's document (its non-negotiables and the notes of their changes);
//! - [`figures`]: a team's weekly figures, shared with its organisation when it chooses to, and
//!   the organisation's view of them;
//! - [`across`]: kudos across the teams of an organisation, in journals of its log;
//! - [`journal`]: the journal documents, one per member per month, holding [`Event`]s;
//! - [`feed`]: the culture feed as a pure function of events;
//! - [`digest`]: a week or a month summed up for a retrospective;
//! - [`goals`]: badges, challenges, reach and nudges;
//! - [`rebase`]: changes written again under a fresh actor (a copied or restored replica);
//! - [`snapshot`]: saved documents from elsewhere, inspected with bounded work before they load;
//! - [`rules`]: streaks and the activity heatmap, pure functions of who was active when;
//! - [`time`]: instants to the local dates the rules count in.
//!
//! ```
//! use automerge::{ActorId, Automerge};
//! use cairn_core::{ids::EventId, journal, team, Kind, NewEvent, Stamp};
//!
//! let actor = ActorId::from([1u8; 16]);
//! let mut team_doc = Automerge::new().with_actor(actor.clone());
//! let ana = team::init(&mut team_doc, "Otters", "Europe/Paris", "Ana", "ana", "m-ana", 0).unwrap();
//! let state = team::read(&team_doc).unwrap();
//!
//! let mut journal_doc = Automerge::new().with_actor(actor);
//! let stamp = Stamp { at_ms: 1_700_000_000_000, tz: "Europe/Paris".into(), date: "2023-11-14".into(), late: false };
//! let id = EventId::new(stamp.at_ms, [7; 5]);
//! let new = NewEvent::action("tidied the shared board", Some("trust".into()), None);
//! journal::add(&mut journal_doc, &state, &ana, &id, &stamp, &new).unwrap();
//! let events = journal::read(&journal_doc).unwrap();
//! assert_eq!(events[0].kind, Kind::Action);
//! ```

pub mod across;
pub mod change;
pub mod digest;
pub mod error;
pub mod event;
pub mod feed;
pub mod figures;
pub mod goals;
pub mod ids;
pub mod journal;
pub mod org;
pub mod rebase;
pub mod rules;
pub mod snapshot;
pub mod team;
pub mod time;
mod value;

pub use automerge::Automerge;
pub use error::{Error, Result};
pub use event::{Edit, Event, Kind, MAX_TEXT_CHARS, NewEvent, Stamp};
pub use figures::{OrgFigures, Shared, TeamFigures, WeekFigures};
pub use org::{OrgCommitment, OrgNote, OrgState};
pub use team::{Commitment, Member, Pillar, Practice, Share, TeamState};
