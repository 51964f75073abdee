//! The exchange loop: the outbox up, the team's change log down, until both sides are level,
//! and the mapping of the protocol's pages onto the store's.

use cairn_protocol::{Bytes, CatchUp, DocChanges, SyncRequest, SyncResponse};
use cairn_store::{CatchUpState, Incoming, IncomingDoc, Outgoing, Replica};
use serde::Serialize;

use super::client::unhex;
use super::{Client, Error, Result};

/// The most changes one request pushes; the server takes up to 10,000.
const PUSH_CHANGES: usize = 2_000;
/// The most change bytes one request pushes (past its first change).
const PUSH_BYTES: usize = 4 << 20;
/// Documents one sync writes again under a fresh actor at most (a copy touches a few: the
/// month's journal, the team document); past it, a server that keeps refusing is an error.
const MAX_REBASES: usize = 64;

/// What a sync moved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Changes the server took from this device.
    pub sent: usize,
    /// Changes new to this replica.
    pub received: usize,
    /// Documents received whole (a catch-up from far behind).
    pub docs: usize,
    /// HTTP requests made.
    pub requests: usize,
    pub bytes_up: usize,
    pub bytes_down: usize,
    pub cursor: u64,
    /// Changes from the server set aside because they do not apply (`cairn doctor` lists them).
    pub set_aside: usize,
    /// Changes the server's admin withdrew that left this replica.
    pub withdrawn: usize,
    /// What they were, a line each (events with their authors, parts of the team).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<String>,
    /// Changes of this device a notice named that the server never acknowledged: kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub kept: usize,
    /// This device's unsent changes made on withdrawn ones, written again and sent.
    #[serde(skip_serializing_if = "is_zero")]
    pub redone: usize,
    /// Notices held back whole, each with what it would have removed (the team's founding, a
    /// member's membership).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// Documents whose unsent changes were written again under a fresh actor: this replica was
    /// copied or restored from a backup, and another copy had used its actor's numbers.
    pub rebased: usize,
    /// Entries of the log received (changes, notices, and documents with their changes).
    #[serde(skip)]
    pub received_entries: usize,
    /// The server was restored from a backup (its logs say another identity, or it is behind
    /// this replica): this device's changes went up again, this many, and the log was read
    /// from its start.
    #[serde(skip_serializing_if = "is_zero")]
    pub resent: usize,
    /// Changes held back for a later sync: they depend on changes the restored server lost
    /// and their authors have not sent again yet.
    #[serde(skip_serializing_if = "is_zero")]
    pub held_back: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Report {
    /// Adds what a further round of sync did.
    pub fn add(&mut self, more: &Report) {
        self.sent += more.sent;
        self.received += more.received;
        self.docs += more.docs;
        self.set_aside += more.set_aside;
        self.withdrawn += more.withdrawn;
        self.gone.extend(more.gone.iter().cloned());
        self.kept += more.kept;
        self.redone += more.redone;
        self.held.extend(more.held.iter().cloned());
        self.rebased += more.rebased;
        self.requests += more.requests;
        self.bytes_up += more.bytes_up;
        self.bytes_down += more.bytes_down;
        self.cursor = more.cursor;
    }
}

/// What one sync takes from a server at most, so that no server can keep a device busy, or its
/// replica growing, for ever: pages, changes (and documents) received, and bytes. An honest
/// server's catch-up on a team's whole history by single changes is a few hundred pages; a
/// sync that stops at a cap keeps what it applied, and the next one goes on from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub pages: usize,
    pub changes: usize,
    pub bytes: usize,
    /// Changes set aside or left waiting (what this replica cannot use), all pages together.
    pub unusable: usize,
    /// Pages in a row that move the cursor and bring nothing at all.
    pub idle_pages: usize,
}

impl Caps {
    /// For a sync asked for.
    pub const ASKED: Caps = Caps {
        pages: 2_000,
        changes: 1_000_000,
        bytes: 512 << 20,
        unusable: cairn_store::MAX_UNUSABLE,
        idle_pages: 8,
    };
    /// For the quiet sync after a write, which holds the home's sync lock: it sends what was
    /// written and brings what is new; a long catch-up waits for a sync asked for.
    pub const QUIET: Caps = Caps {
        pages: 64,
        changes: 200_000,
        bytes: 256 << 20,
        unusable: cairn_store::MAX_UNUSABLE,
        idle_pages: 8,
    };
}

/// What is counted by a [`Step::Progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Changes of the log applied.
    Changes,
    /// Documents received whole.
    Documents,
}

/// A step of an exchange, told as it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The answer to request number `request` (1 for the first) came, before anything of it
    /// is recorded.
    Answered { request: usize },
    /// A page was applied: `done` of `total` since the exchange began.
    Progress { done: u64, total: u64, unit: Unit },
}

/// One push's worth of the outbox grouped by document, in order: what a sync request carries.
pub fn group_outbox(batch: &[Outgoing]) -> Vec<DocChanges> {
    let mut push: Vec<DocChanges> = Vec::new();
    for o in batch {
        match push.last_mut() {
            Some(last) if last.doc == o.doc => last.changes.push(Bytes(o.change.clone())),
            _ => push.push(DocChanges {
                doc: o.doc.clone(),
                changes: vec![Bytes(o.change.clone())],
            }),
        }
    }
    push
}

/// Exchanges with the server until the outbox is empty (sent nothing when `pull_only`) and
/// the log is pulled to its head, within `caps`. `import_done` ends a publication (the last
/// request, with an empty outbox, says so). Each step is told to `steps`.
pub fn exchange(
    replica: &mut Replica,
    client: &Client,
    now_ms: i64,
    import_done: bool,
    caps: Caps,
    pull_only: bool,
    steps: &mut dyn FnMut(Step),
) -> Result<Report> {
    std::thread::scope(|scope| {
        exchange_in(
            replica,
            client,
            now_ms,
            import_done,
            caps,
            pull_only,
            steps,
            scope,
        )
    })
}

/// A response on its way: the next page of a catch-up, asked for while this one is applied.
type Ahead<'scope> = std::thread::ScopedJoinHandle<'scope, Result<(SyncResponse, usize, usize)>>;

#[allow(clippy::too_many_arguments)]
fn exchange_in<'scope>(
    replica: &mut Replica,
    client: &'scope Client,
    now_ms: i64,
    import_done: bool,
    caps: Caps,
    pull_only: bool,
    steps: &mut dyn FnMut(Step),
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<Report> {
    let mut report = Report::default();
    let start = replica.cursor()?;
    let mut ahead: Option<Ahead<'scope>> = None;
    // Pages in a row that brought nothing, and what this replica could not use so far.
    let mut idle = 0;
    let mut unusable = 0;
    // A restore of the server met in this exchange (answered once), and the documents whose
    // changes wait for others' the restored server lost.
    let mut restored = false;
    let mut blocked: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let mut batch = if pull_only {
            Vec::new()
        } else {
            replica.outbox(PUSH_CHANGES, PUSH_BYTES)?
        };
        // Held back: what waits behind them goes up meanwhile (the outbox keeps them last).
        if let Some(i) = batch.iter().position(|o| blocked.contains(&o.doc)) {
            batch.truncate(i);
        }
        let full_batch = batch.len() == PUSH_CHANGES;
        let req = SyncRequest {
            cursor: replica.cursor()?,
            push: group_outbox(&batch),
            max_pull: None,
            import_done: import_done && batch.is_empty(),
            withdrawals: true,
            snapshots: true,
            org_docs: true,
            catch_up: replica.catch_up_state()?.map(|c| CatchUp {
                through: c.through,
                after_doc: c.after_doc,
            }),
        };
        let (resp, up, down) = match ahead.take() {
            // Asked for with this very cursor and catch-up, and nothing pushed: what was
            // written meanwhile goes up next time round.
            Some(next) => {
                batch.clear();
                next.join().map_err(|_| Error::Worker)??
            }
            None => match client.sync(&req) {
                Ok(answer) => answer,
                Err(e) => {
                    // A restored server: this replica is past its log's head.
                    if !restored
                        && e.refusal().and_then(super::Refusal::code)
                            == Some(cairn_protocol::PAST_HEAD)
                    {
                        restored = true;
                        report.resent = replica.resend_all(None)?;
                        report.requests += 1;
                        continue;
                    }
                    // A change that waits for one the restored server lost: its document's
                    // changes go behind the rest.
                    if let Some(doc) = e
                        .refusal()
                        .and_then(|r| r.body.as_ref())
                        .filter(|b| b.error == cairn_protocol::MISSING_DEPS)
                        .and_then(|b| b.doc.clone())
                        .filter(|d| !blocked.contains(d))
                    {
                        report.held_back += replica.hold_back(&doc)?;
                        blocked.insert(doc);
                        report.requests += 1;
                        continue;
                    }
                    // A copied or restored replica: the server holds other changes with this
                    // device's actor and numbers. Its own are written again under a fresh actor
                    // and the exchange goes on.
                    let Some((doc, hash)) = e.refusal().and_then(super::Refusal::reused) else {
                        return Err(e);
                    };
                    if report.rebased >= MAX_REBASES {
                        return Err(e);
                    }
                    replica.rebase(&doc, &hash, now_ms).map_err(Error::Rebase)?;
                    report.rebased += 1;
                    report.requests += 1;
                    continue;
                }
            },
        };
        // The server's logs have another identity than last time: it was restored from a
        // backup. What this device wrote goes up again, and the log is read from its start;
        // this answer (of the old cursor) is dropped.
        if let Some(log) = &resp.log {
            match replica.server_log()? {
                Some(seen) if seen != *log && !restored => {
                    restored = true;
                    report.resent = replica.resend_all(Some(log))?;
                    report.requests += 1;
                    continue;
                }
                Some(seen) if seen == *log => {}
                _ => replica.set_server_log(log)?,
            }
        }
        steps(Step::Answered {
            request: report.requests + 1,
        });
        report.requests += 1;
        report.bytes_up += up;
        report.bytes_down += down;
        let acked = (resp.acked as usize).min(batch.len());
        let acked_through = acked.checked_sub(1).map(|i| batch[i].seq);
        // Every page moves the exchange on (the cursor, the catch-up's place or what was
        // acknowledged), within what one sync takes: a server that says there is more and never
        // gets there is an error, not a loop.
        let before = (
            req.cursor,
            req.catch_up.as_ref().map(|c| c.after_doc.clone()),
        );
        let after = (
            resp.cursor,
            resp.catch_up.as_ref().map(|c| c.after_doc.clone()),
        );
        if resp.cursor < req.cursor {
            return Err(client.stopped(
                format!(
                    "sent the log back to entry {} from {}",
                    resp.cursor, req.cursor
                ),
                false,
            ));
        }
        if resp.more && before == after && acked == 0 {
            return Err(client.stopped(
                format!(
                    "says there is more after entry {} but sends nothing new",
                    resp.cursor
                ),
                false,
            ));
        }
        let brought = resp.pulled.len()
            + resp.docs.len()
            + resp.docs.iter().map(|d| d.changes.len()).sum::<usize>();
        idle = if brought == 0 && acked == 0 {
            idle + 1
        } else {
            0
        };
        if resp.more && idle >= caps.idle_pages {
            return Err(client.stopped(
                format!("sent {idle} pages in a row with nothing in them and says there is more"),
                false,
            ));
        }
        report.received_entries += brought;
        if resp.more && report.requests >= caps.pages {
            return Err(client.stopped(
                format!(
                    "still has more after {} pages, the most one sync takes",
                    report.requests
                ),
                true,
            ));
        }
        if resp.more && (report.received_entries > caps.changes || report.bytes_down > caps.bytes) {
            return Err(client.stopped(
                format!(
                    "still has more after {} changes and {} in one sync, the most one sync takes",
                    report.received_entries,
                    size(report.bytes_down)
                ),
                true,
            ));
        }
        let mut pulled: Vec<Incoming> = Vec::with_capacity(resp.pulled.len());
        // Whether a notice wrote this device's changes again (they go up before the end).
        let mut rewritten = false;
        for p in resp.pulled {
            if p.withdrawn.is_empty() {
                pulled.push(Incoming {
                    doc: p.doc,
                    change: p.change.0,
                });
                continue;
            }
            // The server's admin withdrew changes: they leave this replica too, unless that
            // would hurt (see `Replica::withdraw`).
            let hashes: Vec<Vec<u8>> = p.withdrawn.iter().filter_map(|h| unhex(h)).collect();
            let w = replica.withdraw(&p.doc, &hashes, acked_through, now_ms)?;
            report.withdrawn += w.dropped;
            report.kept += w.refused;
            report.redone += w.redone;
            if let Some(held) = w.held {
                report.held.push(held);
            }
            if report.gone.len() < cairn_store::MAX_WITHDRAWN_LINES {
                report.gone.extend(w.what);
            }
            rewritten |= w.redone > 0;
        }
        let by_docs = !resp.docs.is_empty() || resp.catch_up.is_some();
        let applied = if by_docs {
            let docs: Vec<IncomingDoc> = resp
                .docs
                .into_iter()
                .map(|d| IncomingDoc {
                    doc: d.doc,
                    snapshot: d.snapshot.0,
                    changes: d.changes.into_iter().map(|c| c.0).collect(),
                })
                .collect();
            let state = resp.catch_up.map(|c| CatchUpState {
                through: c.through,
                after_doc: c.after_doc,
            });
            let n = docs.len();
            // The next page is asked for now, while this one is applied: the server's work and
            // the way there overlap with this replica's.
            // (Not while publishing: the request that ends a publication says so itself.)
            // (Nor when a notice wrote this device's changes again: they go up first.)
            if let Some(c) = &state
                && acked == batch.len()
                && !full_batch
                && !import_done
                && !rewritten
            {
                let next = SyncRequest {
                    cursor: resp.cursor,
                    withdrawals: true,
                    snapshots: true,
                    org_docs: true,
                    catch_up: Some(CatchUp {
                        through: c.through,
                        after_doc: c.after_doc.clone(),
                    }),
                    ..SyncRequest::default()
                };
                ahead = Some(scope.spawn(move || client.sync(&next)));
            }
            let applied =
                replica.apply_docs(acked_through, &docs, state.as_ref(), resp.cursor, now_ms)?;
            report.docs += n;
            steps(Step::Progress {
                done: report.docs as u64,
                total: report.docs as u64 + resp.docs_left,
                unit: Unit::Documents,
            });
            applied
        } else {
            let applied = replica.apply_exchange(acked_through, &pulled, resp.cursor, now_ms)?;
            steps(Step::Progress {
                done: resp.cursor.saturating_sub(start),
                total: resp.head.saturating_sub(start),
                unit: Unit::Changes,
            });
            applied
        };
        report.sent += acked;
        report.received += applied.changes;
        report.set_aside += applied.set_aside;
        report.cursor = resp.cursor;
        unusable += applied.unusable;
        if resp.more && unusable > caps.unusable {
            return Err(client.stopped(
                format!(
                    "sent {unusable} changes this replica cannot use in one sync (`cairn doctor` \
                     lists them)"
                ),
                false,
            ));
        }
        let pushed_all = acked == batch.len() && !full_batch && !rewritten;
        // A publication ends with one more exchange, with an empty outbox, that says so.
        let import_said = !import_done || batch.is_empty();
        if !resp.more && pushed_all && import_said {
            break;
        }
        if acked < batch.len() && !resp.more {
            return Err(Error::Partial);
        }
    }
    Ok(report)
}

/// A byte count for people: `812 B`, `4.2 KB`, `1.3 MB`.
pub fn size(bytes: usize) -> String {
    match bytes {
        b if b < 1_000 => format!("{b} B"),
        b if b < 1_000_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}
