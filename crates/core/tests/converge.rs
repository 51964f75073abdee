//! Convergence of journals edited on several devices at once.
//!
//! The property: four devices (Ana's laptop and phone, Ben's and Cy's) each fork the same base
//! journals and, offline, add actions, kudos and reactions and edit or retract their member's own
//! events. However their changes then reach a replica — change by change in any order (automerge
//! queues a change until its dependencies arrive) or document by document in any device order —
//! every replica ends with the same heads, the same events and the same feed. That feed holds
//! exactly the live events the devices wrote, with exactly their live reactions, and each edited
//! field holds the last value written by one of the devices that wrote it.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};
use cairn_core::feed::{self, FeedItem, FeedQuery};
use cairn_core::ids::{self, EventId};
use cairn_core::{Edit, Event, Kind, NewEvent, Stamp, TeamState, journal, team};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// The journal documents of a replica, by document id.
type Docs = BTreeMap<String, Automerge>;

const MEMBERS: [&str; 3] = ["m-ana", "m-ben", "m-cy"];
const MONTHS: [&str; 2] = ["2026-10", "2026-11"];
/// The first instant of each of `MONTHS`, in UTC milliseconds.
const MONTH_START_MS: [i64; 2] = [1_790_812_800_000, 1_793_491_200_000];
const DAY_MS: i64 = 86_400_000;
/// The devices: the byte of their actor id and the index of their member. Ana has two.
const DEVICES: [(u8, usize); 4] = [(0x11, 0), (0x12, 0), (0x21, 1), (0x31, 2)];
const BASE_ACTOR: u8 = 0xb0;
const MAX_OPS: usize = 20;
/// At most one change per operation.
const MAX_CHANGES: usize = DEVICES.len() * MAX_OPS;

const PILLARS: [&str; 3] = ["trust", "empowerment", "professionalism"];
const TEXTS: [&str; 5] = [
    "tidied the shared board",
    "reviewed a pull request within the hour",
    "paired on the flaky test",
    "wrote down the release steps",
    "covered the on-call shift",
];
const WHYS: [&str; 3] = ["nobody waits", "so it does not happen again", "because"];
const EMOJI: [&str; 3] = ["🎉", "👏", "🙏"];

/// One thing a device does.
#[derive(Clone, Debug)]
enum Op {
    Action {
        month: usize,
        at: i64,
        salt: [u8; 3],
        text: usize,
        pillar: Option<usize>,
    },
    /// Kudos to the next member (0), the one after (1) or both (2).
    Kudos {
        month: usize,
        at: i64,
        salt: [u8; 3],
        to: usize,
        text: usize,
    },
    /// A reaction to any event the device sees.
    React {
        month: usize,
        at: i64,
        salt: [u8; 3],
        target: Index,
        emoji: usize,
    },
    /// An edit of one of the member's own live events.
    Edit {
        target: Index,
        text: Option<usize>,
        pillar: Option<usize>,
        why: Option<usize>,
        at: i64,
    },
    /// The retraction of one of the member's own live events.
    Retract { target: Index, at: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let month = 0..MONTHS.len();
    let at = 0..28 * DAY_MS;
    prop_oneof![
        3 => (
            month.clone(),
            at.clone(),
            any::<[u8; 3]>(),
            0..TEXTS.len(),
            proptest::option::of(0..PILLARS.len()),
        )
            .prop_map(|(month, at, salt, text, pillar)| {
                Op::Action { month, at, salt, text, pillar }
            }),
        2 => (month.clone(), at.clone(), any::<[u8; 3]>(), 0..3usize, 0..TEXTS.len())
            .prop_map(|(month, at, salt, to, text)| Op::Kudos { month, at, salt, to, text }),
        3 => (month, at.clone(), any::<[u8; 3]>(), any::<Index>(), 0..EMOJI.len())
            .prop_map(|(month, at, salt, target, emoji)| {
                Op::React { month, at, salt, target, emoji }
            }),
        2 => (
            any::<Index>(),
            proptest::option::of(0..TEXTS.len()),
            proptest::option::of(0..PILLARS.len()),
            proptest::option::of(0..WHYS.len()),
            at.clone(),
        )
            .prop_map(|(target, text, pillar, why, at)| Op::Edit { target, text, pillar, why, at }),
        1 => (any::<Index>(), at).prop_map(|(target, at)| Op::Retract { target, at }),
    ]
}

/// The last value one device wrote to each field of an event.
#[derive(Clone, Debug, Default)]
struct Writes {
    text: Option<String>,
    pillar: Option<String>,
    why: Option<String>,
    edited: Option<i64>,
    retracted: bool,
}

/// What the devices did to one event, known without reading any document.
#[derive(Clone, Debug)]
struct Expected {
    created: Event,
    /// By device index.
    writes: BTreeMap<usize, Writes>,
}

/// Every event the base and the devices wrote.
type Model = BTreeMap<EventId, Expected>;

#[derive(Debug)]
struct Device {
    index: usize,
    byte: u8,
    member: usize,
    docs: Docs,
    seq: u8,
}

impl Device {
    fn member_id(&self) -> &'static str {
        MEMBERS[self.member]
    }

    /// The events this device sees, in id order.
    fn visible(&self) -> Vec<Event> {
        let mut all: Vec<Event> = self
            .docs
            .values()
            .flat_map(|d| journal::read(d).unwrap())
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The journal of this device's member holding `id`.
    fn own_doc(&mut self, id: &EventId) -> &mut Automerge {
        let member = self.member_id();
        self.docs
            .iter_mut()
            .filter(|(k, _)| ids::journal_owner(k) == Some(member))
            .map(|(_, d)| d)
            .find(|d| journal::get(&**d, id).unwrap().is_some())
            .expect("an own event lives in an own journal")
    }

    fn add(
        &mut self,
        team: &TeamState,
        model: &mut Model,
        month: usize,
        at: i64,
        salt: [u8; 3],
        new: NewEvent,
    ) {
        let member = self.member_id();
        let at_ms = MONTH_START_MS[month] + at;
        // The device and its counter make the id unique; the salt varies the rest.
        let id = EventId::new(at_ms, [self.byte, self.seq, salt[0], salt[1], salt[2]]);
        self.seq += 1;
        let stamp = Stamp {
            at_ms,
            tz: "UTC".into(),
            date: format!("{}-{:02}", MONTHS[month], at / DAY_MS + 1),
            late: false,
        };
        let doc = self
            .docs
            .get_mut(&ids::journal_doc(member, MONTHS[month]))
            .unwrap();
        if journal::add(doc, team, member, &id, &stamp, &new).is_ok() {
            let created = expected_event(&id, member, &stamp, new);
            model.insert(
                id,
                Expected {
                    created,
                    writes: BTreeMap::new(),
                },
            );
        }
    }

    fn apply(&mut self, team: &TeamState, model: &mut Model, op: &Op) {
        let member = self.member_id();
        match op {
            Op::Action {
                month,
                at,
                salt,
                text,
                pillar,
            } => {
                let new = NewEvent::action(TEXTS[*text], pillar.map(|p| PILLARS[p].into()), None);
                self.add(team, model, *month, *at, *salt, new);
            }
            Op::Kudos {
                month,
                at,
                salt,
                to,
                text,
            } => {
                let next = |k: usize| MEMBERS[(self.member + k) % MEMBERS.len()].to_owned();
                let to = match to {
                    0 => vec![next(1)],
                    1 => vec![next(2)],
                    _ => vec![next(1), next(2)],
                };
                let new = NewEvent::kudos(to, TEXTS[*text], None);
                self.add(team, model, *month, *at, *salt, new);
            }
            Op::React {
                month,
                at,
                salt,
                target,
                emoji,
            } => {
                let visible = self.visible();
                if visible.is_empty() {
                    return;
                }
                let target = visible[target.index(visible.len())].id.clone();
                let new = NewEvent::reaction(target, EMOJI[*emoji]);
                self.add(team, model, *month, *at, *salt, new);
            }
            Op::Edit {
                target,
                text,
                pillar,
                why,
                at,
            } => {
                let Some(id) = self.pick_own(target) else {
                    return;
                };
                let edit = Edit {
                    text: text.map(|t| TEXTS[t].to_owned()),
                    pillar: pillar.map(|p| PILLARS[p].to_owned()),
                    why: why.map(|w| WHYS[w].to_owned()),
                };
                let doc = self.own_doc(&id);
                if journal::edit(doc, team, member, &id, &edit, *at).is_ok() {
                    let w = model
                        .get_mut(&id)
                        .unwrap()
                        .writes
                        .entry(self.index)
                        .or_default();
                    w.text = edit.text.or(w.text.take());
                    w.pillar = edit.pillar.or(w.pillar.take());
                    w.why = edit.why.or(w.why.take());
                    w.edited = Some(*at);
                }
            }
            Op::Retract { target, at } => {
                let Some(id) = self.pick_own(target) else {
                    return;
                };
                let doc = self.own_doc(&id);
                if journal::retract(doc, member, &id, *at).is_ok() {
                    let w = model
                        .get_mut(&id)
                        .unwrap()
                        .writes
                        .entry(self.index)
                        .or_default();
                    w.retracted = true;
                }
            }
        }
    }

    /// One of the live events of this device's member, as the device sees them.
    fn pick_own(&self, target: &Index) -> Option<EventId> {
        let own: Vec<Event> = self
            .visible()
            .into_iter()
            .filter(|e| e.author == self.member_id() && !e.retracted)
            .collect();
        (!own.is_empty()).then(|| own[target.index(own.len())].id.clone())
    }
}

/// The event `journal::add` should have stored for `new`, written without reading a document.
fn expected_event(id: &EventId, author: &str, stamp: &Stamp, new: NewEvent) -> Event {
    Event {
        id: id.clone(),
        kind: new.kind,
        author: author.to_owned(),
        at_ms: stamp.at_ms,
        tz: stamp.tz.clone(),
        date: stamp.date.clone(),
        late: stamp.late,
        pillar: new.pillar,
        text: new.text,
        why: new.why,
        to: new.to,
        target: new.target,
        emoji: new.emoji,
        retracted: false,
        edited_ms: None,
        honours: new.honours,
    }
}

fn team_state() -> TeamState {
    let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
    team::init(&mut doc, "Otters", "UTC", "Ana", "ana", MEMBERS[0], 0).unwrap();
    let state = team::read(&doc).unwrap();
    team::add_member(&mut doc, &state, MEMBERS[1], "Ben", Some("ben"), 1).unwrap();
    let state = team::read(&doc).unwrap();
    team::add_member(&mut doc, &state, MEMBERS[2], "Cy", Some("cy"), 2).unwrap();
    let state = team::read(&doc).unwrap();
    assert_eq!(state.members.len(), 3);
    state
}

/// Two journals per member, the first month's holding one action by that member.
fn base(team: &TeamState, model: &mut Model) -> Docs {
    let mut docs = Docs::new();
    for (m, member) in MEMBERS.iter().enumerate() {
        for (month, name) in MONTHS.iter().enumerate() {
            let mut doc = Automerge::new().with_actor(ActorId::from([BASE_ACTOR; 16]));
            if month == 0 {
                let at_ms = MONTH_START_MS[month] + m as i64;
                let id = EventId::new(at_ms, [BASE_ACTOR, m as u8, 0, 0, 0]);
                let stamp = Stamp {
                    at_ms,
                    tz: "UTC".into(),
                    date: format!("{name}-01"),
                    late: false,
                };
                let new = NewEvent::action(TEXTS[m], Some(PILLARS[m].into()), None);
                journal::add(&mut doc, team, member, &id, &stamp, &new).unwrap();
                let created = expected_event(&id, member, &stamp, new);
                model.insert(
                    id,
                    Expected {
                        created,
                        writes: BTreeMap::new(),
                    },
                );
            }
            docs.insert(ids::journal_doc(member, name), doc);
        }
    }
    docs
}

/// A fresh copy of `base` with `changes` applied one at a time in `order`.
fn replay(base: &Docs, changes: &[(String, Change)], order: &[usize]) -> Docs {
    let mut docs = base.clone();
    for &i in order {
        let (doc_id, change) = &changes[i];
        docs.get_mut(doc_id)
            .unwrap()
            .apply_changes([change.clone()])
            .unwrap();
    }
    docs
}

/// A fresh copy of `base` merged with every device's documents, devices in `order`.
fn merge(base: &Docs, devices: &[Device], order: &[usize]) -> Docs {
    let mut docs = base.clone();
    for &d in order {
        for (doc_id, doc) in &devices[d].docs {
            docs.get_mut(doc_id)
                .unwrap()
                .merge(&mut doc.clone())
                .unwrap();
        }
    }
    docs
}

/// What a replica shows: the heads of each document, every event, and the feed.
#[derive(Debug, PartialEq)]
struct View {
    heads: BTreeMap<String, Vec<ChangeHash>>,
    events: Vec<Event>,
    feed: Vec<FeedItem>,
}

fn view(docs: &Docs) -> View {
    let mut events: Vec<Event> = docs
        .values()
        .flat_map(|d| journal::read(d).unwrap())
        .collect();
    events.sort_by(|a, b| a.id.cmp(&b.id));
    View {
        heads: docs
            .iter()
            .map(|(k, d)| (k.clone(), d.get_heads()))
            .collect(),
        feed: feed::feed(&events, &FeedQuery::default()),
        events,
    }
}

/// The values a field may hold: the last one each device wrote, or the created one if none did.
fn candidates<T: Clone>(x: &Expected, field: impl Fn(&Writes) -> Option<T>, created: T) -> Vec<T> {
    let written: Vec<T> = x.writes.values().filter_map(field).collect();
    if written.is_empty() {
        vec![created]
    } else {
        written
    }
}

/// Checks a replica's view against the model.
fn check(view: &View, model: &Model) -> Result<(), TestCaseError> {
    let seen: Vec<&EventId> = view.events.iter().map(|e| &e.id).collect();
    let wanted: Vec<&EventId> = model.keys().collect();
    prop_assert_eq!(seen, wanted, "every written event, and only those");
    for e in &view.events {
        let x = &model[&e.id];
        let c = &x.created;
        prop_assert_eq!(
            (e.kind, &e.author, e.at_ms, &e.tz, &e.date, e.late),
            (c.kind, &c.author, c.at_ms, &c.tz, &c.date, c.late)
        );
        prop_assert_eq!((&e.to, &e.target, &e.emoji), (&c.to, &c.target, &c.emoji));
        let texts = candidates(x, |w| w.text.clone(), c.text.clone());
        prop_assert!(texts.contains(&e.text), "{:?} not in {:?}", e.text, texts);
        let pillars = candidates(x, |w| w.pillar.clone().map(Some), c.pillar.clone());
        prop_assert!(
            pillars.contains(&e.pillar),
            "{:?} not in {:?}",
            e.pillar,
            pillars
        );
        let whys = candidates(x, |w| w.why.clone().map(Some), c.why.clone());
        prop_assert!(whys.contains(&e.why), "{:?} not in {:?}", e.why, whys);
        let edits = candidates(x, |w| w.edited.map(Some), None);
        prop_assert!(
            edits.contains(&e.edited_ms),
            "{:?} not in {:?}",
            e.edited_ms,
            edits
        );
        prop_assert_eq!(e.retracted, x.writes.values().any(|w| w.retracted));
    }

    let live = |x: &Expected| !x.writes.values().any(|w| w.retracted);
    let items: Vec<&EventId> = model
        .iter()
        .rev()
        .filter(|(_, x)| x.created.kind != Kind::Reaction && live(x))
        .map(|(id, _)| id)
        .collect();
    let shown: Vec<&EventId> = view.feed.iter().map(|i| &i.event.id).collect();
    prop_assert_eq!(
        &shown,
        &items,
        "the feed shows the live events, newest first"
    );
    let reactions: BTreeSet<(&EventId, &str, &str)> = model
        .values()
        .filter(|x| x.created.kind == Kind::Reaction && live(x))
        .filter_map(|x| {
            let c = &x.created;
            let target = c.target.as_ref()?;
            items
                .contains(&target)
                .then(|| (target, c.emoji.as_deref().unwrap(), c.author.as_str()))
        })
        .collect();
    let mut reacted = BTreeSet::new();
    let mut count = 0;
    for item in &view.feed {
        for group in &item.reactions {
            for by in &group.by {
                count += 1;
                reacted.insert((&item.event.id, group.emoji.as_str(), by.as_str()));
            }
        }
    }
    prop_assert_eq!(count, reacted.len(), "a member counts once per emoji");
    prop_assert_eq!(reacted, reactions, "the feed shows the live reactions");
    Ok(())
}

/// The order of `len` things given by sorting them on `keys` (ties keep their order).
fn order_by(keys: &[u32], len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by_key(|&i| keys[i]);
    order
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn journals_merged_in_any_order_give_the_same_feed(
        ops in vec(vec(op(), 0..=MAX_OPS), DEVICES.len()),
        shuffles in vec(vec(any::<u32>(), MAX_CHANGES), 3),
        device_order in Just((0..DEVICES.len()).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let team = team_state();
        let mut model = Model::new();
        let base = base(&team, &mut model);
        let base_heads: BTreeMap<&String, Vec<ChangeHash>> =
            base.iter().map(|(k, d)| (k, d.get_heads())).collect();

        let mut devices: Vec<Device> = DEVICES
            .iter()
            .enumerate()
            .map(|(index, &(byte, member))| Device {
                index,
                byte,
                member,
                docs: base
                    .iter()
                    .map(|(k, d)| (k.clone(), d.fork().with_actor(ActorId::from([byte; 16]))))
                    .collect(),
                seq: 0,
            })
            .collect();
        for (device, ops) in devices.iter_mut().zip(&ops) {
            for op in ops {
                device.apply(&team, &mut model, op);
            }
        }

        // Every change each device made, device by device, each device's in causal order.
        let changes: Vec<(String, Change)> = devices
            .iter()
            .flat_map(|d| &d.docs)
            .flat_map(|(k, doc)| {
                doc.get_changes(&base_heads[k]).into_iter().map(|c| (k.clone(), c))
            })
            .collect();
        prop_assert!(changes.len() <= MAX_CHANGES);
        let added = model.len() - MEMBERS.len();
        prop_assert!(changes.len() >= added, "each add is a change");

        let n = changes.len();
        let mut replicas = vec![
            replay(&base, &changes, &(0..n).collect::<Vec<_>>()),
            // Reversed, nearly every change waits in the queue for its dependencies.
            replay(&base, &changes, &(0..n).rev().collect::<Vec<_>>()),
            merge(&base, &devices, &device_order),
            merge(&base, &devices, &device_order.iter().rev().copied().collect::<Vec<_>>()),
        ];
        for keys in &shuffles {
            replicas.push(replay(&base, &changes, &order_by(keys, n)));
        }

        let first = view(&replicas[0]);
        check(&first, &model)?;
        for (i, replica) in replicas.iter().enumerate().skip(1) {
            for doc in replica.values() {
                let missing = doc.get_missing_deps(&[]);
                prop_assert!(missing.is_empty(), "replica {} is missing changes", i);
            }
            let other = view(replica);
            prop_assert_eq!(&other.heads, &first.heads, "replica {} heads", i);
            prop_assert_eq!(&other.events, &first.events, "replica {} events", i);
            prop_assert_eq!(&other.feed, &first.feed, "replica {} feed", i);
        }
    }
}
