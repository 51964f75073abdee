//! Pulls and catch-ups: the log after a device's cursor one change at a time, or whole
//! documents for a device far behind.

use std::collections::HashSet;

use cairn_protocol::{Bytes, CatchUp, DocState, Pulled, SyncResponse};

use super::{Hub, SyncCounts, hex, past_head};
use crate::docs;
use crate::store::{Device, DocsQuery, Kind, Logged, Page, PullQuery};
use crate::{Limits, Result};

impl Hub {
    /// The log after `cursor`, one change at a time.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn pull(
        &self,
        device: &Device,
        cursor: u64,
        skip: HashSet<Vec<u8>>,
        max_pull: Option<u32>,
        withdrawals: bool,
        limits: &Limits,
        counts: &mut SyncCounts,
    ) -> Result<Option<SyncResponse>> {
        let max = max_pull
            .unwrap_or(limits.max_page_changes)
            .min(limits.max_page_changes);
        let page = if skip.is_empty() && cursor == device.team_head as u64 {
            // Nothing pushed, nothing new as of the token's check: the most common sync.
            Page {
                head: device.team_head,
                entries: Vec::new(),
                more: false,
                pruned: device.team_pruned,
            }
        } else {
            self.store
                .pull(&PullQuery {
                    team: device.team.clone(),
                    skip,
                    after: i64::try_from(cursor).unwrap_or(i64::MAX),
                    max,
                    max_bytes: limits.max_page_bytes,
                    notices: withdrawals,
                })
                .await?
        };
        let head = page.head as u64;
        if cursor > head {
            return Err(past_head(cursor, head));
        }
        if max > 0 && cursor < u64::try_from(page.pruned).unwrap_or(0) {
            return Ok(None);
        }
        let pulled: Vec<Pulled> = page.entries.into_iter().map(pulled_entry).collect();
        let (cursor, more) = if max == 0 {
            (cursor, cursor < head)
        } else if page.more {
            let at = pulled.last().map_or(cursor, |p| p.seq);
            (at, at < head)
        } else {
            (head, false)
        };
        counts.pulled = pulled.len();
        counts.bytes_out = pulled.iter().map(|p| p.change.0.len()).sum();
        Ok(Some(SyncResponse {
            pulled,
            cursor,
            more,
            head,
            ..SyncResponse::default()
        }))
    }

    /// A page of whole documents for a device far behind: each document changed after its
    /// cursor, as its snapshot and the changes after it, in the order of their ids. The cursor
    /// moves to the head as of the first page once the last document has gone.
    pub(super) async fn pull_docs(
        &self,
        device: &Device,
        cursor: u64,
        going: Option<CatchUp>,
        limits: &Limits,
        counts: &mut SyncCounts,
    ) -> Result<SyncResponse> {
        let team = device.team.as_str();
        // A catch-up goes on where it stood, unless that cannot be right (a server restored
        // from an older backup, a state that was never this server's): then it starts again.
        let going = going.filter(|c| {
            c.through > cursor
                && c.through <= u64::try_from(device.team_head).unwrap_or(0)
                && c.after_doc.len() <= MAX_DOC_ID
        });
        let page = self
            .store
            .pull_docs(&DocsQuery {
                team: team.to_owned(),
                after: i64::try_from(cursor).unwrap_or(i64::MAX),
                after_doc: going
                    .as_ref()
                    .map(|c| c.after_doc.clone())
                    .unwrap_or_default(),
                max_docs: MAX_PAGE_DOCS,
                max_bytes: limits.max_page_bytes,
                // The first page says what was withdrawn meanwhile.
                notices_through: going.is_none().then_some(i64::MAX),
            })
            .await?;
        let head = page.head as u64;
        if cursor > head {
            return Err(past_head(cursor, head));
        }
        let through = going.as_ref().map_or(head, |c| c.through);
        let mut docs = Vec::with_capacity(page.docs.len());
        let mut left = page.left as u64;
        let mut compacted = 0;
        let total = page.docs.len();
        for (i, read) in page.docs.into_iter().enumerate() {
            let tail_bytes = read.tail.iter().map(|(_, d)| d.len()).sum();
            // Known only when the device lacks part of what it holds.
            let snapshot_bytes = read.snapshot.as_ref().map_or(0, |(_, d)| d.len());
            let compact = (read.snapshot.is_some() || cursor == 0)
                && docs::snapshot_due(read.tail.len(), tail_bytes, snapshot_bytes);
            if compact && compacted == MAX_COMPACT_PER_PAGE {
                // Enough work for one request: the rest come on the next page.
                left += (total - i) as u64;
                break;
            }
            let mut state = None;
            if compact {
                compacted += 1;
                state = self.compact(team, &read.doc, page.withdrawals).await?;
            }
            let state = state.unwrap_or_else(|| DocState {
                doc: read.doc.clone(),
                snapshot: Bytes(read.snapshot.map(|(_, d)| d).unwrap_or_default()),
                changes: read.tail.into_iter().map(|(_, d)| Bytes(d)).collect(),
            });
            counts.pulled += state.changes.len() + usize::from(!state.snapshot.is_empty());
            counts.bytes_out +=
                state.snapshot.0.len() + state.changes.iter().map(|c| c.0.len()).sum::<usize>();
            docs.push(state);
        }
        let pulled = page.notices.into_iter().map(pulled_entry).collect();
        let catch_up = (left > 0).then(|| CatchUp {
            through,
            after_doc: docs.last().map(|d| d.doc.clone()).unwrap_or_default(),
        });
        let cursor = if left > 0 { cursor } else { through };
        Ok(SyncResponse {
            pulled,
            cursor,
            more: left > 0 || cursor < head,
            head,
            docs,
            catch_up,
            docs_left: left,
            ..SyncResponse::default()
        })
    }
}

/// A log entry as a device receives it.
fn pulled_entry(e: Logged) -> Pulled {
    let (change, withdrawn) = match e.kind {
        Kind::Notice => (Bytes(Vec::new()), e.data.chunks(32).map(hex).collect()),
        Kind::Change => (Bytes(e.data), Vec::new()),
    };
    Pulled {
        seq: e.seq as u64,
        doc: e.doc,
        change,
        withdrawn,
    }
}

/// Documents one catch-up page holds at most (and bytes: [`Limits::max_page_bytes`], which
/// bounds a page first once documents are larger than a kilobyte). A small team's journals hold a
/// few events each: 4,000 of them to a page let a device take a team of 10,000 events in one
/// page (0.96x the time of pages of 1,000 in paired runs).
const MAX_PAGE_DOCS: u32 = 4_000;
/// Documents one catch-up page compacts at most (the rest come on the next page).
const MAX_COMPACT_PER_PAGE: usize = 32;
/// The longest document id a catch-up state may name.
const MAX_DOC_ID: usize = 256;
