//! The storage trait's contract, on both backends: a SQLite file and a real PostgreSQL (a
//! throwaway cluster). Then what only PostgreSQL offers: two server instances (two hubs, two
//! pools) on one database, pushing and pulling one team at once.

use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge};
use cairn_e2e::pg::Postgres;
use cairn_protocol::{Bytes, DocChanges, SyncRequest};
use cairn_server::hub::Hub;
use cairn_server::store::{
    self, Append, DocsQuery, Entry, FactsQuery, Kind, NewInvite, PullQuery, Registration, Store,
    StoreError,
};
use cairn_server::{Limits, store::Device};
use sha2::{Digest, Sha256};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A fresh SQLite store and, when PostgreSQL is here, a fresh PostgreSQL one.
struct Backends {
    _dir: tempfile::TempDir,
    pg: Option<Postgres>,
    stores: Vec<Arc<dyn Store>>,
}

impl Backends {
    async fn new(name: &str) -> Backends {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("server.sqlite3");
        let mut stores = vec![
            store::open(path.to_str().unwrap(), &Default::default())
                .await
                .expect("SQLite opens"),
        ];
        let pg = Postgres::for_test();
        if let Some(pg) = &pg {
            let url = pg.create_db(name);
            stores.push(
                store::open(&url, &Default::default())
                    .await
                    .expect("PostgreSQL opens"),
            );
        }
        Backends {
            _dir: dir,
            pg,
            stores,
        }
    }
}

fn entry(doc: &str, n: u8, device: &str) -> Entry {
    Entry {
        doc: doc.into(),
        hash: vec![n; 32],
        actor: vec![n; 16],
        actor_seq: 1,
        device: device.into(),
        data: vec![n; 10],
        withdrawn_ms: None,
        kind: Kind::Change,
    }
}

fn registration(team: &str, invite: &str, device: &str, member: &str) -> Registration {
    Registration {
        invite_hash: Sha256::digest(invite).to_vec(),
        team: team.into(),
        member: member.into(),
        device_id: device.into(),
        name: format!("{device}'s laptop"),
        token_hash: Sha256::digest(format!("token-{device}")).to_vec(),
        now_ms: 1_000,
        publish: false,
        rename: None,
        max_devices: 3,
        forget_before_ms: 0,
        admit: cairn_server::hub::admit,
        relay: false,
    }
}

async fn invite(store: &dyn Store, team: &str, code: &str, uses: i64) {
    store
        .add_invite(&NewInvite {
            code_hash: Sha256::digest(code).to_vec(),
            team: team.into(),
            member: None,
            founder: false,
            uses,
            expires_ms: i64::MAX,
            created_ms: 0,
            created_by: None,
            relay: false,
        })
        .await
        .expect("an invite");
}

/// A one-use invite made for the team's founder.
async fn founder_invite(store: &dyn Store, team: &str, code: &str) {
    store
        .add_invite(&NewInvite {
            code_hash: Sha256::digest(code).to_vec(),
            team: team.into(),
            member: None,
            founder: true,
            uses: 1,
            expires_ms: i64::MAX,
            created_ms: 0,
            created_by: None,
            relay: false,
        })
        .await
        .expect("a founder's invite");
}

#[test]
fn a_founders_invite_is_kept_and_a_publication_renames_the_team_once() {
    runtime().block_on(async {
        let b = Backends::new("founder").await;
        for s in &b.stores {
            let s = &**s;
            s.create_team("t1", "Guild", 0).await.unwrap();
            founder_invite(s, "t1", "founder").await;
            invite(s, "t1", "general", 5).await;
            // Read back as made, and listed as the founder's.
            let read = s.invite(&Sha256::digest("founder")).await.unwrap().unwrap();
            assert!(read.founder && read.member.is_none(), "{}", s.backend());
            let general = s.invite(&Sha256::digest("general")).await.unwrap().unwrap();
            assert!(!general.founder, "{}", s.backend());
            let listed = s.invites(Some("t1"), 1).await.unwrap();
            assert_eq!(
                listed.iter().filter(|i| i.founder).count(),
                1,
                "{}",
                s.backend()
            );
            assert_eq!(s.team_name("t1").await.unwrap(), "Guild");
            assert!(matches!(
                s.team_name("nope").await,
                Err(StoreError::NotFound(_))
            ));
            assert_eq!(
                s.team_names().await.unwrap(),
                vec![("t1".to_owned(), "Guild".to_owned())]
            );
            // A publication takes the replica's name for the team, in the same write.
            let mut founding = registration("t1", "founder", "d1", "ana");
            founding.publish = true;
            founding.rename = Some("Guild of Rustaceans".into());
            s.register(&founding).await.unwrap();
            assert_eq!(s.team_name("t1").await.unwrap(), "Guild of Rustaceans");
            assert_eq!(s.teams().await.unwrap()[0].name, "Guild of Rustaceans");
            // Once the log has begun, no publication registers (another founder's invite, say).
            s.append(
                "t1",
                &Append {
                    base_head: 0,
                    entries: vec![entry("team", 1, "d1")],
                    claims: vec![(vec![1; 16], "d1".into())],
                    ..Append::default()
                },
            )
            .await
            .unwrap();
            founder_invite(s, "t1", "late").await;
            let mut late = registration("t1", "late", "d2", "zed");
            late.publish = true;
            late.rename = Some("Zed's".into());
            assert!(
                matches!(s.register(&late).await, Err(StoreError::Published)),
                "{}",
                s.backend()
            );
            assert_eq!(s.team_name("t1").await.unwrap(), "Guild of Rustaceans");
            let ana = s
                .device_by_token(&Sha256::digest("token-d1"))
                .await
                .unwrap();
            assert!(ana.is_some_and(|d| !d.revoked), "{}", s.backend());
        }
    });
}

#[test]
fn the_log_numbers_without_gaps_and_refuses_a_stale_head() {
    runtime().block_on(async {
        let b = Backends::new("log").await;
        for s in &b.stores {
            let s = &**s;
            s.create_team("t1", "Otters", 0).await.unwrap();
            assert!(matches!(
                s.team_log("nope").await,
                Err(StoreError::NotFound(_))
            ));
            let first = Append {
                base_head: 0,
                entries: vec![entry("team", 1, "d1"), entry("team", 2, "d2")],
                claims: vec![(vec![1; 16], "d1".into())],
                ..Append::default()
            };
            assert_eq!(s.append("t1", &first).await.unwrap(), 2, "{}", s.backend());
            // Planned on a head that moved: refused, nothing written. (PostgreSQL sends the
            // write's statements together, and its entry's number may collide first: a race
            // either way, which the hub plans again.)
            let stale = Append {
                base_head: 0,
                entries: vec![entry("team", 3, "d1")],
                ..Append::default()
            };
            let refused = s.append("t1", &stale).await.unwrap_err();
            assert!(
                matches!(refused, StoreError::HeadMoved | StoreError::Collided(_)),
                "{refused:?}"
            );
            assert!(refused.is_race());
            // The same change twice in the log: refused.
            let again = Append {
                base_head: 2,
                entries: vec![entry("team", 1, "d1")],
                ..Append::default()
            };
            assert!(matches!(
                s.append("t1", &again).await,
                Err(StoreError::Collided(_))
            ));
            // An actor another device owns cannot be claimed.
            let taken = Append {
                base_head: 2,
                entries: vec![entry("team", 4, "d2")],
                claims: vec![(vec![1; 16], "d2".into())],
                ..Append::default()
            };
            assert!(matches!(
                s.append("t1", &taken).await,
                Err(StoreError::ActorTaken)
            ));
            let notice = Entry {
                kind: Kind::Notice,
                ..entry("team", 5, "")
            };
            let withdraw = Append {
                base_head: 2,
                entries: vec![notice],
                withdraw: vec![2],
                withdrawn_ms: 7,
                withdrawals: 1,
                ..Append::default()
            };
            assert_eq!(s.append("t1", &withdraw).await.unwrap(), 3);
            let log = s.team_log("t1").await.unwrap();
            assert_eq!((log.head, log.withdrawals), (3, 1));
            // d3 reads: change 1 and the notice; the withdrawn change 2 never again.
            let page = s
                .pull(&PullQuery {
                    team: "t1".into(),
                    skip: Default::default(),
                    after: 0,
                    max: 10,
                    max_bytes: 1 << 20,
                    notices: true,
                })
                .await
                .unwrap();
            let seqs: Vec<i64> = page.entries.iter().map(|e| e.seq).collect();
            assert_eq!((page.head, seqs, page.more), (3, vec![1, 3], false));
            assert_eq!(page.entries[1].kind, Kind::Notice);
            // A request that pushed change 1 is not sent it back; an old client gets no
            // notice.
            let page = s
                .pull(&PullQuery {
                    team: "t1".into(),
                    skip: [vec![1u8; 32]].into(),
                    after: 0,
                    max: 10,
                    max_bytes: 1 << 20,
                    notices: false,
                })
                .await
                .unwrap();
            assert!(page.entries.is_empty(), "{:?}", page.entries);
            assert!(!page.more);
            // Pages end on their count or their bytes, never empty.
            let page = s
                .pull(&PullQuery {
                    team: "t1".into(),
                    skip: Default::default(),
                    after: 0,
                    max: 1,
                    max_bytes: 1,
                    notices: true,
                })
                .await
                .unwrap();
            assert_eq!((page.entries.len(), page.more), (1, true));
            assert_eq!(
                s.doc_changes("t1", "team", 0)
                    .await
                    .unwrap()
                    .iter()
                    .map(|(seq, _)| *seq)
                    .collect::<Vec<_>>(),
                vec![1]
            );
            let found = s.find_changes("t1", "0202", 5).await.unwrap();
            assert_eq!(found.len(), 1);
            assert!(found[0].withdrawn);
        }
    });
}

#[test]
fn facts_answer_what_a_push_needs() {
    runtime().block_on(async {
        let b = Backends::new("facts").await;
        for s in &b.stores {
            let s = &**s;
            s.create_team("t1", "Otters", 0).await.unwrap();
            let mut second = entry("journal", 2, "d1");
            second.actor = vec![1; 16];
            second.actor_seq = 2;
            let a = Append {
                base_head: 0,
                entries: vec![entry("journal", 1, "d1"), second],
                claims: vec![(vec![1; 16], "d1".into())],
                ..Append::default()
            };
            s.append("t1", &a).await.unwrap();
            let facts = s
                .facts(
                    "t1",
                    &FactsQuery {
                        actors: vec![vec![1; 16], vec![9; 16]],
                        hashes: vec![vec![2; 32], vec![9; 32]],
                        tips: vec![
                            ("journal".into(), vec![1; 16]),
                            ("team".into(), vec![1; 16]),
                        ],
                    },
                )
                .await
                .unwrap();
            assert_eq!(facts.owners.len(), 1, "{}", s.backend());
            assert_eq!(facts.owners[&vec![1; 16]], "d1");
            assert_eq!(facts.known[&vec![2; 32]], ("journal".to_owned(), false));
            assert!(!facts.known.contains_key(&vec![9; 32]));
            assert_eq!(
                facts.tips[&("journal".to_owned(), vec![1; 16])],
                (2, vec![2; 32])
            );
            assert_eq!(facts.tips.len(), 1);
        }
    });
}

#[test]
fn an_invite_is_spent_once_and_a_revoked_device_is_known() {
    runtime().block_on(async {
        let b = Backends::new("invites").await;
        for s in &b.stores {
            s.create_team("t1", "Otters", 0).await.unwrap();
            invite(&**s, "t1", "one-use", 1).await;
            // Eight devices race for one use: one gets it.
            let mut racers = Vec::new();
            for i in 0..8 {
                let s = s.clone();
                racers.push(tokio::spawn(async move {
                    s.register(&registration(
                        "t1",
                        "one-use",
                        &format!("d{i}"),
                        &format!("m{i}"),
                    ))
                    .await
                }));
            }
            let mut won = 0;
            for r in racers {
                match r.await.unwrap() {
                    Ok(()) => won += 1,
                    Err(StoreError::InviteSpent) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(won, 1, "{}", s.backend());
            assert_eq!(
                s.invite(&Sha256::digest("one-use"))
                    .await
                    .unwrap()
                    .unwrap()
                    .uses_left,
                0
            );
            // A member's devices are capped.
            invite(&**s, "t1", "many", 10).await;
            for i in 0..3 {
                s.register(&registration("t1", "many", &format!("a{i}"), "ana"))
                    .await
                    .unwrap();
            }
            assert!(matches!(
                s.register(&registration("t1", "many", "a3", "ana")).await,
                Err(StoreError::DeviceCap { active: 3 })
            ));
            let by_member = s.member_devices("t1").await.unwrap();
            assert_eq!(
                by_member.iter().find(|m| m.member == "ana").unwrap().active,
                3
            );
            let token = Sha256::digest("token-a0").to_vec();
            let device = s.device_by_token(&token).await.unwrap().unwrap();
            assert!(!device.revoked);
            s.revoke("a0", 5).await.unwrap();
            assert!(s.device_by_token(&token).await.unwrap().unwrap().revoked);
            assert!(matches!(
                s.revoke("nobody", 5).await,
                Err(StoreError::NotFound(_))
            ));
            s.touch("a1", 99, false).await.unwrap();
            let devices = s.devices(Some("t1")).await.unwrap();
            let a1 = devices.iter().find(|d| d.id == "a1").unwrap();
            assert_eq!(a1.last_seen_ms, Some(99));
            assert_eq!(s.teams().await.unwrap()[0].devices, 3);
        }
    });
}

#[test]
fn a_database_copies_into_the_other_backend_and_back_intact() {
    runtime().block_on(async {
        let b = Backends::new("copy").await;
        let Some(_pg) = &b.pg else { return };
        let sqlite = &*b.stores[0];
        sqlite.create_team("t1", "Otters", 0).await.unwrap();
        sqlite.create_team("t2", "Badgers", 1).await.unwrap();
        invite(sqlite, "t1", "code", 4).await;
        founder_invite(sqlite, "t2", "founder").await;
        sqlite
            .register(&registration("t1", "code", "d1", "ana"))
            .await
            .unwrap();
        for team in ["t1", "t2"] {
            let entries: Vec<Entry> = (1..=250u8).map(|n| entry("team", n, "d1")).collect();
            let a = Append {
                base_head: 0,
                entries,
                claims: if team == "t1" {
                    vec![(vec![1; 16], "d1".into())]
                } else {
                    vec![]
                },
                ..Append::default()
            };
            sqlite.append(team, &a).await.unwrap();
        }
        let postgres = &*b.stores[1];
        let copied = store::copy(sqlite, postgres, |_| {}).await.unwrap();
        assert_eq!((copied.teams, copied.devices, copied.entries), (2, 1, 500));
        // Into a database that holds teams: refused, nothing changed.
        assert!(matches!(
            store::copy(sqlite, postgres, |_| {}).await,
            Err(StoreError::NotEmpty)
        ));
        // And back into a new SQLite file.
        let dir = tempfile::tempdir().unwrap();
        let back = store::open(
            dir.path().join("back.sqlite3").to_str().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        store::copy(postgres, &*back, |_| {}).await.unwrap();
        assert_eq!(back.team_log("t2").await.unwrap().head, 250);
        // The founder's invite is still the founder's, on both.
        for s in [postgres, &*back] {
            let founder = s.invite(&Sha256::digest("founder")).await.unwrap();
            assert!(founder.is_some_and(|i| i.founder), "{}", s.backend());
            let general = s.invite(&Sha256::digest("code")).await.unwrap();
            assert!(general.is_some_and(|i| !i.founder), "{}", s.backend());
        }
        assert_eq!(
            back.device_by_token(&Sha256::digest("token-d1"))
                .await
                .unwrap(),
            sqlite
                .device_by_token(&Sha256::digest("token-d1"))
                .await
                .unwrap()
        );
    });
}

/// Changes to the team document by one actor, each made on the one before.
fn chain(actor: u8, n: usize) -> Vec<Vec<u8>> {
    let mut doc = Automerge::new().with_actor(ActorId::from([actor; 16]));
    let mut out = Vec::new();
    for i in 0..n {
        let heads = doc.get_heads();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, format!("k{actor}-{i}"), i as i64)?;
            Ok(())
        })
        .unwrap();
        out.extend(
            doc.get_changes(&heads)
                .iter()
                .map(|c| c.raw_bytes().to_vec()),
        );
    }
    out
}

fn push(change: Vec<u8>) -> SyncRequest {
    SyncRequest {
        cursor: 0,
        push: vec![DocChanges {
            doc: "team".into(),
            changes: vec![Bytes(change)],
        }],
        max_pull: Some(0),
        import_done: false,
        withdrawals: true,
        ..SyncRequest::default()
    }
}

#[test]
fn two_instances_on_one_postgres_number_every_push_and_no_reader_skips_one() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("instances");
    const DEVICES: u8 = 4;
    const EACH: usize = 40;
    runtime().block_on(async {
        let options = store::Options {
            pool: 4,
            ..Default::default()
        };
        // Two instances: two pools, two hubs, two document caches.
        let a = store::open(&url, &options).await.unwrap();
        let b = store::open(&url, &options).await.unwrap();
        let hubs = [Arc::new(Hub::new(a.clone(), 64)), Arc::new(Hub::new(b, 64))];
        a.create_team("t1", "Otters", 0).await.unwrap();
        invite(&*a, "t1", "code", 100).await;
        let mut devices: Vec<Device> = Vec::new();
        for d in 0..=DEVICES {
            a.register(&registration(
                "t1",
                "code",
                &format!("d{d}"),
                &format!("m{d}"),
            ))
            .await
            .unwrap();
            devices.push(hubs[0].authenticate(&format!("token-d{d}")).await.unwrap());
        }
        // A reader on the other instance follows the log while it grows.
        let reader = {
            let hub = hubs[1].clone();
            let token = format!("token-d{DEVICES}");
            tokio::spawn(async move {
                let total = u64::from(DEVICES) * EACH as u64;
                let mut cursor = 0u64;
                let mut seen = Vec::new();
                let mut rounds = 0;
                while cursor < total {
                    rounds += 1;
                    assert!(
                        rounds < 1_000_000,
                        "the reader never reached the head: {cursor}"
                    );
                    let req = SyncRequest {
                        cursor,
                        push: vec![],
                        max_pull: Some(7),
                        import_done: false,
                        withdrawals: true,
                        ..SyncRequest::default()
                    };
                    // As a server does, the token is checked on every request.
                    let device = hub.authenticate(&token).await.unwrap();
                    let (resp, _) = hub
                        .sync(&device, req, &Limits::default(), 1_000)
                        .await
                        .unwrap();
                    for p in &resp.pulled {
                        seen.push(p.seq);
                    }
                    cursor = resp.cursor;
                    tokio::task::yield_now().await;
                }
                seen
            })
        };
        // Every device pushes its changes one sync at a time, through both instances in turn.
        let mut writers = Vec::new();
        for d in 0..DEVICES {
            let hubs = hubs.clone();
            let device = devices[d as usize].clone();
            writers.push(tokio::spawn(async move {
                for (i, change) in chain(d + 1, EACH).into_iter().enumerate() {
                    let hub = &hubs[(i + d as usize) % 2];
                    let (resp, _) = hub
                        .sync(&device, push(change), &Limits::default(), 1_000)
                        .await
                        .unwrap_or_else(|e| panic!("device {d}, change {i}: {e}"));
                    assert_eq!(resp.acked, 1);
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let seen = reader.await.unwrap();
        let total = i64::from(DEVICES) * EACH as i64;
        // Numbered 1..=total, each once, and the reader saw them all, in order.
        assert_eq!(a.team_log("t1").await.unwrap().head, total);
        assert_eq!(seen, (1..=total as u64).collect::<Vec<_>>());
        let rows = a.dump_log(("", 0), 10_000).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=total).collect::<Vec<_>>()
        );
        // Each actor's changes in its own order.
        for d in 0..DEVICES {
            let seqs: Vec<i64> = rows
                .iter()
                .filter(|r| r.entry.actor == vec![d + 1; 16])
                .map(|r| r.entry.actor_seq)
                .collect();
            assert_eq!(seqs, (1..=EACH as i64).collect::<Vec<_>>());
        }
    });
    drop(pg);
}

#[test]
fn snapshots_keep_the_newest_and_go_with_a_withdrawal() {
    runtime().block_on(async {
        let b = Backends::new("snapshots").await;
        for s in &b.stores {
            let s = &**s;
            s.create_team("t1", "Otters", 0).await.unwrap();
            assert_eq!(s.snapshot("t1", "team").await.unwrap(), None);
            assert!(s.put_snapshot("t1", "team", 5, b"five", 0).await.unwrap());
            assert!(!s.put_snapshot("t1", "team", 3, b"three", 0).await.unwrap());
            assert_eq!(
                s.snapshot("t1", "team").await.unwrap(),
                Some((5, b"five".to_vec())),
                "{}",
                s.backend()
            );
            s.put_snapshot("t1", "team", 9, b"nine", 0).await.unwrap();
            s.put_snapshot("t1", "journal", 9, b"j", 0).await.unwrap();
            let sizes = &s.teams().await.unwrap()[0];
            assert_eq!((sizes.log_bytes, sizes.snapshot_bytes), (0, 5));
            let notice = Entry {
                kind: Kind::Notice,
                ..entry("team", 1, "")
            };
            let withdraw = Append {
                base_head: 0,
                entries: vec![notice],
                withdrawals: 1,
                ..Append::default()
            };
            s.append("t1", &withdraw).await.unwrap();
            assert_eq!(s.snapshot("t1", "team").await.unwrap(), None);
            assert!(s.snapshot("t1", "journal").await.unwrap().is_some());
            // A document loaded before the withdrawal may hold what was withdrawn: not kept.
            let stale = s.put_snapshot("t1", "team", 12, b"stale", 0).await.unwrap();
            assert!(!stale, "{}", s.backend());
            assert_eq!(s.snapshot("t1", "team").await.unwrap(), None);
            assert!(s.put_snapshot("t1", "team", 12, b"fresh", 1).await.unwrap());
        }
    });
}

#[test]
fn a_document_loads_from_its_snapshot_and_the_tail_after_it() {
    runtime().block_on(async {
        let b = Backends::new("tail").await;
        for store in &b.stores {
            store.create_team("t1", "Otters", 0).await.unwrap();
            invite(&**store, "t1", "code", 10).await;
            store
                .register(&registration("t1", "code", "d1", "m1"))
                .await
                .unwrap();
            let changes = chain(7, 301);
            let hub = Hub::new(store.clone(), 64);
            let device = hub.authenticate("token-d1").await.unwrap();
            for change in &changes[..300] {
                hub.sync(&device, push(change.clone()), &Limits::default(), 1_000)
                    .await
                    .unwrap();
            }
            let (seq, data) = store
                .snapshot("t1", "team")
                .await
                .unwrap()
                .expect("a snapshot after 256 changes");
            assert!((256..=300).contains(&seq), "{seq}");
            let doc = Automerge::load(&data).unwrap();
            assert_eq!(doc.get_changes(&[]).len(), seq as usize);
            if store.backend() == "sqlite" {
                // The log's first change, broken: replaying the whole log would now leave out
                // every change (each depends on the one before), so the push below goes through
                // only if the document comes from its snapshot.
                let conn =
                    rusqlite::Connection::open(b._dir.path().join("server.sqlite3")).unwrap();
                conn.execute("UPDATE changes SET data = x'00' WHERE seq = 1", [])
                    .unwrap();
            }
            // A server with nothing in memory takes the next change: the document it checks it
            // against is the snapshot and the changes after it.
            let cold = Hub::new(store.clone(), 64);
            let device = cold.authenticate("token-d1").await.unwrap();
            let (resp, _) = cold
                .sync(
                    &device,
                    push(changes[300].clone()),
                    &Limits::default(),
                    1_000,
                )
                .await
                .unwrap();
            assert_eq!(resp.acked, 1);
            assert_eq!(store.team_log("t1").await.unwrap().head, 301);
        }
    });
}

#[test]
fn many_teams_pushing_at_once_share_a_small_pool() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("teams");
    runtime().block_on(async {
        // Four connections for twelve teams writing at once: the turns must leave room for
        // the writes they are for.
        let options = store::Options {
            pool: 4,
            ..Default::default()
        };
        let store = store::open(&url, &options).await.unwrap();
        let hub = Arc::new(Hub::new(store.clone(), 64));
        let mut writers = Vec::new();
        for t in 0..12u8 {
            let team = format!("t{t}");
            store.create_team(&team, "Team", 0).await.unwrap();
            invite(&*store, &team, &format!("code{t}"), 1).await;
            store
                .register(&registration(
                    &team,
                    &format!("code{t}"),
                    &format!("d{t}"),
                    "m",
                ))
                .await
                .unwrap();
            let hub = hub.clone();
            writers.push(tokio::spawn(async move {
                let device = hub.authenticate(&format!("token-d{t}")).await.unwrap();
                for change in chain(t + 1, 10) {
                    hub.sync(&device, push(change), &Limits::default(), 1_000)
                        .await
                        .unwrap_or_else(|e| panic!("team {t}: {e}"));
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        for t in 0..12 {
            assert_eq!(store.team_log(&format!("t{t}")).await.unwrap().head, 10);
        }
    });
}

#[test]
fn pruning_takes_only_what_snapshots_hold_and_keeps_each_actors_last_change() {
    runtime().block_on(async {
        let b = Backends::new("prune").await;
        for s in &b.stores {
            let s = &**s;
            let name = s.backend();
            s.create_team("t1", "Otters", 0).await.unwrap();
            // One actor's changes 1..=6 in "j", then a notice, then two changes of another
            // actor in "k"; all stored long ago (stored_ms 10).
            let mut entries: Vec<Entry> = (1..=6u8)
                .map(|n| Entry {
                    hash: vec![n; 32],
                    actor: vec![1; 16],
                    actor_seq: i64::from(n),
                    ..entry("j", n, "d1")
                })
                .collect();
            entries.push(Entry {
                kind: Kind::Notice,
                ..entry("j", 7, "")
            });
            for n in 8..=9u8 {
                entries.push(Entry {
                    actor: vec![2; 16],
                    actor_seq: i64::from(n) - 7,
                    ..entry("k", n, "d1")
                });
            }
            let append = Append {
                base_head: 0,
                entries,
                stored_ms: 10,
                ..Append::default()
            };
            s.append("t1", &append).await.unwrap();
            // Nothing is held by a snapshot yet: nothing goes.
            let none = s.prune("t1", i64::MAX).await.unwrap();
            assert_eq!(none.changes, 0, "{name}");
            // "j" is folded into a snapshot as of entry 4; "k" into one as of 9.
            assert!(s.put_snapshot("t1", "j", 4, b"j@4", 0).await.unwrap());
            assert!(s.put_snapshot("t1", "k", 9, b"k@9", 0).await.unwrap());
            // A horizon before the snapshots were kept takes nothing.
            assert_eq!(s.prune("t1", 20).await.unwrap().changes, 0, "{name}");
            let pruned = s.prune("t1", i64::MAX).await.unwrap();
            // j's entries 1-4 (held by its snapshot), k's entry 8 (its actor's last, 9, stays).
            assert_eq!((pruned.changes, pruned.bytes), (5, 50), "{name}");
            let left: Vec<i64> = s
                .dump_log(("t1", 0), 100)
                .await
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect();
            assert_eq!(left, [5, 6, 7, 9], "{name}");
            let team = &s.teams().await.unwrap()[0];
            assert_eq!((team.pruned_changes, team.pruned_bytes), (5, 50), "{name}");
            // Again: nothing more.
            assert_eq!(s.prune("t1", i64::MAX).await.unwrap().changes, 0);
            // A catch-up from before the pruning gets the snapshots and what follows them.
            let page = s
                .pull_docs(&DocsQuery {
                    team: "t1".into(),
                    after: 0,
                    after_doc: String::new(),
                    max_docs: 10,
                    max_bytes: 1 << 20,
                    notices_through: Some(i64::MAX),
                })
                .await
                .unwrap();
            let got: Vec<(String, Option<i64>, Vec<i64>)> = page
                .docs
                .iter()
                .map(|d| {
                    (
                        d.doc.clone(),
                        d.snapshot.as_ref().map(|(seq, _)| *seq),
                        d.tail.iter().map(|(seq, _)| *seq).collect(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                [
                    ("j".into(), Some(4), vec![5, 6]),
                    ("k".into(), Some(9), vec![])
                ],
                "{name}"
            );
            assert_eq!(page.notices.len(), 1, "{name}");
            assert_eq!((page.head, page.left), (9, 0), "{name}");
            assert!(s.prune("nope", 0).await.is_err());
        }
    });
}
