//! The wire types of cairn's sync API, version 1, shared by `cairn-server` and the `cairn` client.
//!
//! Every route lives under `/v1/`. Bodies are JSON; automerge changes travel as base64 strings
//! ([`Bytes`]). New fields are optional with defaults, so an older peer still decodes a newer
//! body; a change that cannot be made that way is a new version with new routes.
//!
//! - `GET /v1/info` → [`Info`]: the server's protocol version and limits, without a token.
//! - `POST /v1/join` with [`JoinRequest`] → [`JoinResponse`]: an invite code buys a device token.
//! - `POST /v1/sync` with [`SyncRequest`] → [`SyncResponse`]: the outbox goes up, the team's change
//!   log after the client's cursor comes down, a bounded page at a time. A client that says it
//!   can ([`SyncRequest::snapshots`]) and is far behind gets whole documents instead
//!   ([`SyncResponse::docs`]): each one's compacted state and the changes after it.
//! - `POST /v1/link` (with a token) → [`LinkResponse`]: a one-time code for another device of the
//!   same member.
//! - `GET /v1/wait?after=N&timeout_s=S` (with a token) → [`WaitResponse`] as soon as the team's
//!   change log has an entry after `N`, or `204 No Content` when `S` seconds (at most
//!   [`MAX_WAIT_S`], by default [`DEFAULT_WAIT_S`]) pass with none. An older server answers 404:
//!   a client then falls back to syncing now and then.
//! - organisations: a team may belong to one ([`JoinResponse::org`], `GET /v1/org` (with a
//!   token) → [`OrgResponse`]). Its log is synced through the same routes with `?org=ID` added:
//!   `POST /v1/sync?org=ID` and `GET /v1/wait?org=ID&after=N`, with a cursor of its own. Every
//!   device of its attached teams reads it; only its stewards' devices write it, and only its
//!   document ([`ORG_DOC`]). A request without `?org` is about the device's team, as before; an
//!   older server answers `GET /v1/org` with 404 (no organisations).
//! - a relay ([`DeviceKind::Relay`]) joins with an invite made for one, pulls like any device and
//!   never writes: every push or link code it asks for is refused with [`READ_ONLY`].
//! - any failure → a 4xx or 5xx status with an [`ErrorBody`].
//!
//! ```
//! use cairn_protocol::{Bytes, DocChanges, SyncRequest};
//! let req = SyncRequest {
//!     cursor: 41,
//!     push: vec![DocChanges { doc: "team".into(), changes: vec![Bytes(vec![1, 2, 3])] }],
//!     max_pull: None,
//!     withdrawals: true,
//!     ..SyncRequest::default()
//! };
//! let json = serde_json::to_string(&req).unwrap();
//! assert!(json.contains("\"AQID\""));
//! assert_eq!(serde_json::from_str::<SyncRequest>(&json).unwrap(), req);
//! ```

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The header that carries a device token: `Authorization: Bearer <token>`.
pub const AUTH_SCHEME: &str = "Bearer";

/// Raw bytes that travel as a base64 string.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// A device's secret: shown once, stored by the server only as a hash, never printed in logs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// `GET /v1/info`: what the server speaks and allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub protocol: u32,
    pub server_version: String,
    /// The largest request body the server reads, in bytes.
    pub max_request_bytes: u64,
    /// The most changes one sync response carries.
    pub max_page_changes: u32,
}

/// `POST /v1/join`: spend an invite code to register this device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub invite: String,
    /// A name for the device, shown in the admin's device list ("ana's laptop").
    pub device_name: String,
    /// The member's display name, for a new member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Claim the member who was added earlier under this handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// Bring a team started offline: this device holds its whole history and writes as the
    /// member with this id. Only the invite made for the team's founder publishes, and only to
    /// a team with no history yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<String>,
    /// With `publish`: the team's name as the device's replica has it. The server's record of
    /// the team takes it when they differ ([`JoinResponse::team_name`] says what it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_name: Option<String>,
    /// This client can found a team: joining with the founder's invite to a team with no
    /// history, it writes the team's first document itself ([`JoinResponse::founder`]). An
    /// older client does not say so, and the server refuses it that invite rather than leave
    /// it with a team that has no document.
    #[serde(default, skip_serializing_if = "is_false")]
    pub found: bool,
    /// What kind of device joins: a member's (the default, all an older client knows) or a
    /// relay's, which needs an invite made for a relay (`cairn-server invite create --relay`).
    #[serde(default, skip_serializing_if = "DeviceKind::is_member")]
    pub device_kind: DeviceKind,
    /// A device that was a member's, of a server restored from a backup made before that
    /// member joined: it takes its member id back (one the server knows nothing of) with a
    /// general invite, then sends again all it wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin: Option<String>,
}

/// What kind of device a join registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A member's device: it pulls and pushes as its member.
    #[default]
    Member,
    /// A read-only device that belongs to no member (`cairn-relay`): it pulls, waits for news,
    /// and the server refuses everything it would write.
    Relay,
}

impl DeviceKind {
    /// Whether this is a member's device (the default, left out of bodies).
    pub fn is_member(&self) -> bool {
        *self == DeviceKind::Member
    }
}

/// The answer to a join: who this device is and the token it signs in with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub team_id: String,
    pub member_id: String,
    pub device_id: String,
    pub token: Token,
    /// The team's name as the server knew it when the invite was spent (before a publication
    /// renamed it). `None` from an older server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_name: Option<String>,
    /// This device brings the team its first history: a publication, or (without `publish`) a
    /// founder who starts the team here and writes its first document, named `team_name`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub founder: bool,
    /// The kind of device registered: [`DeviceKind::Relay`] for a relay, which is no member
    /// (its `member_id` is empty). Absent (a member's device) from an older server.
    #[serde(default, skip_serializing_if = "DeviceKind::is_member")]
    pub device_kind: DeviceKind,
    /// The organisation the team belongs to, if any: the client keeps its log beside the
    /// team's. Absent for a team of no organisation, and from an older server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgRef>,
}

/// An organisation, as a device of one of its teams sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    /// Its id: what `?org=` names on `/v1/sync` and `/v1/wait`.
    pub id: String,
    pub name: String,
    /// This device is a steward's: it may write the organisation's document.
    #[serde(default, skip_serializing_if = "is_false")]
    pub steward: bool,
}

/// `GET /v1/org`: the organisation the device's team belongs to now, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgResponse {
    #[serde(default)]
    pub org: Option<OrgRef>,
    /// The id of the device's team on this server: what names the team in the organisation's
    /// documents (`x/<team>/...`, `s/<team>`). A team begun offline and published keeps its
    /// own id in its founder's replica; this is the one its members write under. `None` from
    /// an older server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// `GET /v1/org/people`: everyone of the teams of the device's organisation, by team (sorted
/// by name): whom kudos across teams may name. Members who left are not there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPeople {
    #[serde(default, deserialize_with = "bounded")]
    pub teams: Vec<OrgPeopleTeam>,
}

/// A team of an organisation and its people.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPeopleTeam {
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "bounded")]
    pub people: Vec<OrgPerson>,
}

/// Someone of a team of an organisation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPerson {
    /// Their member id in their team.
    pub member: String,
    pub handle: String,
    pub name: String,
}

/// The document of an organisation's log that its stewards write (its non-negotiables, ...).
/// Its log also holds each member's journals of kudos across teams (`x/<team>/<member>/<month>`,
/// written by that member's devices) and each team's shared figures (`s/<team>`, written by
/// that team's members' devices).
pub const ORG_DOC: &str = "team";

/// The changes of one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocChanges {
    /// The document's id within the team: `team` or `j/<member>/<YYYY-MM>`.
    pub doc: String,
    /// Raw automerge changes, each as `Change::raw_bytes` gave it.
    pub changes: Vec<Bytes>,
}

/// `POST /v1/sync`: one exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The number of the last entry of the team's change log this device has applied.
    pub cursor: u64,
    /// The outbox, grouped by document.
    #[serde(default)]
    pub push: Vec<DocChanges>,
    /// Ask for at most this many changes (the server may send fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pull: Option<u32>,
    /// A publishing device says its whole history is up: from now on it writes only as itself.
    #[serde(default, skip_serializing_if = "is_false")]
    pub import_done: bool,
    /// This client honours withdrawal notices ([`Pulled::withdrawn`]); older clients get none
    /// and simply never see withdrawn changes again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub withdrawals: bool,
    /// This client takes whole documents ([`SyncResponse::docs`]) when it is far behind, and
    /// honours withdrawal notices; older clients get the log one change at a time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub snapshots: bool,
    /// Goes on with the catch-up the last response began ([`SyncResponse::catch_up`]), with the
    /// same cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    /// On an organisation's log: this client holds its documents other than [`ORG_DOC`] (kudos
    /// across teams, what teams share upward). Older clients get only [`ORG_DOC`]'s changes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub org_docs: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a catch-up by whole documents stands. The documents come in the order of their ids,
/// each holding at least every change the log had through `through`; when the last has come,
/// the cursor is `through`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    pub through: u64,
    /// The last document sent so far ("" before the first).
    #[serde(default)]
    pub after_doc: String,
}

/// A document sent whole to a device far behind: its compacted state (as automerge saves a
/// document; empty when the changes alone say it all) and the changes after that state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocState {
    pub doc: String,
    #[serde(default, skip_serializing_if = "Bytes::is_empty")]
    pub snapshot: Bytes,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded"
    )]
    pub changes: Vec<Bytes>,
}

impl Bytes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One entry of the team's change log: a change, or a notice that the server's admin withdrew
/// changes of `doc` (then `change` is empty and `withdrawn` lists their hashes in hex): a device
/// drops them, and the changes that depend on them, from its replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pulled {
    pub seq: u64,
    pub doc: String,
    pub change: Bytes,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded"
    )]
    pub withdrawn: Vec<String>,
}

/// The answer to a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// How many pushed changes the server now holds (new or already known): the client drops
    /// that many from the front of what it pushed.
    pub acked: u32,
    /// The change log after the request's cursor, oldest first.
    #[serde(default, deserialize_with = "bounded")]
    pub pulled: Vec<Pulled>,
    /// The cursor to send next time.
    pub cursor: u64,
    /// More entries wait after this page.
    #[serde(default)]
    pub more: bool,
    /// The number of the team's latest change, to show progress while catching up.
    #[serde(default)]
    pub head: u64,
    /// Whole documents, a page of a catch-up (then `pulled` holds only withdrawal notices).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded"
    )]
    pub docs: Vec<DocState>,
    /// Set while a catch-up by documents goes on: send it back, with the same cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    /// How many documents of the catch-up are still to come, to show progress.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub docs_left: u64,
    /// The identity of the server's logs, which a restore from a backup changes: a device that
    /// sees another than last time sends again what it wrote and reads the log from its start,
    /// so the server loses nothing any device still holds. `None` from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// The most entries a client takes from one response, all its lists together: changes,
/// notices and the hashes they name, documents and their changes. An honest server's page holds
/// at most a few tens of thousands; a body of millions of tiny entries would take gigabytes
/// once parsed, so [`parse_bounded`] stops at this many while it parses.
pub const MAX_RESPONSE_ENTRIES: usize = 200_000;

thread_local! {
    /// Entries the parse under way on this thread may still take; `None`: no bound.
    static ENTRIES_LEFT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Parses a JSON body whose lists (those of [`SyncResponse`], [`DocState`] and [`Pulled`])
/// hold at most `max_entries` entries all together, refusing it at the first entry past that:
/// memory stays bounded by the count, whatever the body holds.
pub fn parse_bounded<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max_entries: usize,
) -> Result<T, serde_json::Error> {
    let before = ENTRIES_LEFT.with(|e| e.replace(Some(max_entries)));
    let out = serde_json::from_slice(bytes);
    ENTRIES_LEFT.with(|e| e.set(before));
    out
}

/// A list, each of its entries counted against the parse's bound ([`parse_bounded`]).
fn bounded<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Entries<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Entries<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element()? {
                let room = ENTRIES_LEFT.with(|e| match e.get() {
                    None => true,
                    Some(0) => false,
                    Some(n) => {
                        e.set(Some(n - 1));
                        true
                    }
                });
                if !room {
                    return Err(serde::de::Error::custom(
                        "more entries than one response may hold",
                    ));
                }
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Entries(PhantomData))
}

/// `POST /v1/link`: a one-time invite that adds another device of the calling member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkResponse {
    pub invite: String,
    pub expires_at_ms: i64,
}

/// `GET /v1/wait`: the team's change log has entries after the `after` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResponse {
    /// The number of the team's latest entry now: greater than `after`, or smaller when the
    /// server's log is behind the client's cursor (a server restored from a backup), which the
    /// client's next sync reports.
    pub head: u64,
}

/// How long a wait lasts when the request does not say (`timeout_s`), in seconds.
pub const DEFAULT_WAIT_S: u64 = 50;
/// The longest wait a server grants, in seconds; a longer `timeout_s` is cut to it.
pub const MAX_WAIT_S: u64 = 60;

/// Every error response: a stable machine code and a sentence for people.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `too_large`, `conflict`,
    /// `actor_reused`, ...
    pub error: String,
    pub message: String,
    /// The document a refused change was pushed to (`actor_reused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// The hash, in hex, of the refused change (`actor_reused`): the server holds another
    /// change with its actor and number, so the device's replica was copied or restored and
    /// writes it again under a fresh actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// The machine code of a push refused because its change reuses an actor's number with other
/// content ([`ErrorBody::change`] names it).
pub const ACTOR_REUSED: &str = "actor_reused";
/// The machine code of a join refused because the team has no history yet (or its founder is
/// bringing it now): a joiner tries again once the founder has.
pub const NO_HISTORY: &str = "no_history";
/// The machine code of a publication refused because its invite is not the one made for the
/// team's founder (`cairn-server invite create --team T --founder`).
pub const NOT_FOUNDER: &str = "not_founder";
/// The machine code of a write refused because the device is a relay, which only reads.
pub const READ_ONLY: &str = "read_only";
/// The machine code of a sync whose cursor is past the log's head, or of a push whose change
/// comes after changes of its actor the server does not hold (409): the server lost history,
/// restored from a backup; the device sends again what it wrote and reads the log from its
/// start.
pub const PAST_HEAD: &str = "past_head";
/// The machine code of a push whose change depends on a change of its document the server
/// does not hold (400; [`ErrorBody::doc`] names the document): lost in a restore and not sent
/// again by its author yet. The device holds that document's changes back for a later sync.
pub const MISSING_DEPS: &str = "missing_deps";
/// The machine code of a join refused because its invite was made for a relay (`cairn-relay`)
/// and the join is a member's, or the other way round.
pub const WRONG_KIND: &str = "wrong_kind";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_refuse_bad_base64() {
        let b = Bytes((0u8..=255).collect());
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"not base64!\"").is_err());
        assert_eq!(format!("{b:?}"), "Bytes(256 bytes)");
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let r = JoinResponse {
            team_id: "t".into(),
            member_id: "m".into(),
            device_id: "d".into(),
            token: Token("s3cret".into()),
            team_name: None,
            founder: false,
            ..JoinResponse::default()
        };
        assert!(!format!("{r:?}").contains("s3cret"));
        assert!(serde_json::to_string(&r).unwrap().contains("s3cret"));
    }

    #[test]
    fn older_bodies_decode_with_defaults() {
        let req: SyncRequest = serde_json::from_str(r#"{"cursor": 7}"#).unwrap();
        assert_eq!(req.cursor, 7);
        assert!(req.push.is_empty() && req.max_pull.is_none());
        let resp: SyncResponse =
            serde_json::from_str(r#"{"acked": 0, "cursor": 9, "later_field": true}"#).unwrap();
        assert!(!resp.more && resp.pulled.is_empty());
        // A join as an older client sends it, and an older server's answer.
        let join: JoinRequest =
            serde_json::from_str(r#"{"invite": "c", "device_name": "d", "publish": "m"}"#).unwrap();
        assert!(join.team_name.is_none() && !join.found);
        let joined: JoinResponse = serde_json::from_str(
            r#"{"team_id": "t", "member_id": "m", "device_id": "d", "token": "x"}"#,
        )
        .unwrap();
        assert!(joined.team_name.is_none() && !joined.founder);
        assert!(join.device_kind.is_member() && joined.device_kind.is_member());
    }

    #[test]
    fn a_relay_says_so_and_a_member_sends_nothing_new() {
        let relay = JoinRequest {
            invite: "c".into(),
            device_name: "chat relay".into(),
            device_kind: DeviceKind::Relay,
            ..JoinRequest::default()
        };
        let json = serde_json::to_string(&relay).unwrap();
        assert!(json.contains(r#""device_kind":"relay""#), "{json}");
        assert_eq!(serde_json::from_str::<JoinRequest>(&json).unwrap(), relay);
        let joined = JoinResponse {
            device_kind: DeviceKind::Relay,
            ..JoinResponse::default()
        };
        let json = serde_json::to_string(&joined).unwrap();
        assert_eq!(serde_json::from_str::<JoinResponse>(&json).unwrap(), joined);
        let member = serde_json::to_string(&JoinResponse::default()).unwrap();
        assert!(!member.contains("device_kind"), "{member}");
        // A team of no organisation, or an older server: no `org`; one of an organisation
        // names it.
        assert!(!member.contains("org"), "{member}");
        let in_org = JoinResponse {
            org: Some(OrgRef {
                id: "o".into(),
                name: "Acme".into(),
                steward: false,
            }),
            ..JoinResponse::default()
        };
        let json = serde_json::to_string(&in_org).unwrap();
        assert!(!json.contains("steward"), "{json}");
        assert_eq!(serde_json::from_str::<JoinResponse>(&json).unwrap(), in_org);
        assert_eq!(
            serde_json::from_str::<OrgResponse>("{}").unwrap(),
            OrgResponse::default()
        );
        // A kind this version does not know is refused, not taken for a member's.
        assert!(
            serde_json::from_str::<JoinRequest>(
                r#"{"invite": "c", "device_name": "d", "device_kind": "robot"}"#
            )
            .is_err()
        );
        let wait: WaitResponse = serde_json::from_str(r#"{"head": 12, "later": 1}"#).unwrap();
        assert_eq!(wait.head, 12);
    }

    #[test]
    fn a_plain_join_sends_no_new_fields() {
        let req = JoinRequest {
            invite: "c".into(),
            device_name: "d".into(),
            ..JoinRequest::default()
        };
        let json = serde_json::to_string(&req).unwrap();
        assert!(
            !json.contains("found") && !json.contains("team_name") && !json.contains("device_kind"),
            "{json}"
        );
    }

    #[test]
    fn a_response_with_more_entries_than_allowed_is_refused_while_parsed() {
        let resp = SyncResponse {
            pulled: (0..10)
                .map(|i| Pulled {
                    seq: i,
                    doc: "team".into(),
                    change: Bytes(vec![1]),
                    withdrawn: Vec::new(),
                })
                .collect(),
            docs: vec![DocState {
                doc: "team".into(),
                snapshot: Bytes::default(),
                changes: vec![Bytes(vec![2]); 5],
            }],
            ..SyncResponse::default()
        };
        let json = serde_json::to_vec(&resp).unwrap();
        // Ten changes, a document and its five changes: sixteen entries.
        assert_eq!(parse_bounded::<SyncResponse>(&json, 16).unwrap(), resp);
        let err = parse_bounded::<SyncResponse>(&json, 15).unwrap_err();
        assert!(err.to_string().contains("more entries"), "{err}");
        // Outside `parse_bounded`, no bound.
        assert_eq!(serde_json::from_slice::<SyncResponse>(&json).unwrap(), resp);
    }

    #[test]
    fn an_empty_sync_is_small() {
        let req = serde_json::to_vec(&SyncRequest {
            cursor: 123_456,
            ..SyncRequest::default()
        });
        assert!(req.unwrap().len() < 40);
    }
}
