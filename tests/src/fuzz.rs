//! Fuzz targets: real changes made by cairn's own code, mutated byte by byte and part by part,
//! then fed to what must take any input without panicking: the server's change validation, the
//! protocol's decoding and a replica's apply path. `tests/tests/fuzz.rs` drives them with
//! proptest (`CAIRN_FUZZ_CASES` sets how many cases; the default is CI's short run).

use std::sync::OnceLock;

use automerge::{ActorId, Automerge};
use cairn_core::change::{self, Bounds, Parts, sleb, uleb};
use cairn_core::ids::{EventId, TEAM_DOC};
use cairn_core::{NewEvent, Stamp, journal, team};

/// A change as cairn makes it, with the document as it stood before.
#[derive(Debug)]
pub struct Seed {
    pub doc: String,
    /// A document of an organisation's log: its own (`team`, the stewards'), a journal of kudos
    /// across teams or a team's shared figures.
    pub org: bool,
    /// The document's changes before this one, oldest first.
    pub before: Vec<Vec<u8>>,
    pub change: Vec<u8>,
}

/// Every seed: the team document's changes (founding, a member, a pillar, a challenge, rules)
/// and a journal's (a micro-action, kudos, a reaction, an edit, a retraction).
pub fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        // Panics caught on purpose stay quiet, as in the binaries: printing (and symbolising a
        // backtrace for) millions of them is what made long runs slow and large.
        cairn_core::change::install_panic_hook();
        build_seeds()
    })
}

fn build_seeds() -> Vec<Seed> {
    let at = 1_795_400_000_000;
    let mut out = Vec::new();
    let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
    record(&mut out, TEAM_DOC, &mut doc, &|d| {
        team::init(d, "Otters", "Europe/Paris", "Ana", "ana", "m-ana", at).unwrap();
    });
    record(&mut out, TEAM_DOC, &mut doc, &|d| {
        let s = team::read(d).unwrap();
        team::add_member(d, &s, "m-ben", "Ben Okafor", Some("ben"), at).unwrap();
    });
    record(&mut out, TEAM_DOC, &mut doc, &|d| {
        let s = team::read(d).unwrap();
        team::add_pillar(d, &s, "Curiosity", Some("we ask why"), at).unwrap();
    });
    record(&mut out, TEAM_DOC, &mut doc, &|d| {
        let c = cairn_core::goals::Challenge {
            id: "c1".into(),
            title: "Thirty thanks".into(),
            metric: cairn_core::goals::Metric::Kudos,
            target: 30,
            start: "2026-11-01".parse().unwrap(),
            until: "2026-11-30".parse().unwrap(),
        };
        team::add_challenge(d, &c, "m-ana", at).unwrap();
    });
    record(&mut out, TEAM_DOC, &mut doc, &|d| {
        team::set_rules(d, None, Some(cairn_core::rules::Cadence::Daily), None, None).unwrap();
    });
    // Another device's changes, made concurrently from a fork: a pillar of its own, then, once
    // merged, an edit that depends on both lines.
    let mut fork = doc.fork().with_actor(ActorId::from([5u8; 16]));
    let fork_heads = fork.get_heads();
    {
        let s = team::read(&fork).unwrap();
        team::add_pillar(&mut fork, &s, "Care", None, at + 5).unwrap();
    }
    record(&mut out, TEAM_DOC, &mut doc, &|d| {
        let s = team::read(d).unwrap();
        team::add_pillar(d, &s, "Craft", Some("done well"), at + 6).unwrap();
    });
    let theirs: Vec<_> = fork.get_changes(&fork_heads).into_iter().collect();
    let concurrent = theirs[0].raw_bytes().to_vec();
    out.push(Seed {
        doc: TEAM_DOC.to_owned(),
        org: false,
        before: doc
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect(),
        change: concurrent,
    });
    doc.apply_changes(theirs).unwrap();
    record(&mut out, TEAM_DOC, &mut doc, &|d| {
        let s = team::read(d).unwrap();
        team::add_member(d, &s, "m-cy", "Cy", Some("cy"), at + 7).unwrap();
    });
    let state = team::read(&doc).unwrap();
    let journal_id = cairn_core::ids::journal_doc("m-ana", &cairn_core::ids::month_of(at));
    let mut j = Automerge::new().with_actor(ActorId::from([2u8; 16]));
    let stamp = Stamp {
        at_ms: at,
        tz: "Europe/Paris".into(),
        date: "2026-11-23".into(),
        late: false,
    };
    let a = EventId::new(at, [1; 5]);
    let k = EventId::new(at + 1, [2; 5]);
    let r = EventId::new(at + 2, [3; 5]);
    record(&mut out, &journal_id, &mut j, &|d| {
        let new = NewEvent::action("Explained the why", Some("trust".into()), Some("so".into()));
        journal::add(d, &state, "m-ana", &a, &stamp, &new).unwrap();
    });
    record(&mut out, &journal_id, &mut j, &|d| {
        let new = NewEvent::kudos(vec!["m-ben".into()], "Thanks for the review", None);
        journal::add(d, &state, "m-ana", &k, &stamp, &new).unwrap();
    });
    record(&mut out, &journal_id, &mut j, &|d| {
        let new = NewEvent::reaction(a.clone(), "🎉");
        journal::add(d, &state, "m-ana", &r, &stamp, &new).unwrap();
    });
    record(&mut out, &journal_id, &mut j, &|d| {
        let edit = cairn_core::Edit {
            text: Some("Explained the why, twice".into()),
            pillar: None,
            why: None,
        };
        journal::edit(d, &state, "m-ana", &a, &edit, at + 10).unwrap();
    });
    record(&mut out, &journal_id, &mut j, &|d| {
        journal::retract(d, "m-ana", &k, at + 20).unwrap();
    });
    org_seeds(&mut out, &state, at);
    out
}

/// The organisation's documents: its own (a steward starts it, adds, rewords and retires a
/// non-negotiable), a member's journal of kudos across teams (given, taken back) and a team's
/// shared figures (a week shared, then taken back).
fn org_seeds(out: &mut Vec<Seed>, state: &cairn_core::TeamState, at: i64) {
    use cairn_core::{across, figures, org};
    let first = out.len();
    let mut o = Automerge::new().with_actor(ActorId::from([3u8; 16]));
    record(out, TEAM_DOC, &mut o, &|d| {
        org::init(d, "Acme", at).unwrap()
    });
    record(out, TEAM_DOC, &mut o, &|d| {
        let s = org::read(d).unwrap();
        org::add_commitment(
            d,
            &s,
            "We greet every newcomer",
            "nobody is a stranger",
            "@ana@otters",
            at + 1,
        )
        .unwrap();
    });
    let id = org::read(&o).unwrap().commitments[0].id.clone();
    record(out, TEAM_DOC, &mut o, &|d| {
        let s = org::read(d).unwrap();
        org::edit_commitment(
            d,
            &s,
            &id,
            Some("We greet every newcomer by name"),
            None,
            "@ana@otters",
            at + 2,
        )
        .unwrap();
    });
    record(out, TEAM_DOC, &mut o, &|d| {
        let s = org::read(d).unwrap();
        org::retire_commitment(d, &s, &id, "@ana@otters", at + 3).unwrap();
    });
    let ana = across::Person::new("t0tt", "m-ana", "ana", "Otters");
    let ben = across::Person::new("t1pf", "m-ben", "ben", "Platform");
    let x_id = cairn_core::ids::across_doc("t0tt", "m-ana", &cairn_core::ids::month_of(at));
    let mut x = Automerge::new().with_actor(ActorId::from([4u8; 16]));
    let stamp = Stamp {
        at_ms: at,
        tz: "Europe/Paris".into(),
        date: "2026-11-23".into(),
        late: false,
    };
    let given = EventId::new(at, [9; 5]);
    record(out, &x_id, &mut x, &|d| {
        across::add(
            d,
            &x_id,
            &ana,
            std::slice::from_ref(&ben),
            &given,
            &stamp,
            "Thanks for the pairing",
            Some(&id),
        )
        .unwrap();
    });
    record(out, &x_id, &mut x, &|d| {
        across::retract(d, &given, at + 5).unwrap()
    });
    let s_id = cairn_core::ids::shared_doc("t0tt");
    let monday = figures::closed_weeks("2026-11-30".parse().unwrap(), 1)[0];
    let acts = [cairn_core::goals::Act {
        author: "m-ana".into(),
        date: "2026-11-24".parse().unwrap(),
        kind: cairn_core::Kind::Kudos,
        pillar: Some("trust".into()),
        to: vec!["m-ben".into()],
    }];
    let week = figures::compute(state, &acts, &[], &[], monday);
    let mut f = Automerge::new().with_actor(ActorId::from([6u8; 16]));
    record(out, &s_id, &mut f, &|d| {
        figures::write(
            d,
            "t0tt",
            "Otters",
            cairn_core::Share::Weekly,
            std::slice::from_ref(&week),
            at,
        )
        .unwrap();
    });
    record(out, &s_id, &mut f, &|d| {
        figures::write(d, "t0tt", "Otters", cairn_core::Share::Nothing, &[], at + 1).unwrap();
    });
    for seed in &mut out[first..] {
        seed.org = true;
    }
}

/// Runs `f` on `doc` and keeps each change it made as a seed.
fn record(out: &mut Vec<Seed>, doc_id: &str, doc: &mut Automerge, f: &dyn Fn(&mut Automerge)) {
    let before: Vec<Vec<u8>> = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let heads = doc.get_heads();
    f(doc);
    for c in doc.get_changes(&heads) {
        out.push(Seed {
            doc: doc_id.to_owned(),
            org: false,
            before: before.clone(),
            change: c.raw_bytes().to_vec(),
        });
    }
}

/// One way to damage a change.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Sets byte `at` (modulo the length) to `value`.
    Byte { at: usize, value: u8 },
    /// Inserts bytes at `at`.
    Insert { at: usize, bytes: Vec<u8> },
    /// Removes `len` bytes at `at`.
    Remove { at: usize, len: usize },
    /// Cuts the change at `at`.
    Truncate { at: usize },
    /// Makes the checksum right again for whatever the bytes now hold.
    Rechecksum,
    /// Replaces column number `which` (modulo their count) with `bytes`.
    Column { which: usize, bytes: Vec<u8> },
    /// Replaces column `which` with one run-length run of `count` entries of `value`.
    Run {
        which: usize,
        count: i64,
        value: u64,
    },
    /// Adds a column that was not there.
    NewColumn { spec: u64, bytes: Vec<u8> },
    /// Sets the counter of the first operation.
    StartOp(u64),
    /// Sets the sequence number.
    Seq(u64),
    /// Adds an actor to the change's list.
    Actor(Vec<u8>),
    /// Drops the dependencies, or adds a made-up one.
    Deps(Option<[u8; 32]>),
    /// Sets the bytes after the columns.
    Extra(Vec<u8>),
    /// Sets the message.
    Message(Vec<u8>),
}

/// `bytes` with `mutations` applied in order. Mutations of parts take the change apart and put
/// it together again (with a right checksum); those that find no change to take apart do nothing.
pub fn mutate(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in mutations {
        let n = out.len().max(1);
        match m {
            Mutation::Byte { at, value } => {
                if !out.is_empty() {
                    out[at % n] = *value;
                }
            }
            Mutation::Insert { at, bytes } => {
                let at = at % (out.len() + 1);
                out.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let at = at % n;
                let end = (at + len).min(out.len());
                if at < end {
                    out.drain(at..end);
                }
            }
            Mutation::Truncate { at } => out.truncate(at % n),
            Mutation::Rechecksum => {
                if out.len() > 8 {
                    let hash = <sha2::Sha256 as sha2::Digest>::digest(&out[8..]);
                    out[4..8].copy_from_slice(&hash[..4]);
                }
            }
            parts_mutation => {
                if let Ok(mut p) = Parts::parse(&out) {
                    mutate_parts(&mut p, parts_mutation);
                    out = p.encode();
                }
            }
        }
    }
    out
}

fn mutate_parts(p: &mut Parts, m: &Mutation) {
    match m {
        Mutation::Column { which, bytes } if !p.columns.is_empty() => {
            let i = which % p.columns.len();
            p.columns[i].1 = bytes.clone();
        }
        Mutation::Run {
            which,
            count,
            value,
        } if !p.columns.is_empty() => {
            // A run header, then its value (or, for a null run, its length).
            let i = which % p.columns.len();
            let mut col = Vec::new();
            sleb(&mut col, *count);
            uleb(&mut col, *value);
            p.columns[i].1 = col;
        }
        Mutation::NewColumn { spec, bytes } => p.set_column(*spec & !8, bytes.clone()),
        Mutation::StartOp(v) => p.start_op = (*v).max(1),
        Mutation::Seq(v) => p.seq = *v,
        Mutation::Actor(a) => p.other_actors.push(a.clone()),
        Mutation::Deps(None) => p.deps.clear(),
        Mutation::Deps(Some(h)) => p.deps.push(*h),
        Mutation::Extra(e) => p.extra = e.clone(),
        Mutation::Message(m) => p.message = m.clone(),
        _ => {}
    }
}

/// The document as it stood before `seed`'s change.
pub fn before(seed: &Seed) -> Automerge {
    let mut doc = Automerge::new();
    for c in &seed.before {
        doc.load_incremental(c).expect("a seed loads");
    }
    doc
}

/// What the server does with a pushed change, and what every replica then does with one the
/// server took: nothing here may panic. Returns whether the server would take it.
pub fn server_validation(seed: &Seed, bytes: &[u8]) -> bool {
    // For a case that kills the process (out of memory, say): the last input, written first.
    if let Some(path) = std::env::var_os("CAIRN_FUZZ_LAST") {
        let _ = std::fs::write(path, [seed.doc.as_bytes(), b"\n", bytes].concat());
    }
    let Ok((c, shape)) = change::decode(bytes, &Bounds::default()) else {
        return false;
    };
    assert_eq!(shape.ops, c.len() as u64, "inspection and decoding agree");
    let mut doc = before(seed);
    let prior = before(seed);
    let hash = c.hash();
    if change::apply(&mut doc, vec![c]).is_err() {
        return false;
    }
    let _ = hash;
    // An organisation's log checks each document by its rules, as the server does.
    if seed.org {
        use cairn_core::{across, figures, ids, org};
        let kept = if ids::across_owner(&seed.doc).is_some() {
            let (b, a) = (
                across::read(&seed.doc, &prior),
                across::read(&seed.doc, &doc),
            );
            across::check_change(
                &seed.doc,
                &b.unwrap_or_default(),
                &a.unwrap_or_default(),
                |_, _| true,
            )
            .is_ok()
        } else if let Some(team) = ids::shared_owner(&seed.doc) {
            let (b, a) = (figures::read(&prior), figures::read(&doc));
            figures::check_change(team, &b.unwrap_or_default(), &a.unwrap_or_default()).is_ok()
        } else {
            let (b, a) = (org::read(&prior), org::read(&doc));
            org::check_change(&b.unwrap_or_default(), &a.unwrap_or_default()).is_ok()
        };
        if !kept {
            return false;
        }
    }
    // Taken: every replica reads it, saves and loads it.
    if seed.doc == TEAM_DOC {
        let _ = team::read(&doc);
        let _ = cairn_core::org::read(&doc);
    } else if seed.org {
        let _ = cairn_core::across::read(&seed.doc, &doc);
        let _ = cairn_core::figures::read(&doc);
    } else {
        let _ = journal::read(&doc);
    }
    let saved = doc.save();
    let loaded = Automerge::load(&saved).expect("a document the server took saves and loads");
    assert_eq!(loaded.get_heads(), doc.get_heads());
    true
}

/// Decodes mutated protocol bodies: errors are fine, panics are not.
pub fn protocol_decoding(bytes: &[u8]) {
    let _ = serde_json::from_slice::<cairn_protocol::SyncRequest>(bytes);
    let _ = serde_json::from_slice::<cairn_protocol::SyncResponse>(bytes);
    let _ = serde_json::from_slice::<cairn_protocol::JoinRequest>(bytes);
    let _ = serde_json::from_slice::<cairn_protocol::ErrorBody>(bytes);
}

/// A real page of a catch-up to mutate: whole documents (their snapshots and changes after them),
/// a withdrawal notice and a change.
pub fn page_body() -> Vec<u8> {
    let seeds = seeds();
    let page = cairn_protocol::SyncResponse {
        acked: 1,
        pulled: vec![cairn_protocol::Pulled {
            seq: 7,
            doc: seeds[0].doc.clone(),
            change: cairn_protocol::Bytes::default(),
            withdrawn: vec!["ab".repeat(32)],
        }],
        cursor: 7,
        more: true,
        head: 9,
        docs: doc_seeds()
            .iter()
            .take(3)
            .map(|d| cairn_protocol::DocState {
                doc: d.doc.clone(),
                snapshot: cairn_protocol::Bytes(d.bytes.clone()),
                changes: vec![cairn_protocol::Bytes(seeds[1].change.clone())],
            })
            .collect(),
        catch_up: Some(cairn_protocol::CatchUp {
            through: 9,
            after_doc: "team".into(),
        }),
        docs_left: 2,
        log: None,
    };
    serde_json::to_vec(&page).expect("it encodes")
}

/// Parses a mutated page as the client does, within its bound: errors are fine, panics are not.
pub fn page_parsing(bytes: &[u8]) {
    let _ = cairn_protocol::parse_bounded::<cairn_protocol::SyncResponse>(
        bytes,
        cairn_protocol::MAX_RESPONSE_ENTRIES,
    );
    let _ = cairn_protocol::parse_bounded::<cairn_protocol::SyncResponse>(bytes, 3);
}

/// A real sync body to mutate.
pub fn sync_body() -> Vec<u8> {
    let seeds = seeds();
    let req = cairn_protocol::SyncRequest {
        cursor: 41,
        push: vec![cairn_protocol::DocChanges {
            doc: seeds[0].doc.clone(),
            changes: seeds
                .iter()
                .take(3)
                .map(|s| cairn_protocol::Bytes(s.change.clone()))
                .collect(),
        }],
        max_pull: Some(100),
        import_done: false,
        withdrawals: false,
        ..cairn_protocol::SyncRequest::default()
    };
    serde_json::to_vec(&req).expect("it encodes")
}

/// A replica that has the document as it stood before `seed`'s change pulls `bytes` after it:
/// it takes it or sets it aside, and either way stays whole and readable. What the server took
/// (`taken`), every replica takes.
pub fn replica_apply(dir: &std::path::Path, n: u64, seed: &Seed, bytes: &[u8], taken: bool) {
    use cairn_store::{Incoming, Remote, Replica};
    let path = dir.join(format!("r{n}.sqlite3"));
    let remote = Remote {
        url: "http://127.0.0.1:9".into(),
        device_id: "d".into(),
        token: "t".into(),
    };
    let mut replica = Replica::create_joined(&path, "team", "m-ben", &remote).expect("a replica");
    let mut pulled: Vec<Incoming> = seed
        .before
        .iter()
        .map(|c| Incoming {
            doc: seed.doc.clone(),
            change: c.clone(),
        })
        .collect();
    pulled.push(Incoming {
        doc: seed.doc.clone(),
        change: bytes.to_vec(),
    });
    let applied = replica
        .apply_exchange(None, &pulled, 1, 0)
        .unwrap_or_else(|e| panic!("a bad change stopped the exchange: {e}"));
    assert_eq!(
        applied.changes + applied.known,
        seed.before.len() + 1 - applied.set_aside - applied.waiting
    );
    assert_eq!(replica.cursor().unwrap(), 1);
    if taken {
        assert_eq!(
            (applied.set_aside, applied.waiting),
            (0, 0),
            "the server took it, so must a replica"
        );
    }
    let problems = replica.verify_index().expect("the replica reads back");
    assert!(problems.is_empty(), "{problems:?}");
    replica
        .feed(&cairn_core::feed::FeedQuery::default())
        .expect("the feed reads");
    drop(replica);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A document as a server sends it whole: its id and saved bytes.
#[derive(Debug)]
pub struct DocSeed {
    pub doc: String,
    /// A document of an organisation's log (see [`Seed::org`]).
    pub org: bool,
    pub bytes: Vec<u8>,
}

/// Saved documents to mutate, as a hostile server would send them whole: the team document and
/// the journal of the change seeds, each saved compacted and not, a journal long enough for
/// automerge to deflate its columns, and a document followed by the changes after it.
pub fn doc_seeds() -> &'static [DocSeed] {
    static SEEDS: OnceLock<Vec<DocSeed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut docs: Vec<(String, Automerge)> = Vec::new();
        let mut orgs: Vec<bool> = Vec::new();
        for seed in seeds() {
            let mut doc = before(seed);
            doc.load_incremental(&seed.change).expect("a seed loads");
            match docs
                .iter_mut()
                .zip(&orgs)
                .find(|((id, _), org)| *id == seed.doc && **org == seed.org)
            {
                Some(((_, d), _)) => *d = doc,
                None => {
                    docs.push((seed.doc.clone(), doc));
                    orgs.push(seed.org);
                }
            }
        }
        let mut out = Vec::new();
        for ((id, doc), org) in docs.iter().zip(&orgs) {
            out.push(DocSeed {
                doc: id.clone(),
                org: *org,
                bytes: doc.save(),
            });
            out.push(DocSeed {
                doc: id.clone(),
                org: *org,
                bytes: doc.save_nocompress(),
            });
        }
        // A journal of sixty events: its columns pass automerge's threshold and go deflated.
        let state = team::read(&docs[0].1).expect("the team document reads");
        let at = 1_795_400_000_000;
        let mut long = Automerge::new().with_actor(ActorId::from([7u8; 16]));
        let journal_id = cairn_core::ids::journal_doc("m-ana", &cairn_core::ids::month_of(at));
        let mut heads = Vec::new();
        for i in 0..60u8 {
            if i == 59 {
                heads = long.get_heads();
            }
            let stamp = Stamp {
                at_ms: at + i64::from(i),
                tz: "Europe/Paris".into(),
                date: "2026-11-23".into(),
                late: false,
            };
            let text = format!("Step {i} of a long month");
            let new = NewEvent::action(&text, None, None);
            journal::add(
                &mut long,
                &state,
                "m-ana",
                &EventId::new(at, [i; 5]),
                &stamp,
                &new,
            )
            .expect("an event");
        }
        let saved = long.save();
        assert!(
            cairn_core::snapshot::DocParts::parse(&saved)
                .expect("a document")
                .op_columns
                .iter()
                .any(|(spec, _)| spec & 8 != 0),
            "some columns are deflated"
        );
        out.push(DocSeed {
            doc: journal_id.clone(),
            org: false,
            bytes: saved,
        });
        let mut then = long.fork_at(&heads).expect("a fork").save();
        then.extend(long.save_after(&heads));
        out.push(DocSeed {
            doc: journal_id,
            org: false,
            bytes: then,
        });
        out
    })
}

/// `bytes` (a saved document) with `mutations` applied: byte mutations as for a change; those
/// of parts take its document chunk apart ([`cairn_core::snapshot::DocParts`]) and put it
/// together again, with a right checksum, treating its change and operation columns as one
/// list. (A mutation of parts that finds no lone document chunk does nothing.)
pub fn mutate_doc(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    use cairn_core::snapshot::DocParts;
    let mut out = bytes.to_vec();
    for m in mutations {
        match m {
            Mutation::Byte { .. }
            | Mutation::Insert { .. }
            | Mutation::Remove { .. }
            | Mutation::Truncate { .. }
            | Mutation::Rechecksum => out = mutate(&out, std::slice::from_ref(m)),
            parts_mutation => {
                let Ok(mut p) = DocParts::parse(&out) else {
                    continue;
                };
                let n = p.change_columns.len() + p.op_columns.len();
                fn column(p: &mut DocParts, n: usize, which: usize) -> Option<&mut (u64, Vec<u8>)> {
                    let i = which % n.max(1);
                    let k = p.change_columns.len();
                    if i < k {
                        p.change_columns.get_mut(i)
                    } else {
                        p.op_columns.get_mut(i - k)
                    }
                }
                match parts_mutation {
                    Mutation::Column { which, bytes } => {
                        if let Some(c) = column(&mut p, n, *which) {
                            c.1 = bytes.clone();
                        }
                    }
                    Mutation::Run {
                        which,
                        count,
                        value,
                    } => {
                        if let Some(c) = column(&mut p, n, *which) {
                            let mut col = Vec::new();
                            sleb(&mut col, *count);
                            uleb(&mut col, *value);
                            c.1 = col;
                        }
                    }
                    // A column deflated, or its deflated form made to inflate a great deal.
                    Mutation::NewColumn { spec, bytes } => {
                        if let Some(c) = column(&mut p, n, *spec as usize) {
                            let mut raw = c.1.clone();
                            raw.extend(bytes.iter().cycle().take(bytes.len() << (spec % 16)));
                            *c = (c.0 | 8, cairn_core::snapshot::deflate(&raw));
                        }
                    }
                    Mutation::Actor(a) => p.actors.push(a.clone()),
                    Mutation::Deps(None) => p.heads.clear(),
                    Mutation::Deps(Some(h)) => p.heads.push(*h),
                    Mutation::Extra(e) => p.suffix = e.clone(),
                    Mutation::Message(m) => p.actors.truncate(m.len() % 3),
                    Mutation::StartOp(v) => {
                        let v = *v;
                        p.op_columns.retain(|(spec, _)| *spec != v % 200);
                    }
                    Mutation::Seq(v) => {
                        if let Some(c) = column(&mut p, n, *v as usize) {
                            c.1.reverse();
                        }
                    }
                    _ => {}
                }
                out = p.encode();
            }
        }
    }
    out
}

/// A replica that holds nothing of `seed`'s document (or, `held`, holds it already) takes
/// `bytes` as that document's snapshot from a hostile server: it takes or sets it aside, within
/// bounded time, and either way stays whole and readable; what it took loads.
pub fn replica_apply_doc(dir: &std::path::Path, seed: &DocSeed, bytes: &[u8], held: bool) {
    use cairn_store::{Incoming, IncomingDoc, Remote, Replica};
    if let Some(path) = std::env::var_os("CAIRN_FUZZ_LAST") {
        let _ = std::fs::write(path, [seed.doc.as_bytes(), b"\n", bytes].concat());
    }
    let path = dir.join("doc.sqlite3");
    let remote = Remote {
        url: "http://127.0.0.1:9".into(),
        device_id: "d".into(),
        token: "t".into(),
    };
    let mut replica = Replica::create_joined(&path, "team", "m-ben", &remote).expect("a replica");
    // The team first, as every page of a catch-up would have brought it (an organisation's
    // replica holds the organisation's document where a team's holds the team's).
    let team: Vec<Incoming> = seeds()
        .iter()
        .filter(|s| s.doc == TEAM_DOC && s.org == seed.org)
        .map(|s| Incoming {
            doc: s.doc.clone(),
            change: s.change.clone(),
        })
        .collect();
    replica.apply_exchange(None, &team, 1, 0).expect("the team");
    if held {
        let honest = IncomingDoc {
            doc: seed.doc.clone(),
            snapshot: seed.bytes.clone(),
            changes: Vec::new(),
        };
        replica
            .apply_docs(None, &[honest], None, 2, 0)
            .expect("an honest document");
    }
    let started = std::time::Instant::now();
    let hostile = IncomingDoc {
        doc: seed.doc.clone(),
        snapshot: bytes.to_vec(),
        changes: Vec::new(),
    };
    let got = replica
        .apply_docs(None, &[hostile], None, 3, 0)
        .unwrap_or_else(|e| panic!("a bad snapshot stopped the page: {e}"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a snapshot of {} bytes took {:?}",
        bytes.len(),
        started.elapsed()
    );
    assert!(got.set_aside <= 1);
    assert_eq!(replica.cursor().unwrap(), 3);
    let problems = replica.verify_index().expect("the replica reads back");
    assert!(problems.is_empty(), "{problems:?}");
    replica
        .feed(&cairn_core::feed::FeedQuery::default())
        .expect("the feed reads");
    let name = if seed.org { "Acme" } else { "Otters" };
    assert_eq!(replica.team().expect("the team reads").name, name);
}

/// A replica holding the seeds' documents and an event of its member's not yet sent, made on
/// them, takes a withdrawal notice naming `named` (indices into the seeds, and hashes that name
/// nothing) from a hostile server: it never loses its unsent event, never empties the team or
/// loses a member, and stays whole.
pub fn replica_withdraw(dir: &std::path::Path, doc_of: usize, named: &[usize], junk: &[[u8; 32]]) {
    use cairn_store::{Incoming, Remote, Replica};
    let path = dir.join("notice.sqlite3");
    let remote = Remote {
        url: "http://127.0.0.1:9".into(),
        device_id: "d".into(),
        token: "t".into(),
    };
    let mut replica = Replica::create_joined(&path, "team", "m-ana", &remote).expect("a replica");
    let all: Vec<Incoming> = seeds()
        .iter()
        .filter(|s| !s.org)
        .map(|s| Incoming {
            doc: s.doc.clone(),
            change: s.change.clone(),
        })
        .collect();
    replica.apply_exchange(None, &all, 1, 0).expect("the seeds");
    let team = replica.team().unwrap();
    let at = 1_795_400_000_000 + 99;
    let stamp = Stamp {
        at_ms: at,
        tz: "Europe/Paris".into(),
        date: "2026-11-23".into(),
        late: false,
    };
    let new = NewEvent::action("Mine, not sent yet", None, None);
    replica
        .add_event("m-ana", &EventId::new(at, [9; 5]), &stamp, &new)
        .expect("an event of mine");
    let seeds = seeds();
    let doc = &seeds[doc_of % seeds.len()].doc;
    let mut hashes: Vec<Vec<u8>> = named
        .iter()
        .map(|i| {
            let c = &seeds[i % seeds.len()].change;
            automerge::Change::from_bytes(c.clone())
                .expect("a seed decodes")
                .hash()
                .0
                .to_vec()
        })
        .collect();
    hashes.extend(junk.iter().map(|h| h.to_vec()));
    let w = replica
        .withdraw(doc, &hashes, None, 0)
        .unwrap_or_else(|e| panic!("a notice failed: {e}"));
    let texts: Vec<String> = replica
        .feed(&cairn_core::feed::FeedQuery::default())
        .unwrap()
        .into_iter()
        .map(|i| i.event.text)
        .collect();
    assert!(
        texts.iter().any(|t| t == "Mine, not sent yet"),
        "{w:?} took the unsent event: {texts:?}"
    );
    let now = replica.team().unwrap();
    assert_eq!(now.name, team.name, "{w:?}");
    for m in &team.members {
        assert!(
            now.members.iter().chain(&now.former).any(|n| n.id == m.id),
            "{w:?} took {}",
            m.id
        );
    }
    let problems = replica.verify_index().expect("the replica reads back");
    assert!(problems.is_empty(), "{problems:?}");
}
